// The v3 columnar series intake (agent-payload proto/metrics/intake_v3.proto),
// what the Datadog Agent sends since 7.81: decoded with agent-payload's
// generated intake_v3.Payload, checked strictly, and stored as the same
// datadogV2.MetricSeries the v2 JSON endpoint stores, so every query helper
// answers alike for either version.

package fakeintake

import (
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/DataDog/agent-payload/v5/metrics/intake_v3"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// SeriesV3Path is the v3 series endpoint, as the Datadog Agent posts to it.
const SeriesV3Path = "/api/intake/metrics/v3/series"

// Series intake versions, as counted in Stats.SeriesVersions.
const (
	SeriesV2 = "v2"
	SeriesV3 = "v3"
)

// ReasonUnsupported: a v3 payload uses a part of the format (sketches,
// histograms) this stand-in does not decode yet.
const ReasonUnsupported Reason = "unsupported"

// v3ContentType is the body type of the v3 endpoint.
const v3ContentType = "application/x-protobuf"

// Bits of a v3 types entry: metricType | valueType | metricFlags.
const (
	v3MetricTypeMask = 0x0f
	v3ValueTypeMask  = 0xf0
	v3KnownFlags     = uint64(intake_v3.MetricFlags_flagNoIndex | intake_v3.MetricFlags_flagHasUnit)
)

// checkPostV3 runs the checks of POST /api/intake/metrics/v3/series before
// its body is read: method, API key, a protobuf body, zstd.
func (in *Intake) checkPostV3(r *http.Request) *rejection {
	if rej := in.checkMethodKey(r); rej != nil {
		return rej
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != v3ContentType {
		return &rejection{http.StatusBadRequest, ReasonContentType,
			fmt.Sprintf("Content-Type %q is not supported by %s: send %s", r.Header.Get("Content-Type"), SeriesV3Path, v3ContentType)}
	}
	// The v3 intake takes zstd bodies only (the Agent always compresses them so).
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "zstd", "zstd1":
		return nil
	default:
		return &rejection{http.StatusBadRequest, ReasonContentEncoding,
			fmt.Sprintf("Content-Encoding %q is not supported by %s: v3 payloads must be zstd compressed (Content-Encoding: zstd)", enc, SeriesV3Path)}
	}
}

// decodeV3 decodes body as an intake_v3.Payload, checks it and returns its
// series in the v2 model. Damage to the format (dictionaries, indexes,
// column lengths) stops at the first problem, as nothing after it can be
// read; problems of well-formed series (the v2 rules) are all reported.
func (in *Intake) decodeV3(body []byte, now time.Time) (*datadogV2.MetricPayload, *rejection) {
	var p intake_v3.Payload
	if err := proto.Unmarshal(body, &p); err != nil {
		return nil, &rejection{http.StatusBadRequest, ReasonUndecodable, fmt.Sprintf("body is not an intake_v3.Payload: %v", err)}
	}
	if !in.cfg.AllowUnknownFields {
		if rej := v3Unknown(&p); rej != nil {
			return nil, rej
		}
	}
	if p.MetricData == nil {
		return nil, v3Undecodable("payload has no metricData (field 3)")
	}
	d := v3Decoder{md: p.MetricData, meta: p.Metadata, budget: in.cfg.MaxUncompressedBytes, budgetMax: in.cfg.MaxUncompressedBytes}
	if rej := d.dictionaries(); rej != nil {
		return nil, rej
	}
	if rej := d.columns(); rej != nil {
		return nil, rej
	}
	v := validator{in: in, now: now}
	series, rej := d.allSeries(&v)
	if rej != nil {
		return nil, rej
	}
	if rej := v.rejection(); rej != nil {
		return nil, rej
	}
	return &datadogV2.MetricPayload{Series: series}, nil
}

func v3Undecodable(format string, args ...any) *rejection {
	return &rejection{http.StatusBadRequest, ReasonUndecodable, "v3 payload: " + fmt.Sprintf(format, args...)}
}

func v3Invalid(format string, args ...any) *rejection {
	return &rejection{http.StatusBadRequest, ReasonInvalid, "v3 payload: " + fmt.Sprintf(format, args...)}
}

// v3Unknown refuses fields intake_v3.proto does not define (see
// Config.AllowUnknownFields), among them the reserved field 1 that a v2
// protobuf MetricPayload would fill.
func v3Unknown(p *intake_v3.Payload) *rejection {
	for _, m := range []proto.Message{p, p.Metadata, p.MetricData} {
		if m == nil || !m.ProtoReflect().IsValid() {
			continue
		}
		raw := m.ProtoReflect().GetUnknown()
		if len(raw) == 0 {
			continue
		}
		var nums []protowire.Number
		for len(raw) > 0 {
			num, _, n := protowire.ConsumeField(raw)
			if n < 0 {
				break
			}
			nums = append(nums, num)
			raw = raw[n:]
		}
		return v3Invalid("%s has fields %v that intake_v3.proto does not define (Datadog ignores them; a sender bug)",
			m.ProtoReflect().Descriptor().Name(), nums)
	}
	return nil
}

// v3Decoder reads one MetricData: its dictionaries (index 0 of each is the
// empty value), then its series one by one.
type v3Decoder struct {
	md   *intake_v3.MetricData
	meta *intake_v3.Metadata

	names, units, sourceTypes []string
	tagsets                   [][]string
	resources                 [][]datadogV2.MetricResource
	origins                   int // entries of dictOriginInfo, with the empty one
	// budget is how many more tags and resources the decoded sets and
	// series may hold: dictionaries let a small payload expand without
	// bound (a tag set including an earlier set twice doubles), so the
	// expansion is bounded by the uncompressed limit, which a payload
	// without shared sets cannot exceed either.
	budget, budgetMax int64

	// Running values of the delta-encoded columns.
	name, tagset, resource, sourceType, origin, unit, ts, interval int64
	// Next unread entry of the unit, timestamp and value columns.
	unitPos, pointPos, sint64Pos, float32Pos, float64Pos int
}

// columns checks the per-series columns against the series count (the
// entries of types), the type bits, and that the point columns hold
// exactly what the series' numPoints and valueTypes ask for.
func (d *v3Decoder) columns() *rejection {
	md := d.md
	n := len(md.Types)
	for _, c := range []struct {
		name     string
		n        int
		optional bool
	}{
		{"nameRefs", len(md.NameRefs), false}, {"tagsetRefs", len(md.TagsetRefs), false},
		{"resourcesRefs", len(md.ResourcesRefs), false}, {"intervals", len(md.Intervals), false},
		{"numPoints", len(md.NumPoints), false},
		{"sourceTypeNameRefs", len(md.SourceTypeNameRefs), true}, {"originInfoRefs", len(md.OriginInfoRefs), true},
	} {
		if c.n != n && (!c.optional || c.n != 0) {
			return v3Undecodable("column %s has %d entries but types has %d: every per-series column needs one entry per series", c.name, c.n, n)
		}
	}
	var units int
	var values [4]int // points by valueType>>4
	remaining := uint64(len(md.Timestamps))
	for i, t := range md.Types {
		if rej := v3CheckType(i, t); rej != nil {
			return rej
		}
		if t&uint64(intake_v3.MetricFlags_flagHasUnit) != 0 {
			units++
		}
		np := md.NumPoints[i]
		if np > remaining {
			return v3Undecodable("numPoints up to series %d add up to more than the %d entries of timestamps", i, len(md.Timestamps))
		}
		remaining -= np
		values[(t&v3ValueTypeMask)>>4] += int(np)
	}
	if remaining != 0 {
		return v3Undecodable("numPoints add up to %d but timestamps has %d entries", uint64(len(md.Timestamps))-remaining, len(md.Timestamps))
	}
	if len(md.UnitRefs) != units {
		return v3Undecodable("unitRefs has %d entries but %d series set flagHasUnit: one entry per series with the flag", len(md.UnitRefs), units)
	}
	for _, c := range []struct {
		name string
		have int
		vt   intake_v3.ValueType
	}{{"valsSint64", len(md.ValsSint64), intake_v3.ValueType_Sint64}, {"valsFloat32", len(md.ValsFloat32), intake_v3.ValueType_Float32}, {"valsFloat64", len(md.ValsFloat64), intake_v3.ValueType_Float64}} {
		if want := values[c.vt>>4]; c.have != want {
			return v3Undecodable("%s has %d values but the series of valueType %s have %d points", c.name, c.have, c.vt, want)
		}
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"numBins", len(md.NumBins)}, {"binKeys", len(md.BinKeys)}, {"binCnts", len(md.BinCnts)}, {"pointFlags", len(md.PointFlags)}, {"valsUint64", len(md.ValsUint64)}} {
		if c.n != 0 {
			return v3Undecodable("column %s has %d entries but no series is a sketch or histogram", c.name, c.n)
		}
	}
	return nil
}

// v3CheckType checks the i-th types entry: a known metric type, value type
// and flags. Sketches and histograms are refused as not supported yet.
func v3CheckType(i int, t uint64) *rejection {
	if extra := t &^ (v3MetricTypeMask | v3ValueTypeMask | v3KnownFlags); extra != 0 {
		return v3Invalid("types[%d] = %#x has unknown flag bits %#x (known: flagNoIndex 0x100, flagHasUnit 0x200)", i, t, extra)
	}
	switch mt := intake_v3.MetricType(t & v3MetricTypeMask); mt {
	case intake_v3.MetricType_Count, intake_v3.MetricType_Rate, intake_v3.MetricType_Gauge:
	case intake_v3.MetricType_DDSketch, intake_v3.MetricType_ExplicitHistogram, intake_v3.MetricType_ExponentialHistogram:
		return &rejection{http.StatusBadRequest, ReasonUnsupported,
			fmt.Sprintf("v3 payload: types[%d]: metric type %s is not supported by this stand-in (only Count, Rate, Gauge)", i, mt)}
	default:
		return v3Invalid("types[%d] = %#x: unknown metric type %d (Count 1, Rate 2, Gauge 3, DDSketch 4, ExplicitHistogram 6, ExponentialHistogram 7)", i, t, int(mt))
	}
	if vt := t & v3ValueTypeMask; vt > uint64(intake_v3.ValueType_Float64) {
		return v3Invalid("types[%d] = %#x: unknown value type %#x (Zero 0x00, Sint64 0x10, Float32 0x20, Float64 0x30)", i, t, vt)
	}
	return nil
}

// allSeries decodes every series; the v2 rules go to v.
func (d *v3Decoder) allSeries(v *validator) ([]datadogV2.MetricSeries, *rejection) {
	out := make([]datadogV2.MetricSeries, 0, len(d.md.Types))
	for i := range d.md.Types {
		s, rej := d.series(i, v)
		if rej != nil {
			return nil, rej
		}
		out = append(out, s)
	}
	return out, nil
}

// series decodes the i-th series and checks it as a v2 series is checked.
func (d *v3Decoder) series(i int, v *validator) (datadogV2.MetricSeries, *rejection) {
	md := d.md
	t := md.Types[i]
	var s datadogV2.MetricSeries
	if err := v3Ref("nameRefs", i, md.NameRefs[i], &d.name, len(d.names), false); err != nil {
		return s, err
	}
	if err := v3Ref("tagsetRefs", i, md.TagsetRefs[i], &d.tagset, len(d.tagsets), true); err != nil {
		return s, err
	}
	if err := v3Ref("resourcesRefs", i, md.ResourcesRefs[i], &d.resource, len(d.resources), true); err != nil {
		return s, err
	}
	if len(md.SourceTypeNameRefs) > 0 {
		if err := v3Ref("sourceTypeNameRefs", i, md.SourceTypeNameRefs[i], &d.sourceType, len(d.sourceTypes), true); err != nil {
			return s, err
		}
	}
	if len(md.OriginInfoRefs) > 0 {
		if err := v3Ref("originInfoRefs", i, md.OriginInfoRefs[i], &d.origin, d.origins, true); err != nil {
			return s, err
		}
	}
	s.Metric = d.names[d.name]
	s.Type = datadogV2.MetricIntakeType(t & v3MetricTypeMask).Ptr()
	// Series of one set share its slices (clipped: an append copies); the
	// store only reads them.
	s.Tags = slices.Clip(d.tagsets[d.tagset])
	s.Resources = slices.Clip(d.resources[d.resource])
	if rej := d.spend(len(s.Tags)+len(s.Resources), "the series' tags and resources"); rej != nil {
		return s, rej
	}
	if d.sourceType > 0 {
		s.SourceTypeName = &d.sourceTypes[d.sourceType]
	}
	if t&uint64(intake_v3.MetricFlags_flagHasUnit) != 0 {
		// columns checked that unitRefs has an entry for each flagged series.
		if err := v3Ref("unitRefs", d.unitPos, md.UnitRefs[d.unitPos], &d.unit, len(d.units), false); err != nil {
			return s, err
		}
		d.unitPos++
		s.Unit = &d.units[d.unit]
	}
	// The proto declares intervals uint64, but the Agent writes them as it
	// writes the refs: delta encoded over the column, zigzag (its
	// payloadsBuilderV3: txn.Sint64(columnInterval, deltaInterval.encode)),
	// and the intake reads what the Agent writes.
	d.interval += protowire.DecodeZigZag(md.Intervals[i])
	if iv := d.interval; iv < 0 {
		return s, v3Invalid("intervals[%d]: the delta-encoded interval is %d seconds", i, iv)
	} else if iv > 0 {
		s.Interval = datadog.PtrInt64(iv)
	}
	if rej := d.points(i, &s); rej != nil {
		return s, rej
	}
	where := seriesWhere{i, s.Metric}
	v.seriesValues(where, s.Metric, s.GetType(), s.Interval, len(s.Points), s.Tags)
	for j := range s.Points {
		v.point(where, j, s.Points[j].Timestamp, s.Points[j].Value)
	}
	return s, nil
}

// points reads the i-th series' points: numPoints timestamps (delta encoded
// over the whole column) and as many values from the column its valueType
// selects (none for Zero). columns checked the counts.
func (d *v3Decoder) points(i int, s *datadogV2.MetricSeries) *rejection {
	md := d.md
	np := int(md.NumPoints[i])
	s.Points = make([]datadogV2.MetricPoint, 0, np)
	vt := intake_v3.ValueType(md.Types[i] & v3ValueTypeMask)
	for range np {
		delta := md.Timestamps[d.pointPos]
		ts, ok := v3AddDelta(d.ts, delta)
		if !ok {
			return v3Undecodable("timestamps[%d]: delta %d overflows int64 from %d", d.pointPos, delta, d.ts)
		}
		d.ts = ts
		d.pointPos++
		var val float64
		switch vt {
		case intake_v3.ValueType_Sint64:
			val = float64(md.ValsSint64[d.sint64Pos])
			d.sint64Pos++
		case intake_v3.ValueType_Float32:
			val = float64(md.ValsFloat32[d.float32Pos])
			d.float32Pos++
		case intake_v3.ValueType_Float64:
			val = md.ValsFloat64[d.float64Pos]
			d.float64Pos++
		}
		s.Points = append(s.Points, datadogV2.MetricPoint{Timestamp: datadog.PtrInt64(ts), Value: datadog.PtrFloat64(val)})
	}
	return nil
}

// spend takes n entries from the expansion budget.
func (d *v3Decoder) spend(n int, what string) *rejection {
	if d.budget -= int64(n); d.budget < 0 {
		return &rejection{http.StatusRequestEntityTooLarge, ReasonTooLargeUncompressed,
			fmt.Sprintf("v3 payload: %s expand to more than %d tags and resources (the uncompressed limit): split the payload", what, d.budgetMax)}
	}
	return nil
}

// v3Ref delta-decodes a reference column's entry onto *acc and checks that
// the result indexes a dictionary of n entries (entry 0 being the empty
// value, refused unless zeroOK).
func v3Ref(col string, i int, delta int64, acc *int64, n int, zeroOK bool) *rejection {
	v, ok := v3AddDelta(*acc, delta)
	if !ok {
		return v3Undecodable("%s[%d]: delta %d overflows int64 from index %d", col, i, delta, *acc)
	}
	*acc = v
	switch {
	case v < 0:
		return v3Undecodable("%s[%d]: index %d after delta decoding is negative (delta %d)", col, i, v, delta)
	case v == 0 && !zeroOK:
		return v3Invalid("%s[%d]: index 0 (the empty value) is not allowed: a series needs one", col, i)
	case v >= int64(n):
		return v3Undecodable("%s[%d]: index %d after delta decoding is past the end of its dictionary (%d entries, base 1)", col, i, v, n-1)
	}
	return nil
}

// v3AddDelta returns acc+delta, or false when that overflows int64.
func v3AddDelta(acc, delta int64) (int64, bool) {
	s := acc + delta
	if (delta > 0 && s < acc) || (delta < 0 && s > acc) {
		return 0, false
	}
	return s, true
}
