package ddclient

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// MetricType is the Datadog v2 intake metric type.
type MetricType int32

// Datadog v2 metric types.
const (
	Unspecified MetricType = 0
	Count       MetricType = 1
	Rate        MetricType = 2
	Gauge       MetricType = 3
)

func (t MetricType) String() string {
	switch t {
	case Count:
		return "count"
	case Rate:
		return "rate"
	case Gauge:
		return "gauge"
	}
	return "unspecified"
}

// Desc describes one Datadog series.
type Desc struct {
	Metric string
	Type   MetricType
	// Interval is the count interval in seconds (count and rate types).
	Interval int64
	Tags     []string
	// Host is the host resource the series belongs to; empty for none.
	Host string
}

// Series is a series whose JSON head is encoded once; points are appended to it.
// It is immutable and safe to share.
type Series struct {
	desc Desc
	head []byte // `{"metric":...,"points":[`
}

// NewSeries encodes d's head.
func NewSeries(d Desc) *Series {
	b := make([]byte, 0, 64+len(d.Metric)+16*len(d.Tags))
	b = append(b, `{"metric":`...)
	b = appendJSONString(b, d.Metric)
	b = append(b, `,"type":`...)
	b = strconv.AppendInt(b, int64(d.Type), 10)
	if d.Interval > 0 && d.Type != Gauge {
		b = append(b, `,"interval":`...)
		b = strconv.AppendInt(b, d.Interval, 10)
	}
	if d.Host != "" {
		b = append(b, `,"resources":[{"name":`...)
		b = appendJSONString(b, d.Host)
		b = append(b, `,"type":"host"}]`...)
	}
	if len(d.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		for i, t := range d.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, t)
		}
		b = append(b, ']')
	}
	b = append(b, `,"points":[`...)
	return &Series{desc: d, head: b}
}

// Desc returns the series description.
func (s *Series) Desc() Desc { return s.desc }

// appendPoint appends one series entry holding a single point. It reports false
// for values JSON cannot carry (NaN, ±Inf).
func appendPoint(b []byte, s *Series, tsSec int64, v float64) ([]byte, bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return b, false
	}
	b = append(b, s.head...)
	b = append(b, `{"timestamp":`...)
	b = strconv.AppendInt(b, tsSec, 10)
	b = append(b, `,"value":`...)
	b = strconv.AppendFloat(b, v, 'g', -1, 64)
	b = append(b, `}]}`...)
	return b, true
}

const hex = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
