package relabel

import (
	"fmt"
	"net/url"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	k8slabels "k8s.io/apimachinery/pkg/labels"
)

// Monitor is what one ServiceMonitor or PodMonitor yields: a job per
// endpoint, in endpoint order.
type Monitor struct {
	Kind      Kind
	Namespace string
	Name      string
	Jobs      []*Job
	// Refs are the Secrets and ConfigMaps the monitor reads, also when it
	// is rejected (so that the informer rebuilds it when one appears).
	Refs []ObjectRef
}

// Job is one endpoint of a monitor: the scrape job Prometheus-Operator would
// write for it, with every setting resolved to what Prometheus would apply.
type Job struct {
	// Name is the job name, "serviceMonitor/<ns>/<name>/<i>" or
	// "podMonitor/<ns>/<name>/<i>"; it is the default of the job label.
	Name     string
	Endpoint int
	SD       SDConfig
	// RelabelConfigs is the Operator's relabel_configs for the endpoint,
	// applied to the label set discovery gives each target.
	RelabelConfigs []*promrelabel.Config
	// MetricRelabelConfigs is its metric_relabel_configs (may be empty).
	MetricRelabelConfigs []*promrelabel.Config
	Scrape               ScrapeOptions
	// HTTP carries authentication, TLS, proxy, redirect and HTTP/2
	// settings with Secret and ConfigMap values already read.
	HTTP httpconfig.Config
	// OwnCredentials: HTTP sends the agent's own service-account token
	// (see Settings.TrustedNamespaces); its targets carry the mark.
	OwnCredentials bool
}

// SDConfig is the Kubernetes service discovery the informer must emulate for
// a job.
type SDConfig struct {
	// Role is "endpoints", "endpointslice" (ServiceMonitor) or "pod"
	// (PodMonitor): it decides which __meta_kubernetes_* labels the chain
	// reads.
	Role Role
	// Namespaces limits discovery to these namespaces; nil means all.
	Namespaces []string
	// Selectors narrow discovery per role (selectorMechanism: RoleSelector)
	// instead of keep rules in the chain: an object of that role is
	// discovered only when its labels match.
	Selectors []RoleSelector
	// AttachNodeMetadata adds the __meta_kubernetes_node_* labels of the
	// pod's node (attach_metadata: {node: true}).
	AttachNodeMetadata bool
}

// Role is a Kubernetes SD role.
type Role string

// The roles a monitor's job may use.
const (
	RoleEndpoints     Role = "endpoints"
	RoleEndpointSlice Role = "endpointslice"
	RoleService       Role = "service"
	RolePod           Role = "pod"
)

// RoleSelector is a label selector Prometheus passes to the API server for
// one role; Label is its text as written in the Prometheus configuration.
type RoleSelector struct {
	Role     Role
	Label    string
	Selector k8slabels.Selector
}

// ScrapeOptions are a job's scrape settings with Prometheus' defaults and the
// agent-wide settings already applied.
type ScrapeOptions struct {
	Interval                 time.Duration
	Timeout                  time.Duration
	Scheme                   string
	MetricsPath              string
	Params                   url.Values
	HonorLabels              bool
	HonorTimestamps          bool
	TrackTimestampsStaleness bool
	EnableCompression        bool
	// ScrapeProtocols is the Accept negotiation order, by Prometheus'
	// protocol names (OpenMetricsText1.0.0, PrometheusText0.0.4, ...).
	ScrapeProtocols []string
	// FallbackProtocol is used when a response has no usable Content-Type;
	// empty fails such scrapes, as Prometheus 3 does.
	FallbackProtocol string
	// Limits are the effective limits. Targets and KeepDroppedTargets apply
	// to the job's target set (the informer's concern); the others to each
	// scrape.
	Limits           target.Limits
	NativeHistograms NativeHistograms
}

// NativeHistograms are the monitor's native histogram settings, carried for
// completeness; the text formats the agent scrapes have no native histograms.
type NativeHistograms struct {
	Scrape               bool
	BucketLimit          int64
	MinBucketFactor      float64
	AlwaysScrapeClassic  bool
	ConvertClassicToNHCB bool
}

// Defaults returns the scrape settings Populate uses for this job's targets.
func (j *Job) Defaults() Defaults {
	return Defaults{
		Job:         j.Name,
		Scheme:      j.Scrape.Scheme,
		MetricsPath: j.Scrape.MetricsPath,
		Interval:    j.Scrape.Interval,
		Timeout:     j.Scrape.Timeout,
		Params:      j.Scrape.Params,
	}
}

// Target applies the job's relabel chain and Prometheus' target rules to a
// label set from discovery (the __meta_kubernetes_* labels and
// __address__) and gives the result the job's scrape settings: the whole
// target but its Discovered labels, which discovery sets. It returns
// ErrDropped when the chain drops the target.
func (j *Job) Target(discovered labels.Labels) (target.Target, error) {
	t, err := Populate(discovered, j.RelabelConfigs, j.Defaults())
	if err != nil {
		return t, err
	}
	t.HonorLabels, t.HonorTimestamps = j.Scrape.HonorLabels, j.Scrape.HonorTimestamps
	t.MetricRelabel = j.MetricRelabelConfigs
	t.HTTP = &j.HTTP
	t.OwnCredentials = j.OwnCredentials
	t.Limits = j.Scrape.Limits
	t.Source, t.Pool = j.Name, j.Name
	return t, nil
}

// Error is a monitor the agent rejects, as the Operator would.
type Error struct {
	Kind      Kind
	Namespace string
	Name      string
	// Endpoint is the index of the offending endpoint, -1 when the error
	// concerns the whole monitor.
	Endpoint int
	// Field is the spec field at fault, relative to the endpoint when
	// Endpoint >= 0 (e.g. "tlsConfig.ca", "relabelings[2]").
	Field string
	Err   error
}

func (e *Error) Error() string {
	where := e.Field
	if e.Endpoint >= 0 {
		list := "endpoints"
		if e.Kind == PodMonitorKind {
			list = "podMetricsEndpoints"
		}
		where = fmt.Sprintf("%s[%d]", list, e.Endpoint)
		if e.Field != "" {
			where += "." + e.Field
		}
	}
	return fmt.Sprintf("%s %s/%s: %s: %v", e.Kind, e.Namespace, e.Name, where, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
