package scrapeloop

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"

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
	if err := l.checkLimits(p, raw); err != nil {
		return 0, 0, err
	}
	if len(t.MetricRelabel) == 0 && plainSeries(p, &t.Labels) {
		return l.classifyPlain(p)
	}
	b := &l.builder
	b.Reset(labels.EmptyLabels())
	// The builder may hold views of the parser's bytes: it copies them all
	// into the final labels before classify returns.
	b.Set(model.MetricNameLabel, unsafeString(p.Name()))
	nl := p.NumLabels()
	for k := range nl {
		name, value := p.Label(k)
		b.Set(unsafeString(name), unsafeString(value))
	}
	exported, omitted := l.setTargetLabels(p, b)
	if len(t.MetricRelabel) > 0 && !promrelabel.ProcessBuilder(b, t.MetricRelabel...) {
		return 0, kindRelabeled, nil
	}
	if b.Get(model.MetricNameLabel) == "" {
		return 0, kindRelabeled, nil
	}
	final := b.Labels()
	s := Series{
		Family: p.Family(), Type: p.Type(), Role: p.Role(), Labels: final,
		Exported: exported, Omitted: omitted, Help: p.Help(), Unit: p.Unit(), Sample: p,
	}
	verbatim := nl <= 32 && t.Labels.Len() <= 64 // the masks' widths
	s.Verbatim = verbatim && l.sameAsVerbatim(p, final, exported, omitted)
	ref, kind := l.app.AddSeries(&s)
	return ref, kind, nil
}

// checkLimits checks the series' labels, the target's counted in, against the
// label limits.
func (l *loop) checkLimits(p *exposition.Parser, raw []byte) error {
	t := &l.target
	nl := p.NumLabels()
	lim := l.limits
	if lim.Labels > 0 && nl+t.Labels.Len() > lim.Labels {
		return fmt.Errorf("series %s has %d labels, limit %d: %w", quoteShort(raw), nl+t.Labels.Len(), lim.Labels, errLabelLimit)
	}
	if lim.LabelNameLength > 0 || lim.LabelValueLength > 0 {
		for k := range nl {
			name, value := p.Label(k)
			if lim.LabelNameLength > 0 && len(name) > lim.LabelNameLength {
				return fmt.Errorf("series %s label %s longer than %d: %w", quoteShort(raw), quoteShort(name), lim.LabelNameLength, errLabelNameLimit)
			}
			if lim.LabelValueLength > 0 && len(value) > lim.LabelValueLength {
				return fmt.Errorf("series %s label %s value of %d bytes, limit %d: %w", quoteShort(raw), quoteShort(name), len(value), lim.LabelValueLength, errLabelValueLimit)
			}
		}
	}
	return nil
}

// setTargetLabels sets the target's labels in b, which holds the sample's,
// and returns the masks of Series.Exported and Series.Omitted.
func (l *loop) setTargetLabels(p *exposition.Parser, b *labels.Builder) (exported uint32, omitted uint64) {
	t := &l.target
	// Target labels win over scraped ones unless honor_labels, as in
	// Prometheus' mutateSampleLabels: with honor_labels a scraped label wins,
	// even an empty one (which removes the label); without, every target
	// label is set, then each clashing scraped label is kept as
	// exported_<name>, or exported_exported_<name> if that is taken, and so on.
	var clashes []labels.Label
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
	return exported, omitted
}

// plainSeries reports whether the sample's labels meet none of the cases
// where Prometheus' rules change them: no empty value, no name twice, no
// __name__ label, no clash with a target label. Such a series' final labels
// are simply its own plus the target's, and need no labels.Builder.
func plainSeries(p *exposition.Parser, target *labels.Labels) bool {
	nl := p.NumLabels()
	if nl > 32 || target.Len() > 64 { // the Verbatim masks' widths
		return false
	}
	for k := range nl {
		name, value := p.Label(k)
		if len(value) == 0 || len(name) == 0 || string(name) == model.MetricNameLabel || target.Has(unsafeString(name)) {
			return false
		}
		for j := range k {
			if n, _ := p.Label(j); string(n) == string(name) {
				return false
			}
		}
	}
	return true
}

// classifyPlain is classify for a plainSeries without metric relabeling:
// the final labels are built in a reused buffer, without allocating.
func (l *loop) classifyPlain(p *exposition.Parser) (uint64, Kind, error) {
	sb := &l.scratch
	sb.Reset()
	sb.Add(model.MetricNameLabel, unsafeString(p.Name()))
	for k := range p.NumLabels() {
		name, value := p.Label(k)
		sb.Add(unsafeString(name), unsafeString(value))
	}
	l.target.Labels.Range(func(tl labels.Label) { sb.Add(tl.Name, tl.Value) })
	sb.Sort()
	sb.Overwrite(&l.final)
	s := Series{
		Family: p.Family(), Type: p.Type(), Role: p.Role(), Labels: l.final,
		Verbatim: true, Help: p.Help(), Unit: p.Unit(), Sample: p,
	}
	ref, kind := l.app.AddSeries(&s)
	return ref, kind, nil
}

// unsafeString views b as a string without copying. The string is valid
// only while b is: here, the parser's current sample during classify.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
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
	if string(p.Name()) != final.Get(model.MetricNameLabel) {
		return false
	}
	// key is the k-th sample label's name under the rules.
	key := func(k int, buf []byte) []byte {
		ln, _ := p.Label(k)
		buf = buf[:0]
		if exported&(1<<k) != 0 {
			buf = append(buf, model.ExportedLabelPrefix...)
		}
		return append(buf, ln...)
	}
	nl := p.NumLabels()
	n := 1 // __name__
	for k := range nl {
		_, lv := p.Label(k)
		if len(lv) == 0 {
			return false
		}
		l.keyA = key(k, l.keyA)
		if final.Get(unsafeString(l.keyA)) != unsafeString(lv) {
			return false
		}
		for j := range k {
			if l.keyB = key(j, l.keyB); string(l.keyA) == string(l.keyB) {
				return false // a name twice
			}
		}
		n++
	}
	ok := true
	i := 0
	l.target.Labels.Range(func(tl labels.Label) {
		if omitted&(1<<i) == 0 && ok {
			ok = final.Get(tl.Name) == tl.Value
			for k := range nl {
				if l.keyA = key(k, l.keyA); string(l.keyA) == tl.Name {
					ok = false // a sample label in the target's place
				}
			}
			n++
		}
		i++
	})
	// Every label the rules give is in final, once: equal if the counts are.
	return ok && n == final.Len()
}
