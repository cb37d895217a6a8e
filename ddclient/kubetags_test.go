package ddclient

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

// agentPod is a Deployment's pod as Prometheus' Kubernetes SD labels it,
// with the pod labels the Datadog Agent reads tags from.
var agentPod = map[string]string{
	meta + "namespace":                                  "shop",
	meta + "service_name":                               "cart",
	meta + "pod_name":                                   "cart-6b7f9c8d4-x2x9z",
	meta + "pod_phase":                                  "Running",
	meta + "pod_container_name":                         "server",
	meta + "pod_container_id":                           "containerd://4f2a9c",
	meta + "pod_container_image":                        "registry.example.com/shop/cart:1.4.2",
	meta + "pod_controller_kind":                        "ReplicaSet",
	meta + "pod_controller_name":                        "cart-6b7f9c8d4",
	meta + "pod_label_app_kubernetes_io_name":           "cart",
	meta + "pod_label_app_kubernetes_io_part_of":        "shop",
	meta + "pod_label_tags_datadoghq_com_env":           "prod",
	meta + "pod_label_tags_datadoghq_com_service":       "cart-api",
	meta + "pod_label_tags_datadoghq_com_version":       "1.4.2",
	meta + "pod_annotation_kubernetes_io_config_source": "api",
}

// agentPodTags is the table of the Datadog Agent's documented
// out-of-the-box Kubernetes tags (docs.datadoghq.com/containers/kubernetes/tag:
// tag, cardinality), as the tagger makes them for agentPod, a Deployment's
// pod, in cluster eu1: each cardinality sends its own tags and those of the
// levels below.
func agentPodTags() map[Cardinality][]string {
	low := []string{
		"kube_cluster_name:eu1",
		"kube_namespace:shop",
		"kube_service:cart",
		"pod_phase:running",
		"kube_container_name:server",
		"image_name:registry.example.com/shop/cart",
		"short_image:cart",
		"image_tag:1.4.2",
		"kube_ownerref_kind:replicaset",
		// Read from the ReplicaSet's name: the pod has no pod-template-hash label.
		"kube_deployment:cart",
		"kube_replica_set:cart-6b7f9c8d4",
		"kube_app_name:cart",
		"kube_app_part_of:shop",
		"env:prod",
		"service:cart-api",
		"version:1.4.2",
	}
	orchestrator := append(slices.Clone(low),
		"pod_name:cart-6b7f9c8d4-x2x9z",
		"kube_ownerref_name:cart-6b7f9c8d4",
	)
	high := append(slices.Clone(orchestrator),
		"container_id:4f2a9c",
		"display_container_name:server_cart-6b7f9c8d4-x2x9z",
	)
	return map[Cardinality][]string{LowCardinality: low, OrchestratorCardinality: orchestrator, HighCardinality: high}
}

// TestKubeTagsByCardinality checks kubeTags against agentPodTags.
func TestKubeTagsByCardinality(t *testing.T) {
	table := agentPodTags()
	for _, c := range []struct {
		card Cardinality
		want []string
	}{
		{LowCardinality, table[LowCardinality]},
		{OrchestratorCardinality, table[OrchestratorCardinality]},
		{HighCardinality, table[HighCardinality]},
	} {
		t.Run(c.card.String(), func(t *testing.T) {
			target := &target.Target{Discovered: labels.FromMap(agentPod)}
			r := newTagRules(&Mapping{Cardinality: c.card, ClusterName: "eu1"}, target)
			var got []string
			for _, kt := range r.kube {
				got = append(got, kt.name+":"+kt.value)
			}
			if g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(c.want)); !slices.Equal(g, w) {
				t.Errorf("tags\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
			}
		})
	}
}

// TestOwnerTags is the owner derivation of the Agent's
// extractTagsFromPodOwner, at each cardinality.
func TestOwnerTags(t *testing.T) {
	cases := []struct {
		kind, name string
		low, orch  string // tags added at low, and at orchestrator besides kube_ownerref_name
	}{
		{kind: "ReplicaSet", name: "web-5d8f9", low: "kube_deployment:web kube_replica_set:web-5d8f9"},
		{kind: "ReplicaSet", name: "web-7799", low: "kube_deployment:web kube_replica_set:web-7799"},           // digits: hashes before Kubernetes 1.8
		{kind: "ReplicaSet", name: "web-abc", low: "kube_replica_set:web-abc"},                                 // a and e are not in the hash alphabet
		{kind: "ReplicaSet", name: "plain-rs", low: "kube_replica_set:plain-rs"},                               // suffix under 3 characters
		{kind: "ReplicaSet", name: "norsuffix", low: "kube_replica_set:norsuffix"},                             // no dash
		{kind: "DaemonSet", name: "agent", low: "kube_daemon_set:agent"},                                       //
		{kind: "StatefulSet", name: "db", low: "kube_stateful_set:db"},                                         //
		{kind: "ReplicationController", name: "old", low: "kube_replication_controller:old"},                   //
		{kind: "Job", name: "backup-29012345", low: "kube_cronjob:backup", orch: "kube_job:backup-29012345"},   // a CronJob's Job: kube_job is orchestrator
		{kind: "Job", name: "one-off", low: "kube_job:one-off"},                                                //
		{kind: "Job", name: "migrate-12", low: "kube_job:migrate-12"},                                          // 2 digits: not a CronJob's
		{kind: "Job", name: "trailing-", low: "kube_job:trailing-"},                                            //
		{kind: "Node", name: "n1", low: ""},                                                                    // a static pod: only the ownerref tags
		{kind: "Deployment", name: "direct", low: "kube_deployment:direct"},                                    //
		{kind: "ReplicaSet", name: "api-6b7f9c8d4", low: "kube_deployment:api kube_replica_set:api-6b7f9c8d4"}, //
	}
	for _, c := range cases {
		for _, card := range []Cardinality{LowCardinality, OrchestratorCardinality} {
			d := labels.FromStrings(meta+"pod_controller_kind", c.kind, meta+"pod_controller_name", c.name)
			r := newTagRules(&Mapping{Cardinality: card}, &target.Target{Discovered: d})
			var got []string
			for _, kt := range r.kube {
				got = append(got, kt.name+":"+kt.value)
			}
			want := append([]string{"kube_ownerref_kind:" + strings.ToLower(c.kind)}, strings.Fields(c.low)...)
			if card >= OrchestratorCardinality {
				want = append(want, "kube_ownerref_name:"+c.name)
				want = append(want, strings.Fields(c.orch)...)
			}
			if g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)); !slices.Equal(g, w) {
				t.Errorf("%s %s at %s: got %q, want %q", c.kind, c.name, card, g, w)
			}
		}
	}
}

func TestSplitImage(t *testing.T) {
	for _, c := range []struct{ ref, name, short, tag string }{
		{"nginx", "nginx", "nginx", "latest"},
		{"nginx:1.25", "nginx", "nginx", "1.25"},
		{"docker.io/library/nginx:1.25", "docker.io/library/nginx", "nginx", "1.25"},
		{"localhost:5000/team/app", "localhost:5000/team/app", "app", "latest"},
		{"localhost:5000/team/app:v2@sha256:abcd", "localhost:5000/team/app", "app", "v2"},
		{"app@sha256:abcd", "app", "app", "latest"},
	} {
		if n, s, tag := splitImage(c.ref); n != c.name || s != c.short || tag != c.tag {
			t.Errorf("splitImage(%q) = %q %q %q, want %q %q %q", c.ref, n, s, tag, c.name, c.short, c.tag)
		}
	}
}

func TestParseCardinality(t *testing.T) {
	for in, want := range map[string]Cardinality{"low": LowCardinality, "": LowCardinality, "Orchestrator": OrchestratorCardinality, "HIGH": HighCardinality} {
		if got, err := ParseCardinality(in); err != nil || got != want {
			t.Errorf("ParseCardinality(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseCardinality("medium"); err == nil {
		t.Error("ParseCardinality(medium): no error")
	}
}

// TestTagRules is one case per rule of tagRules, each label of a
// ServiceMonitor target of agentPod (the Operator's target labels) and
// scraped labels through the rules.
func TestTagRules(t *testing.T) {
	target := &target.Target{
		Interval: 15 * time.Second,
		Labels: labels.FromStrings("job", "cart", "instance", "10.1.2.3:8080", "namespace", "shop",
			"pod", "cart-6b7f9c8d4-x2x9z", "container", "server", "service", "cart", "endpoint", "http"),
		Discovered: labels.FromMap(agentPod),
	}
	base := Mapping{}
	cases := []struct {
		name   string
		mp     Mapping
		label  string
		value  string
		want   string // tag name, "" for dropped
		reason string
	}{
		{"kept", base, "code", "200", "code", "not a rule's"},
		{"le", Mapping{IncludeLabels: []string{"code"}}, "le", "0.5", "le", "rule 1"},
		{"quantile", Mapping{ExcludeLabels: []string{"quantile"}}, "quantile", "0.99", "quantile", "rule 1"},
		{"excluded", Mapping{ExcludeLabels: []string{"endpoint"}}, "endpoint", "http", "", "rule 2"},
		{"not included", Mapping{IncludeLabels: []string{"code"}}, "endpoint", "http", "", "rule 2"},
		{"included", Mapping{IncludeLabels: []string{"code"}}, "code", "200", "code", "rule 2"},
		{"namespace twice", base, "namespace", "shop", "", "rule 3: kube_namespace"},
		{"pod twice", base, "pod", "cart-6b7f9c8d4-x2x9z", "", "rule 3: pod_name, even at low"},
		{"container twice", base, "container", "server", "", "rule 3: kube_container_name"},
		{"k8s service", base, "service", "cart", "", "rule 3: kube_service"},
		{"other namespace", base, "namespace", "kube-system", "namespace", "rule 3 keeps another value (kube-state-metrics' object)"},
		{"renamed", Mapping{RenameLabels: map[string]string{"code": "http_status"}}, "code", "200", "http_status", "rule 4"},
		{"renamed to reserved", Mapping{RenameLabels: map[string]string{"app_version": "version"}}, "app_version", "9", "exported_version", "rules 4, 5"},
		{"service label", base, "service", "checkout", "exported_service", "rule 5: unified service tag wins"},
		{"version label", base, "version", "go1.22", "exported_version", "rule 5"},
		{"same env", base, "env", "prod", "", "rule 5: same value, one tag"},
		{"kube tag name", base, "kube_deployment", "other", "exported_kube_deployment", "rule 5"},
		{"pod_name at low", base, "pod_name", "x", "exported_pod_name", "rule 5: reserved, though not sent at low"},
		{"host", base, "host", "spoofed", "exported_host", "rule 5: the host resource is the agent's"},
		{"kube tag the pod lacks", base, "kube_daemon_set", "x", "exported_kube_daemon_set", "rule 5"},
		{"cluster name without one", base, "kube_cluster_name", "x", "exported_kube_cluster_name", "rule 5"},
		{"device", base, "device", "sda", "exported_device", "rule 5"},
		{"source", base, "source", "s", "exported_source", "rule 5"},
		{"excluded host", Mapping{ExcludeLabels: []string{"host"}}, "host", "h", "", "rule 2 before 5"},
		{"renamed away", Mapping{RenameLabels: map[string]string{"device": "disk"}}, "device", "sda", "disk", "rule 4 before 5"},
		{"pod_name at orchestrator", Mapping{Cardinality: OrchestratorCardinality}, "pod_name", "x", "exported_pod_name", "rule 5"},
	}
	for _, c := range cases {
		r := newTagRules(&c.mp, target)
		got, ok := r.label(c.label, c.value)
		if !ok {
			got = ""
		}
		if got != c.want {
			t.Errorf("%s (%s): %s=%q → %q, want %q", c.name, c.reason, c.label, c.value, got, c.want)
		}
		if got != c.label && !r.touches(c.label) {
			t.Errorf("%s: %s changed but touches says no", c.name, c.label)
		}
	}
}
