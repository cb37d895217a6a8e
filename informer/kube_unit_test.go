package informer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	"k8s.io/client-go/rest"
)

func TestSameTargets(t *testing.T) {
	rule := func(regex string) *promrelabel.Config {
		return &promrelabel.Config{Action: promrelabel.Drop, SourceLabels: model.LabelNames{"__name__"}, Separator: ";", Regex: promrelabel.MustNewRegexp(regex)}
	}
	mk := func(regex string, discovered ...string) []target.Target {
		return []target.Target{{URL: "http://127.0.0.1:1/metrics", Labels: labels.FromStrings("job", "a"), Discovered: labels.FromStrings(discovered...),
			MetricRelabel: []*promrelabel.Config{rule(regex)}}}
	}
	cases := []struct {
		name string
		a, b []target.Target
		same bool
	}{
		{"rebuilt alike, other rule pointers", mk("go_.*"), mk("go_.*"), true},
		{"rule regex differs", mk("go_.*"), mk("process_.*"), false},
		{"discovered labels differ", mk("x", "__meta_kubernetes_pod_name", "a"), mk("x", "__meta_kubernetes_pod_name", "b"), false},
		{"discovered labels alike", mk("x", "__meta_kubernetes_pod_name", "a"), mk("x", "__meta_kubernetes_pod_name", "a"), true},
		{"one more target", mk("x"), append(mk("x"), mk("y")...), false},
		{"both empty", nil, []target.Target{}, true},
	}
	for _, c := range cases {
		if got := sameTargets(c.a, c.b); got != c.same {
			t.Errorf("%s: sameTargets = %v, want %v", c.name, got, c.same)
		}
	}
}

// TestKubeMetricsHelp: every metric of the discovery has HELP text. NewKube
// contacts nothing, so no API server is needed.
func TestKubeMetricsHelp(t *testing.T) {
	k, err := NewKube(KubeConfig{Rest: &rest.Config{Host: "127.0.0.1:1"}, NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	help := k.MetricsHelp()
	for _, name := range k.Metrics().ListMetricNames() {
		family, _, _ := strings.Cut(name, "{")
		if help[family] == "" {
			t.Errorf("%s has no HELP text", family)
		}
	}
}

func TestLimitTargets(t *testing.T) {
	pool := func(active, dropped int) []target.Target {
		var ts []target.Target
		for i := range active {
			ts = append(ts, target.Target{URL: fmt.Sprintf("http://127.0.0.1:%d/metrics", i+1), Labels: labels.FromStrings("job", "a"),
				Discovered: labels.FromStrings("__address__", fmt.Sprintf("127.0.0.1:%d", i+1)), Source: "sm", Pool: "sm"})
		}
		for range dropped {
			ts = append(ts, target.Target{Source: "sm", Pool: "sm", Drop: target.Drop{Reason: target.DroppedByRelabeling}})
		}
		return ts
	}
	cases := []struct {
		active, dropped int
		limit           int64
		wantLimited     int
	}{
		{3, 0, 0, 0}, // no limit
		{3, 5, 3, 0}, // at the limit; dropped ones do not count
		{4, 1, 3, 4}, // over: all four dropped, the relabeling drop stays as it was
		{10, 0, 1, 10},
	}
	for _, c := range cases {
		ts := pool(c.active, c.dropped)
		limitTargets(ts, c.limit)
		limited, relabeled := 0, 0
		for _, tg := range ts {
			switch tg.Drop.Reason {
			case target.DroppedLimit:
				limited++
				if tg.Labels.Len() != 0 || tg.Discovered.Get("__address__") == "" || tg.Pool != "sm" ||
					tg.Drop.Detail != fmt.Sprintf("targetLimit %d exceeded: the pool has %d targets on this node", c.limit, c.active) {
					t.Errorf("%+v: limited target %+v", c, tg)
				}
			case target.DroppedByRelabeling:
				relabeled++
			}
		}
		if limited != c.wantLimited || relabeled != c.dropped {
			t.Errorf("%+v: %d limited, %d dropped by relabeling; want %d, %d", c, limited, relabeled, c.wantLimited, c.dropped)
		}
	}
}
