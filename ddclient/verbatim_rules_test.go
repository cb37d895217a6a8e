package ddclient

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/prometheus/prometheus/model/labels"
)

// rulesTarget is a DaemonSet's pod (env prod) whose target labels the tag
// rules change too: namespace repeats the pod's (rule 3), service is
// reserved (rule 5).
func rulesTarget(honor bool) *target.Target {
	b := labels.NewBuilder(labels.FromMap(daemonPod))
	b.Set(meta+"pod_label_tags_datadoghq_com_env", "prod")
	return &target.Target{
		URL: "http://10.0.0.1:9100/metrics", Interval: 15 * time.Second,
		Labels:      labels.FromStrings("instance", "10.0.0.1:9100", "job", "agent", "namespace", "infra", "service", "spoofed"),
		Discovered:  b.Labels(),
		HonorLabels: honor,
	}
}

// rulesBody has scraped labels the tag rules rename (rule 5: exported_),
// drop as a Kubernetes tag's value (rule 5) or the pod's (rule 3), or
// exclude, at the first, a middle and the last position; with and without
// JSON escapes, long enough to be shortened only once exported_ is added,
// in compact label text and not, in histograms beside le, and one label
// RenameLabels renames (kept encoded).
var rulesBody = "# TYPE m gauge\n" +
	`m{device="/dev/sda",code="200"} 1` + "\n" +
	`m{code="200",env="prod",path="/a"} 2` + "\n" +
	`m{code="201",env="dev"} 3` + "\n" +
	`m{namespace="infra",code="1"} 4` + "\n" +
	`m{namespace="other",code="1"} 5` + "\n" +
	`m{pod="agent-x2x9z",container="agent"} 6` + "\n" +
	`m{kube_daemon_set="agent",host="h\"x",device="` + longValue("d", 195) + `"} 7` + "\n" +
	`m{device="` + longValue("e", 185) + `",code="3"} 8` + "\n" +
	`m{excluded="x",code="2",env="prod"} 9` + "\n" +
	`m{job="scraped",device="d",service="agent"} 10` + "\n" +
	`m{code="4", env="prod", zone="a"} 11` + "\n" +
	`m{renamed_me="x",device="d"} 12` + "\n" +
	"# TYPE lat histogram\n" +
	`lat_bucket{device="d",le="0.1"} 1` + "\n" +
	`lat_bucket{le="1",env="prod",code="5"} 2` + "\n" +
	`lat_bucket{env="prod",le="+Inf"} 3` + "\n" +
	`lat_sum{env="prod"} 4` + "\n" +
	`lat_count{env="prod"} 3` + "\n" +
	"# TYPE rpc summary\n" +
	`rpc{service="catalog",quantile="0.5"} 0.1` + "\n" +
	`rpc_sum{service="catalog"} 7` + "\n" +
	`rpc_count{service="catalog"} 70` + "\n"

// TestVerbatimRulesEqualsKept checks that series whose scraped labels the
// tag rules rename or drop, encoded per point from the parser through their
// shape's masks (shape.exported, shape.dropped), give the same payload and
// the same rule 5 counts as the same series forced non-verbatim (their tags
// kept encoded), and that only the series with a label RenameLabels renames
// keep their tags.
func TestVerbatimRulesEqualsKept(t *testing.T) {
	mappings := map[string]Mapping{
		"exclude": {Namespace: "svc", Host: "node-1", ExcludeLabels: []string{"excluded"}, RenameLabels: map[string]string{"renamed_me": "other"}},
		"include": {Namespace: "svc", Host: "node-1", IncludeLabels: []string{"code", "device", "env", "namespace", "service", "host", "renamed_me"}, RenameLabels: map[string]string{"renamed_me": "host"}},
	}
	for mname, mp := range mappings {
		for _, honor := range []bool{false, true} {
			t.Run(fmt.Sprintf("mapping=%s/honor_labels=%v", mname, honor), func(t *testing.T) {
				verb, kept := newCaptureSink(), newCaptureSink()
				sv := newScraper(t, mappedBackend{verb, mp}, rulesTarget(honor), prom)
				sk := newScraper(t, mappedBackend{kept, mp}, rulesTarget(honor), prom)
				sk.nonVerbatim = true
				for i := range 3 {
					sv.scrape(rulesBody, testTS+int64(i)*15_000)
					sk.scrape(rulesBody, testTS+int64(i)*15_000)
				}
				for raw, c := range sv.refs {
					if c.kind == scrapeloop.KindDrop {
						continue
					}
					if want := strings.Contains(raw, "renamed_me"); (c.ref&storedBit != 0) != want {
						t.Errorf("series %s: stored %v, want %v", raw, c.ref&storedBit != 0, want)
					}
				}
				gv, gk := verb.series(t), kept.series(t)
				if len(gv) == 0 || len(gv) != len(gk) {
					t.Fatalf("%d verbatim series, %d kept", len(gv), len(gk))
				}
				if nv, nk := normalize(gv), normalize(gk); !reflect.DeepEqual(nv, nk) {
					rv, rk := renderAll(gv), renderAll(gk)
					for i := range max(len(rv), len(rk)) {
						if a, b := at(rv, i), at(rk, i); a != b {
							t.Errorf("series %d:\nverbatim %s\nkept     %s", i, a, b)
						}
					}
					if !t.Failed() {
						t.Errorf("payloads differ beyond their rendering:\n%+v\n%+v", nv, nk)
					}
				}
				// Rule 5 is counted once per series on both paths.
				for _, name := range []string{"nodescraper_dd_reserved_tags_renamed_total", "nodescraper_dd_reserved_tags_dropped_total"} {
					a, b := metricValue(t, verb.set, name), metricValue(t, kept.set, name)
					if a != b || a == 0 {
						t.Errorf("%s: verbatim %v, kept %v", name, a, b)
					}
				}
				// A verbatim tag is shortened (and counted) at each point, a
				// kept one once: both are.
				if a, b := metricValue(t, verb.set, "nodescraper_dd_tags_shortened_total"), metricValue(t, kept.set, "nodescraper_dd_tags_shortened_total"); a == 0 || b == 0 {
					t.Errorf("shortened tags: verbatim %v, kept %v", a, b)
				}
			})
		}
	}
}
