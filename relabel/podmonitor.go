package relabel

import (
	"fmt"
	"strconv"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// PodMonitor returns the jobs Prometheus-Operator would generate for pm, one
// per podMetricsEndpoint; see ServiceMonitor.
func (g *Generator) PodMonitor(pm *monitoringv1.PodMonitor, store Store) (*Monitor, error) {
	m := &Monitor{Kind: PodMonitorKind, Namespace: pm.Namespace, Name: pm.Name}
	r := refs{ns: pm.Namespace}
	for i := range pm.Spec.PodMetricsEndpoints {
		ep := &pm.Spec.PodMetricsEndpoints[i]
		r.http(&ep.HTTPConfigWithoutTLS)
		r.safeTLS(ep.TLSConfig)
		r.proxy(ep.ProxyConfig)
	}
	m.Refs = r.list()
	s := &pm.Spec
	spec := &monitorSpec{
		kind: PodMonitorKind, namespace: pm.Namespace, name: pm.Name,
		selector: s.Selector, mechanism: s.SelectorMechanism, namespaceSelector: s.NamespaceSelector,
		sampleLimit: s.SampleLimit, targetLimit: s.TargetLimit, labelLimit: s.LabelLimit,
		labelNameLengthLimit: s.LabelNameLengthLimit, labelValueLengthLimit: s.LabelValueLengthLimit,
		keepDroppedTargets: s.KeepDroppedTargets, bodySizeLimit: s.BodySizeLimit,
		nativeHistograms: s.NativeHistogramConfig, protocols: s.ScrapeProtocols, fallback: s.FallbackScrapeProtocol,
		attach: s.AttachMetadata, scrapeClass: s.ScrapeClassName,
	}
	return g.generate(m, spec, []Role{RolePod}, store, len(s.PodMetricsEndpoints), func(i int, c *monitorCommon, res *resolver) (*Job, error) {
		return g.podMonitorJob(pm, i, c, res)
	})
}

func (g *Generator) podMonitorJob(pm *monitoringv1.PodMonitor, i int, c *monitorCommon, res *resolver) (*Job, error) {
	ep := &pm.Spec.PodMetricsEndpoints[i]
	if err := ep.HTTPConfigWithProxy.Validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := res.podEndpointTLS(ep.TLSConfig, c.class)
	if err != nil {
		return nil, at("tlsConfig", err)
	}
	httpCfg, err := res.httpClient(&ep.HTTPConfigWithoutTLS, ep.ProxyConfig, tlsCfg, "", c.class)
	if err != nil {
		return nil, err
	}
	spec := &endpointSpec{
		interval: ep.Interval, timeout: ep.ScrapeTimeout, path: ep.Path, params: ep.Params, scheme: ep.Scheme,
		honorLabels: ep.HonorLabels, honorTimestamps: ep.HonorTimestamps, trackStaleness: ep.TrackTimestampsStaleness,
		relabelings: ep.RelabelConfigs, metricRelabelings: ep.MetricRelabelConfigs, filterRunning: ep.FilterRunning,
	}
	return g.job(fmt.Sprintf("podMonitor/%s/%s/%d", pm.Namespace, pm.Name, i), i, spec, c, httpCfg,
		func() ([]*promrelabel.Config, error) { return g.podMonitorChain(pm, ep, spec, c) })
}

// podMonitorChain is the Operator's relabel_configs for one pod endpoint.
func (g *Generator) podMonitorChain(pm *monitoringv1.PodMonitor, ep *monitoringv1.PodMetricsEndpoint, spec *endpointSpec, c *monitorCommon) ([]*promrelabel.Config, error) {
	ch := g.newChain()
	ch.add(jobNameRule)
	if spec.filterRunning == nil || *spec.filterRunning {
		ch.add(runningFilter)
	}
	if c.relabelSelector {
		ch.add(selectorRules(&pm.Spec.Selector, "__meta_kubernetes_pod_")...)
	}
	//lint:ignore SA1019 deprecated, but the Operator still serves it
	targetPort := ep.TargetPort
	port := deref(ep.Port)
	switch {
	case port != "":
		ch.add(ruleSpec{action: promrelabel.Keep, source: []string{"__meta_kubernetes_pod_container_port_name"}, regex: port})
	case deref(ep.PortNumber) != 0:
		ch.add(ruleSpec{action: promrelabel.Keep, source: []string{"__meta_kubernetes_pod_container_port_number"}, regex: strconv.Itoa(int(*ep.PortNumber))})
	case targetPort != nil && targetPort.StrVal != "":
		ch.add(ruleSpec{action: promrelabel.Keep, source: []string{"__meta_kubernetes_pod_container_port_name"}, regex: targetPort.String()})
	case targetPort != nil && targetPort.IntVal != 0:
		ch.add(ruleSpec{action: promrelabel.Keep, source: []string{"__meta_kubernetes_pod_container_port_number"}, regex: strconv.Itoa(targetPort.IntValue())})
	}
	if ch.err != nil {
		return nil, at("port", ch.err)
	}
	ch.add(namespaceRule, containerRule, podRule)
	if ch.err != nil {
		return nil, ch.err
	}
	if err := g.podTargetLabelRules(ch, pm.Spec.PodTargetLabels); err != nil {
		return nil, err
	}
	// job is namespace/name unless the jobLabel pod label has a value.
	ch.add(ruleSpec{target: "job", replacement: pm.Namespace + "/" + pm.Name})
	if pm.Spec.JobLabel != "" {
		ch.add(ruleSpec{source: []string{"__meta_kubernetes_pod_label_" + sanitizeLabelName(pm.Spec.JobLabel)}, target: "job", regex: "(.+)", replacement: "${1}"})
	}
	switch {
	case port != "":
		ch.add(ruleSpec{target: "endpoint", replacement: port})
	case targetPort != nil && targetPort.String() != "":
		ch.add(ruleSpec{target: "endpoint", replacement: targetPort.String()})
	}
	if ch.err != nil {
		return nil, ch.err
	}
	if err := g.endpointChainTail(ch, spec, c); err != nil {
		return nil, err
	}
	return ch.cfgs, nil
}
