package ddclient

import (
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
