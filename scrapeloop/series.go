package scrapeloop

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// kind says what the loop does with a series' samples.
type kind uint8

const (
	kindSkip    kind = iota // dropped by relabeling, _created, +Inf bucket
	kindGauge               // sent as is
	kindCounter             // cumulative: sent as deltas
)

// entry is the cached result of everything done once per series: label
// parsing, relabeling, Datadog naming and tag encoding.
type entry struct {
	raw    string // raw series bytes, to tell hash collisions apart
	kind   kind
	gen    uint32 // last scrape generation that saw the series
	key    uint64 // identity in the delta store
	series *ddclient.Series
}

// Limit errors; checked with errors.Is.
var (
	errBodySizeLimit   = errors.New("body size limit exceeded")
	errSampleLimit     = errors.New("sample limit exceeded")
	errLabelLimit      = errors.New("label limit exceeded")
	errLabelNameLimit  = errors.New("label name length limit exceeded")
	errLabelValueLimit = errors.New("label value length limit exceeded")
)

// newEntry builds the cache entry of the parser's current sample.
func (l *loop) newEntry(p *exposition.Parser, raw []byte, h uint64) (*entry, error) {
	e := &entry{raw: string(raw), key: mix(l.seed ^ h)}
	role := p.Role()
	if role == exposition.RoleCreated {
		return e, nil
	}
	t := &l.target
	nl := p.NumLabels()
	if lim := t.Limits; lim.Labels > 0 || lim.LabelNameLength > 0 || lim.LabelValueLength > 0 {
		if lim.Labels > 0 && nl+t.Labels.Len() > lim.Labels {
			return nil, fmt.Errorf("series %s has %d labels, limit %d: %w", raw, nl+t.Labels.Len(), lim.Labels, errLabelLimit)
		}
		for k := range nl {
			name, value := p.Label(k)
			if lim.LabelNameLength > 0 && len(name) > lim.LabelNameLength {
				return nil, fmt.Errorf("series %s label %q longer than %d: %w", raw, name, lim.LabelNameLength, errLabelNameLimit)
			}
			if lim.LabelValueLength > 0 && len(value) > lim.LabelValueLength {
				return nil, fmt.Errorf("series %s label %q value longer than %d: %w", raw, name, lim.LabelValueLength, errLabelValueLimit)
			}
		}
	}
	b := &l.builder
	b.Reset(labels.EmptyLabels())
	b.Set(model.MetricNameLabel, string(p.Name()))
	for k := range nl {
		name, value := p.Label(k)
		b.Set(string(name), string(value))
	}
	// Target labels win over scraped ones unless honor_labels, as in Prometheus;
	// a clashing scraped label is kept as exported_<name>.
	t.Labels.Range(func(tl labels.Label) {
		if v := b.Get(tl.Name); v != "" {
			if t.HonorLabels {
				return
			}
			b.Set(model.ExportedLabelPrefix+tl.Name, v)
		}
		b.Set(tl.Name, tl.Value)
	})
	if len(t.MetricRelabel) > 0 && !promrelabel.ProcessBuilder(b, t.MetricRelabel...) {
		return e, nil
	}
	name := b.Get(model.MetricNameLabel)
	if name == "" {
		return e, nil
	}
	family := string(p.Family())
	if family == "" || !strings.HasPrefix(name, family) {
		// Relabeling renamed the series: name it after its new name.
		family = name
	}
	d := ddclient.Desc{Host: l.cfg.Host}
	tagLabel := ""
	switch typ := p.Type(); {
	case typ == exposition.TypeCounter:
		d.Metric, d.Type = strings.TrimSuffix(name, "_total")+".count", ddclient.Count
	case typ == exposition.TypeHistogram && role == exposition.RoleBucket:
		le := b.Get(model.BucketLabel)
		if le == "+Inf" || le == "" {
			return e, nil // the +Inf bucket is .count
		}
		d.Metric, d.Type, tagLabel = family+".bucket", ddclient.Count, model.BucketLabel
	case (typ == exposition.TypeHistogram || typ == exposition.TypeSummary) && role == exposition.RoleSum:
		d.Metric, d.Type = family+".sum", ddclient.Count
	case (typ == exposition.TypeHistogram || typ == exposition.TypeSummary) && role == exposition.RoleCount:
		d.Metric, d.Type = family+".count", ddclient.Count
	case typ == exposition.TypeSummary && role == exposition.RoleQuantile:
		d.Metric, d.Type = family+".quantile", ddclient.Gauge
	default:
		d.Metric, d.Type = name, ddclient.Gauge
	}
	d.Metric = metricName(t.Namespace, d.Metric)
	if d.Type == ddclient.Count {
		d.Interval = int64(t.Interval.Seconds())
		e.kind = kindCounter
	} else {
		e.kind = kindGauge
	}
	tags := make([]string, 0, b.Labels().Len()+len(t.Tags))
	b.Range(func(lb labels.Label) {
		switch lb.Name {
		case model.MetricNameLabel:
		case tagLabel:
			tags = append(tags, "upper_bound:"+lb.Value)
		default:
			tags = append(tags, lb.Name+":"+lb.Value)
		}
	})
	d.Tags = append(tags, t.Tags...)
	e.series = ddclient.NewSeries(d)
	return e, nil
}

// metricName joins namespace and name and maps characters Datadog does not
// allow in metric names to '_'.
func metricName(ns, name string) string {
	if ns != "" {
		name = ns + "." + name
	}
	ok := true
	for i := 0; i < len(name); i++ {
		if !validMetricByte(name[i]) {
			ok = false
			break
		}
	}
	if ok {
		return name
	}
	b := []byte(name)
	for i, c := range b {
		if !validMetricByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func validMetricByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

// mix turns the target seed xor the raw series hash into the series'
// delta-store key (a splitmix64 finalizer, so the xor does not cancel out).
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
