package exposition

import (
	"mime"
	"strings"
)

// Format is the exposition format of a payload.
type Format uint8

const (
	// FormatPrometheus is the Prometheus text format 0.0.4.
	FormatPrometheus Format = iota
	// FormatOpenMetrics is the OpenMetrics 1.0 text format.
	FormatOpenMetrics
)

func (f Format) String() string {
	if f == FormatOpenMetrics {
		return "openmetrics"
	}
	return "prometheus"
}

// FormatFor picks the format from a response's Content-Type: OpenMetrics iff
// the media type is application/openmetrics-text, the Prometheus text format
// otherwise (as Prometheus falls back for text/plain and unknown types).
func FormatFor(contentType string) Format {
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	if strings.EqualFold(mt, "application/openmetrics-text") {
		return FormatOpenMetrics
	}
	if mt == "" || strings.ContainsAny(mt, " \t") {
		// Let the standard parser judge odd headers; it never allocates on
		// the common path above.
		if m, _, err := mime.ParseMediaType(contentType); err == nil && m == "application/openmetrics-text" {
			return FormatOpenMetrics
		}
	}
	return FormatPrometheus
}

// MetricType is the type of a metric family as declared by # TYPE.
type MetricType uint8

const (
	// TypeUnknown is an untyped (text) or unknown (OpenMetrics) family, or a
	// sample without a matching # TYPE.
	TypeUnknown MetricType = iota
	TypeCounter
	TypeGauge
	TypeHistogram
	TypeSummary
	TypeInfo
	TypeStateset
	TypeGaugeHistogram
)

var typeNames = [...]string{
	TypeUnknown:        "unknown",
	TypeCounter:        "counter",
	TypeGauge:          "gauge",
	TypeHistogram:      "histogram",
	TypeSummary:        "summary",
	TypeInfo:           "info",
	TypeStateset:       "stateset",
	TypeGaugeHistogram: "gaugehistogram",
}

func (t MetricType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "invalid"
}

// Role says what a sample is within its family.
type Role uint8

const (
	// RoleValue is a plain value: gauge, untyped/unknown, info, stateset, or a
	// summary sample without a quantile label.
	RoleValue Role = iota
	// RoleTotal is a counter sample (foo_total in OpenMetrics; foo or
	// foo_total in the text format).
	RoleTotal
	RoleBucket
	RoleSum
	RoleCount
	// RoleQuantile is a summary sample with a quantile label.
	RoleQuantile
	// RoleCreated is a _created sample (OpenMetrics only).
	RoleCreated
	// RoleGCount and RoleGSum are a gaugehistogram's _gcount and _gsum.
	RoleGCount
	RoleGSum
)

var roleNames = [...]string{
	RoleValue:    "value",
	RoleTotal:    "total",
	RoleBucket:   "bucket",
	RoleSum:      "sum",
	RoleCount:    "count",
	RoleQuantile: "quantile",
	RoleCreated:  "created",
	RoleGCount:   "gcount",
	RoleGSum:     "gsum",
}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "invalid"
}
