package ddclient

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// sink takes the encoded entries of appenders: the Client's payloads, or
// the dry-run Printer.
type sink interface {
	// acquire returns a buffer the caller owns until release or full.
	acquire() *buffer
	// full hands over a buffer that reached its size and returns a new one.
	full(b *buffer) *buffer
	// release gives a buffer back at the end of a scrape.
	release(b *buffer)
	// maxEntry is the largest entry a payload can hold.
	maxEntry() int
	// seriesV3 says the buffers are v3 payloads (buffer.w), not JSON.
	seriesV3() bool
	counters() *encodeMetrics
}

// encodeMetrics count what appenders refuse to encode, and the shapes
// they hold.
type encodeMetrics struct {
	invalid   *metrics.Counter // NaN or ±Inf values: JSON cannot carry them
	oversized *metrics.Counter // an entry larger than a payload
	shortened *metrics.Counter // tags cut to Datadog's length
	// A new series' labels named as a tag the agent owns (rule 5 of
	// tagRules): renamed exported_<name>, or dropped as the same value as
	// the Kubernetes tag. Once per series, not per point.
	reservedRenamed, reservedDropped *metrics.Counter
	// shapes is the shapes all appenders hold; shapesEvicted counts those
	// released because every series that used them went away.
	shapes        *metrics.Gauge
	shapesEvicted *metrics.Counter
}

func newEncodeMetrics(set *metrics.Set) *encodeMetrics {
	return &encodeMetrics{
		invalid:   set.NewCounter(`nodescraper_dd_points_dropped_total{reason="invalid_value"}`),
		oversized: set.NewCounter(`nodescraper_dd_points_dropped_total{reason="oversized"}`),
		shortened: set.NewCounter(`nodescraper_dd_tags_shortened_total`),

		reservedRenamed: set.NewCounter(`nodescraper_dd_reserved_tags_renamed_total`),
		reservedDropped: set.NewCounter(`nodescraper_dd_reserved_tags_dropped_total`),

		shapes:        set.NewGauge(`nodescraper_dd_metric_shapes`, nil),
		shapesEvicted: set.NewCounter(`nodescraper_dd_metric_shapes_evicted_total`),
	}
}

// appender encodes one target's points straight into payload buffers. Per
// series it keeps nothing for a verbatim series (the points are encoded from
// the parser's labels through a shape shared by all series of one metric
// name and label layout, the tag rules' renames and drops included) and the
// encoded tags of a series whose labels relabeling changed or RenameLabels
// renames.
//
// What it keeps is keyed by what the target sends (its metric names), so it
// is bounded by the target's live series: a shape counts the series that
// use it and is released when the last of them goes (Forget: the series
// went stale or left the scrape), so a target that keeps inventing names
// holds only the shapes of the series the loop still holds, which the
// node's series budget bounds.
type appender struct {
	out   sink
	m     *encodeMetrics
	mp    *Mapping
	rules *tagRules
	t     *target.Target
	// interval is the scrape interval in seconds, the interval of counts.
	interval int64

	// shapes[0] is never used: ref 0 (a dropped series) names no shape.
	shapes     []shape
	shapeIdx   map[shapeKey]uint32
	shapeFree  []uint32 // released shapes, reused before shapes grows
	shapesPeak int      // most entries shapeIdx held since it was made
	stored     []stored
	free       []uint32

	// mid follows a point's value: the host resource and the opening of the tags.
	mid []byte
	// targetTags are the target's labels as encoded tags ("k:v" quoted),
	// in Target.Labels order, nil for a label the tag rules drop; extra the
	// Kubernetes tags; tail all of them, each led by a comma, then the
	// entry's end.
	targetTags [][]byte
	extra      []byte
	tail       []byte
	// exportedTargets and repeatedTargets have bit i set when rule 5 of
	// tagRules renames or drops the i-th target label: what a verbatim
	// series, whose tags are the target's, counts.
	exportedTargets, repeatedTargets uint64

	report *reportState

	// v3 is set when the sink's buffers are v3 payloads; see appender_v3.go.
	v3 *v3State

	buf    *buffer
	tsSec  int64
	tsText []byte
	scr    []byte
}

// stored is a series whose tags are kept encoded.
type stored struct {
	shape uint32
	// tags are the encoded tags without the target's extra tags: JSON
	// strings, comma separated; for v3 each a varint length and the bytes.
	tags string
}

// upperBound is what a histogram bucket's le label is sent as.
var upperBound = []byte("upper_bound")

// A ref is a shape index, or with storedBit an index into stored. plainBit
// says every label of the (verbatim) series can be copied into its tag as
// it is: no JSON escapes, valid UTF-8, within the tag length. A series'
// labels are fixed by its raw bytes, so this holds for all its points.
const (
	storedBit = 1 << 63
	plainBit  = 1 << 62
)

func newAppender(out sink, mp *Mapping, t *target.Target) *appender {
	a := &appender{
		out: out, m: out.counters(), mp: mp, rules: newTagRules(mp, t), t: t,
		interval: int64(t.Interval / 1e9), shapeIdx: map[shapeKey]uint32{},
		shapes: make([]shape, 1), tsSec: -1,
	}
	a.mid = append(a.mid, `}]`...)
	// A cluster target's series have no host, as Datadog's cluster checks:
	// the fleet's Lease holder scrapes them, not a node.
	if mp.Host != "" && !t.Cluster {
		a.mid = append(a.mid, `,"resources":[{"name":`...)
		a.mid = appendJSONString(a.mid, mp.Host)
		a.mid = append(a.mid, `,"type":"host"}]`...)
	}
	a.mid = append(a.mid, `,"tags":[`...)
	t.Labels.Range(func(l labels.Label) {
		var tag []byte
		name, f := a.rules.labelFate(l.Name, l.Value)
		if f <= exported {
			tag = a.appendTag(nil, f.prefix(), name, l.Value)
		}
		if i := len(a.targetTags); i < 64 {
			a.exportedTargets |= b2u(f == exported) << i
			a.repeatedTargets |= b2u(f == repeated) << i
		}
		a.targetTags = append(a.targetTags, tag)
	})
	for _, kt := range a.rules.kube {
		// Shortened as every tag: a pod name may have 253 characters.
		a.extra = append(a.extra, ',')
		a.extra = a.appendTag(a.extra, "", kt.name, kt.value)
	}
	for _, tag := range a.targetTags {
		if tag == nil {
			continue
		}
		a.tail = append(a.tail, ',')
		a.tail = append(a.tail, tag...)
	}
	a.tail = append(a.tail, a.extra...)
	a.tail = append(a.tail, `]}`...)
	a.initReport(t)
	if out.seriesV3() {
		a.initV3(t)
	}
	return a
}

// AddSeries implements scrapeloop.Appender.
func (a *appender) AddSeries(s *scrapeloop.Series) (uint64, scrapeloop.Kind) {
	name := s.Labels.Get(model.MetricNameLabel)
	met := a.mp.metricFor(string(s.Family), name, s.Type, s.Role, s.Labels.Get(model.BucketLabel))
	if met.kind == scrapeloop.KindDrop {
		return 0, scrapeloop.KindDrop
	}
	// The name may be the series' own (a gauge without namespace), whose
	// bytes the loop reuses after AddSeries; the shape and the metadata
	// keep it.
	met.name = strings.Clone(met.name)
	key := shapeKey{name: met.name, typ: met.typ, bucket: met.bucket}
	var vf verbatimFate
	verbatim := s.Verbatim
	if verbatim {
		vf, verbatim = a.rules.verbatimFate(s, met.bucket)
	}
	if verbatim {
		key.exported, key.dropped, key.omitted = vf.exported, vf.dropped, s.Omitted
	}
	si := a.shapeFor(key, met, s)
	if verbatim {
		// What the rules did to its scraped labels is in the shape's masks,
		// and to the target's in its encoded tags: nothing is kept.
		a.countReserved(vf.renamed+bits.OnesCount64(a.exportedTargets&^s.Omitted), vf.repeated+bits.OnesCount64(a.repeatedTargets&^s.Omitted))
		ref := uint64(si)
		if plainSample(s.Sample, &a.shapes[si]) {
			ref |= plainBit
		}
		return ref, met.kind
	}
	// Labels changed by relabeling, or renamed by RenameLabels: keep the
	// series' tags encoded.
	i := place(&a.stored, &a.free, stored{shape: si, tags: string(a.encodeTags(s.Labels, met.bucket))})
	return storedBit | uint64(i), met.kind
}

// encodeTags encodes the tags of a series whose labels the appender keeps
// (all of them, the target's included, through the tag rules), as stored
// holds them, and counts what rule 5 did. bucket says le is sent as
// upper_bound.
func (a *appender) encodeTags(ls labels.Labels, bucket bool) []byte {
	var tags []byte
	renamed, dropped := 0, 0
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		n, f := l.Name, sent
		if bucket && n == model.BucketLabel {
			n = "upper_bound"
		} else {
			n, f = a.rules.labelFate(n, l.Value)
			renamed += int(b2u(f == exported))
			dropped += int(b2u(f == repeated))
			if f > exported {
				return
			}
		}
		if a.v3 != nil {
			// Each tag a varint length and its text (appendV3 reads them).
			a.v3.tag = v3TagText(a, a.v3.tag[:0], f.prefix(), n, l.Value)
			tags = protowire.AppendBytes(tags, a.v3.tag)
			return
		}
		if len(tags) > 0 {
			tags = append(tags, ',')
		}
		tags = a.appendTag(tags, f.prefix(), n, l.Value)
	})
	a.countReserved(renamed, dropped)
	return tags
}

// countReserved counts a new series' labels that rule 5 of tagRules
// renamed and dropped.
func (a *appender) countReserved(renamed, dropped int) {
	if renamed > 0 {
		a.m.reservedRenamed.Add(renamed)
	}
	if dropped > 0 {
		a.m.reservedDropped.Add(dropped)
	}
}

// b2u is 1 for true, 0 for false.
func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// head encodes the start of a series entry up to its point's timestamp.
func (a *appender) head(met metric) []byte {
	b := append([]byte(nil), `{"metric":`...)
	b = appendJSONString(b, met.name)
	b = append(b, `,"type":`...)
	b = strconv.AppendInt(b, int64(met.typ), 10)
	if met.typ == Count && a.interval > 0 {
		b = append(b, `,"interval":`...)
		b = strconv.AppendInt(b, a.interval, 10)
	}
	return append(b, `,"points":[{"timestamp":`...)
}

// Forget implements scrapeloop.Appender: the series' shape counts one
// series less, and a stored series' tags are released.
func (a *appender) Forget(ref uint64) {
	if ref&storedBit == 0 {
		a.releaseShape(uint32(ref))
		return
	}
	i := uint32(ref)
	a.releaseShape(a.stored[i].shape)
	a.stored[i] = stored{}
	a.free = append(a.free, i)
}

// Append implements scrapeloop.Appender: it encodes one series entry with
// one point.
func (a *appender) Append(ref uint64, p *exposition.Parser, tsMs int64, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		a.m.invalid.Inc()
		return
	}
	if a.buf == nil {
		a.buf = a.out.acquire()
	}
	if a.buf.w != nil {
		a.appendV3(ref, p, tsMs/1000, v)
		return
	}
	if sec := tsMs / 1000; sec != a.tsSec {
		a.tsSec = sec
		a.tsText = strconv.AppendInt(a.tsText[:0], sec, 10)
	}
	bf := a.buf
	b := bf.b
	if len(bf.ends) > 0 {
		b = append(b, ',')
	}
	start := len(b)
	sh, st := a.series(ref)
	b = append(b, sh.head...)
	b = append(b, a.tsText...)
	b = append(b, `,"value":`...)
	b = appendValue(b, v)
	b = append(b, a.mid...)
	if st != nil {
		// st.tags hold all the series' labels, the target's included.
		b = append(b, st.tags...)
		b = a.appendExtra(b, len(st.tags) == 0)
	} else {
		plain := ref&plainBit != 0
		nl := p.NumLabels()
		var text []byte
		if plain {
			text = p.LabelText()
		}
		if text != nil {
			b = a.appendCompact(b, p, sh, text, nl)
		} else {
			b = a.appendLabels(b, p, sh, plain, nl)
		}
		first := nl == bits.OnesCount32(sh.dropped) // no tag of its own written
		if sh.omitted == 0 {
			b = a.appendTail(b, first)
		} else {
			for i, tag := range a.targetTags {
				if sh.omitted&(1<<i) != 0 || tag == nil {
					continue
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				b = append(b, tag...)
			}
			b = a.appendExtra(b, first)
		}
	}
	bf.b = b
	a.finish(start)
}

// series returns the shape of ref's series and, for a stored series, its
// tags.
func (a *appender) series(ref uint64) (*shape, *stored) {
	if ref&storedBit != 0 {
		st := &a.stored[uint32(ref)]
		return &a.shapes[st.shape], st
	}
	return &a.shapes[uint32(ref)], nil
}

// appendLabels appends the tags of a verbatim series' labels one by one.
func (a *appender) appendLabels(b []byte, p *exposition.Parser, sh *shape, plain bool, nl int) []byte {
	first := true
	for k := range nl {
		if sh.dropped&(1<<k) != 0 {
			continue
		}
		name, value := p.Label(k)
		if !first {
			b = append(b, ',')
		}
		first = false
		prefix := ""
		if sh.exported&(1<<k) != 0 {
			prefix = model.ExportedLabelPrefix
		}
		if sh.bucket && len(name) == 2 && name[0] == 'l' && name[1] == 'e' {
			name = upperBound
		}
		if !plain {
			b = a.appendTagBytes(b, prefix, name, value)
			continue
		}
		b = appendPlainTag(b, prefix, name, value)
	}
	return b
}

// appendPlainTag appends "prefix+name:value", which needs no escaping.
func appendPlainTag(b []byte, prefix string, name, value []byte) []byte {
	b = append(b, '"')
	b = append(b, prefix...)
	b = append(b, name...)
	b = append(b, ':')
	b = append(b, value...)
	return append(b, '"')
}

// appendCompact appends the tags of a plain verbatim series from the
// compact text of its labels (exposition.Parser.LabelText): a pair
// name="value" and its tag "name:value" have the same length, so a run of
// pairs is copied at once and each pair then fixed in place (the name moved
// one byte right over its '=', a quote before it, a colon after it). Labels
// that change length (exported_ prefix, le as upper_bound) or are not sent
// end a run and are written on their own, or not at all. Values, commas and
// closing quotes are never touched after the copy.
func (a *appender) appendCompact(b []byte, p *exposition.Parser, sh *shape, text []byte, nl int) []byte {
	if sh.exported == 0 && sh.dropped == 0 && !sh.bucket {
		// No label changes length: one copy, one pass of fixes.
		m := len(b)
		b = append(b, text...)
		for k := range nl {
			n, v := p.Label(k)
			b[m] = '"'
			copy(b[m+1:], n)
			b[m+1+len(n)] = ':'
			m += len(n) + len(v) + 4
		}
		return b
	}
	o := 0         // offset in text of pair k
	k0, o0 := 0, 0 // first pair of the current run, and its offset
	first := true  // no tag written yet
	for k := 0; ; k++ {
		var name, value []byte
		if k < nl {
			name, value = p.Label(k)
			special := (sh.exported|sh.dropped)&(1<<k) != 0 || sh.bucket && len(name) == 2 && name[0] == 'l' && name[1] == 'e'
			if !special {
				o += len(name) + len(value) + 4
				continue
			}
		}
		if k > k0 {
			if !first {
				b = append(b, ',')
			}
			first = false
			m := len(b)
			b = append(b, text[o0:o-1]...)
			for j := k0; j < k; j++ {
				n, v := p.Label(j)
				b[m] = '"'
				copy(b[m+1:], n)
				b[m+1+len(n)] = ':'
				m += len(n) + len(v) + 4
			}
		}
		if k == nl {
			return b
		}
		o += len(name) + len(value) + 4
		k0, o0 = k+1, o
		if sh.dropped&(1<<k) != 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		prefix := ""
		if sh.exported&(1<<k) != 0 {
			prefix = model.ExportedLabelPrefix
		}
		if sh.bucket && len(name) == 2 && name[0] == 'l' && name[1] == 'e' {
			name = upperBound
		}
		b = appendPlainTag(b, prefix, name, value)
	}
}

// appendTail closes an entry with the target's tags; first says no tag was
// written yet.
func (a *appender) appendTail(b []byte, first bool) []byte {
	if first && len(a.tail) > 2 {
		return append(b, a.tail[1:]...)
	}
	return append(b, a.tail...)
}

// appendExtra closes an entry with the Kubernetes tags; first says no tag
// was written yet.
func (a *appender) appendExtra(b []byte, first bool) []byte {
	if first && len(a.extra) > 0 {
		b = append(b, a.extra[1:]...)
	} else {
		b = append(b, a.extra...)
	}
	return append(b, `]}`...)
}

// finish records the entry that starts at start, moving it to a new buffer
// when it does not fit in the current one.
func (a *appender) finish(start int) {
	bf := a.buf
	n := len(bf.b) - start
	if n > a.out.maxEntry() {
		a.m.oversized.Inc()
		bf.b = bf.b[:max(start-1, len(payloadOpen))] // and its comma, if any
		return
	}
	if len(bf.b)+len(payloadClose) > bf.limit && len(bf.ends) > 0 {
		// Over the payload's size: the entry opens the next payload.
		a.scr = append(a.scr[:0], bf.b[start:]...)
		bf.b = bf.b[:start-1] // and its comma
		a.buf = a.out.full(bf)
		bf = a.buf
		bf.b = append(bf.b, a.scr...)
		start = len(payloadOpen)
	}
	bf.ends = append(bf.ends, int32(len(bf.b)))
	if a.tsSec < bf.minTS || bf.minTS == 0 {
		bf.minTS = a.tsSec
	}
	if bf.sealed() {
		a.buf = a.out.full(bf)
	}
}

// Commit implements scrapeloop.Appender.
func (a *appender) Commit() {
	if a.buf != nil {
		a.out.release(a.buf)
		a.buf = nil
	}
}

// Close implements scrapeloop.Appender.
func (a *appender) Close() {
	a.Commit()
	a.m.shapes.Add(-float64(len(a.shapeIdx)))
	a.shapes, a.stored, a.free, a.shapeIdx, a.shapeFree = nil, nil, nil, nil, nil
}

// appendValue appends v as JSON: integers (most counts) without the float
// formatter.
func appendValue(b []byte, v float64) []byte {
	if v == math.Trunc(v) && v > -1e15 && v < 1e15 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// plainSample reports whether every label of the sample that sh's series
// send makes a tag that needs no escaping or shortening (an exported_
// prefix and le as upper_bound counted). p is positioned on the sample.
func plainSample(p *exposition.Parser, sh *shape) bool {
	for k := range p.NumLabels() {
		if sh.dropped&(1<<k) != 0 {
			continue
		}
		name, value := p.Label(k)
		n := len(name)
		if sh.exported&(1<<k) != 0 {
			n += len(model.ExportedLabelPrefix)
		}
		if sh.bucket && string(name) == model.BucketLabel {
			n = len(upperBound) // as Append writes it
		}
		if n+1+len(value) > MaxTagLength || !plainString(stringOf(name)) || !plainString(stringOf(value)) {
			return false
		}
	}
	return true
}

// plainString reports whether s can sit in a JSON string as it is.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(s)
}
