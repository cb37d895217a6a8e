package ddclient

import (
	"strings"

	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
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
// labels as key:value (by the rules of tagRules), the Kubernetes tags the
// Datadog Agent gives the target's pod at the configured cardinality (see
// kubeTags) and the host resource.
type Mapping struct {
	// Namespace prefixes every metric name; "" for none.
	Namespace string
	// Host is the host resource of every series (the node).
	Host string
	// Cardinality selects the Kubernetes tags sent, as the Agent's
	// DD_CHECKS_TAG_CARDINALITY; the zero value is low, the Agent's default.
	Cardinality Cardinality
	// ClusterName, when set, is sent as kube_cluster_name.
	ClusterName string
	// IncludeLabels, when not empty, are the only Prometheus labels sent as
	// tags; ExcludeLabels are never sent; RenameLabels sends a label under
	// another name (a name ReservedTag reports is still sent as
	// exported_<name>). le and quantile are always sent. See tagRules.
	IncludeLabels []string
	ExcludeLabels []string
	RenameLabels  map[string]string
	// ReportSeries sends Prometheus' per-target report series after every
	// scrape (see reportNames), as gauges with the target's tags.
	ReportSeries bool
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
