package relabel

import (
	"fmt"
	"strconv"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// ServiceMonitor returns the jobs Prometheus-Operator would generate for sm,
// one per endpoint, with Secret and ConfigMap values read from store in the
// monitor's namespace. A monitor the Operator would reject yields an *Error
// naming it, the endpoint and the field; the returned Monitor then carries
// only its identity and Refs.
func (g *Generator) ServiceMonitor(sm *monitoringv1.ServiceMonitor, store Store) (*Monitor, error) {
	m := &Monitor{Kind: ServiceMonitorKind, Namespace: sm.Namespace, Name: sm.Name}
	r := refs{ns: sm.Namespace}
	for i := range sm.Spec.Endpoints {
		ep := &sm.Spec.Endpoints[i]
		r.http(&ep.HTTPConfigWithoutTLS)
		if ep.TLSConfig != nil {
			r.safeTLS(&ep.TLSConfig.SafeTLSConfig)
		}
		r.proxy(ep.ProxyConfig)
	}
	m.Refs = r.list()
	s := &sm.Spec
	role := RoleEndpoints
	sdRole := g.s.ServiceDiscoveryRole
	if s.ServiceDiscoveryRole != nil {
		sdRole = *s.ServiceDiscoveryRole
	}
	switch sdRole {
	case monitoringv1.EndpointSliceRole:
		role = RoleEndpointSlice
	case "", monitoringv1.EndpointsRole:
	default:
		return m, reject(m, -1, at("serviceDiscoveryRole", fmt.Errorf("%q: want Endpoints or EndpointSlice", sdRole)))
	}
	spec := &monitorSpec{
		kind: ServiceMonitorKind, namespace: sm.Namespace, name: sm.Name,
		selector: s.Selector, mechanism: s.SelectorMechanism, namespaceSelector: s.NamespaceSelector,
		sampleLimit: s.SampleLimit, targetLimit: s.TargetLimit, labelLimit: s.LabelLimit,
		labelNameLengthLimit: s.LabelNameLengthLimit, labelValueLengthLimit: s.LabelValueLengthLimit,
		keepDroppedTargets: s.KeepDroppedTargets, bodySizeLimit: s.BodySizeLimit,
		nativeHistograms: s.NativeHistogramConfig, protocols: s.ScrapeProtocols, fallback: s.FallbackScrapeProtocol,
		attach: s.AttachMetadata, scrapeClass: s.ScrapeClassName,
	}
	return g.generate(m, spec, []Role{role, RoleService}, store, len(s.Endpoints), func(i int, c *monitorCommon, res *resolver) (*Job, error) {
		return g.serviceMonitorJob(sm, i, c, res)
	})
}

func (g *Generator) serviceMonitorJob(sm *monitoringv1.ServiceMonitor, i int, c *monitorCommon, res *resolver) (*Job, error) {
	ep := &sm.Spec.Endpoints[i]
	//lint:ignore SA1019 deprecated, but the Operator still serves it
	tokenFile := ep.BearerTokenFile
	if err := res.checkFile("bearerTokenFile", tokenFile, fileToken); err != nil {
		return nil, err
	}
	if err := ep.HTTPConfigWithProxyAndTLSFiles.Validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := res.endpointTLS(ep.TLSConfig, c.class)
	if err != nil {
		return nil, at("tlsConfig", err)
	}
	httpCfg, err := res.httpClient(&ep.HTTPConfigWithoutTLS, ep.ProxyConfig, tlsCfg, tokenFile, c.class)
	if err != nil {
		return nil, err
	}
	spec := &endpointSpec{
		interval: ep.Interval, timeout: ep.ScrapeTimeout, path: ep.Path, params: ep.Params, scheme: ep.Scheme,
		honorLabels: ep.HonorLabels, honorTimestamps: ep.HonorTimestamps, trackStaleness: ep.TrackTimestampsStaleness,
		relabelings: ep.RelabelConfigs, metricRelabelings: ep.MetricRelabelConfigs, filterRunning: ep.FilterRunning,
	}
	return g.job(fmt.Sprintf("serviceMonitor/%s/%s/%d", sm.Namespace, sm.Name, i), i, spec, c, httpCfg,
		func() ([]*promrelabel.Config, error) { return g.serviceMonitorChain(sm, ep, spec, c) })
}

// serviceMonitorChain is the Operator's relabel_configs for one endpoint.
func (g *Generator) serviceMonitorChain(sm *monitoringv1.ServiceMonitor, ep *monitoringv1.Endpoint, spec *endpointSpec, c *monitorCommon) ([]*promrelabel.Config, error) {
	ch := g.newChain()
	// The job name, before relabeling rewrites job.
	ch.add(jobNameRule)
	if c.relabelSelector {
		ch.add(selectorRules(&sm.Spec.Selector, "__meta_kubernetes_service_")...)
	}
	meta := endpointsMeta
	if c.sd.Role == RoleEndpointSlice {
		meta = endpointSliceMeta
	}
	// Only the endpoint's port.
	switch {
	case ep.Port != "":
		ch.add(ruleSpec{action: promrelabel.Keep, source: []string{meta + "port_name"}, regex: ep.Port})
	case ep.TargetPort != nil && ep.TargetPort.StrVal != "":
		ch.add(ruleSpec{action: promrelabel.Keep, source: []string{"__meta_kubernetes_pod_container_port_name"}, regex: ep.TargetPort.String()})
	case ep.TargetPort != nil && ep.TargetPort.IntVal != 0:
		ch.add(ruleSpec{action: promrelabel.Keep, source: []string{"__meta_kubernetes_pod_container_port_number"}, regex: strconv.Itoa(ep.TargetPort.IntValue())})
	}
	if ch.err != nil {
		return nil, at("port", ch.err)
	}
	ch.add(addressTargetRules(meta)...)
	ch.add(namespaceRule, serviceRule, podRule, containerRule)
	if spec.filterRunning == nil || *spec.filterRunning {
		ch.add(runningFilter)
	}
	if ch.err != nil {
		return nil, ch.err
	}
	ch.add(targetLabelRules(sm.Spec.TargetLabels, "__meta_kubernetes_service_label_")...)
	if ch.err != nil {
		return nil, at("targetLabels", ch.err)
	}
	if err := g.podTargetLabelRules(ch, sm.Spec.PodTargetLabels); err != nil {
		return nil, err
	}
	// job is the service name unless the jobLabel service label has a value.
	ch.add(jobFromServiceRule)
	if sm.Spec.JobLabel != "" {
		ch.add(ruleSpec{source: []string{"__meta_kubernetes_service_label_" + sanitizeLabelName(sm.Spec.JobLabel)}, target: "job", regex: "(.+)", replacement: "${1}"})
	}
	switch {
	case ep.Port != "":
		ch.add(ruleSpec{target: "endpoint", replacement: ep.Port})
	case ep.TargetPort != nil && ep.TargetPort.String() != "":
		ch.add(ruleSpec{target: "endpoint", replacement: ep.TargetPort.String()})
	}
	if ch.err != nil {
		return nil, ch.err
	}
	if err := g.endpointChainTail(ch, spec, c); err != nil {
		return nil, err
	}
	return ch.cfgs, nil
}
