package ddclient

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// daemonPod is a DaemonSet's pod without the tags.datadoghq.com/* labels:
// it has no kube_deployment and no unified service tags for a label to
// clash with, so only the reserved names protect them.
var daemonPod = map[string]string{
	meta + "namespace":           "infra",
	meta + "pod_name":            "agent-x2x9z",
	meta + "pod_container_name":  "agent",
	meta + "pod_controller_kind": "DaemonSet",
	meta + "pod_controller_name": "agent",
}

// reservedCase is one way a target tries to set the tag name to "spoofed":
// it returns the target, the mapping and the exposition body.
type reservedCase func(name string) (*target.Target, Mapping, string)

func reservedTarget(extra ...string) *target.Target {
	return &target.Target{
		URL: "http://10.0.0.1:9100/metrics", Interval: 15 * time.Second,
		Labels:     labels.FromStrings(append([]string{"instance", "10.0.0.1:9100", "job", "agent"}, extra...)...),
		Discovered: labels.FromMap(daemonPod),
	}
}

// reservedCases are the ways a target or a monitor could set a tag: a
// scraped label, a target label (what a monitor's relabeling or a file's
// labels give), a metric relabeling, and the operator's RenameLabels
// turning a scraped label into one.
var reservedCases = map[string]reservedCase{
	"scraped label": func(name string) (*target.Target, Mapping, string) {
		return reservedTarget(), Mapping{Host: "node-1"}, fmt.Sprintf("m{%s=\"spoofed\"} 1\n", name)
	},
	"target label": func(name string) (*target.Target, Mapping, string) {
		return reservedTarget(name, "spoofed"), Mapping{Host: "node-1"}, "m 1\n"
	},
	"metric relabeling": func(name string) (*target.Target, Mapping, string) {
		t := reservedTarget()
		t.MetricRelabel = []*promrelabel.Config{{
			Action: promrelabel.Replace, Separator: ";", Regex: promrelabel.MustNewRegexp("(.*)"),
			TargetLabel: name, Replacement: "spoofed", NameValidationScheme: model.UTF8Validation,
		}}
		return t, Mapping{Host: "node-1"}, "m 1\n"
	},
	"renamed by the operator": func(name string) (*target.Target, Mapping, string) {
		return reservedTarget(), Mapping{Host: "node-1", RenameLabels: map[string]string{"app_x": name}}, "m{app_x=\"spoofed\"} 1\n"
	},
}

// TestReservedTagsRenamed: a tag the agent owns, which this pod does not
// have (no owner of that kind, no unified service tags, no cluster name),
// set by each of reservedCases, reaches Datadog only as exported_<name>,
// the host resource stays the node's, and the rename is counted once per
// series (not again at the next scrape).
func TestReservedTagsRenamed(t *testing.T) {
	names := []string{"host", "env", "service", "version", "kube_deployment", "kube_cluster_name",
		"cluster_name", "device", "source", "pod_name", "container_id", "kube_ownerref_name", "image_tag"}
	for how, c := range reservedCases {
		for _, name := range names {
			t.Run(how+"/"+name, func(t *testing.T) {
				tg, mp, body := c(name)
				sink := newCaptureSink()
				s := newScraper(t, mappedBackend{sink, mp}, tg, prom)
				s.scrape(body, testTS)
				s.scrape(body, testTS+15_000)
				series := sink.series(t)
				if len(series) != 2 {
					t.Fatalf("%d series, want 2 points of m", len(series))
				}
				for _, sr := range series {
					if !slices.Contains(sr.Tags, model.ExportedLabelPrefix+name+":spoofed") {
						t.Errorf("%s: no exported_%s:spoofed", render(sr), name)
					}
					for _, tag := range sr.Tags {
						if strings.HasPrefix(tag, name+":") {
							t.Errorf("%s: the target set %s", render(sr), tag)
						}
					}
					if len(sr.Resources) != 1 || sr.Resources[0].GetName() != "node-1" || sr.Resources[0].GetType() != "host" {
						t.Errorf("%s: resources %+v, want the host node-1", render(sr), sr.Resources)
					}
				}
				if got := metricValue(t, sink.set, "nodescraper_dd_reserved_tags_renamed_total"); got != 1 {
					t.Errorf("renamed counter %v, want 1 (one series)", got)
				}
				if got := metricValue(t, sink.set, "nodescraper_dd_reserved_tags_dropped_total"); got != 0 {
					t.Errorf("dropped counter %v, want 0", got)
				}
			})
		}
	}
}

// TestReservedTagsRepeatedDropped: a label repeating a Kubernetes tag of
// the pod with the same value is dropped (one env:prod), with another value
// renamed; each is counted per series, and a target label once per series
// that carries it (here two).
func TestReservedTagsRepeatedDropped(t *testing.T) {
	pod := labels.FromMap(daemonPod)
	b := labels.NewBuilder(pod)
	b.Set(meta+"pod_label_tags_datadoghq_com_env", "prod")
	tg := reservedTarget("service", "spoofed")
	tg.Discovered = b.Labels()
	sink := newCaptureSink()
	s := newScraper(t, mappedBackend{sink, Mapping{Host: "node-1"}}, tg, prom)
	s.scrape("a{env=\"prod\"} 1\nb{env=\"dev\",kube_daemon_set=\"agent\"} 2\n", testTS)
	got := renderAll(sink.series(t))
	want := []string{
		"a gauge host=node-1 [env:prod exported_service:spoofed instance:10.0.0.1:9100 job:agent kube_container_name:agent kube_daemon_set:agent kube_namespace:infra kube_ownerref_kind:daemonset] = 1",
		"b gauge host=node-1 [env:prod exported_env:dev exported_service:spoofed instance:10.0.0.1:9100 job:agent kube_container_name:agent kube_daemon_set:agent kube_namespace:infra kube_ownerref_kind:daemonset] = 2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if got := metricValue(t, sink.set, "nodescraper_dd_reserved_tags_renamed_total"); got != 3 {
		t.Errorf("renamed counter %v, want 3 (exported_env, exported_service twice)", got)
	}
	if got := metricValue(t, sink.set, "nodescraper_dd_reserved_tags_dropped_total"); got != 2 {
		t.Errorf("dropped counter %v, want 2 (env:prod, kube_daemon_set:agent)", got)
	}
}

// TestKubeTagsAreReserved: every tag kubeTags can give, for any owner and
// a cluster target, is a ReservedTag, so no label can stand beside it.
func TestKubeTagsAreReserved(t *testing.T) {
	for _, kind := range []string{"Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "ReplicationController", "Job", "CronJob"} {
		b := labels.NewBuilder(labels.FromMap(agentPod))
		name := "owner-6b7f9c8d4"
		switch kind {
		case "Job":
			name = "owner"
		case "CronJob":
			kind, name = "Job", "owner-28012345" // a CronJob's Job
		}
		b.Set(meta+"pod_controller_kind", kind)
		b.Set(meta+"pod_controller_name", name)
		for _, l := range []string{"name", "instance", "version", "component", "part_of", "managed_by"} {
			b.Set(appLabel+l, "x")
		}
		for _, kt := range kubeTags(b.Labels(), "eu1", true) {
			if !ReservedTag(kt.name) {
				t.Errorf("%s owner: kubeTags gives %s, which is not a ReservedTag", kind, kt.name)
			}
		}
	}
	for _, name := range []string{"code", "namespace", "pod", "container", "instance", "job", "exported_host", "persistentvolumeclaim", "le", "quantile"} {
		if ReservedTag(name) {
			t.Errorf("%s is reserved", name)
		}
	}
}
