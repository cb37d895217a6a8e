package fakeintake

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/DataDog/agent-payload/v5/metrics/intake_v3"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Payloads here are built with agent-payload's generated types by hand,
// following intake_v3.proto's comments, never with ddclient's encoder: the
// stand-in is what that encoder is checked against.

// v3Dict is a string dictionary: varint length + bytes each.
func v3Dict(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// v3Delta delta encodes absolute values.
func v3Delta(vs ...int64) []int64 {
	out := make([]int64, len(vs))
	var prev int64
	for i, v := range vs {
		out[i], prev = v-prev, v
	}
	return out
}

// v3DeltaZigZag encodes the intervals column as the Agent writes it: delta
// encoded, zigzag.
func v3DeltaZigZag(vs ...int64) []uint64 {
	out := make([]uint64, len(vs))
	for i, d := range v3Delta(vs...) {
		out[i] = protowire.EncodeZigZag(d)
	}
	return out
}

const (
	v3Count   = uint64(intake_v3.MetricType_Count)
	v3Gauge   = uint64(intake_v3.MetricType_Gauge)
	v3Sint64  = uint64(intake_v3.ValueType_Sint64)
	v3Float64 = uint64(intake_v3.ValueType_Float64)
	v3Zero    = uint64(intake_v3.ValueType_Zero)
)

// validV3 is three series on host node-1:
//
//	requests.count  count, interval 15, two integer points, tags env:prod service:web
//	queue.depth     gauge, one float64 point, tags env:prod service:web queue:a
//	idle            gauge, one zero point (no value stored), tags as requests.count
//
// The two tag sets share env:prod and service:web; the second reaches them
// through a reference to the first set, as the Agent's serializer writes a
// shared prefix.
func validV3() *intake_v3.Payload {
	ts := testNow.Unix() - 30
	return &intake_v3.Payload{MetricData: &intake_v3.MetricData{
		DictNameStr: v3Dict("requests.count", "queue.depth", "idle"),
		DictTagStr:  v3Dict("env:prod", "service:web", "queue:a"),
		DictTagsets: []int64{
			2, 1, 1, // set 1: tags 1, 2
			2, -1, 4, // set 2: set 1, then tag 3
		},
		DictResourceStr:  v3Dict("host", "node-1"),
		DictResourceLen:  []int64{1},
		DictResourceType: []int64{1},
		DictResourceName: []int64{2},
		Types:            []uint64{v3Count | v3Sint64, v3Gauge | v3Float64, v3Gauge | v3Zero},
		NameRefs:         v3Delta(1, 2, 3),
		TagsetRefs:       v3Delta(1, 2, 1),
		ResourcesRefs:    v3Delta(1, 1, 1),
		Intervals:        v3DeltaZigZag(15, 0, 0),
		NumPoints:        []uint64{2, 1, 1},
		Timestamps:       v3Delta(ts, ts+15, ts+15, ts+15),
		ValsSint64:       []int64{3, 5},
		ValsFloat64:      []float64{2.5},
	}}
}

// v3Headers are the headers of a well-formed v3 request.
func v3Headers(enc string) http.Header {
	h := jsonHeaders(enc)
	h.Set("Content-Type", "application/x-protobuf")
	return h
}

func marshalV3(t testing.TB, p *intake_v3.Payload) []byte {
	t.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postV3(t *testing.T, s *Server, h http.Header, body []byte) answer {
	t.Helper()
	return postTo(t, s, SeriesV3Path, h, body)
}

// wantV3Series is validV3 in the v2 model, as a v2 sender would send it.
func wantV3Series() []datadogV2.MetricSeries {
	ts := testNow.Unix() - 30
	host := []datadogV2.MetricResource{{Type: datadog.PtrString("host"), Name: datadog.PtrString("node-1")}}
	pt := func(ts int64, v float64) datadogV2.MetricPoint {
		return datadogV2.MetricPoint{Timestamp: &ts, Value: &v}
	}
	return []datadogV2.MetricSeries{
		{Metric: "requests.count", Type: datadogV2.METRICINTAKETYPE_COUNT.Ptr(), Interval: datadog.PtrInt64(15),
			Points: []datadogV2.MetricPoint{pt(ts, 3), pt(ts+15, 5)}, Tags: []string{"env:prod", "service:web"}, Resources: host},
		{Metric: "queue.depth", Type: datadogV2.METRICINTAKETYPE_GAUGE.Ptr(),
			Points: []datadogV2.MetricPoint{pt(ts+15, 2.5)}, Tags: []string{"env:prod", "service:web", "queue:a"}, Resources: host},
		{Metric: "idle", Type: datadogV2.METRICINTAKETYPE_GAUGE.Ptr(),
			Points: []datadogV2.MetricPoint{pt(ts+15, 0)}, Tags: []string{"env:prod", "service:web"}, Resources: host},
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestV3Accepted(t *testing.T) {
	s := startIntake(t, nil)
	body := marshalV3(t, validV3())
	if a := postV3(t, s, v3Headers("zstd"), compress(t, "zstd", body)); a.status != http.StatusAccepted {
		t.Fatalf("status = %d, want 202 (body %s)", a.status, a.body)
	}
	if got, want := jsonOf(t, s.Series()), jsonOf(t, wantV3Series()); got != want {
		t.Errorf("stored series:\n%s\nwant:\n%s", got, want)
	}
	st := s.Stats()
	if st.SeriesVersions[SeriesV3] != 1 || st.SeriesVersions[SeriesV2] != 0 || st.Series != 3 || st.Points != 4 {
		t.Errorf("stats = %+v, want one v3 payload of 3 series, 4 points", st)
	}
	if p, ok := s.Last("requests.count", "host:node-1", "env:prod"); !ok || p.Value != 5 || p.Interval != 15 || p.Type != datadogV2.METRICINTAKETYPE_COUNT {
		t.Errorf("Last(requests.count) = %+v, %v", p, ok)
	}
	if got := s.Sum("requests.count"); got != 8 {
		t.Errorf("Sum(requests.count) = %v, want 8", got)
	}
	if pts := s.Points("queue.depth", "queue:a"); len(pts) != 1 || pts[0].Value != 2.5 || pts[0].Host() != "node-1" {
		t.Errorf("Points(queue.depth) = %+v", pts)
	}
}

// TestV3SameAsV2 sends the same series as v2 JSON and as v3 to two intakes:
// what they store is the same.
func TestV3SameAsV2(t *testing.T) {
	v2, v3 := startIntake(t, nil), startIntake(t, nil)
	body, err := json.Marshal(datadogV2.MetricPayload{Series: wantV3Series()})
	if err != nil {
		t.Fatal(err)
	}
	if a := post(t, v2, jsonHeaders(""), body); a.status != http.StatusAccepted {
		t.Fatalf("v2: status = %d (%s)", a.status, a.body)
	}
	if a := postV3(t, v3, v3Headers("zstd"), compress(t, "zstd", marshalV3(t, validV3()))); a.status != http.StatusAccepted {
		t.Fatalf("v3: status = %d (%s)", a.status, a.body)
	}
	if got, want := jsonOf(t, v3.Series()), jsonOf(t, v2.Series()); got != want {
		t.Errorf("v3 stored:\n%s\nv2 stored:\n%s", got, want)
	}
	if v2.Stats().SeriesVersions[SeriesV2] != 1 {
		t.Errorf("v2 SeriesVersions = %v", v2.Stats().SeriesVersions)
	}
}

func TestV3UnitSourceAndMetadata(t *testing.T) {
	s := startIntake(t, nil)
	p := validV3()
	md := p.MetricData
	md.Types[1] |= uint64(intake_v3.MetricFlags_flagHasUnit)
	md.DictUnitStr = v3Dict("byte")
	md.UnitRefs = []int64{1}
	md.DictSourceTypeName = v3Dict("kubernetes")
	md.SourceTypeNameRefs = v3Delta(0, 1, 0)
	md.DictOriginInfo = []int32{10, 11, 12}
	md.OriginInfoRefs = v3Delta(1, 1, 1)
	p.Metadata = &intake_v3.Metadata{Tags: []string{"cluster:a", "env:prod"}, Resources: []string{"device", "eth0"}}
	if a := postV3(t, s, v3Headers("zstd"), compress(t, "zstd", marshalV3(t, p))); a.status != http.StatusAccepted {
		t.Fatalf("status = %d (%s)", a.status, a.body)
	}
	got := s.Series()[1]
	if got.GetUnit() != "byte" || got.GetSourceTypeName() != "kubernetes" {
		t.Errorf("unit %q source %q, want byte, kubernetes", got.GetUnit(), got.GetSourceTypeName())
	}
	if want := `["env:prod","service:web","queue:a","cluster:a"]`; jsonOf(t, got.Tags) != jsonOf(t, json.RawMessage(want)) {
		t.Errorf("tags = %q, want %s (metadata tags added once)", got.Tags, want)
	}
	if len(got.Resources) != 2 || got.Resources[1].GetType() != "device" {
		t.Errorf("resources = %s, want host then the metadata's device", jsonOf(t, got.Resources))
	}
}

// TestV3ResourceSetsDeltaPerSet: the type and name indexes of resources are
// delta encoded within each set, starting from 0 in every set, as
// agent-payload's reference writer (writer.rs encode_resources) and the
// Agent's serializer (internResources) write them.
func TestV3ResourceSetsDeltaPerSet(t *testing.T) {
	s := startIntake(t, nil)
	p := validV3()
	md := p.MetricData
	md.DictResourceStr = v3Dict("host", "node-1", "node-2")
	md.DictResourceLen = []int64{1, 1}
	md.DictResourceType = []int64{1, 1} // "host" in each set, from 0 each time
	md.DictResourceName = []int64{2, 3}
	md.ResourcesRefs = v3Delta(1, 2, 1)
	if a := postV3(t, s, v3Headers("zstd"), compress(t, "zstd", marshalV3(t, p))); a.status != http.StatusAccepted {
		t.Fatalf("status = %d (%s)", a.status, a.body)
	}
	if p, ok := s.Last("queue.depth", "host:node-2"); !ok || p.Value != 2.5 {
		t.Errorf("Last(queue.depth, host:node-2) = %+v, %v", p, ok)
	}
	// Delta encoded across sets instead, the second type index decodes to 0.
	s2 := startIntake(t, nil)
	md.DictResourceType = []int64{1, 0}
	md.DictResourceName = []int64{2, 1}
	wantRefused(t, s2, postV3(t, s2, v3Headers("zstd"), compress(t, "zstd", marshalV3(t, p))),
		http.StatusBadRequest, ReasonInvalid, "dictResourceType[1]: index 0 (the empty value) is not allowed")
}

// TestV3ExpansionBounded: tag sets that include an earlier set twice double
// in size each time; the decoder refuses such a payload once the expansion
// passes the uncompressed limit instead of running out of memory.
func TestV3ExpansionBounded(t *testing.T) {
	s := startIntake(t, nil)
	wantRefused(t, s, postV3(t, s, v3Headers("zstd"), compress(t, "zstd", marshalV3(t, v3Doubling()))),
		http.StatusRequestEntityTooLarge, ReasonTooLargeUncompressed, "the tag sets expand to more than 5242880 tags and resources")
}

// v3Doubling is validV3 with 40 tag sets, each twice the one before.
func v3Doubling() *intake_v3.Payload {
	p := validV3()
	md := p.MetricData
	md.DictTagsets = []int64{1, 1} // set 1: env:prod
	for k := int64(2); k <= 40; k++ {
		md.DictTagsets = append(md.DictTagsets, 2, -(k - 1), 0) // set k: set k-1 twice
	}
	md.TagsetRefs = v3Delta(40, 1, 1)
	return p
}

// v3Mutations are payloads each broken in one way, with the reason and a
// part of the message the intake must answer.
var v3Mutations = []struct {
	name   string
	mutate func(md *intake_v3.MetricData)
	reason Reason
	want   string
}{
	{"name ref past the end", func(md *intake_v3.MetricData) { md.NameRefs = v3Delta(1, 2, 4) },
		ReasonUndecodable, "nameRefs[2]: index 4 after delta decoding is past the end of its dictionary (3 entries"},
	{"name ref 0", func(md *intake_v3.MetricData) { md.NameRefs = v3Delta(1, 0, 3) },
		ReasonInvalid, "nameRefs[1]: index 0 (the empty value) is not allowed"},
	{"name ref negative", func(md *intake_v3.MetricData) { md.NameRefs = []int64{1, -2, 3} },
		ReasonUndecodable, "nameRefs[1]: index -1 after delta decoding is negative"},
	{"tagset ref past the end", func(md *intake_v3.MetricData) { md.TagsetRefs = v3Delta(1, 2, 3) },
		ReasonUndecodable, "tagsetRefs[2]: index 3 after delta decoding is past the end"},
	{"tag index 0 in a tag set", func(md *intake_v3.MetricData) { md.DictTagsets[1], md.DictTagsets[2] = 0, 2 },
		ReasonInvalid, "dictTagsets set 1: tag index 0 (an empty tag) is not allowed"},
	{"tag index past the end", func(md *intake_v3.MetricData) { md.DictTagsets[5] = 9 },
		ReasonUndecodable, "dictTagsets set 2: tag index 8 after delta decoding is past the end of dictTagStr (3 entries"},
	{"tag set referencing itself", func(md *intake_v3.MetricData) { md.DictTagsets[4] = -2 },
		ReasonUndecodable, "dictTagsets set 2: reference -2 to set 2, which is not an earlier set"},
	{"tag set longer than the column", func(md *intake_v3.MetricData) { md.DictTagsets[3] = 5 },
		ReasonUndecodable, "dictTagsets set 2: length 5 does not fit the 2 entries left"},
	{"timestamp delta overflow", func(md *intake_v3.MetricData) { md.Timestamps[1] = math.MaxInt64 },
		ReasonUndecodable, "timestamps[1]: delta 9223372036854775807 overflows int64"},
	{"resource name index 0", func(md *intake_v3.MetricData) { md.DictResourceName = []int64{0} },
		ReasonInvalid, "dictResourceName[0]: index 0 (the empty value) is not allowed"},
	{"resource set longer than its columns", func(md *intake_v3.MetricData) { md.DictResourceLen = []int64{2} },
		ReasonUndecodable, "dictResourceLen set 1: length 2 does not fit the 1 resources left"},
	{"types vs nameRefs", func(md *intake_v3.MetricData) { md.NameRefs = md.NameRefs[:2] },
		ReasonUndecodable, "column nameRefs has 2 entries but types has 3"},
	{"intervals short", func(md *intake_v3.MetricData) { md.Intervals = md.Intervals[:1] },
		ReasonUndecodable, "column intervals has 1 entries but types has 3"},
	{"sourceTypeNameRefs short", func(md *intake_v3.MetricData) { md.SourceTypeNameRefs = []int64{0} },
		ReasonUndecodable, "column sourceTypeNameRefs has 1 entries but types has 3"},
	{"numPoints vs timestamps", func(md *intake_v3.MetricData) { md.Timestamps = md.Timestamps[:3] },
		ReasonUndecodable, "numPoints up to series 2 add up to more than the 3 entries of timestamps"},
	{"timestamps left over", func(md *intake_v3.MetricData) { md.Timestamps = append(md.Timestamps, 0) },
		ReasonUndecodable, "numPoints add up to 4 but timestamps has 5 entries"},
	{"sint64 values short", func(md *intake_v3.MetricData) { md.ValsSint64 = md.ValsSint64[:1] },
		ReasonUndecodable, "valsSint64 has 1 values but the series of valueType Sint64 have 2 points"},
	{"values for a Zero series", func(md *intake_v3.MetricData) { md.Types[2] = v3Gauge | v3Float64 },
		ReasonUndecodable, "valsFloat64 has 1 values but the series of valueType Float64 have 2 points"},
	{"float32 values nobody uses", func(md *intake_v3.MetricData) { md.ValsFloat32 = []float32{1} },
		ReasonUndecodable, "valsFloat32 has 1 values but the series of valueType Float32 have 0 points"},
	{"unknown metric type", func(md *intake_v3.MetricData) { md.Types[1] = 5 | v3Float64 },
		ReasonInvalid, "types[1] = 0x35: unknown metric type 5"},
	{"metric type 0", func(md *intake_v3.MetricData) { md.Types[1] = v3Float64 },
		ReasonInvalid, "types[1] = 0x30: unknown metric type 0"},
	{"unknown value type", func(md *intake_v3.MetricData) { md.Types[1] = v3Gauge | 0x40 },
		ReasonInvalid, "types[1] = 0x43: unknown value type 0x40"},
	{"unknown flag bit", func(md *intake_v3.MetricData) { md.Types[0] |= 0x400 },
		ReasonInvalid, "types[0] = 0x411 has unknown flag bits 0x400"},
	{"sketch", func(md *intake_v3.MetricData) { md.Types[1] = uint64(intake_v3.MetricType_DDSketch) | v3Float64 },
		ReasonUnsupported, "metric type DDSketch is not supported by this stand-in"},
	{"flagHasUnit without unitRefs", func(md *intake_v3.MetricData) { md.Types[0] |= uint64(intake_v3.MetricFlags_flagHasUnit) },
		ReasonUndecodable, "unitRefs has 0 entries but 1 series set flagHasUnit"},
	{"unitRefs without flagHasUnit", func(md *intake_v3.MetricData) { md.DictUnitStr, md.UnitRefs = v3Dict("byte"), []int64{1} },
		ReasonUndecodable, "unitRefs has 1 entries but 0 series set flagHasUnit"},
	{"bin columns without sketches", func(md *intake_v3.MetricData) { md.NumBins = []uint64{1} },
		ReasonUndecodable, "column numBins has 1 entries but no series is a sketch or histogram"},
	{"dictionary entry past the end", func(md *intake_v3.MetricData) { md.DictNameStr = append(v3Dict("a"), 9, 'b') },
		ReasonUndecodable, "dictNameStr entry 2 at byte 2: length 9 runs past the end (1 bytes left)"},
	{"dictionary entry not UTF-8", func(md *intake_v3.MetricData) { md.DictNameStr = v3Dict("requests.count", "q\xff", "idle") },
		ReasonInvalid, "dictNameStr entry 2 is not valid UTF-8"},
	{"interval negative after delta decoding", func(md *intake_v3.MetricData) { md.Intervals[0] = protowire.EncodeZigZag(-15) },
		ReasonInvalid, "intervals[0]: the delta-encoded interval is -15 seconds"},
	{"count without interval", func(md *intake_v3.MetricData) { md.Intervals = v3DeltaZigZag(0, 0, 0) },
		ReasonInvalid, `series[0] "requests.count": type 1 (count) needs an interval > 0`},
	{"point too old", func(md *intake_v3.MetricData) { md.Timestamps[0] -= 2 * 3600 },
		ReasonTimestamp, `series[0] "requests.count": point 0 timestamp`},
	{"non-finite value", func(md *intake_v3.MetricData) { md.ValsFloat64[0] = math.Inf(1) },
		ReasonInvalid, "point 0 value +Inf is not finite"},
}

func TestV3Refused(t *testing.T) {
	for _, tc := range v3Mutations {
		t.Run(tc.name, func(t *testing.T) {
			s := startIntake(t, nil)
			p := validV3()
			tc.mutate(p.MetricData)
			a := postV3(t, s, v3Headers("zstd"), compress(t, "zstd", marshalV3(t, p)))
			wantRefused(t, s, a, http.StatusBadRequest, tc.reason, tc.want)
		})
	}
}

func TestV3RefusedRequest(t *testing.T) {
	body := marshalV3(t, validV3())
	unknown := protowire.AppendTag(bytes.Clone(body), 1, protowire.BytesType) // reserved field 1: a v2 series
	unknown = protowire.AppendBytes(unknown, []byte("x"))
	jsonType := v3Headers("zstd")
	jsonType.Set("Content-Type", "application/json")
	for _, tc := range []struct {
		name   string
		h      http.Header
		body   []byte
		reason Reason
		want   string
	}{
		{"no compression", v3Headers(""), body, ReasonContentEncoding, `Content-Encoding "" is not supported by /api/intake/metrics/v3/series: v3 payloads must be zstd compressed`},
		{"gzip", v3Headers("gzip"), compress(t, "gzip", body), ReasonContentEncoding, `Content-Encoding "gzip" is not supported`},
		{"JSON type", jsonType, compress(t, "zstd", body), ReasonContentType, `Content-Type "application/json" is not supported by /api/intake/metrics/v3/series`},
		{"not protobuf", v3Headers("zstd"), compress(t, "zstd", []byte("{\"series\":[]}")), ReasonUndecodable, "body is not an intake_v3.Payload"},
		{"no metricData", v3Headers("zstd"), compress(t, "zstd", nil), ReasonUndecodable, "payload has no metricData"},
		{"unknown field", v3Headers("zstd"), compress(t, "zstd", unknown), ReasonInvalid, "Payload has fields [1] that intake_v3.proto does not define"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startIntake(t, nil)
			wantRefused(t, s, postV3(t, s, tc.h, tc.body), http.StatusBadRequest, tc.reason, tc.want)
		})
	}
	t.Run("bad key", func(t *testing.T) {
		s := startIntake(t, nil)
		h := v3Headers("zstd")
		h.Set(APIKeyHeader, "nope")
		wantRefused(t, s, postV3(t, s, h, compress(t, "zstd", body)), http.StatusForbidden, ReasonInvalidAPIKey, "Forbidden")
	})
	t.Run("fault", func(t *testing.T) {
		s := startIntake(t, nil)
		s.FailNext(1, http.StatusServiceUnavailable)
		if a := postV3(t, s, v3Headers("zstd"), compress(t, "zstd", body)); a.status != http.StatusServiceUnavailable {
			t.Errorf("status = %d, want the injected 503", a.status)
		}
		if a := postV3(t, s, v3Headers("zstd"), compress(t, "zstd", body)); a.status != http.StatusAccepted {
			t.Errorf("after the fault: status = %d (%s)", a.status, a.body)
		}
	})
}

// FuzzV3Decode feeds arbitrary bodies to the v3 decoder: it must never
// panic, and what it accepts must hold the format's invariants, checked
// here independently on the decoded intake_v3.Payload.
func FuzzV3Decode(f *testing.F) {
	f.Add(marshalV3(f, validV3()))
	f.Add(marshalV3(f, v3Doubling()))
	for _, m := range v3Mutations {
		p := validV3()
		m.mutate(p.MetricData)
		f.Add(marshalV3(f, p))
	}
	in, err := New(Config{APIKeys: []string{testKey}, Now: func() time.Time { return testNow }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, rej := in.decodeV3(body, testNow)
		if rej != nil {
			if (rej.status != http.StatusBadRequest && rej.status != http.StatusRequestEntityTooLarge) || rej.reason == "" || rej.msg == "" {
				t.Fatalf("refusal without status, reason or message: %+v", rej)
			}
			return
		}
		var p intake_v3.Payload
		if err := proto.Unmarshal(body, &p); err != nil {
			t.Fatalf("accepted a body that does not unmarshal: %v", err)
		}
		checkV3Invariants(t, &p, got.Series)
	})
}

// checkV3Invariants checks what every accepted payload must satisfy.
func checkV3Invariants(t *testing.T, p *intake_v3.Payload, series []datadogV2.MetricSeries) {
	md := p.GetMetricData()
	n := len(md.GetTypes())
	if len(series) != n || len(md.NameRefs) != n || len(md.TagsetRefs) != n || len(md.ResourcesRefs) != n ||
		len(md.Intervals) != n || len(md.NumPoints) != n {
		t.Fatalf("accepted mismatched per-series columns: %d series from %d types", len(series), n)
	}
	var points, units int
	var vals [4]int
	for i, typ := range md.Types {
		if mt := typ & 0xf; mt < 1 || mt > 3 || typ&^0x3ff != 0 || typ&0xf0 > 0x30 {
			t.Fatalf("accepted types[%d] = %#x", i, typ)
		}
		if typ&0x200 != 0 {
			units++
		}
		np := int(md.NumPoints[i])
		points += np
		vals[(typ&0xf0)>>4] += np
		s := series[i]
		if s.Metric == "" || len(s.Points) != np || np == 0 {
			t.Fatalf("accepted series %d: name %q, %d points for numPoints %d", i, s.Metric, len(s.Points), np)
		}
		for _, pt := range s.Points {
			if v := pt.GetValue(); math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("accepted series %d value %v", i, v)
			}
			if ts := pt.GetTimestamp(); ts < testNow.Add(-DefaultMaxAge).Unix() || ts > testNow.Add(DefaultMaxFuture).Unix() {
				t.Fatalf("accepted series %d timestamp %d outside the window", i, ts)
			}
		}
		for _, tag := range s.Tags {
			if tag == "" {
				t.Fatalf("accepted series %d with an empty tag", i)
			}
		}
		for _, r := range s.Resources {
			if r.GetName() == "" || r.GetType() == "" {
				t.Fatalf("accepted series %d with resource %+v", i, r)
			}
		}
	}
	if points != len(md.Timestamps) || vals[1] != len(md.ValsSint64) || vals[2] != len(md.ValsFloat32) ||
		vals[3] != len(md.ValsFloat64) || units != len(md.UnitRefs) {
		t.Fatalf("accepted point columns that do not add up: %d points, %d timestamps", points, len(md.Timestamps))
	}
	if len(md.NumBins)+len(md.BinKeys)+len(md.BinCnts)+len(md.PointFlags)+len(md.ValsUint64) != 0 {
		t.Fatal("accepted bin columns")
	}
}
