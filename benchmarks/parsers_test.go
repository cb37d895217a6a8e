package benchmarks

import (
	"bytes"
	"errors"
	"io"
	"math"
	"unsafe"

	vmprom "github.com/VictoriaMetrics/VictoriaMetrics/lib/protoparser/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
)

// A parser under test parses one payload, touching for every sample what
// the agent needs: name, every label pair, value and timestamp. It returns
// how many samples it saw and a checksum that keeps the work observable.
type parser interface {
	parse(data []byte) (samples int, sum uint64, err error)
}

// sumBytes folds bytes into a checksum cheaply (length and ends), so the
// benchmark does not measure the checksum.
func sumBytes(b []byte) uint64 {
	if len(b) == 0 {
		return 1
	}
	return uint64(len(b))*31 + uint64(b[0]) + uint64(b[len(b)-1])<<8
}

func sumString(s string) uint64 {
	if len(s) == 0 {
		return 1
	}
	return uint64(len(s))*31 + uint64(s[0]) + uint64(s[len(s)-1])<<8
}

// ours is the exposition parser, reused across payloads as the scrape loop
// reuses it per target. It walks the label pairs with Label(k), as the
// scrape loop does on a series-cache miss.
type ours struct{ p exposition.Parser }

func (o *ours) parse(data []byte) (int, uint64, error) {
	o.p.Reset(data, exposition.FormatPrometheus)
	n := 0
	var sum uint64
	for o.p.Next() {
		n++
		sum += sumBytes(o.p.Name())
		for k := range o.p.NumLabels() {
			name, value := o.p.Label(k)
			sum += sumBytes(name) + sumBytes(value)
		}
		ts, _ := o.p.Timestamp()
		sum += math.Float64bits(o.p.Value()) + uint64(ts)
	}
	return n, sum, o.p.Err()
}

// oursSeries is the cache-hit path of the scrape loop: series bytes, value
// and timestamp, no labels.
type oursSeries struct{ p exposition.Parser }

func (o *oursSeries) parse(data []byte) (int, uint64, error) {
	o.p.Reset(data, exposition.FormatPrometheus)
	n := 0
	var sum uint64
	for o.p.Next() {
		n++
		ts, _ := o.p.Timestamp()
		sum += sumBytes(o.p.Series()) + math.Float64bits(o.p.Value()) + uint64(ts)
	}
	return n, sum, o.p.Err()
}

// promText is Prometheus' textparse. withLabels adds Labels(), which the
// scrape loop calls on a scrape-cache miss.
type promText struct {
	st         *labels.SymbolTable
	lset       labels.Labels
	withLabels bool
}

func (t *promText) parse(data []byte) (int, uint64, error) {
	if t.st == nil {
		t.st = labels.NewSymbolTable()
	}
	p := textparse.NewPromParser(data, t.st, false)
	n := 0
	var sum uint64
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return n, sum, nil
		}
		if err != nil {
			return n, sum, err
		}
		if e != textparse.EntrySeries {
			continue
		}
		n++
		series, ts, v := p.Series()
		sum += sumBytes(series) + math.Float64bits(v)
		if ts != nil {
			sum += uint64(*ts)
		}
		if t.withLabels {
			p.Labels(&t.lset)
			t.lset.Range(func(l labels.Label) { sum += sumString(l.Name) + sumString(l.Value) })
		}
	}
}

// victoria is VictoriaMetrics' lib/protoparser/prometheus, which parses a
// whole payload into reused rows.
type victoria struct {
	rows vmprom.Rows
	err  error
}

func (v *victoria) parse(data []byte) (int, uint64, error) {
	v.err = nil
	v.rows.UnmarshalWithErrLogger(unsafe.String(unsafe.SliceData(data), len(data)), v.logErr)
	var sum uint64
	for i := range v.rows.Rows {
		r := &v.rows.Rows[i]
		sum += sumString(r.Metric) + math.Float64bits(r.Value) + uint64(r.Timestamp)
		for _, t := range r.Tags {
			sum += sumString(t.Key) + sumString(t.Value)
		}
	}
	return len(v.rows.Rows), sum, v.err
}

func (v *victoria) logErr(s string) {
	if v.err == nil {
		v.err = errors.New(s)
	}
}

// commonExpfmt is prometheus/common's expfmt text parser, which builds
// client_model protobuf families.
type commonExpfmt struct{}

func (commonExpfmt) parse(data []byte) (int, uint64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	n := 0
	var sum uint64
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Histogram != nil:
				n += len(m.Histogram.GetBucket()) + 2
			case m.Summary != nil:
				n += len(m.Summary.GetQuantile()) + 2
			default:
				n++
			}
			for _, l := range m.GetLabel() {
				sum += sumString(l.GetName()) + sumString(l.GetValue())
			}
			sum += uint64(m.GetTimestampMs())
		}
	}
	return n, sum, err
}

// newlines is the lower bound: find every line and nothing else.
type newlines struct{}

func (newlines) parse(data []byte) (int, uint64, error) {
	n := 0
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		n++
		i += j + 1
	}
	return n, uint64(n), nil
}

// parsers lists the contenders in the order the README shows them.
func parsers() []struct {
	name string
	new  func() parser
} {
	return []struct {
		name string
		new  func() parser
	}{
		{"exposition", func() parser { return &ours{} }},
		{"exposition-series", func() parser { return &oursSeries{} }},
		{"victoriametrics", func() parser { return &victoria{} }},
		{"textparse-series", func() parser { return &promText{} }},
		{"textparse-labels", func() parser { return &promText{withLabels: true} }},
		{"expfmt", func() parser { return commonExpfmt{} }},
		{"newline-scan", func() parser { return newlines{} }},
	}
}
