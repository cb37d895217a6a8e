package relabel

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Settings are the agent-wide scrape settings, the part of a Prometheus custom
// resource that shapes the jobs generated from monitors. The zero value takes
// every monitor in every namespace with Prometheus' defaults.
type Settings struct {
	// ServiceMonitors and PodMonitors say which monitors the agent takes.
	ServiceMonitors Selection
	PodMonitors     Selection

	// ScrapeInterval is the default interval (Prometheus CR scrapeInterval);
	// default 30s, the CRD's default.
	ScrapeInterval time.Duration
	// ScrapeTimeout is the default timeout (scrapeTimeout); default 10s,
	// capped per job at the job's interval as Prometheus does.
	ScrapeTimeout time.Duration
	// ScrapeProtocols is the default content negotiation order
	// (scrapeProtocols); nil takes Prometheus' default.
	ScrapeProtocols []monitoringv1.ScrapeProtocol

	// ServiceDiscoveryRole is the role for ServiceMonitors that set none:
	// Endpoints (also when empty, as the Operator) or EndpointSlice.
	ServiceDiscoveryRole monitoringv1.ServiceDiscoveryRole
	// IgnoreNamespaceSelectors makes every monitor discover in its own
	// namespace only (ignoreNamespaceSelectors).
	IgnoreNamespaceSelectors bool

	// EnforcedNamespaceLabel, when set, is appended last to every relabel and
	// metric relabel chain with the monitor's namespace as value, except for
	// the monitors listed in ExcludedFromEnforcement.
	EnforcedNamespaceLabel  string
	ExcludedFromEnforcement []monitoringv1.ObjectReference

	// PodTargetLabels are copied from pod labels onto every target, after the
	// monitor's own podTargetLabels.
	PodTargetLabels []string

	// OverrideHonorLabels and OverrideHonorTimestamps force honor_labels and
	// honor_timestamps to false.
	OverrideHonorLabels     bool
	OverrideHonorTimestamps bool

	// Limits are the defaults for jobs that set no limit (sampleLimit,
	// targetLimit, ..., bodySizeLimit); EnforcedLimits cap what monitors ask
	// for (enforcedSampleLimit, ...). 0 means none.
	Limits         target.Limits
	EnforcedLimits target.Limits

	// ScrapeClasses are the named classes monitors may pick, at most one of
	// them the default. Their TLS settings may only name files and their
	// authorization only a credentials file, as the Operator documents:
	// they belong to the agent, not to a monitor's namespace.
	ScrapeClasses []monitoringv1.ScrapeClass

	// ScrapeNativeHistograms, ScrapeClassicHistograms and
	// ConvertClassicHistogramsToNHCB are the defaults for monitors that do
	// not set them.
	ScrapeNativeHistograms         bool
	ScrapeClassicHistograms        bool
	ConvertClassicHistogramsToNHCB bool

	// AllowFileReferences lets monitors read any file of the agent's
	// container (bearerTokenFile, tlsConfig caFile/certFile/keyFile).
	// Refused by default: a monitor author could otherwise send the agent's
	// files to a target (Prometheus CR arbitraryFSAccessThroughSMs). No flag
	// sets it; TrustedNamespaces is the agent's narrower allowance.
	AllowFileReferences bool

	// TrustedNamespaces are the namespaces whose monitors may name the
	// agent's own service-account token and CA at their standard paths
	// (ServiceAccountTokenPath as bearerTokenFile, ServiceAccountCAPath as
	// tlsConfig.caFile), as kube-prometheus' monitors do; no other file. A
	// monitor elsewhere that names them is rejected. Targets that send the
	// token are marked (target.Target.OwnCredentials) so that discovery
	// keeps them only at the node's and the API server's addresses.
	TrustedNamespaces []string
	// ServiceAccountDir is where the agent reads its own token and CA when
	// a monitor or scrape class names their standard paths; default
	// DefaultServiceAccountDir (a test points it elsewhere).
	ServiceAccountDir string

	// AllowedProxyURLs and AllowedTokenURLs are the only proxies
	// (proxyUrl, also an OAuth2 client's) and OAuth2 token endpoints
	// (oauth2.tokenUrl) a monitor may name; a monitor naming another is
	// rejected. The scraper connects to nothing but a target's own address
	// (checked at dial time, every hop) and these: a proxy or token endpoint
	// is a host of the monitor author's choosing, so the operator lists them.
	// A proxy matches an entry of the same scheme, host and port; a token
	// URL one of the same scheme, host and port whose path is a prefix of
	// its own. proxyFromEnvironment uses the agent's own proxy settings,
	// which the operator set, and stays allowed.
	AllowedProxyURLs []string
	AllowedTokenURLs []string
}

// Selection says which monitors of one kind the agent takes.
type Selection struct {
	// Disabled takes none (a Prometheus CR whose selector is null).
	Disabled bool
	// Selector matches monitor labels; nil takes every monitor.
	Selector *metav1.LabelSelector
	// Namespaces, when set, limits monitors to these namespaces.
	Namespaces []string
	// NamespaceSelector matches the labels of a monitor's namespace; nil
	// takes every namespace.
	NamespaceSelector *metav1.LabelSelector
}

// Generator turns monitors into jobs under one Settings. It is immutable and
// safe for concurrent use.
type Generator struct {
	s            Settings
	classes      map[string]*scrapeClass
	defaultClass *scrapeClass
	sel          [2]compiledSelection
	excluded     map[ObjectRefKey]bool
	cache        *ruleCache
	trusted      map[string]bool // TrustedNamespaces
	// proxies and tokens are AllowedProxyURLs and AllowedTokenURLs, parsed.
	proxies, tokens []*url.URL
}

// ObjectRefKey identifies a monitor listed in ExcludedFromEnforcement.
type ObjectRefKey struct {
	Kind            Kind
	Namespace, Name string // Name "" excludes the whole namespace
}

type compiledSelection struct {
	disabled   bool
	sel        labels.Selector
	namespaces map[string]bool
	nsSel      labels.Selector
}

// Kind is the kind of a monitor.
type Kind string

// The monitor kinds the agent takes.
const (
	ServiceMonitorKind Kind = "ServiceMonitor"
	PodMonitorKind     Kind = "PodMonitor"
)

func (k Kind) index() int {
	if k == PodMonitorKind {
		return 1
	}
	return 0
}

// NewGenerator checks s as the Operator checks a Prometheus resource and
// returns a Generator for it.
func NewGenerator(s Settings) (*Generator, error) {
	if s.ScrapeInterval < 0 || s.ScrapeTimeout < 0 {
		return nil, errors.New("settings: scrape interval and timeout must not be negative")
	}
	if s.ScrapeInterval == 0 {
		s.ScrapeInterval = 30 * time.Second
	}
	if s.ScrapeTimeout == 0 {
		s.ScrapeTimeout = 10 * time.Second
	} else if s.ScrapeTimeout > s.ScrapeInterval {
		return nil, fmt.Errorf("settings: scrape timeout %s greater than scrape interval %s", s.ScrapeTimeout, s.ScrapeInterval)
	}
	switch s.ServiceDiscoveryRole {
	case "", monitoringv1.EndpointsRole, monitoringv1.EndpointSliceRole:
	default:
		return nil, fmt.Errorf("settings: serviceDiscoveryRole %q: want Endpoints or EndpointSlice", s.ServiceDiscoveryRole)
	}
	if err := validateProtocols(s.ScrapeProtocols); err != nil {
		return nil, fmt.Errorf("settings: scrapeProtocols: %w", err)
	}
	for _, l := range []target.Limits{s.Limits, s.EnforcedLimits} {
		if l.Samples < 0 || l.Targets < 0 || l.Labels < 0 || l.LabelNameLength < 0 || l.LabelValueLength < 0 || l.KeepDroppedTargets < 0 || l.BodySize < 0 {
			return nil, errors.New("settings: limits must not be negative")
		}
	}
	for _, l := range s.PodTargetLabels {
		if l == "" {
			return nil, errors.New("settings: podTargetLabels: empty label name")
		}
	}
	if s.EnforcedNamespaceLabel != "" && !model.UTF8Validation.IsValidLabelName(s.EnforcedNamespaceLabel) {
		return nil, fmt.Errorf("settings: enforcedNamespaceLabel %q is not a valid label name", s.EnforcedNamespaceLabel)
	}
	if s.ServiceAccountDir == "" {
		s.ServiceAccountDir = DefaultServiceAccountDir
	}
	g := &Generator{s: s, classes: map[string]*scrapeClass{}, excluded: map[ObjectRefKey]bool{}, cache: newGeneratorCache(), trusted: map[string]bool{}}
	for _, ns := range s.TrustedNamespaces {
		g.trusted[ns] = true
	}
	var err error
	if g.proxies, err = parseAllowed(s.AllowedProxyURLs); err != nil {
		return nil, fmt.Errorf("settings: allowed proxy URLs: %w", err)
	}
	if g.tokens, err = parseAllowed(s.AllowedTokenURLs); err != nil {
		return nil, fmt.Errorf("settings: allowed token URLs: %w", err)
	}
	for i, sel := range []Selection{s.ServiceMonitors, s.PodMonitors} {
		c, err := compileSelection(sel)
		if err != nil {
			return nil, fmt.Errorf("settings: %s selection: %w", []Kind{ServiceMonitorKind, PodMonitorKind}[i], err)
		}
		g.sel[i] = c
	}
	for _, r := range s.ExcludedFromEnforcement {
		// The Operator skips references without a namespace or resource.
		if r.Namespace == "" || r.Resource == "" {
			continue
		}
		if r.Group != "" && r.Group != "monitoring.coreos.com" {
			continue
		}
		switch r.Resource {
		case monitoringv1.ServiceMonitorName:
			g.excluded[ObjectRefKey{ServiceMonitorKind, r.Namespace, r.Name}] = true
		case monitoringv1.PodMonitorName:
			g.excluded[ObjectRefKey{PodMonitorKind, r.Namespace, r.Name}] = true
		}
	}
	for i := range s.ScrapeClasses {
		sc, err := compileScrapeClass(&s.ScrapeClasses[i], g.cache.regexes)
		if err != nil {
			return nil, fmt.Errorf("settings: scrapeClasses[%d] %q: %w", i, s.ScrapeClasses[i].Name, err)
		}
		if _, dup := g.classes[sc.name]; dup {
			return nil, fmt.Errorf("settings: scrape class %q defined twice", sc.name)
		}
		g.classes[sc.name] = sc
		if sc.isDefault {
			if g.defaultClass != nil {
				return nil, errors.New("settings: multiple default scrape classes defined")
			}
			g.defaultClass = sc
		}
	}
	return g, nil
}

func compileSelection(s Selection) (compiledSelection, error) {
	c := compiledSelection{disabled: s.Disabled, sel: labels.Everything(), nsSel: labels.Everything()}
	var err error
	if s.Selector != nil {
		if c.sel, err = metav1.LabelSelectorAsSelector(s.Selector); err != nil {
			return c, fmt.Errorf("selector: %w", err)
		}
	}
	if s.NamespaceSelector != nil {
		if c.nsSel, err = metav1.LabelSelectorAsSelector(s.NamespaceSelector); err != nil {
			return c, fmt.Errorf("namespace selector: %w", err)
		}
	}
	if len(s.Namespaces) > 0 {
		c.namespaces = map[string]bool{}
		for _, ns := range s.Namespaces {
			c.namespaces[ns] = true
		}
	}
	return c, nil
}

// Selects reports whether the agent takes a monitor of kind k with the given
// labels, in namespace ns whose labels are nsLabels.
func (g *Generator) Selects(k Kind, ns string, monitorLabels, nsLabels map[string]string) bool {
	c := &g.sel[k.index()]
	if c.disabled {
		return false
	}
	if c.namespaces != nil && !c.namespaces[ns] {
		return false
	}
	return c.sel.Matches(labels.Set(monitorLabels)) && c.nsSel.Matches(labels.Set(nsLabels))
}

// MonitorSelector is the label selector for watching monitors of kind k; the
// informer may pass it to the API server. Nothing is selected when the kind
// is disabled.
func (g *Generator) MonitorSelector(k Kind) labels.Selector {
	c := &g.sel[k.index()]
	if c.disabled {
		return labels.Nothing()
	}
	return c.sel
}

// NeedsNamespaceLabels reports whether Selects looks at namespace labels for
// kind k, so the informer knows whether to watch Namespaces.
func (g *Generator) NeedsNamespaceLabels(k Kind) bool {
	return !g.sel[k.index()].nsSel.Empty()
}

func validateProtocols(ps []monitoringv1.ScrapeProtocol) error {
	seen := map[monitoringv1.ScrapeProtocol]bool{}
	for _, p := range ps {
		switch p {
		case monitoringv1.PrometheusProto, monitoringv1.PrometheusText0_0_4, monitoringv1.PrometheusText1_0_0,
			monitoringv1.OpenMetricsText0_0_1, monitoringv1.OpenMetricsText1_0_0:
		default:
			return fmt.Errorf("unknown scrape protocol %q", p)
		}
		if seen[p] {
			return fmt.Errorf("duplicate scrape protocol %q", p)
		}
		seen[p] = true
	}
	return nil
}
