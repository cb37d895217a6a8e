package ddclient

import (
	"encoding/json"
	"math"
	"testing"
)

func TestAppendJSONString(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "new\nline\ttab\rcr", "ctl \x00\x01\x1f", "utf8 ünïcødé ✓", "bad \xff utf8", "</script>"}
	for _, in := range cases {
		b := appendJSONString(nil, in)
		var out string
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%q encoded as %s: %v", in, b, err)
		}
		want := in
		if in == "bad \xff utf8" {
			want = "bad \ufffd utf8"
		}
		if out != want {
			t.Fatalf("%q round-tripped to %q", in, out)
		}
	}
}

func TestBatchEncodesValidSeries(t *testing.T) {
	s := NewSeries(Desc{Metric: "a.count", Type: Count, Interval: 30, Tags: []string{"k:v", `q:"x"`}, Host: "node-1"})
	g := NewSeries(Desc{Metric: "g", Type: Gauge, Interval: 30})
	var b Batch
	b.Add(s, 100, 1.5)
	b.Add(g, 101, -2e-9)
	b.Add(g, 102, math.NaN()) // JSON cannot carry it: dropped and counted
	b.Add(g, 103, math.Inf(1))
	if b.Len() != 2 || b.invals != 2 {
		t.Fatalf("len %d invalid %d, want 2 and 2", b.Len(), b.invals)
	}
	ps, err := b.Points()
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{
		{Desc: Desc{Metric: "a.count", Type: Count, Interval: 30, Tags: []string{"k:v", `q:"x"`}, Host: "node-1"}, Timestamp: 100, Value: 1.5},
		{Desc: Desc{Metric: "g", Type: Gauge}, Timestamp: 101, Value: -2e-9},
	}
	for i := range want {
		g, w := ps[i], want[i]
		if g.Metric != w.Metric || g.Type != w.Type || g.Interval != w.Interval || g.Host != w.Host || g.Timestamp != w.Timestamp || g.Value != w.Value || len(g.Tags) != len(w.Tags) {
			t.Fatalf("point %d: got %+v, want %+v", i, g, w)
		}
	}
	if b.minTS != 100 || b.maxTS != 101 {
		t.Fatalf("min/max ts %d/%d", b.minTS, b.maxTS)
	}
}

func BenchmarkBatchAdd(b *testing.B) {
	s := NewSeries(Desc{Metric: "http_requests.count", Type: Count, Interval: 30, Host: "node-1",
		Tags: []string{"code:200", "method:get", "job:app", "instance:10.0.0.1:8080", "kube_namespace:prod", "pod_name:app-7d9f-xk2p"}})
	var batch Batch
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if batch.Len() == 10000 {
			batch.Reset()
		}
		batch.Add(s, 1_800_000_000, float64(i))
	}
}
