package scrapeloop

import (
	"strconv"
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
	// Namespace prefixes Datadog metric names ("<namespace>.<name>").
	Namespace string
	// Tags are extra Datadog tags (kube_namespace, pod_name, ...).
	Tags   []string
	Limits Limits
	// HTTP holds TLS, credentials, proxy and redirect settings; nil means
	// plain HTTP(S) with Go's defaults.
	HTTP *relabel.HTTPConfig
	// Source names what the target came from (a monitor, a file) for the
	// targets page and logs.
	Source string
}

// Limits bound what one scrape may hold; 0 means no limit. A scrape over a
// limit fails with a clear reason and other targets are not affected.
type Limits struct {
	BodySize         int64
	Samples          int
	Labels           int
	LabelNameLength  int
	LabelValueLength int
}

// Key identifies a target: two targets with the same key are the same loop.
func (t *Target) Key() string {
	b := make([]byte, 0, 256)
	b = append(b, t.URL...)
	b = append(b, 0)
	b = t.Labels.Bytes(b)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(t.Interval), 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(t.Timeout), 10)
	b = strconv.AppendBool(b, t.HonorLabels)
	b = strconv.AppendBool(b, t.HonorTimestamps)
	b = append(b, t.Namespace...)
	for _, tag := range t.Tags {
		b = append(b, 0)
		b = append(b, tag...)
	}
	for _, c := range t.MetricRelabel {
		b = append(b, 0)
		b = append(b, c.Action...)
		for _, l := range c.SourceLabels {
			b = append(b, 1)
			b = append(b, l...)
		}
		b = append(b, 1)
		b = append(b, c.Separator...)
		b = append(b, 1)
		b = append(b, c.Regex.String()...)
		b = append(b, 1)
		b = strconv.AppendUint(b, c.Modulus, 10)
		b = append(b, 1)
		b = append(b, c.TargetLabel...)
		b = append(b, 1)
		b = append(b, c.Replacement...)
	}
	b = strconv.AppendInt(b, t.Limits.BodySize, 10)
	b = strconv.AppendInt(b, int64(t.Limits.Samples), 10)
	b = strconv.AppendInt(b, int64(t.Limits.Labels), 10)
	b = strconv.AppendInt(b, int64(t.Limits.LabelNameLength), 10)
	b = strconv.AppendInt(b, int64(t.Limits.LabelValueLength), 10)
	b = appendHTTPKey(b, t.HTTP)
	b = append(b, 0)
	b = append(b, t.Source...)
	return string(b)
}

// seed identifies the target's series in the delta store. It depends only on
// the URL and the target labels, so a restarted agent finds the same state.
func (t *Target) seed() uint64 {
	b := append([]byte(t.URL), 0)
	return xxhash.Sum64(t.Labels.Bytes(b))
}
