package relabel

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// monitorSpec is what ServiceMonitors and PodMonitors share at monitor level.
type monitorSpec struct {
	kind                  Kind
	namespace, name       string
	selector              metav1.LabelSelector
	mechanism             *monitoringv1.SelectorMechanism
	namespaceSelector     monitoringv1.NamespaceSelector
	sampleLimit           *int64
	targetLimit           *int64
	labelLimit            *int64
	labelNameLengthLimit  *int64
	labelValueLengthLimit *int64
	keepDroppedTargets    *int64
	bodySizeLimit         *monitoringv1.ByteSize
	nativeHistograms      monitoringv1.NativeHistogramConfig
	protocols             []monitoringv1.ScrapeProtocol
	fallback              *monitoringv1.ScrapeProtocol
	attach                *monitoringv1.AttachMetadata
	scrapeClass           *string
}

// endpointSpec is what both kinds of endpoint share.
type endpointSpec struct {
	interval, timeout monitoringv1.Duration
	path              string
	params            map[string][]string
	scheme            *monitoringv1.Scheme
	honorLabels       bool
	honorTimestamps   *bool
	trackStaleness    *bool
	relabelings       []monitoringv1.RelabelConfig
	metricRelabelings []monitoringv1.RelabelConfig
	filterRunning     *bool
}

// monitorCommon is the checked monitor-level part every job of the monitor
// shares.
type monitorCommon struct {
	namespace string
	class     *scrapeClass
	// relabelSelector says whether the selector becomes keep/drop rules
	// (the default) rather than SD role selectors.
	relabelSelector bool
	sd              SDConfig
	limits          target.Limits
	protocols       []string
	fallback        string
	native          NativeHistograms
	enforce         bool
}

// generate is what both monitor kinds share once their specs are read:
// the monitor-level checks, then a job per endpoint. The first error rejects
// the whole monitor, as the Operator does.
func (g *Generator) generate(m *Monitor, spec *monitorSpec, roles []Role, store Store, endpoints int,
	job func(i int, c *monitorCommon, res *resolver) (*Job, error)) (*Monitor, error) {
	if m.Namespace == "" || m.Name == "" {
		return m, reject(m, -1, errors.New("namespace and name are required"))
	}
	c, err := g.monitorLevel(spec, roles)
	if err != nil {
		return m, reject(m, -1, err)
	}
	res := &resolver{store: store, ns: m.Namespace, allowFiles: g.s.AllowFileReferences, trusted: g.trusted[m.Namespace], saDir: g.s.ServiceAccountDir, proxies: g.proxies, tokens: g.tokens}
	jobs := make([]*Job, 0, endpoints)
	for i := range endpoints {
		j, err := job(i, c, res)
		if err != nil {
			return m, reject(m, i, err)
		}
		jobs = append(jobs, j)
	}
	m.Jobs = jobs
	return m, nil
}

// reject is the *Error for monitor m, endpoint ep (-1: the monitor).
func reject(m *Monitor, ep int, err error) error {
	e := &Error{Kind: m.Kind, Namespace: m.Namespace, Name: m.Name, Endpoint: ep, Err: err}
	var fe *fieldError
	if errors.As(err, &fe) {
		e.Field, e.Err = fe.field, fe.err
	}
	return e
}

// job completes an endpoint's job from its checked HTTP settings: scrape
// options, relabel chain (from chain) and metric relabeling.
func (g *Generator) job(name string, i int, spec *endpointSpec, c *monitorCommon, http httpconfig.Config,
	chain func() ([]*promrelabel.Config, error)) (*Job, error) {
	own, err := g.ownCredentials(&http)
	if err != nil {
		return nil, err
	}
	opts, err := g.endpointOptions(spec, c)
	if err != nil {
		return nil, err
	}
	j := &Job{Name: name, Endpoint: i, SD: c.sd, Scrape: opts, HTTP: http, OwnCredentials: own}
	if j.RelabelConfigs, err = chain(); err != nil {
		return nil, err
	}
	if j.MetricRelabelConfigs, err = g.metricChain(spec, c); err != nil {
		return nil, err
	}
	return j, nil
}

// monitorLevel checks and resolves the monitor-level settings; roles are the
// SD roles the selector applies to when selectorMechanism is RoleSelector.
func (g *Generator) monitorLevel(m *monitorSpec, roles []Role) (*monitorCommon, error) {
	c := &monitorCommon{namespace: m.namespace, sd: SDConfig{Role: roles[0]}}
	sel, err := metav1.LabelSelectorAsSelector(&m.selector)
	if err != nil {
		return nil, at("selector", err)
	}
	switch mech := m.mechanism; {
	case mech == nil || *mech == monitoringv1.SelectorMechanismRelabel:
		c.relabelSelector = true
	case *mech == monitoringv1.SelectorMechanismRole:
		for _, r := range roles {
			c.sd.Selectors = append(c.sd.Selectors, RoleSelector{Role: r, Label: sel.String(), Selector: sel})
		}
	default:
		return nil, at("selectorMechanism", fmt.Errorf("%q: want RelabelConfig or RoleSelector", *mech))
	}
	switch ns := m.namespaceSelector; {
	case g.s.IgnoreNamespaceSelectors || (!ns.Any && len(ns.MatchNames) == 0):
		c.sd.Namespaces = []string{m.namespace}
	case ns.Any:
	default:
		c.sd.Namespaces = append([]string(nil), ns.MatchNames...)
	}
	if c.class, err = g.class(m.scrapeClass); err != nil {
		return nil, at("scrapeClass", err)
	}
	attach := m.attach
	if attach == nil {
		attach = c.class.attach
	}
	c.sd.AttachNodeMetadata = attach != nil && attach.Node != nil && *attach.Node
	if c.limits, err = g.limits(m); err != nil {
		return nil, err
	}
	if err := validateProtocols(m.protocols); err != nil {
		return nil, at("scrapeProtocols", err)
	}
	fallback := m.fallback
	if fallback == nil {
		fallback = c.class.fallback
	}
	if fallback != nil {
		if err := validateProtocols([]monitoringv1.ScrapeProtocol{*fallback}); err != nil {
			return nil, at("fallbackScrapeProtocol", err)
		}
		c.fallback = string(*fallback)
	}
	nh := m.nativeHistograms
	c.native = NativeHistograms{
		Scrape:               orDefault(nh.ScrapeNativeHistograms, g.s.ScrapeNativeHistograms),
		AlwaysScrapeClassic:  orDefault(nh.ScrapeClassicHistograms, g.s.ScrapeClassicHistograms),
		ConvertClassicToNHCB: orDefault(nh.ConvertClassicHistogramsToNHCB, g.s.ConvertClassicHistogramsToNHCB),
	}
	if nh.NativeHistogramBucketLimit != nil {
		if *nh.NativeHistogramBucketLimit < 0 {
			return nil, at("nativeHistogramBucketLimit", errors.New("must not be negative"))
		}
		c.native.BucketLimit = *nh.NativeHistogramBucketLimit
	}
	if nh.NativeHistogramMinBucketFactor != nil {
		c.native.MinBucketFactor = nh.NativeHistogramMinBucketFactor.AsApproximateFloat64()
	}
	c.protocols = g.protocols(m.protocols, c.native.Scrape)
	c.enforce = g.s.EnforcedNamespaceLabel != "" && !g.isExcluded(m.kind, m.namespace, m.name)
	return c, nil
}

func (g *Generator) isExcluded(k Kind, ns, name string) bool {
	return g.excluded[ObjectRefKey{k, ns, ""}] || g.excluded[ObjectRefKey{k, ns, name}]
}

// protocols is Prometheus' choice of scrape_protocols: the job's, the
// global setting, or the default (protobuf first when native histograms are
// scraped).
func (g *Generator) protocols(job []monitoringv1.ScrapeProtocol, native bool) []string {
	ps := job
	if len(ps) == 0 {
		ps = g.s.ScrapeProtocols
	}
	if len(ps) == 0 {
		ps = []monitoringv1.ScrapeProtocol{monitoringv1.OpenMetricsText1_0_0, monitoringv1.OpenMetricsText0_0_1,
			monitoringv1.PrometheusText1_0_0, monitoringv1.PrometheusText0_0_4}
		if native {
			ps = append([]monitoringv1.ScrapeProtocol{monitoringv1.PrometheusProto}, ps...)
		}
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// limits resolves the effective limits as Prometheus >= 2.45 applies the
// Operator's output: the monitor's limit capped by the enforced one, or else
// the global limit (itself capped by the enforced one).
func (g *Generator) limits(m *monitorSpec) (target.Limits, error) {
	var out target.Limits
	set := []struct {
		field          string
		user           *int64
		global, forced int64
		dst            *int64
	}{
		{"sampleLimit", m.sampleLimit, g.s.Limits.Samples, g.s.EnforcedLimits.Samples, &out.Samples},
		{"targetLimit", m.targetLimit, g.s.Limits.Targets, g.s.EnforcedLimits.Targets, &out.Targets},
		{"labelLimit", m.labelLimit, g.s.Limits.Labels, g.s.EnforcedLimits.Labels, &out.Labels},
		{"labelNameLengthLimit", m.labelNameLengthLimit, g.s.Limits.LabelNameLength, g.s.EnforcedLimits.LabelNameLength, &out.LabelNameLength},
		{"labelValueLengthLimit", m.labelValueLengthLimit, g.s.Limits.LabelValueLength, g.s.EnforcedLimits.LabelValueLength, &out.LabelValueLength},
		{"keepDroppedTargets", m.keepDroppedTargets, g.s.Limits.KeepDroppedTargets, g.s.EnforcedLimits.KeepDroppedTargets, &out.KeepDroppedTargets},
	}
	for _, l := range set {
		user := deref(l.user)
		if user < 0 {
			return out, at(l.field, errors.New("must not be negative"))
		}
		*l.dst = effectiveLimit(user, l.global, l.forced)
	}
	var body int64
	if m.bodySizeLimit != nil && *m.bodySizeLimit != "" {
		var err error
		if body, err = parseByteSize(string(*m.bodySizeLimit)); err != nil {
			return out, at("bodySizeLimit", err)
		}
	}
	out.BodySize = effectiveLimit(body, g.s.Limits.BodySize, g.s.EnforcedLimits.BodySize)
	return out, nil
}

func effectiveLimit(user, global, forced int64) int64 {
	capped := func(v int64) int64 {
		if forced > 0 && (v == 0 || v > forced) {
			return forced
		}
		return v
	}
	if user > 0 {
		return capped(user)
	}
	return capped(global)
}

// endpointOptions checks and resolves an endpoint's scrape options.
func (g *Generator) endpointOptions(ep *endpointSpec, c *monitorCommon) (ScrapeOptions, error) {
	o := ScrapeOptions{
		Scheme:            "http",
		MetricsPath:       "/metrics",
		HonorLabels:       ep.honorLabels && !g.s.OverrideHonorLabels,
		HonorTimestamps:   !g.s.OverrideHonorTimestamps && (ep.honorTimestamps == nil || *ep.honorTimestamps),
		EnableCompression: true,
		ScrapeProtocols:   c.protocols,
		FallbackProtocol:  c.fallback,
		Limits:            c.limits,
		NativeHistograms:  c.native,
	}
	o.TrackTimestampsStaleness = deref(ep.trackStaleness)
	if ep.scheme != nil && *ep.scheme != "" {
		o.Scheme = ep.scheme.String()
		if o.Scheme != "http" && o.Scheme != "https" {
			return o, at("scheme", fmt.Errorf("%q: want http or https", string(*ep.scheme)))
		}
	}
	if ep.path != "" {
		o.MetricsPath = ep.path
	}
	if ep.params != nil {
		o.Params = url.Values{}
		for k, v := range ep.params {
			o.Params[k] = append([]string(nil), v...)
		}
	}
	interval := g.s.ScrapeInterval
	if ep.interval != "" {
		d, err := model.ParseDuration(string(ep.interval))
		if err != nil {
			return o, at("interval", err)
		}
		interval = time.Duration(d)
	}
	if ep.timeout != "" {
		d, err := model.ParseDuration(string(ep.timeout))
		if err != nil {
			return o, at("scrapeTimeout", err)
		}
		if time.Duration(d) > interval {
			return o, at("scrapeTimeout", fmt.Errorf("scrapeTimeout %q greater than scrapeInterval %q", ep.timeout, model.Duration(interval)))
		}
		o.Timeout = time.Duration(d)
	}
	// Prometheus reads an interval or timeout of 0 as unset.
	o.Interval = interval
	if o.Interval == 0 {
		o.Interval = g.s.ScrapeInterval
	}
	if o.Timeout == 0 {
		o.Timeout = min(g.s.ScrapeTimeout, o.Interval)
	}
	return o, nil
}

// endpointChainTail appends what follows the Operator's discovery rules in
// every chain: the scrape class relabelings, the endpoint's own, the
// enforced namespace label and the sharding rules.
func (g *Generator) endpointChainTail(ch *chain, ep *endpointSpec, c *monitorCommon) error {
	ch.addConfigs(c.class.relabel)
	user, err := convertRelabelings(ep.relabelings, g.cache.regexes)
	if err != nil {
		return at("relabelings", err)
	}
	ch.addConfigs(user)
	if c.enforce {
		ch.add(ruleSpec{target: g.s.EnforcedNamespaceLabel, replacement: c.namespace})
	}
	ch.add(shardingRules...)
	return ch.err
}

// shardingRules are the Operator's sharding rules for one shard, with the
// $(SHARD) placeholder expanded to 0 as the config reloader does: the agent
// is its node's only scraper, so they keep every target; they are kept so
// that a relabeling reading __tmp_hash behaves as under Prometheus.
var shardingRules = []ruleSpec{
	{source: []string{"__address__", "__tmp_hash"}, target: "__tmp_hash", regex: "(.+);", replacement: "$1", action: promrelabel.Replace},
	{source: []string{"__tmp_hash"}, target: "__tmp_hash", modulus: 1, action: promrelabel.HashMod},
	{source: []string{"__tmp_hash", "__tmp_disable_sharding"}, regex: "0;|.+;.+", action: promrelabel.Keep},
}

// metricChain is the metric relabeling: the class's, the endpoint's, then
// the enforced namespace label.
func (g *Generator) metricChain(ep *endpointSpec, c *monitorCommon) ([]*promrelabel.Config, error) {
	user, err := convertRelabelings(ep.metricRelabelings, g.cache.regexes)
	if err != nil {
		return nil, at("metricRelabelings", err)
	}
	ch := g.newChain()
	ch.addConfigs(c.class.metricRelabel)
	ch.addConfigs(user)
	if c.enforce {
		ch.add(ruleSpec{target: g.s.EnforcedNamespaceLabel, replacement: c.namespace})
	}
	return ch.cfgs, ch.err
}

// selectorRules are the keep/drop rules that stand for a label selector,
// reading labels of the given meta prefix ("__meta_kubernetes_service_" or
// "__meta_kubernetes_pod_"). Values are not regex-quoted: the Operator does
// not quote them either.
func selectorRules(sel *metav1.LabelSelector, prefix string) []ruleSpec {
	var out []ruleSpec
	label, present := prefix+"label_", prefix+"labelpresent_"
	for _, k := range sortedKeys(sel.MatchLabels) {
		out = append(out, ruleSpec{action: promrelabel.Keep, source: []string{label + sanitizeLabelName(k), present + sanitizeLabelName(k)},
			regex: "(" + sel.MatchLabels[k] + ");true"})
	}
	for _, e := range sel.MatchExpressions {
		k := sanitizeLabelName(e.Key)
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			out = append(out, ruleSpec{action: promrelabel.Keep, source: []string{label + k, present + k}, regex: "(" + strings.Join(e.Values, "|") + ");true"})
		case metav1.LabelSelectorOpNotIn:
			out = append(out, ruleSpec{action: promrelabel.Drop, source: []string{label + k, present + k}, regex: "(" + strings.Join(e.Values, "|") + ");true"})
		case metav1.LabelSelectorOpExists:
			out = append(out, ruleSpec{action: promrelabel.Keep, source: []string{present + k}, regex: "true"})
		case metav1.LabelSelectorOpDoesNotExist:
			out = append(out, ruleSpec{action: promrelabel.Drop, source: []string{present + k}, regex: "true"})
		}
	}
	return out
}

// targetLabelRules copy labels of the given meta prefix onto the target.
func targetLabelRules(names []string, prefix string) []ruleSpec {
	out := make([]ruleSpec, 0, len(names))
	for _, l := range names {
		out = append(out, ruleSpec{source: []string{prefix + sanitizeLabelName(l)}, target: sanitizeLabelName(l), regex: "(.+)", replacement: "${1}"})
	}
	return out
}

// podTargetLabelRules copies the monitor's podTargetLabels, then the
// agent-wide ones, from pod labels onto the target.
func (g *Generator) podTargetLabelRules(ch *chain, monitor []string) error {
	ch.add(targetLabelRules(monitor, "__meta_kubernetes_pod_label_")...)
	if ch.err != nil {
		return at("podTargetLabels", ch.err)
	}
	ch.add(targetLabelRules(g.s.PodTargetLabels, "__meta_kubernetes_pod_label_")...)
	return ch.err
}

var runningFilter = ruleSpec{action: promrelabel.Drop, source: []string{"__meta_kubernetes_pod_phase"}, regex: "(Failed|Succeeded)"}

// Rules that do not depend on the monitor.
var (
	jobNameRule = ruleSpec{source: []string{"job"}, target: "__tmp_prometheus_job_name"}
	metaRules   = []ruleSpec{
		{source: []string{"__meta_kubernetes_namespace"}, target: "namespace"},
		{source: []string{"__meta_kubernetes_service_name"}, target: "service"},
		{source: []string{"__meta_kubernetes_pod_name"}, target: "pod"},
		{source: []string{"__meta_kubernetes_pod_container_name"}, target: "container"},
		{source: []string{"__meta_kubernetes_service_name"}, target: "job", replacement: "${1}"},
	}
	namespaceRule, serviceRule, podRule, containerRule, jobFromServiceRule = metaRules[0], metaRules[1], metaRules[2], metaRules[3], metaRules[4]
)

// addressTargetRules set node or pod from the endpoint's target object.
func addressTargetRules(meta string) []ruleSpec {
	kind := []string{meta + "address_target_kind", meta + "address_target_name"}
	return []ruleSpec{
		{source: kind, separator: ";", regex: "Node;(.*)", replacement: "${1}", target: "node"},
		{source: kind, separator: ";", regex: "Pod;(.*)", replacement: "${1}", target: "pod"},
	}
}

const (
	endpointsMeta     = "__meta_kubernetes_endpoint_"
	endpointSliceMeta = "__meta_kubernetes_endpointslice_"
)

func (g *Generator) newChain() *chain { return &chain{cache: g.cache} }

func newGeneratorCache() *ruleCache {
	fixed := append([]ruleSpec{jobNameRule, runningFilter}, metaRules...)
	fixed = append(fixed, addressTargetRules(endpointsMeta)...)
	fixed = append(fixed, addressTargetRules(endpointSliceMeta)...)
	fixed = append(fixed, shardingRules...)
	return newRuleCache(fixed)
}

// sanitizeLabelName replaces every rune that is not [a-zA-Z0-9_] with '_',
// as Kubernetes SD does when it turns object labels into meta label names
// (and the Operator when it names them).
func sanitizeLabelName(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range s {
		if r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func orDefault[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// byteUnits are the units of the Operator's ByteSize, all powers of two.
var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50}, {"EiB", 1 << 60},
	{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"PB", 1 << 50}, {"EB", 1 << 60},
	{"B", 1},
}

// parseByteSize parses a ByteSize ("512MB", "1.5GiB", "0") to bytes.
func parseByteSize(s string) (int64, error) {
	if s == "0" {
		return 0, nil
	}
	bad := fmt.Errorf("%q is not a byte size like 512MB", s)
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 || strings.ContainsAny(num, "eE+-xXpPnN_") {
			return 0, bad
		}
		n := v * u.mult
		if n >= 1<<63 {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return int64(n), nil
	}
	return 0, bad
}
