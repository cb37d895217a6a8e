package relabel

import (
	"fmt"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SettingsFromPrometheus reads the Settings a Prometheus custom resource
// carries, so that a team can point the agent at the Prometheus it replaces.
// As in the Operator, a null monitor selector takes no monitors and a null
// namespace selector only the Prometheus' own namespace. File references in
// monitors stay refused whatever arbitraryFSAccessThroughSMs says: files
// named for the Prometheus container do not exist in the agent's.
func SettingsFromPrometheus(p *monitoringv1.Prometheus) (Settings, error) {
	c := &p.Spec.CommonPrometheusFields
	s := Settings{
		ServiceMonitors:          selection(c.ServiceMonitorSelector, c.ServiceMonitorNamespaceSelector, p.Namespace),
		PodMonitors:              selection(c.PodMonitorSelector, c.PodMonitorNamespaceSelector, p.Namespace),
		ScrapeProtocols:          c.ScrapeProtocols,
		IgnoreNamespaceSelectors: c.IgnoreNamespaceSelectors,
		EnforcedNamespaceLabel:   c.EnforcedNamespaceLabel,
		ExcludedFromEnforcement:  c.ExcludedFromEnforcement,
		PodTargetLabels:          c.PodTargetLabels,
		OverrideHonorLabels:      c.OverrideHonorLabels,
		OverrideHonorTimestamps:  c.OverrideHonorTimestamps,
		ScrapeClasses:            c.ScrapeClasses,
		Limits: target.Limits{
			Samples: deref(c.SampleLimit), Targets: deref(c.TargetLimit), Labels: deref(c.LabelLimit),
			LabelNameLength: deref(c.LabelNameLengthLimit), LabelValueLength: deref(c.LabelValueLengthLimit),
			KeepDroppedTargets: deref(c.KeepDroppedTargets),
		},
		EnforcedLimits: target.Limits{
			Samples: deref(c.EnforcedSampleLimit), Targets: deref(c.EnforcedTargetLimit), Labels: deref(c.EnforcedLabelLimit),
			LabelNameLength: deref(c.EnforcedLabelNameLengthLimit), LabelValueLength: deref(c.EnforcedLabelValueLengthLimit),
			KeepDroppedTargets: deref(c.EnforcedKeepDroppedTargets),
		},
		ScrapeNativeHistograms:         deref(c.ScrapeNativeHistograms),
		ScrapeClassicHistograms:        deref(c.ScrapeClassicHistograms),
		ConvertClassicHistogramsToNHCB: deref(c.ConvertClassicHistogramsToNHCB),
	}
	if c.ServiceDiscoveryRole != nil {
		s.ServiceDiscoveryRole = *c.ServiceDiscoveryRole
	}
	var err error
	if s.ScrapeInterval, err = duration(c.ScrapeInterval); err != nil {
		return s, fmt.Errorf("prometheus %s/%s: scrapeInterval: %w", p.Namespace, p.Name, err)
	}
	if s.ScrapeTimeout, err = duration(c.ScrapeTimeout); err != nil {
		return s, fmt.Errorf("prometheus %s/%s: scrapeTimeout: %w", p.Namespace, p.Name, err)
	}
	// The global body size limit is bodySizeLimit, or else the enforced one.
	body := c.BodySizeLimit
	if body == nil || *body == "" {
		body = &c.EnforcedBodySizeLimit
	}
	if *body != "" {
		if s.Limits.BodySize, err = parseByteSize(string(*body)); err != nil {
			return s, fmt.Errorf("prometheus %s/%s: bodySizeLimit: %w", p.Namespace, p.Name, err)
		}
	}
	if c.EnforcedBodySizeLimit != "" {
		if s.EnforcedLimits.BodySize, err = parseByteSize(string(c.EnforcedBodySizeLimit)); err != nil {
			return s, fmt.Errorf("prometheus %s/%s: enforcedBodySizeLimit: %w", p.Namespace, p.Name, err)
		}
	}
	return s, nil
}

func selection(sel, nsSel *metav1.LabelSelector, ns string) Selection {
	if sel == nil {
		return Selection{Disabled: true}
	}
	s := Selection{Selector: sel, NamespaceSelector: nsSel}
	if nsSel == nil {
		s.Namespaces = []string{ns}
	}
	return s
}

func duration(d monitoringv1.Duration) (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	v, err := model.ParseDuration(string(d))
	return time.Duration(v), err
}
