package ddclient

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"unicode/utf8"

	v3 "github.com/DataDog/agent-payload/v5/metrics/intake_v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// v3Series is one series as the test reads it back from a payload.
type v3Series struct {
	Name     string
	Type     uint64 // metric type | value type
	Interval int64
	Tags     []string
	Host     string
	TS       []int64
	Vals     []float64
}

// decodeV3 reads a payload with agent-payload's generated type and undoes
// the dictionaries and delta encodings by the proto's comments.
func decodeV3(t testing.TB, b []byte) []v3Series {
	t.Helper()
	var p v3.Payload
	if err := proto.Unmarshal(b, &p); err != nil {
		t.Fatalf("not a v3 Payload: %v", err)
	}
	md := p.GetMetricData()
	strs := func(b []byte) []string {
		out := []string{""}
		for len(b) > 0 {
			s, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatal("bad dictionary")
			}
			if !utf8.Valid(s) {
				t.Fatalf("dictionary entry %q is not valid UTF-8: the intake refuses it", s)
			}
			out = append(out, string(s))
			b = b[n:]
		}
		return out
	}
	names, tags, res := strs(md.DictNameStr), strs(md.DictTagStr), strs(md.DictResourceStr)
	sets := [][]string{nil}
	for c := md.DictTagsets; len(c) > 0; {
		n := int(c[0])
		var prev int64
		var set []string
		for _, d := range c[1 : 1+n] {
			prev += d
			if prev < 0 { // an earlier set, its prefix
				set = append(set, sets[-prev]...)
				continue
			}
			set = append(set, tags[prev])
		}
		sets = append(sets, set)
		c = c[1+n:]
	}
	hosts := []string{""}
	for i, l := range md.DictResourceLen {
		if l != 1 {
			t.Fatalf("resource %d has %d entries", i, l)
		}
		// Delta encoded within each set, from 0.
		pt, pn := md.DictResourceType[i], md.DictResourceName[i]
		if res[pt] != "host" {
			t.Fatalf("resource type %q", res[pt])
		}
		hosts = append(hosts, res[pn])
	}
	if len(md.SourceTypeNameRefs) != len(md.Types) || len(md.OriginInfoRefs) != len(md.Types) {
		t.Fatalf("%d source type and %d origin refs for %d series", len(md.SourceTypeNameRefs), len(md.OriginInfoRefs), len(md.Types))
	}
	var out []v3Series
	var name, set, rs, ts, iv int64
	var si, fi, pi int
	for i, typ := range md.Types {
		name += md.NameRefs[i]
		set += md.TagsetRefs[i]
		rs += md.ResourcesRefs[i]
		iv += protowire.DecodeZigZag(md.Intervals[i])
		s := v3Series{Name: names[name], Type: typ, Interval: iv, Tags: sets[set], Host: hosts[rs]}
		for range md.NumPoints[i] {
			ts += md.Timestamps[pi]
			pi++
			s.TS = append(s.TS, ts)
			switch typ & 0xf0 {
			case 0x00:
				s.Vals = append(s.Vals, 0)
			case 0x10:
				s.Vals = append(s.Vals, float64(md.ValsSint64[si]))
				si++
			case 0x30:
				s.Vals = append(s.Vals, md.ValsFloat64[fi])
				fi++
			default:
				t.Fatalf("value type %#x", typ&0xf0)
			}
		}
		out = append(out, s)
	}
	if pi != len(md.Timestamps) || si != len(md.ValsSint64) || fi != len(md.ValsFloat64) {
		t.Fatalf("columns longer than the series use: %d/%d timestamps, %d/%d sint64, %d/%d float64",
			pi, len(md.Timestamps), si, len(md.ValsSint64), fi, len(md.ValsFloat64))
	}
	return out
}

func TestV3WriterRoundTrip(t *testing.T) {
	in := []struct {
		d    Desc
		ts   []int64
		vals []float64
	}{
		{Desc{Metric: "http_requests.count", Type: Count, Interval: 15, Tags: []string{"code:200", "kube_namespace:shop"}, Host: "node-a"}, []int64{1_800_000_000, 1_800_000_015}, []float64{3, 4}},
		{Desc{Metric: "http_requests.count", Type: Count, Interval: 15, Tags: []string{"code:500", "kube_namespace:shop"}, Host: "node-a"}, []int64{1_800_000_000}, []float64{0}},
		{Desc{Metric: "temperature", Type: Gauge, Tags: []string{"code:200", "kube_namespace:shop"}, Host: "node-a"}, []int64{1_799_999_990}, []float64{-21.5}},
		{Desc{Metric: "apiserver_up", Type: Gauge, Tags: []string{"kube_cluster_name:prod"}}, []int64{1_800_000_001}, []float64{1}},
		{Desc{Metric: "big", Type: Gauge, Host: "node-b"}, []int64{1_800_000_002, 1_800_000_003}, []float64{math.MaxInt64, 1e300}},
		{Desc{Metric: "negzero", Type: Gauge, Host: "node-b"}, []int64{1_800_000_004}, []float64{math.Copysign(0, -1)}},
	}
	var w v3Writer
	for round := range 2 { // the second after reset, on reused buffers
		w.reset()
		for _, s := range in {
			w.add(&s.d, s.ts, s.vals)
		}
		got := decodeV3(t, w.appendPayload([]byte("prefix")[6:]))
		if len(got) != len(in) {
			t.Fatalf("round %d: %d series, want %d", round, len(got), len(in))
		}
		for i, s := range in {
			g := got[i]
			wantType := map[MetricType]uint64{Count: 1, Gauge: 3}[s.d.Type]
			if g.Name != s.d.Metric || g.Type&0x0f != wantType || g.Interval != s.d.Interval || g.Host != s.d.Host ||
				!sameTags(g.Tags, s.d.Tags) || !slices.Equal(g.TS, s.ts) || fmt.Sprint(g.Vals) != fmt.Sprint(s.vals) {
				t.Errorf("round %d series %d: got %+v, want %+v %v %v", round, i, g, s.d, s.ts, s.vals)
			}
		}
		// Integral counts travel as integers, a zero as nothing, and a value
		// an int64 cannot hold exactly as a float64.
		if got[0].Type&0xf0 != 0x10 || got[1].Type&0xf0 != 0x00 || got[2].Type&0xf0 != 0x30 || got[4].Type&0xf0 != 0x30 || got[5].Type&0xf0 != 0x30 {
			t.Errorf("value types %#x %#x %#x %#x %#x", got[0].Type, got[1].Type, got[2].Type, got[4].Type, got[5].Type)
		}
	}
	// Dictionaries: each name, tag and tag set once.
	var p v3.Payload
	if err := proto.Unmarshal(w.appendPayload(nil), &p); err != nil {
		t.Fatal(err)
	}
	md := p.GetMetricData()
	if n := len(md.DictTagsets); n != 3+3+2 { // two sets of 2 tags, one of 1
		t.Errorf("dictTagsets has %d entries, want 8: %v", n, md.DictTagsets)
	}
}

// sameTags reports whether a and b hold the same tags in any order: a tag
// set is a set, which the writer sorts by dictionary index.
func sameTags(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// TestV3CopyRange: a payload split in two (as one the intake would refuse
// for its size is) holds the same series, and its dictionaries grow past
// their first table size without losing an entry.
func TestV3CopyRange(t *testing.T) {
	var w v3Writer
	w.reset()
	var want []v3Series
	for i := range 5000 {
		d := Desc{Metric: fmt.Sprintf("m%d", i%300), Type: []MetricType{Count, Gauge, Rate}[i%3], Host: []string{"", "node-a", "node-b"}[i%3],
			Tags: []string{fmt.Sprintf("pod:p%d", i%97), fmt.Sprintf("id:%d", i), "kube_namespace:shop"}}
		if d.Type != Gauge {
			d.Interval = int64(10 + i%4)
		}
		ts := []int64{1_800_000_000 + int64(i%50)}
		vals := []float64{[]float64{0, 7, -2.5}[i%3]}
		w.add(&d, ts, vals)
		want = append(want, v3Series{Name: d.Metric, Interval: d.Interval, Tags: d.Tags, Host: d.Host, TS: ts, Vals: vals})
	}
	for _, cut := range []int{0, 1, 2500, 4999, 5000} {
		var a, b v3Writer
		w.copyRange(&a, 0, cut)
		w.copyRange(&b, cut, 5000)
		got := append(decodeV3(t, a.appendPayload(nil)), decodeV3(t, b.appendPayload(nil))...)
		if cut == 0 || cut == 5000 {
			got = decodeV3(t, map[bool]*v3Writer{true: &a, false: &b}[cut == 5000].appendPayload(nil))
		}
		if len(got) != len(want) {
			t.Fatalf("cut %d: %d series, want %d", cut, len(got), len(want))
		}
		for i, g := range got {
			x := want[i]
			if g.Name != x.Name || g.Interval != x.Interval || g.Host != x.Host || !sameTags(g.Tags, x.Tags) || !slices.Equal(g.TS, x.TS) || !slices.Equal(g.Vals, x.Vals) {
				t.Fatalf("cut %d series %d: got %+v, want %+v", cut, i, g, x)
			}
		}
	}
}

// The v3 payload of many series sharing tags is far smaller than their v2
// JSON, before compression: the point of the format.
func TestV3Smaller(t *testing.T) {
	var w v3Writer
	json := 0
	for i := range 1000 {
		d := Desc{Metric: "http_request_duration_seconds.bucket", Type: Count, Interval: 30, Host: "node-a",
			Tags: []string{"kube_namespace:shop", "kube_deployment:web", "pod_name:web-7d9f8", "method:GET", fmt.Sprintf("upper_bound:%d", i%12), fmt.Sprintf("path:/api/v%d", i/12)}}
		w.add(&d, []int64{1_800_000_000}, []float64{float64(i % 7)})
		json += len(`{"metric":"","type":1,"interval":30,"points":[{"timestamp":1800000000,"value":0}],"resources":[{"name":"node-a","type":"host"}],"tags":[]},`) + len(d.Metric)
		for _, tg := range d.Tags {
			json += len(tg) + 3
		}
	}
	v3 := len(w.appendPayload(nil))
	t.Logf("1000 series: v3 %d bytes, v2 JSON %d bytes (%.2fx)", v3, json, float64(json)/float64(v3))
	if v3*3 > json {
		t.Errorf("v3 %d bytes is not a third of v2's %d", v3, json)
	}
}

func BenchmarkV3Writer(b *testing.B) {
	descs := make([]Desc, 1000)
	for i := range descs {
		descs[i] = Desc{Metric: "http_requests.count", Type: Count, Interval: 30, Host: "node-a",
			Tags: []string{"kube_namespace:shop", fmt.Sprintf("pod_name:web-%d", i%50), fmt.Sprintf("code:%d", 200+i%5)}}
	}
	var w v3Writer
	var out []byte
	ts, vals := []int64{1_800_000_000}, []float64{3}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		for i := range descs {
			w.add(&descs[i], ts, vals)
		}
		out = w.appendPayload(out[:0])
	}
	b.ReportMetric(float64(len(out))/float64(len(descs)), "bytes/series")
}
