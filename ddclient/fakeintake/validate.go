package fakeintake

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

// maxErrors bounds the messages in one 400 answer; the count says how many more.
const maxErrors = 10

// decode turns body into the client library's model and checks it. The model
// is the authority on what decodes; problems are reported all at once (up to
// maxErrors) so a sender sees every broken series in one answer.
func (in *Intake) decode(body []byte, now time.Time) (*datadogV2.MetricPayload, *rejection) {
	var p datadogV2.MetricPayload
	if err := datadog.Unmarshal(body, &p); err != nil {
		return nil, &rejection{http.StatusBadRequest, ReasonUndecodable, fmt.Sprintf("body is not a MetricPayload: %v", err)}
	}
	v := validator{in: in, now: now}
	v.payload(&p, body)
	if rej := v.rejection(); rej != nil {
		return nil, rej
	}
	return &p, nil
}

// rejection is the answer to the problems found, or nil for none.
func (v *validator) rejection() *rejection {
	if len(v.errs) == 0 {
		return nil
	}
	msg := strings.Join(v.errs, "; ")
	if v.problems > len(v.errs) {
		msg = fmt.Sprintf("%s; and %d more problems", msg, v.problems-len(v.errs))
	}
	return &rejection{http.StatusBadRequest, v.reason, msg}
}

// validator collects the problems of one payload.
type validator struct {
	in       *Intake
	now      time.Time
	reason   Reason // of the first problem
	errs     []string
	problems int
}

func (v *validator) add(reason Reason, format string, args ...any) {
	v.problems++
	if len(v.errs) == 0 {
		v.reason = reason
	}
	if len(v.errs) < maxErrors {
		v.errs = append(v.errs, fmt.Sprintf(format, args...))
	}
}

// unknown refuses fields the model keeps in AdditionalProperties (see
// Config.AllowUnknownFields for why).
func (v *validator) unknown(where string, extra map[string]any) {
	if v.in.cfg.AllowUnknownFields || len(extra) == 0 {
		return
	}
	v.add(ReasonInvalid, "%s: unknown fields %q (Datadog ignores them; probably a typo)", where, slices.Sorted(maps.Keys(extra)))
}

func (v *validator) payload(p *datadogV2.MetricPayload, body []byte) {
	// The model falls back to UnparsedObject instead of failing when a value
	// has the wrong JSON type or an enum is out of range; it must not pass.
	if p.UnparsedObject != nil {
		v.add(ReasonUndecodable, "body does not match MetricPayload: %s", explainUnparsed(body))
		return
	}
	v.unknown("payload", p.AdditionalProperties)
	for i := range p.Series {
		if v.series(i, &p.Series[i]) {
			// The model stopped decoding this series: explain the first such.
			v.add(ReasonUndecodable, "body does not match MetricPayload: %s", explainUnparsed(body))
			return
		}
	}
}

// series checks one series; it reports true when the model could not decode it.
func (v *validator) series(i int, s *datadogV2.MetricSeries) (unparsed bool) {
	if s.UnparsedObject != nil {
		return true
	}
	where := seriesWhere{i, s.Metric}
	v.unknown(where.String(), s.AdditionalProperties)
	v.seriesValues(where, s.Metric, s.GetType(), s.Interval, len(s.Points), s.Tags)
	if s.Metadata != nil {
		if s.Metadata.UnparsedObject != nil || (s.Metadata.Origin != nil && s.Metadata.Origin.UnparsedObject != nil) {
			return true
		}
		v.unknown(where.String()+" metadata", s.Metadata.AdditionalProperties)
		if s.Metadata.Origin != nil {
			v.unknown(where.String()+" metadata.origin", s.Metadata.Origin.AdditionalProperties)
		}
	}
	for j := range s.Resources {
		r := &s.Resources[j]
		if r.UnparsedObject != nil {
			return true
		}
		v.unknown(fmt.Sprintf("%s resource %d", where, j), r.AdditionalProperties)
		v.resource(where, j, r.GetName(), r.GetType())
	}
	for j := range s.Points {
		pt := &s.Points[j]
		if pt.UnparsedObject != nil {
			return true
		}
		v.unknown(fmt.Sprintf("%s point %d", where, j), pt.AdditionalProperties)
		v.point(where, j, pt.Timestamp, pt.Value)
	}
	return false
}

// seriesWhere names a series in a problem message; formatted only when
// there is one.
type seriesWhere struct {
	i      int
	metric string
}

func (w seriesWhere) String() string { return fmt.Sprintf("series[%d] %q", w.i, w.metric) }

// seriesValues applies Datadog's rules to a series' own fields, whichever
// decoder read them (the model, or the Sink's plain one).
func (v *validator) seriesValues(where seriesWhere, metric string, typ datadogV2.MetricIntakeType, interval *int64, points int, tags []string) {
	// The model requires the field but accepts "", which names nothing.
	if metric == "" {
		v.add(ReasonInvalid, "series[%d]: metric name is empty", where.i)
	}
	// A series without points carries nothing; Datadog's docs require points.
	if points == 0 {
		v.add(ReasonInvalid, "%s: no points", where)
	}
	// A negative interval in seconds means nothing to any type.
	if interval != nil && *interval < 0 {
		v.add(ReasonInvalid, "%s: interval %d is negative", where, *interval)
	}
	// Docs: "If the type of the metric is rate or count, define the corresponding interval".
	if (typ == datadogV2.METRICINTAKETYPE_COUNT || typ == datadogV2.METRICINTAKETYPE_RATE) &&
		(interval == nil || *interval <= 0) && !v.in.cfg.AllowMissingInterval {
		v.add(ReasonInvalid, "%s: type %s needs an interval > 0 in seconds", where, typeName(typ))
	}
	for j, t := range tags {
		// An empty tag is dropped by Datadog; it means the sender built it wrong.
		if t == "" {
			v.add(ReasonInvalid, "%s: tag %d is empty", where, j)
		}
	}
}

// resource checks a series' j-th resource: it attaches the series to
// something (a host), so it needs both name and type.
func (v *validator) resource(where seriesWhere, j int, name, typ string) {
	if name == "" || typ == "" {
		v.add(ReasonInvalid, "%s: resource %d needs both name and type, got name %q type %q", where, j, name, typ)
	}
}

// point checks a series' j-th point and reports whether it has both fields.
func (v *validator) point(where seriesWhere, j int, ts *int64, value *float64) bool {
	// Docs: "All points must be objects with timestamp and a scalar value".
	if ts == nil || value == nil {
		v.add(ReasonInvalid, "%s: point %d needs both timestamp and value", where, j)
		return false
	}
	// JSON cannot carry NaN or Inf, so encoding/json never yields them;
	// kept so a model built another way cannot slip one through.
	if math.IsNaN(*value) || math.IsInf(*value, 0) {
		v.add(ReasonInvalid, "%s: point %d value %v is not finite", where, j, *value)
	}
	// Docs: "cannot be more than ten minutes in the future or more than one hour in the past".
	lo, hi := v.now.Add(-v.in.cfg.MaxAge).Unix(), v.now.Add(v.in.cfg.MaxFuture).Unix()
	switch t := *ts; {
	case t < lo:
		v.add(ReasonTimestamp, "%s: point %d timestamp %d is %s before now (%d); the limit is %s",
			where, j, t, since(v.now.Unix()-t), v.now.Unix(), v.in.cfg.MaxAge)
	case t > hi:
		v.add(ReasonTimestamp, "%s: point %d timestamp %d is %s after now (%d); the limit is %s",
			where, j, t, since(t-v.now.Unix()), v.now.Unix(), v.in.cfg.MaxFuture)
	}
	return true
}

// since spells a distance in seconds, hinting at the usual mistake when it is
// too large to be one (a timestamp in milliseconds or nanoseconds).
func since(secs int64) string {
	if secs > 100*365*24*3600 {
		return fmt.Sprintf("%d seconds (more than a century: milliseconds instead of seconds?)", secs)
	}
	return (time.Duration(secs) * time.Second).String()
}

func typeName(t datadogV2.MetricIntakeType) string {
	switch t {
	case datadogV2.METRICINTAKETYPE_UNSPECIFIED:
		return "0 (unspecified)"
	case datadogV2.METRICINTAKETYPE_COUNT:
		return "1 (count)"
	case datadogV2.METRICINTAKETYPE_RATE:
		return "2 (rate)"
	case datadogV2.METRICINTAKETYPE_GAUGE:
		return "3 (gauge)"
	}
	return fmt.Sprintf("%d (unknown)", int32(t))
}

// shadowSeries mirrors MetricSeries with plain Go types. It only explains
// why the model refused a body (encoding/json names the field and the JSON
// type, where the model falls back to UnparsedObject), never accepts one.
type shadowSeries struct {
	Metric   string `json:"metric"`
	Interval *int64 `json:"interval"`
	Metadata *struct {
		Origin *struct {
			MetricType *int32 `json:"metric_type"`
			Product    *int32 `json:"product"`
			Service    *int32 `json:"service"`
		} `json:"origin"`
	} `json:"metadata"`
	Points []struct {
		Timestamp *int64   `json:"timestamp"`
		Value     *float64 `json:"value"`
	} `json:"points"`
	Resources []struct {
		Name *string `json:"name"`
		Type *string `json:"type"`
	} `json:"resources"`
	SourceTypeName *string  `json:"source_type_name"`
	Tags           []string `json:"tags"`
	Type           *int32   `json:"type"`
	Unit           *string  `json:"unit"`
}

// explainUnparsed says what made the model fall back to UnparsedObject: the
// model's own error for a series (a missing required field), else
// encoding/json's for a wrong JSON type, else an out-of-range type.
func explainUnparsed(body []byte) string {
	var top struct {
		Series *[]json.RawMessage `json:"series"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return "series must be a list of objects"
	}
	if top.Series == nil {
		return "series is null"
	}
	for i, raw := range *top.Series {
		var ms datadogV2.MetricSeries
		if err := datadog.Unmarshal(raw, &ms); err != nil {
			return fmt.Sprintf("series[%d]: %v", i, err)
		}
		var s shadowSeries
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Sprintf("series[%d]: %v", i, err)
		}
		if s.Type != nil && !datadogV2.MetricIntakeType(*s.Type).IsValid() {
			return fmt.Sprintf("series[%d] %q: type %d is not one of 0 (unspecified), 1 (count), 2 (rate), 3 (gauge)", i, s.Metric, *s.Type)
		}
	}
	return "a value has the wrong JSON type"
}
