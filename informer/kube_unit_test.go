package informer

import (
	"strings"
	"testing"

	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	"k8s.io/client-go/rest"
)

func TestSameTargets(t *testing.T) {
	rule := func(regex string) *promrelabel.Config {
		return &promrelabel.Config{Action: promrelabel.Drop, SourceLabels: model.LabelNames{"__name__"}, Separator: ";", Regex: promrelabel.MustNewRegexp(regex)}
	}
	target := func(regex string, discovered ...string) []scrapeloop.Target {
		return []scrapeloop.Target{{URL: "http://127.0.0.1:1/metrics", Labels: labels.FromStrings("job", "a"), Discovered: labels.FromStrings(discovered...),
			MetricRelabel: []*promrelabel.Config{rule(regex)}}}
	}
	cases := []struct {
		name string
		a, b []scrapeloop.Target
		same bool
	}{
		{"rebuilt alike, other rule pointers", target("go_.*"), target("go_.*"), true},
		{"rule regex differs", target("go_.*"), target("process_.*"), false},
		{"discovered labels differ", target("x", "__meta_kubernetes_pod_name", "a"), target("x", "__meta_kubernetes_pod_name", "b"), false},
		{"discovered labels alike", target("x", "__meta_kubernetes_pod_name", "a"), target("x", "__meta_kubernetes_pod_name", "a"), true},
		{"one more target", target("x"), append(target("x"), target("y")...), false},
		{"both empty", nil, []scrapeloop.Target{}, true},
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
