package scrapeloop

import (
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/nodescraper/nodescraper/relabel"
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
	HTTP *relabel.HTTPConfig
	// Source names what the target came from (a monitor, a file) for the
	// targets page and logs.
	Source string
	// Pool is the scrape pool the target belongs to, Prometheus' job_name:
	// the monitor endpoint's job (serviceMonitor/<ns>/<name>/<i>), the
	// file's job. Empty means Source.
	Pool string
	// Drop, when its Reason is set, says why discovery does not scrape the
	// target: the manager lists it among the dropped targets and starts no
	// loop for it. Such a target needs only Discovered, Pool and Source.
	Drop Drop
}

// ScrapePool returns the target's scrape pool: Pool, or Source without one.
func (t *Target) ScrapePool() string {
	if t.Pool != "" {
		return t.Pool
	}
	return t.Source
}

// Limits bound what one scrape may hold. A scrape over a limit fails with a
// clear reason and other targets are not affected. 0 takes the agent's
// default (Config.DefaultLimits, then the package defaults below); a
// negative value means no limit.
type Limits struct {
	BodySize         int64
	Samples          int
	Labels           int
	LabelNameLength  int
	LabelValueLength int
}

// Package defaults: generous for real exporters (a large cluster's
// kube-state-metrics serves about 50 MB), tight enough that one hostile
// target cannot take the node's memory: a body past the limit is cut off
// while it is read. vmagent's default is 16 MiB (-promscrape.maxScrapeSize).
const (
	DefaultBodySize         = 64 << 20
	DefaultSamples          = 2_000_000
	DefaultLabels           = 64
	DefaultLabelNameLength  = 256
	DefaultLabelValueLength = 4096
)

// orDefaults fills unset limits from d, then from the package defaults, and
// turns "no limit" into 0 (BodySize: the largest int64).
func (l Limits) orDefaults(d Limits) Limits {
	pick := func(v, dv, pkg int64) int64 {
		switch {
		case v < 0:
			return 0
		case v > 0:
			return v
		case dv < 0:
			return 0
		case dv > 0:
			return dv
		}
		return pkg
	}
	out := Limits{
		BodySize:         pick(l.BodySize, d.BodySize, DefaultBodySize),
		Samples:          int(pick(int64(l.Samples), int64(d.Samples), DefaultSamples)),
		Labels:           int(pick(int64(l.Labels), int64(d.Labels), DefaultLabels)),
		LabelNameLength:  int(pick(int64(l.LabelNameLength), int64(d.LabelNameLength), DefaultLabelNameLength)),
		LabelValueLength: int(pick(int64(l.LabelValueLength), int64(d.LabelValueLength), DefaultLabelValueLength)),
	}
	if out.BodySize == 0 {
		out.BodySize = math.MaxInt64 - 1
	}
	return out
}

// Key identifies a target's configuration: two targets with the same key
// are the same loop. Every field is length-prefixed (strings, lists and maps
// carry their length, optional parts a presence flag, numbers are varints),
// so a key reads back into exactly one configuration: no two configurations
// share a key.
func (t *Target) Key() string {
	b := keyBuf(make([]byte, 0, 256))
	b.str(t.URL)
	b.labels(t.Labels)
	b.labels(t.Discovered)
	b.num(int64(t.Interval))
	b.num(int64(t.Timeout))
	b.bool(t.HonorLabels)
	b.bool(t.HonorTimestamps)
	b.num(int64(len(t.MetricRelabel)))
	for _, c := range t.MetricRelabel {
		b.str(string(c.Action))
		b.num(int64(len(c.SourceLabels)))
		for _, l := range c.SourceLabels {
			b.str(string(l))
		}
		b.str(c.Separator)
		b.str(c.Regex.String())
		b.num(int64(c.Modulus))
		b.str(c.TargetLabel)
		b.str(c.Replacement)
		b.num(int64(c.NameValidationScheme)) // which target labels Process accepts
	}
	b.num(t.Limits.BodySize)
	b.num(int64(t.Limits.Samples))
	b.num(int64(t.Limits.Labels))
	b.num(int64(t.Limits.LabelNameLength))
	b.num(int64(t.Limits.LabelValueLength))
	b.http(t.HTTP)
	b.str(t.Source)
	b.str(t.Pool)
	b.str(string(t.Drop.Reason))
	b.str(t.Drop.Detail)
	return string(b)
}

// keyBuf builds a target key from self-delimiting fields.
type keyBuf []byte

func (b *keyBuf) str(s string) {
	*b = binary.AppendUvarint(*b, uint64(len(s)))
	*b = append(*b, s...)
}

func (b *keyBuf) num(n int64) { *b = binary.AppendVarint(*b, n) }

func (b *keyBuf) bool(v bool) { b.num(int64(b2i(v))) }

func (b *keyBuf) strs(ss []string) {
	b.num(int64(len(ss)))
	for _, s := range ss {
		b.str(s)
	}
}

// labels encodes ls itself: Labels.Bytes differs between Prometheus' label
// implementations, and the slice one joins with separator bytes a value may
// hold.
func (b *keyBuf) labels(ls labels.Labels) {
	b.num(int64(ls.Len()))
	ls.Range(func(l labels.Label) {
		b.str(l.Name)
		b.str(l.Value)
	})
}

// http appends everything of h that changes how a target is scraped,
// secrets included (the key is never shown), so a rotated secret restarts
// the target's loop with the new credentials.
func (b *keyBuf) http(h *relabel.HTTPConfig) {
	b.bool(h != nil)
	if h == nil {
		return
	}
	b.bool(h.FollowRedirects)
	b.bool(h.EnableHTTP2)
	b.bool(h.Authorization != nil)
	if a := h.Authorization; a != nil {
		b.str(a.Type)
		b.str(string(a.Credentials))
		b.str(a.CredentialsFile)
	}
	b.bool(h.BasicAuth != nil)
	if a := h.BasicAuth; a != nil {
		b.str(a.Username)
		b.str(string(a.Password))
	}
	b.bool(h.OAuth2 != nil)
	if o := h.OAuth2; o != nil {
		b.str(o.ClientID)
		b.str(string(o.ClientSecret))
		b.str(o.TokenURL)
		b.strs(o.Scopes)
		b.num(int64(len(o.EndpointParams)))
		for _, k := range slices.Sorted(maps.Keys(o.EndpointParams)) {
			b.str(k)
			b.str(o.EndpointParams[k])
		}
		b.tls(o.TLS)
		b.proxy(o.Proxy)
	}
	b.tls(h.TLS)
	b.proxy(h.Proxy)
}

func (b *keyBuf) tls(t relabel.TLSConfig) {
	b.str(t.CA)
	b.str(t.Cert)
	b.str(string(t.Key))
	b.str(t.CAFile)
	b.str(t.CertFile)
	b.str(t.KeyFile)
	b.str(t.ServerName)
	b.bool(t.InsecureSkipVerify)
	b.num(int64(t.MinVersion))
	b.num(int64(t.MaxVersion))
}

func (b *keyBuf) proxy(p relabel.ProxyConfig) {
	b.bool(p.URL != nil)
	if p.URL != nil {
		b.str(p.URL.String())
	}
	b.str(p.NoProxy)
	b.bool(p.FromEnvironment)
	b.num(int64(len(p.ConnectHeader)))
	for _, k := range slices.Sorted(maps.Keys(p.ConnectHeader)) {
		b.str(k)
		vs := p.ConnectHeader[k]
		b.num(int64(len(vs)))
		for _, v := range vs {
			b.str(string(v)) // the secret itself: %v would print "<secret>"
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// seed identifies the target's series in the delta store. It depends only on
// the URL and the target labels, so a restarted agent finds the same state.
// The labels are encoded here, length-prefixed: Labels.Bytes overwrites its
// buffer (it would drop the URL) and its encoding may change between
// Prometheus versions.
func (t *Target) seed() uint64 {
	// No label count, unlike keyBuf.labels: the seed is in checkpoints and
	// keeps its encoding.
	b := keyBuf(make([]byte, 0, 256))
	b.str(t.URL)
	t.Labels.Range(func(l labels.Label) {
		b.str(l.Name)
		b.str(l.Value)
	})
	return xxhash.Sum64(b)
}
