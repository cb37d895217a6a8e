package target

import (
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// Target is one endpoint to scrape, as discovery emits it.
type Target struct {
	// URL is the full scrape URL (scheme, host:port, path, params).
	URL string
	// Labels are the public target labels attached to every series.
	Labels          labels.Labels
	Interval        time.Duration
	Timeout         time.Duration
	HonorLabels     bool
	HonorTimestamps bool
	MetricRelabel   []*promrelabel.Config
	// Discovered are the target's labels before relabeling (the
	// __meta_kubernetes_* labels of Prometheus' SD): what backends derive
	// their own tags from, such as Datadog's kube_namespace.
	Discovered labels.Labels
	Limits     Limits
	// HTTP holds TLS, credentials, proxy and redirect settings; nil means
	// plain HTTP(S) with Go's defaults.
	HTTP *httpconfig.Config
	// OwnCredentials says HTTP sends the agent's own service-account token
	// (a trusted monitor's bearerTokenFile, or a scrape class's credentials
	// file, naming it). Discovery keeps such a target only at this node's
	// addresses and the API server's, whatever --allow-other-addresses says,
	// and the scraper sends the token to no other host than the target's,
	// not even after a redirect: with it, a monitor could otherwise hand the
	// agent's identity to any host.
	OwnCredentials bool
	// Source names what the target came from (a monitor, a file) for the
	// targets page and logs.
	Source string
	// Pool is the scrape pool the target belongs to, Prometheus' job_name:
	// the monitor endpoint's job (serviceMonitor/<ns>/<name>/<i>), the
	// file's job. Empty means Source.
	Pool string
	// Drop, when its Reason is set, says why discovery does not scrape the
	// target: the scraper lists it among the dropped targets and starts no
	// loop for it. Such a target needs only Discovered, Pool and Source.
	Drop Drop
	// Cluster marks a target of no node (the API server of a managed
	// cluster, a selectorless Service's external address): one agent of
	// the fleet scrapes it, the holder of the cluster Lease, and its series
	// are reported as Datadog reports cluster checks: without a host,
	// tagged with the cluster name.
	Cluster bool
	// Term is the Lease term (holder and transition) in which this agent
	// holds a Cluster target; it is part of Seed, so a new holder, or this
	// agent again after another held the Lease, starts the target's delta
	// state afresh instead of from state that missed the other holder's
	// increments. Empty for the targets of this node.
	Term string
}

// ScrapePool returns the target's scrape pool: Pool, or Source without one.
func (t *Target) ScrapePool() string {
	if t.Pool != "" {
		return t.Pool
	}
	return t.Source
}

// Limits bound a job's targets and each of their scrapes: what a monitor
// asks for (sampleLimit, targetLimit, ..., bodySizeLimit), the operator's
// defaults and caps, and the scraper's own defaults all use this type.
//
// 0 means not set: a job takes the agent's default for it, a scrape the
// scraper's default. A negative value means no limit; only the operator's
// settings give one (a monitor cannot ask for "none").
type Limits struct {
	Samples          int64
	Labels           int64
	LabelNameLength  int64 // bytes
	LabelValueLength int64 // bytes
	BodySize         int64 // bytes, uncompressed
	// Targets and KeepDroppedTargets apply to a job's target set on this
	// node, which discovery enforces; they do not change how one target is
	// scraped (and are not in Key).
	Targets            int64
	KeepDroppedTargets int64
}

// DropReason says why a discovered target is not scraped: the dropReason of
// a dropped target in /api/v1/targets and on the targets page.
type DropReason string

// Why a target is dropped.
const (
	// DroppedByRelabeling: the monitor's relabel rules dropped the label
	// set (the targets Prometheus lists as dropped).
	DroppedByRelabeling DropReason = "relabeling"
	// DroppedNotOnNode: the target's address is not an address of this
	// node's pods or of the node (see --allow-other-addresses).
	DroppedNotOnNode DropReason = "not on this node"
	// DroppedInvalid: what relabeling or the file gave is not a valid target
	// (an address that is not host:port, an unparsable interval label).
	// Prometheus logs these ("creating target failed") and counts them.
	DroppedInvalid DropReason = "invalid target"
	// DroppedRefused: the agent refuses one of the target's settings, such
	// as an interval under 1s or one the delta state would not survive.
	DroppedRefused DropReason = "refused setting"
	// DroppedLimit: the target's pool has more targets than its limit
	// (the monitor's targetLimit).
	DroppedLimit DropReason = "limit"
	// DroppedDuplicate: another configuration of the same target (same URL
	// and labels, from another monitor) runs.
	DroppedDuplicate DropReason = "duplicate"
)

// Drop is why one target is dropped.
type Drop struct {
	Reason DropReason
	// Detail is the particular cause (the refused setting, the invalid
	// label); it may be empty.
	Detail string
}
