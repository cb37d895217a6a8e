package ddclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

func TestAppendJSONString(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "new\nline\ttab\rcr", "ctl \x00\x01\x1f\x7f", "utf8 ünïcødé ✓ 😀", "bad \xff utf8", "trunc \xe6\x97", "</script>&", "\u2028\u2029"}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, in := range cases {
		b := appendJSONString([]byte("prefix"), in)
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("%q: the destination's bytes were lost", in)
		}
		b = b[len("prefix"):]
		var out string
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%q encoded as %s: %v", in, b, err)
		}
		if want := wantTag("", in)[1:]; out != want { // invalid UTF-8: U+FFFD per byte
			t.Fatalf("%q round-tripped to %q, want %q", in, out, want)
		}
		if utf8.ValidString(in) && out != in {
			t.Fatalf("%q changed to %q", in, out)
		}
	}
}

func TestAppendValue(t *testing.T) {
	values := []float64{0, 1, -1, 42, 1e15 - 1, -(1e15 - 1), 1e15, -1e15, 1.5, -2e-9, 1e-300, 5e-324,
		math.MaxFloat64, -math.MaxFloat64, math.Copysign(0, -1), 0.1, 1 << 53, 123456789.125}
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		values = append(values, math.Float64frombits(r.Uint64()), float64(r.Int64N(1<<40)), r.NormFloat64()*1e6)
	}
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		b := appendValue(nil, v)
		var got float64
		if err := json.Unmarshal(b, &got); err != nil || got != v {
			t.Fatalf("%v encoded as %s, decoded %v (%v)", v, b, got, err)
		}
		if v == math.Trunc(v) && math.Abs(v) < 1e15 && bytes.ContainsAny(b, ".e") {
			t.Fatalf("integer %v encoded as %s", v, b)
		}
	}
}

// TestInvalidValuesDropped checks that NaN and ±Inf points, which JSON
// cannot carry, are left out and counted, and the payload stays valid
// wherever they fall.
func TestInvalidValuesDropped(t *testing.T) {
	sink := newCaptureSink()
	s := newScraper(t, sink, &target.Target{Interval: 15 * time.Second}, prom)
	body := "# TYPE c counter\nc_total{i=\"0\"} 1\nc_total{i=\"1\"} 2\nc_total{i=\"2\"} 3\nc_total{i=\"3\"} 4\ng NaN\n"
	bad := []float64{math.NaN(), math.Inf(1), math.Inf(-1)}
	k := 0
	s.scrapeValues(body, testTS, func(p *exposition.Parser) float64 {
		k++
		switch k {
		case 1, 3, 5: // the first, a middle one and the last point
			return bad[k%3]
		}
		return p.Value()
	})
	got := renderAll(sink.series(t))
	want := []string{"c.count count/15 [i:1] = 2", "c.count count/15 [i:3] = 4"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := dropped(t, sink.set, "invalid_value"); n != 3 || s.appended-s.finite != 3 {
		t.Errorf("invalid values counted %v, appended %d finite %d", n, s.appended, s.finite)
	}
}

// TestEntriesMoveToNextPayload lowers a payload's limit so that entries
// overflow it: none is cut, none lost, every payload stays within the
// limit and decodes. (v2's JSON entries; TestV3Split is v3's.)
func TestEntriesMoveToNextPayload(t *testing.T) {
	sink := newCaptureSinkV2()
	sink.limit, sink.seal = 2_000, 1<<30 // only the limit ends a payload
	s := newScraper(t, sink, &target.Target{Interval: 15 * time.Second, Labels: labels.FromStrings("job", "j")}, prom)
	var body strings.Builder
	for i := range 200 {
		fmt.Fprintf(&body, "m{i=\"%03d\",pad=\"%s\"} %d\n", i, strings.Repeat("p", i%50), i)
	}
	s.scrape(body.String(), testTS)
	if len(sink.payloads) < 5 {
		t.Fatalf("%d payloads: the limit did not split", len(sink.payloads))
	}
	sum, n := 0.0, 0
	for _, p := range sink.payloads {
		if len(p) > sink.limit {
			t.Errorf("payload of %d bytes, limit %d", len(p), sink.limit)
		}
		for _, ser := range decodePayload(t, p).Series {
			if ser.Tags[0] != fmt.Sprintf("i:%03d", n) {
				t.Fatalf("series %d out of order: %v", n, ser.Tags)
			}
			sum += ser.Points[0].GetValue()
			n++
		}
	}
	if n != 200 || sum != 199*200/2 {
		t.Errorf("%d points summing to %v, want 200 summing to %d", n, sum, 199*200/2)
	}
}

// TestOversizedEntryDropped checks that an entry no payload could hold is
// dropped and counted, first in a payload or not, and the others pass.
func TestOversizedEntryDropped(t *testing.T) {
	for _, first := range []bool{true, false} {
		sink := newCaptureSinkV2()
		sink.limit = 1_000
		s := newScraper(t, sink, &target.Target{Interval: 15 * time.Second}, prom)
		var labels []string
		for i := range 10 {
			labels = append(labels, fmt.Sprintf("l%d=\"%s\"", i, strings.Repeat("v", 150)))
		}
		huge := "huge{" + strings.Join(labels, ",") + "} 1\n"
		body := "a 1\n" + huge + "b 2\n"
		if first {
			body = huge + "a 1\nb 2\n"
		}
		s.scrape(body, testTS)
		if got := renderAll(sink.series(t)); strings.Join(got, "|") != "a gauge [] = 1|b gauge [] = 2" {
			t.Errorf("first=%v: got %q", first, got)
		}
		if n := dropped(t, sink.set, "oversized"); n != 1 {
			t.Errorf("first=%v: oversized counted %v, want 1", first, n)
		}
	}
}

// TestSealedAtSize checks that a buffer is handed on once it reaches its
// seal size, within a scrape.
func TestSealedAtSize(t *testing.T) {
	sink := newCaptureSinkV2()
	sink.seal = 500
	s := newScraper(t, sink, &target.Target{Interval: 15 * time.Second}, prom)
	var body strings.Builder
	for i := range 100 {
		fmt.Fprintf(&body, "m{i=\"%d\"} 1\n", i)
	}
	s.scrape(body.String(), testTS)
	n := 0
	for i, p := range sink.payloads {
		n += len(decodePayload(t, p).Series)
		// Sealed at the first entry that reaches 500 bytes: at most one
		// entry (< 100 bytes) past it; the last one is what Commit released.
		if len(p) > 500+100 || i < len(sink.payloads)-1 && len(p) < 500 {
			t.Errorf("payload %d has %d bytes, seal at 500", i, len(p))
		}
	}
	if n != 100 || len(sink.payloads) < 5 {
		t.Errorf("%d points in %d payloads", n, len(sink.payloads))
	}
}

func TestPrinter(t *testing.T) {
	var out bytes.Buffer
	pr := NewPrinter(&out, Mapping{Namespace: "dry", Host: "node-1"})
	target := &target.Target{Interval: 30 * time.Second, Labels: labels.FromStrings("job", "j"),
		Discovered: labels.FromStrings(meta+"namespace", "ns")}
	s := newScraper(t, pr, target, prom)
	s.scrape("# TYPE c counter\nc_total{b=\"2\",a=\"1\"} 5\n# TYPE g gauge\ng 1.5\n", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	want := "dry.c.count count 5 @03:04:05 interval=30s host=node-1 [a:1 b:2 job:j kube_namespace:ns]\n" +
		"dry.g gauge 1.5 @03:04:05 host=node-1 [job:j kube_namespace:ns]\n"
	if out.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", out.String(), want)
	}
}
