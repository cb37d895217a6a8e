package scrapeloop

import (
	"errors"
	"fmt"
	"slices"

	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

// Limit errors; checked with errors.Is.
var (
	errBodySizeLimit   = errors.New("body size limit exceeded")
	errSampleLimit     = errors.New("sample limit exceeded")
	errLabelLimit      = errors.New("label limit exceeded")
	errLabelNameLimit  = errors.New("label name length limit exceeded")
	errLabelValueLimit = errors.New("label value length limit exceeded")
)

// classify does what is done once per series: limits, the target's labels,
// metric relabeling, then the appender's verdict. It runs on a cache miss
// only.
func (l *loop) classify(p *exposition.Parser, raw []byte) (uint64, Kind, error) {
	if p.Role() == exposition.RoleCreated {
		return 0, KindDrop, nil // read through Parser.Created with its series
	}
	t := &l.target
	nl := p.NumLabels()
	lim := l.limits
	if lim.Labels > 0 && nl+t.Labels.Len() > lim.Labels {
		return 0, 0, fmt.Errorf("series %.200s has %d labels, limit %d: %w", raw, nl+t.Labels.Len(), lim.Labels, errLabelLimit)
	}
	if lim.LabelNameLength > 0 || lim.LabelValueLength > 0 {
		for k := range nl {
			name, value := p.Label(k)
			if lim.LabelNameLength > 0 && len(name) > lim.LabelNameLength {
				return 0, 0, fmt.Errorf("series %.200s label %.100q longer than %d: %w", raw, name, lim.LabelNameLength, errLabelNameLimit)
			}
			if lim.LabelValueLength > 0 && len(value) > lim.LabelValueLength {
				return 0, 0, fmt.Errorf("series %.200s label %.100q value of %d bytes, limit %d: %w", raw, name, len(value), lim.LabelValueLength, errLabelValueLimit)
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
	// Target labels win over scraped ones unless honor_labels, as in
	// Prometheus' mutateSampleLabels: with honor_labels a scraped label wins,
	// even an empty one (which removes the label); without, every target
	// label is set, then each clashing scraped label is kept as
	// exported_<name>, or exported_exported_<name> if that is taken, and so on.
	var exported uint32
	var omitted uint64
	var clashes []labels.Label
	verbatim := nl <= 32 && t.Labels.Len() <= 64
	i := 0
	t.Labels.Range(func(tl labels.Label) {
		if t.HonorLabels {
			if sampleLabelIndex(p, tl.Name) >= 0 {
				omitted |= 1 << (i & 63)
			} else {
				b.Set(tl.Name, tl.Value)
			}
			i++
			return
		}
		if v := b.Get(tl.Name); v != "" {
			clashes = append(clashes, labels.Label{Name: tl.Name, Value: v})
		}
		b.Set(tl.Name, tl.Value)
		i++
	})
	slices.SortStableFunc(clashes, func(a, b labels.Label) int { return len(a.Name) - len(b.Name) })
	for _, c := range clashes {
		name := model.ExportedLabelPrefix + c.Name
		for b.Get(name) != "" {
			name = model.ExportedLabelPrefix + name
		}
		b.Set(name, c.Value)
		if k := sampleLabelIndex(p, c.Name); k >= 0 && len(name) == len(model.ExportedLabelPrefix)+len(c.Name) {
			exported |= 1 << (k & 31)
		}
	}
	if len(t.MetricRelabel) > 0 && !promrelabel.ProcessBuilder(b, t.MetricRelabel...) {
		return 0, KindDrop, nil
	}
	if b.Get(model.MetricNameLabel) == "" {
		return 0, KindDrop, nil
	}
	final := b.Labels()
	s := Series{
		Family: p.Family(), Type: p.Type(), Role: p.Role(), Labels: final,
		Exported: exported, Omitted: omitted, Help: p.Help(), Unit: p.Unit(),
	}
	s.Verbatim = verbatim && l.sameAsVerbatim(p, final, exported, omitted)
	ref, kind := l.app.AddSeries(&s)
	return ref, kind, nil
}

// sampleLabelIndex returns the position of the sample's label name, or -1.
func sampleLabelIndex(p *exposition.Parser, name string) int {
	for k := range p.NumLabels() {
		if n, _ := p.Label(k); string(n) == name {
			return k
		}
	}
	return -1
}

// sameAsVerbatim reports whether final is exactly what the Verbatim rules of
// Series give: anything else (relabeling that rewrote labels, duplicate or
// empty labels, a clash with an exported_ label) makes the appender keep the
// final labels instead.
func (l *loop) sameAsVerbatim(p *exposition.Parser, final labels.Labels, exported uint32, omitted uint64) bool {
	b := &l.verbatim
	b.Reset(labels.EmptyLabels())
	n := 1 // __name__
	name := p.Name()
	if string(name) != final.Get(model.MetricNameLabel) {
		return false
	}
	for k := range p.NumLabels() {
		ln, lv := p.Label(k)
		if len(lv) == 0 {
			return false
		}
		key := string(ln)
		if exported&(1<<k) != 0 {
			key = model.ExportedLabelPrefix + key
		}
		if b.Get(key) != "" {
			return false // duplicate
		}
		b.Set(key, string(lv))
		n++
	}
	i := 0
	ok := true
	l.target.Labels.Range(func(tl labels.Label) {
		if omitted&(1<<i) == 0 {
			if b.Get(tl.Name) != "" {
				ok = false
			}
			b.Set(tl.Name, tl.Value)
			n++
		}
		i++
	})
	if !ok || n != final.Len() {
		return false
	}
	same := true
	final.Range(func(fl labels.Label) {
		if fl.Name == model.MetricNameLabel {
			return
		}
		if b.Get(fl.Name) != fl.Value {
			same = false
		}
	})
	return same
}
