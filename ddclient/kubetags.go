package ddclient

import (
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Cardinality says which Kubernetes tags a series carries, as the Datadog
// Agent's DD_CHECKS_TAG_CARDINALITY does for its checks: each tag of the
// Agent's tagger has a cardinality, and a check sends the tags at or below
// the configured one.
type Cardinality uint8

// Cardinalities, lowest first. The zero value is the Agent's default, low.
const (
	// LowCardinality: namespace, service, container name, owners other than a
	// CronJob's Job, pod phase, image, app.kubernetes.io/* and unified
	// service tags.
	LowCardinality Cardinality = iota
	// OrchestratorCardinality adds pod_name, kube_ownerref_name and the
	// kube_job of a CronJob's Job.
	OrchestratorCardinality
	// HighCardinality adds container_id and display_container_name.
	HighCardinality
)

// ParseCardinality reads low, orchestrator or high (any case, as the Agent).
func ParseCardinality(s string) (Cardinality, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "low", "":
		return LowCardinality, nil
	case "orchestrator":
		return OrchestratorCardinality, nil
	case "high":
		return HighCardinality, nil
	}
	return 0, fmt.Errorf("tag cardinality %q: want low, orchestrator or high", s)
}

func (c Cardinality) String() string {
	switch c {
	case LowCardinality:
		return "low"
	case OrchestratorCardinality:
		return "orchestrator"
	case HighCardinality:
		return "high"
	}
	return fmt.Sprintf("Cardinality(%d)", uint8(c))
}

// kubeTag is a tag of the Agent's tagger with its cardinality.
type kubeTag struct {
	name, value string
	card        Cardinality
}

const meta = "__meta_kubernetes_"

// Pod labels read as tags, as Prometheus' SD sanitizes their names.
const (
	podLabel      = meta + "pod_label_"
	ustLabel      = podLabel + "tags_datadoghq_com_" // tags.datadoghq.com/<env|service|version>
	appLabel      = podLabel + "app_kubernetes_io_"  // app.kubernetes.io/<...>
	ownerRunes    = "bcdfghjklmnpqrstvwxz2456789"    // k8s.io/apimachinery rand.String: a pod-template-hash
	decimalDigits = "0123456789"
)

// kubeTags derives the tags the Datadog Agent's tagger gives a pod's
// container (comp/core/tagger/collectors/workloadmeta_extract.go:
// extractTagsFromPodEntity, extractTagsFromPodOwner,
// extractTagsFromPodContainer) from a target's discovered labels, with
// their cardinality, in a fixed order; cluster, when set, is
// kube_cluster_name (a global tag of the Agent, low), and for a cluster
// target (target.Target.Cluster) also cluster_name, as the Cluster Agent
// tags the checks it dispatches (pkg/clusteragent/clusterchecks
// dispatcher: cluster_checks.cluster_tag_name). Tags the discovered
// labels cannot give (kube_qos, kube_priority_class, image_id, pod and
// namespace labels as tags) are not derived.
func kubeTags(d labels.Labels, cluster string, clusterTarget bool) []kubeTag {
	var tags []kubeTag
	add := func(name, value string, c Cardinality) {
		if value != "" {
			tags = append(tags, kubeTag{name, value, c})
		}
	}
	if clusterTarget {
		add("cluster_name", cluster, LowCardinality)
	}
	add("kube_cluster_name", cluster, LowCardinality)
	pod := d.Get(meta + "pod_name")
	add("kube_namespace", d.Get(meta+"namespace"), LowCardinality)
	add("kube_service", d.Get(meta+"service_name"), LowCardinality)
	add("pod_name", pod, OrchestratorCardinality)
	add("pod_phase", strings.ToLower(d.Get(meta+"pod_phase")), LowCardinality)
	container := d.Get(meta + "pod_container_name")
	add("kube_container_name", container, LowCardinality)
	// Prometheus gives the status' containerID, <runtime>://<id>; the Agent
	// tags the id alone.
	id := d.Get(meta + "pod_container_id")
	if _, after, ok := strings.Cut(id, "://"); ok {
		id = after
	}
	add("container_id", id, HighCardinality)
	if container != "" && pod != "" {
		add("display_container_name", container+"_"+pod, HighCardinality)
	}
	if img := d.Get(meta + "pod_container_image"); img != "" {
		name, short, tag := splitImage(img)
		add("image_name", name, LowCardinality)
		add("short_image", short, LowCardinality)
		add("image_tag", tag, LowCardinality)
	}
	if kind, name := d.Get(meta+"pod_controller_kind"), d.Get(meta+"pod_controller_name"); kind != "" && name != "" {
		add("kube_ownerref_kind", strings.ToLower(kind), LowCardinality)
		add("kube_ownerref_name", name, OrchestratorCardinality)
		switch kind {
		case "Deployment":
			add("kube_deployment", name, LowCardinality)
		case "ReplicaSet":
			// The deployment is read from the name, as the Agent does,
			// whether or not the pod has its pod-template-hash label.
			add("kube_deployment", deploymentOf(name), LowCardinality)
			add("kube_replica_set", name, LowCardinality)
		case "DaemonSet":
			add("kube_daemon_set", name, LowCardinality)
		case "StatefulSet":
			add("kube_stateful_set", name, LowCardinality)
		case "ReplicationController":
			add("kube_replication_controller", name, LowCardinality)
		case "Job":
			if cj := cronJobOf(name); cj != "" {
				add("kube_job", name, OrchestratorCardinality)
				add("kube_cronjob", cj, LowCardinality)
			} else {
				add("kube_job", name, LowCardinality)
			}
		}
	}
	for _, l := range [...]struct{ tag, label string }{
		{"kube_app_name", "name"}, {"kube_app_instance", "instance"}, {"kube_app_version", "version"},
		{"kube_app_component", "component"}, {"kube_app_part_of", "part_of"}, {"kube_app_managed_by", "managed_by"},
	} {
		add(l.tag, d.Get(appLabel+l.label), LowCardinality)
	}
	for _, k := range unifiedServiceTags {
		add(k, d.Get(ustLabel+k), LowCardinality)
	}
	return tags
}

// unifiedServiceTags are Datadog's unified service tags: one value each per series.
var unifiedServiceTags = [...]string{"env", "service", "version"}

// deploymentOf is the Deployment of a ReplicaSet named
// <deployment>-<pod-template-hash>, as the Agent's
// ParseDeploymentForReplicaSet reads it: a suffix of at least 3 characters,
// all of the hash's alphabet or all digits (hashes before Kubernetes 1.8).
func deploymentOf(rs string) string {
	i := strings.LastIndexByte(rs, '-')
	if i <= 0 {
		return ""
	}
	sfx := rs[i+1:]
	if len(sfx) < 3 || !allIn(sfx, ownerRunes) && !allIn(sfx, decimalDigits) {
		return ""
	}
	return rs[:i]
}

// cronJobOf is the CronJob of a Job named <cronjob>-<scheduled time>, as
// the Agent's ParseCronJobForJob reads it: a numeric suffix of at least 3
// digits.
func cronJobOf(job string) string {
	i := strings.LastIndexByte(job, '-')
	if i <= 0 {
		return ""
	}
	if sfx := job[i+1:]; len(sfx) < 3 || !allIn(sfx, decimalDigits) {
		return ""
	}
	return job[:i]
}

func allIn(s, set string) bool {
	for _, c := range s {
		if !strings.ContainsRune(set, c) {
			return false
		}
	}
	return true
}

// splitImage reads an image reference as the Agent's image tags give it:
// image_name is the reference without tag and digest, short_image its last
// path element, image_tag the tag or "latest" when there is none.
func splitImage(ref string) (name, short, tag string) {
	name, _, _ = strings.Cut(ref, "@") // digest
	slash := strings.LastIndexByte(name, '/')
	if c := strings.LastIndexByte(name, ':'); c > slash {
		name, tag = name[:c], name[c+1:]
	}
	if tag == "" {
		tag = "latest"
	}
	short = name[strings.LastIndexByte(name, '/')+1:]
	return name, short, tag
}
