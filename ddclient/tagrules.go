package ddclient

import (
	"strings"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/prometheus/common/model"
)

// tagRules turn one target's Prometheus labels (its own and its series')
// into tags next to the Kubernetes tags the Datadog Agent would give the
// pod. Each label, by its final name, goes through these rules in order:
//
//  1. le and quantile are never touched (they become upper_bound and
//     quantile tags).
//  2. Mapping.ExcludeLabels drops a label; a non-empty
//     Mapping.IncludeLabels drops every label it does not list.
//  3. namespace, pod, container and service whose value is the pod's own
//     namespace, name, container or Kubernetes service are the Operator's
//     target labels repeating a Kubernetes tag (kube_namespace, pod_name,
//     kube_container_name, kube_service): dropped, whatever the cardinality,
//     so the Kubernetes tag is the one source (at low cardinality the pod is
//     then not a tag, as with the Agent). Another value (kube-state-metrics'
//     namespace of the object it describes) is kept.
//  4. Mapping.RenameLabels renames.
//  5. A label whose name (after rule 4) is a tag the agent owns
//     (ReservedTag: host, env/service/version, every kube_*, the other
//     Kubernetes tags, cluster_name, device, source) is dropped when it
//     repeats, with the same value, a Kubernetes tag the series carries, and
//     otherwise renamed exported_<name>, as Prometheus renames a scraped
//     label that clashes with a target label. Whether the label was scraped,
//     is a target label (relabeling, a file's labels) or came from metric
//     relabeling, a target never sets a tag the agent owns: not one the pod
//     lacks (env, kube_deployment), not the host, not the cluster's name.
//     A rename into a reserved name is no way around this: the value is
//     still the target's, so it is sent as exported_<new name> (the command
//     refuses such a rename at start).
//
// The appender counts rule 5 per new series (encodeMetrics.reserved*).
type tagRules struct {
	kube    []kubeTag         // the Kubernetes tags sent, at the cardinality
	claimed map[string]string // their names and values
	alias   map[string]string // rule 3: label name → the pod's value
	include map[string]bool
	exclude map[string]bool
	rename  map[string]string
	// scr is verbatimFate's scratch: a label name with exported_ before it.
	scr []byte
}

func newTagRules(mp *Mapping, t *target.Target) *tagRules {
	r := &tagRules{claimed: map[string]string{}, rename: mp.RenameLabels}
	for _, kt := range kubeTags(t.Discovered, mp.ClusterName, t.Cluster) {
		if kt.card > mp.Cardinality {
			continue
		}
		r.kube = append(r.kube, kt)
		r.claimed[kt.name] = kt.value
	}
	r.alias = map[string]string{}
	for label, meta := range map[string]string{
		"namespace": meta + "namespace",
		"pod":       meta + "pod_name",
		"container": meta + "pod_container_name",
		"service":   meta + "service_name",
	} {
		if v := t.Discovered.Get(meta); v != "" {
			r.alias[label] = v
		}
	}
	if len(mp.IncludeLabels) > 0 {
		r.include = setOf(mp.IncludeLabels)
	}
	if len(mp.ExcludeLabels) > 0 {
		r.exclude = setOf(mp.ExcludeLabels)
	}
	return r
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// fate is what the rules do with a label.
type fate uint8

const (
	sent     fate = iota // sent, under its name or RenameLabels'
	exported             // rule 5: a reserved name, sent as exported_<name>
	left                 // rules 2, 3: not sent
	repeated             // rule 5: a Kubernetes tag's name and value, not sent
)

// label applies the rules to a label and returns the tag's name, or false
// when the label is not sent.
func (r *tagRules) label(name, value string) (string, bool) {
	n, f := r.labelFate(name, value)
	return f.prefix() + n, f <= exported
}

// prefix is what the tag's name gets before the name labelFate returns.
func (f fate) prefix() string {
	if f == exported {
		return model.ExportedLabelPrefix
	}
	return ""
}

// labelFate applies the rules to a label: the tag's name ("" when not
// sent), to be sent with f.prefix() before it, and what the rules did (f).
// It does not allocate.
func (r *tagRules) labelFate(name, value string) (string, fate) {
	if name == model.BucketLabel || name == model.QuantileLabel {
		return name, sent
	}
	if r.exclude[name] || r.include != nil && !r.include[name] {
		return "", left
	}
	if v, ok := r.alias[name]; ok && v == value {
		return "", left
	}
	if n, ok := r.rename[name]; ok && n != "" {
		name = n
	}
	if !ReservedTag(name) {
		return name, sent
	}
	if v, ok := r.claimed[name]; ok && v == value {
		return "", repeated
	}
	return name, exported
}

// touches reports whether the rules may change or drop a label of this name.
func (r *tagRules) touches(name string) bool {
	if name == model.BucketLabel || name == model.QuantileLabel {
		return false
	}
	if r.include != nil || r.exclude[name] {
		return true
	}
	_, a := r.alias[name]
	_, n := r.rename[name]
	return a || n || ReservedTag(name)
}

// verbatimFate is what the tag rules do to the scraped labels of a
// verbatim series, by their position in the sample (Parser.Label): bit k of
// exported sends the k-th as exported_<name> (a clash with a target label,
// Series.Exported, or rule 5), bit k of dropped does not send it (rules 2,
// 3 or 5). renamed and repeated count rule 5's renames and drops.
type verbatimFate struct {
	exported, dropped uint32
	renamed, repeated int
}

// verbatimFate reports whether a verbatim series' tags can be encoded
// straight from the parser at each point, and how. Its target labels are
// the target's encoded tags, the rules already applied; each scraped label
// must be sent under its final name, with exported_ before it, or not at
// all. A label RenameLabels renames cannot be: such a series keeps its tags
// (stored). bucket says le is sent as upper_bound.
//
// The fate of a label depends on its value (rules 3 and 5 compare it with
// the pod's), which is fixed for the series, so the masks hold for all its
// points.
func (r *tagRules) verbatimFate(s *scrapeloop.Series, bucket bool) (verbatimFate, bool) {
	var vf verbatimFate
	p := s.Sample
	if p == nil {
		return vf, false
	}
	for k := range p.NumLabels() {
		name, value := p.Label(k)
		exp := s.Exported&(1<<k) != 0
		final := stringOf(name)
		if exp {
			// The series' label is exported_<name> (Series.Verbatim).
			r.scr = append(append(r.scr[:0], model.ExportedLabelPrefix...), name...)
			final = stringOf(r.scr)
		}
		if bucket && final == model.BucketLabel {
			continue // upper_bound, as the appender writes it
		}
		if bucket && exp && string(name) == model.BucketLabel {
			return vf, false // exported_le, which the appender would write as upper_bound
		}
		if !r.touches(final) {
			continue
		}
		n, f := r.labelFate(final, stringOf(value))
		switch {
		case f == sent && n == final:
		case f == exported && n == final && !exp:
			vf.exported |= 1 << k
			vf.renamed++
		case f == left:
			vf.dropped |= 1 << k
		case f == repeated:
			vf.dropped |= 1 << k
			vf.repeated++
		default:
			return vf, false // renamed by RenameLabels
		}
	}
	vf.exported |= s.Exported
	return vf, true
}

// ReservedTag reports whether name is a tag the agent owns, which no
// target label, scraped label or relabeling may set (rule 5 of tagRules):
// the host, Datadog's unified service tags, every kube_* tag, the other
// Kubernetes tags of the Datadog Agent's tagger that kubeTags gives or a
// container carries (pod_name, pod_phase, container_id, container_name,
// display_container_name, image_*, short_image), the cluster's name
// (cluster_name, kube_cluster_name), device and source.
func ReservedTag(name string) bool {
	return reservedNames[name] || strings.HasPrefix(name, "kube_")
}

// reservedNames are the reserved tags besides the kube_* ones.
var reservedNames = map[string]bool{
	"host": true, "device": true, "source": true, "cluster_name": true,
	"env": true, "service": true, "version": true,
	"pod_name": true, "pod_phase": true, "container_id": true, "container_name": true,
	"display_container_name": true, "image_name": true, "image_tag": true, "image_id": true,
	"short_image": true, "docker_image": true,
}
