package exposition

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// rec is one sample as both parsers see it, in a form that compares with ==.
type rec struct {
	Name    string
	Labels  string // sorted name="value" pairs, metric name excluded
	Value   uint64 // float64 bits
	TS      int64
	HasTS   bool
	Type    string
	Created int64 // OpenMetrics only; 0 when none
}

func (r rec) String() string {
	s := fmt.Sprintf("%s{%s} %v(%#x) type=%s", r.Name, r.Labels, math.Float64frombits(r.Value), r.Value, r.Type)
	if r.HasTS {
		s += " ts=" + strconv.FormatInt(r.TS, 10)
	}
	if r.Created != 0 {
		s += " created=" + strconv.FormatInt(r.Created, 10)
	}
	return s
}

// canonLabels renders label pairs sorted. le and quantile values are
// rewritten in OpenMetrics float form because textparse does so while this
// parser keeps them as written (the raw bytes are the series identity).
//
// Pairs are sorted by name, then value: with a duplicate label name
// textparse's (unstable) sort leaves the duplicates in no defined order.
func canonLabels(pairs [][2]string) string {
	for i, l := range pairs {
		if l[0] == "le" || l[0] == "quantile" {
			if f, err := strconv.ParseFloat(l[1], 64); err == nil {
				pairs[i][1] = labels.FormatOpenMetricsFloat(f)
			}
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i][0] != pairs[j][0] {
			return pairs[i][0] < pairs[j][0]
		}
		return pairs[i][1] < pairs[j][1]
	})
	var b strings.Builder
	for i, l := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l[0] + "=" + strconv.Quote(l[1]))
	}
	return b.String()
}

// familyOf is the test's own statement of which sample names a # TYPE
// family owns, used to attach textparse's TYPE entries to its samples.
func familyOf(fam string, typ model.MetricType, name string, om bool) bool {
	sfx, ok := strings.CutPrefix(name, fam)
	if !ok {
		return false
	}
	allowed := map[model.MetricType][]string{
		model.MetricTypeUnknown:        {""},
		model.MetricTypeGauge:          {""},
		model.MetricTypeCounter:        {"", "_total"},
		model.MetricTypeHistogram:      {"_bucket", "_sum", "_count"},
		model.MetricTypeSummary:        {"", "_sum", "_count"},
		model.MetricTypeGaugeHistogram: {"_bucket", "_gsum", "_gcount"},
		model.MetricTypeInfo:           {"_info"},
		model.MetricTypeStateset:       {""},
	}[typ]
	if om && (typ == model.MetricTypeCounter || typ == model.MetricTypeHistogram || typ == model.MetricTypeSummary) {
		allowed = append(allowed, "_created")
	}
	for _, a := range allowed {
		if sfx == a {
			return true
		}
	}
	return false
}

func typeName(t model.MetricType) string {
	if t == "" || t == model.MetricTypeUnknown || t == "untyped" {
		return "unknown"
	}
	return string(t)
}

// parseWithTextparse runs Prometheus' parser (the reference) over data. For
// OpenMetrics it runs twice: calling StartTimestamp makes textparse skip the
// _created series from then on, so the first pass collects every sample and
// the second the start timestamps.
func parseWithTextparse(data []byte, f Format) ([]rec, error) {
	out, err := textparseRecs(data, f, false)
	if f != FormatOpenMetrics || err != nil {
		return out, err
	}
	withST, _ := textparseRecs(data, f, true)
	j := 0
	for i := range out {
		r := &out[i]
		if j < len(withST) && withST[j].Name == r.Name && withST[j].Labels == r.Labels && withST[j].Value == r.Value {
			r.Created = withST[j].Created
			j++
		}
	}
	return out, err
}

func textparseRecs(data []byte, f Format, wantST bool) ([]rec, error) {
	var p textparse.Parser
	if f == FormatOpenMetrics {
		p = textparse.NewOpenMetricsParser(data, labels.NewSymbolTable())
	} else {
		// NewPromParser appends a newline to its input; give it a copy.
		p = textparse.NewPromParser(append([]byte(nil), data...), labels.NewSymbolTable(), false)
	}
	var (
		out    []rec
		fam    string
		famSet bool
		typ    model.MetricType
		lset   labels.Labels
	)
	setFam := func(name []byte) {
		if !famSet || string(name) != fam {
			fam, famSet, typ = string(name), true, model.MetricTypeUnknown
		}
	}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		switch e {
		case textparse.EntryType:
			name, t := p.Type()
			setFam(name)
			typ = t
		case textparse.EntryHelp:
			name, _ := p.Help()
			setFam(name)
		case textparse.EntryUnit:
			name, _ := p.Unit()
			setFam(name)
		case textparse.EntrySeries:
			_, ts, v := p.Series()
			p.Labels(&lset)
			var pairs [][2]string
			name := ""
			lset.Range(func(l labels.Label) {
				if l.Name == model.MetricNameLabel {
					name = l.Value
					return
				}
				pairs = append(pairs, [2]string{l.Name, l.Value})
			})
			r := rec{Name: name, Labels: canonLabels(pairs), Value: math.Float64bits(v), Type: "unknown"}
			if ts != nil {
				r.TS, r.HasTS = *ts, true
			}
			om := f == FormatOpenMetrics
			if famSet && familyOf(fam, typ, name, om) {
				r.Type = typeName(typ)
			}
			if wantST && r.Type != "unknown" && !strings.HasSuffix(name, "_created") {
				r.Created = p.StartTimestamp()
			}
			out = append(out, r)
		}
	}
}

// parseWithUs runs this package's parser over data.
func parseWithUs(p *Parser, data []byte, f Format) ([]rec, error) {
	p.Reset(data, f)
	var out []rec
	var ls []Label
	for p.Next() {
		ls = p.Labels(ls[:0])
		pairs := make([][2]string, len(ls))
		for i, l := range ls {
			pairs[i] = [2]string{string(l.Name), string(l.Value)}
		}
		r := rec{Name: string(p.Name()), Labels: canonLabels(pairs), Value: math.Float64bits(p.Value()), Type: p.Type().String()}
		r.TS, r.HasTS = p.Timestamp()
		if p.Type() != TypeUnknown && p.Role() != RoleCreated {
			if ms, ok := p.Created(); ok {
				r.Created = ms
			}
		}
		out = append(out, r)
	}
	return out, p.Err()
}

// intentionalDifference names why a textparse sample and ours may differ,
// or returns "" when they must not.
func intentionalDifference(want, got rec) string {
	// textparse takes the start of a text-format series token from before
	// the blanks that lead a line, so "  foo 1" yields a metric named
	// "  foo"; the blanks are not part of the name.
	if trimmed := strings.TrimLeft(want.Name, " \t"); trimmed != want.Name {
		want.Name = trimmed
		if want == got {
			return "textparse keeps leading blanks in the metric name"
		}
		// And so the blank-led name matches no # TYPE: textparse calls the
		// sample untyped where this parser gives it its family's type.
		if want.Type == "unknown" {
			want.Type = got.Type
			if want == got {
				return "textparse keeps leading blanks in the metric name, so it finds no type for it"
			}
		}
	}
	return ""
}
