package ddclient

import (
	"strings"

	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

// Mapping is the Prometheus → Datadog mapping, as Datadog's OpenMetrics
// check (V2) does it, so that existing dashboards work:
//
//	counter foo_total or foo       → foo.count     count, interval = scrape interval
//	histogram foo: foo_bucket{le}  → foo.bucket    count, tag upper_bound:<le>; +Inf skipped (it is foo.count)
//	               foo_sum         → foo.sum       count
//	               foo_count       → foo.count     count
//	summary foo:   foo{quantile}   → foo.quantile  gauge, tag quantile:<q>
//	               foo_sum, _count → foo.sum, foo.count  count
//	gauge, unknown/untyped, info, stateset, gaugehistogram → the sample's name, gauge
//	_created samples               → not sent (they are start times)
//
// Names get the namespace prefix ("<namespace>.<name>") and characters
// Datadog does not allow in a metric name become '_'. Tags are the series'
// labels as key:value, Datadog's Kubernetes tags of the target (see kubeTags)
// and the host resource.
type Mapping struct {
	// Namespace prefixes every metric name; "" for none.
	Namespace string
	// Host is the host resource of every series (the node).
	Host string
}

// metric is the Datadog side of a series' family and role.
type metric struct {
	name string
	typ  MetricType
	kind scrapeloop.Kind
	// bucket says the le label is sent as upper_bound.
	bucket bool
}

// metricFor maps a new series. sampleName is the series' name after
// relabeling; family its family as exposed.
func (m *Mapping) metricFor(family, sampleName string, typ exposition.MetricType, role exposition.Role, le string) metric {
	if sfx := roleSuffix(role); len(sampleName) != len(family)+len(sfx) ||
		!strings.HasPrefix(sampleName, family) || !strings.HasSuffix(sampleName, sfx) {
		// Relabeling renamed the series: name it after its new name, less
		// its role's suffix (app_foo_sum → app_foo.sum, not app_foo_sum.sum).
		family = strings.TrimSuffix(sampleName, sfx)
	}
	var out metric
	switch {
	case role == exposition.RoleCreated:
		return metric{kind: scrapeloop.KindDrop}
	case typ == exposition.TypeCounter:
		out = metric{name: strings.TrimSuffix(sampleName, "_total") + ".count", typ: Count}
	case typ == exposition.TypeHistogram && role == exposition.RoleBucket:
		if le == "+Inf" || le == "" {
			return metric{kind: scrapeloop.KindDrop} // the +Inf bucket is .count
		}
		out = metric{name: family + ".bucket", typ: Count, bucket: true}
	case (typ == exposition.TypeHistogram || typ == exposition.TypeSummary) && role == exposition.RoleSum:
		out = metric{name: family + ".sum", typ: Count}
	case (typ == exposition.TypeHistogram || typ == exposition.TypeSummary) && role == exposition.RoleCount:
		out = metric{name: family + ".count", typ: Count}
	case typ == exposition.TypeSummary && role == exposition.RoleQuantile:
		out = metric{name: family + ".quantile", typ: Gauge}
	default:
		out = metric{name: sampleName, typ: Gauge}
	}
	out.name = metricName(m.Namespace, out.name)
	if out.typ == Count {
		out.kind = scrapeloop.KindCounter
	} else {
		out.kind = scrapeloop.KindGauge
	}
	return out
}

// roleSuffix is what a sample's name adds to its family's name for the
// roles whose Datadog name is built from the family.
func roleSuffix(role exposition.Role) string {
	switch role {
	case exposition.RoleBucket:
		return "_bucket"
	case exposition.RoleSum:
		return "_sum"
	case exposition.RoleCount:
		return "_count"
	}
	return ""
}

// metricName joins namespace and name and maps characters Datadog does not
// allow in metric names to '_'.
func metricName(ns, name string) string {
	if ns != "" {
		name = ns + "." + name
	}
	ok := true
	for i := 0; i < len(name); i++ {
		if !validMetricByte(name[i]) {
			ok = false
			break
		}
	}
	if ok {
		return name
	}
	b := []byte(name)
	for i, c := range b {
		if !validMetricByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func validMetricByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

const meta = "__meta_kubernetes_"

// kubeTags derives the Kubernetes tags the Datadog Agent gives a pod's
// metrics from a target's discovered labels: namespace, service, pod,
// container, the pod's owners, and the unified service tags from the
// tags.datadoghq.com/* pod labels.
func kubeTags(d labels.Labels) []string {
	var tags []string
	add := func(tag, label string) {
		if v := d.Get(label); v != "" {
			tags = append(tags, tag+":"+v)
		}
	}
	add("kube_namespace", meta+"namespace")
	add("kube_service", meta+"service_name")
	add("pod_name", meta+"pod_name")
	add("kube_container_name", meta+"pod_container_name")
	kind, name := d.Get(meta+"pod_controller_kind"), d.Get(meta+"pod_controller_name")
	switch kind {
	case "ReplicaSet":
		tags = append(tags, "kube_replica_set:"+name)
		// A Deployment names its ReplicaSets <deployment>-<pod-template-hash>.
		if h := d.Get(meta + "pod_label_pod_template_hash"); h != "" {
			if dep, ok := strings.CutSuffix(name, "-"+h); ok {
				tags = append(tags, "kube_deployment:"+dep)
			}
		}
	case "DaemonSet":
		tags = append(tags, "kube_daemon_set:"+name)
	case "StatefulSet":
		tags = append(tags, "kube_stateful_set:"+name)
	case "Job":
		tags = append(tags, "kube_job:"+name)
		// A CronJob names its Jobs <cronjob>-<scheduled minute>.
		if i := strings.LastIndexByte(name, '-'); i > 0 && isDigits(name[i+1:]) {
			tags = append(tags, "kube_cronjob:"+name[:i])
		}
	}
	add("env", meta+"pod_label_tags_datadoghq_com_env")
	add("service", meta+"pod_label_tags_datadoghq_com_service")
	add("version", meta+"pod_label_tags_datadoghq_com_version")
	return tags
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
