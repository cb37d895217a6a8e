package scrapeloop

import (
	"encoding/binary"
	"math"
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
// are the same loop. Fields are length-prefixed, so no two configurations
// share a key.
func (t *Target) Key() string {
	b := make([]byte, 0, 256)
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(n int64) { b = binary.AppendVarint(b, n) }
	str(t.URL)
	str(string(t.Labels.Bytes(nil)))
	str(string(t.Discovered.Bytes(nil)))
	num(int64(t.Interval))
	num(int64(t.Timeout))
	num(int64(b2i(t.HonorLabels)<<1 | b2i(t.HonorTimestamps)))
	num(int64(len(t.MetricRelabel)))
	for _, c := range t.MetricRelabel {
		str(string(c.Action))
		num(int64(len(c.SourceLabels)))
		for _, l := range c.SourceLabels {
			str(string(l))
		}
		str(c.Separator)
		str(c.Regex.String())
		num(int64(c.Modulus))
		str(c.TargetLabel)
		str(c.Replacement)
	}
	num(t.Limits.BodySize)
	num(int64(t.Limits.Samples))
	num(int64(t.Limits.Labels))
	num(int64(t.Limits.LabelNameLength))
	num(int64(t.Limits.LabelValueLength))
	str(string(appendHTTPKey(nil, t.HTTP)))
	str(t.Source)
	return string(b)
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
	b := binary.AppendUvarint(make([]byte, 0, 256), uint64(len(t.URL)))
	b = append(b, t.URL...)
	t.Labels.Range(func(l labels.Label) {
		b = binary.AppendUvarint(b, uint64(len(l.Name)))
		b = append(b, l.Name...)
		b = binary.AppendUvarint(b, uint64(len(l.Value)))
		b = append(b, l.Value...)
	})
	return xxhash.Sum64(b)
}
