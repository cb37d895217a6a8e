package ddclient

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// TestV3WriterAtTheIntake: what v3Writer writes, zstd-compressed as v3
// requires, is accepted by the strict stand-in intake (which decodes it
// with agent-payload's types, by the rules the Datadog Agent's writer
// follows) and stored as the same series: several hosts, shared tag sets,
// integer, zero and float values.
func TestV3WriterAtTheIntake(t *testing.T) {
	const key = "v3-key-0123456789abcdef0123456789ab"
	in, err := fakeintake.Start("127.0.0.1:0", fakeintake.Config{APIKeys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	now := time.Now().Unix()
	var w v3Writer
	w.add(&Desc{Metric: "jobs.count", Type: Count, Interval: 15, Tags: []string{"kind:a", "kube_namespace:shop"}, Host: "node-a"}, []int64{now - 15, now}, []float64{3, 4})
	w.add(&Desc{Metric: "jobs.count", Type: Count, Interval: 15, Tags: []string{"kind:b", "kube_namespace:shop"}, Host: "node-b"}, []int64{now}, []float64{0})
	w.add(&Desc{Metric: "temperature", Type: Gauge, Tags: []string{"kind:a", "kube_namespace:shop"}, Host: "node-b"}, []int64{now}, []float64{-21.5})
	w.add(&Desc{Metric: "apiserver_up", Type: Gauge, Tags: []string{"kube_cluster_name:prod"}}, []int64{now}, []float64{1})
	enc, _ := zstd.NewWriter(nil)
	body := enc.EncodeAll(w.appendPayload(nil), nil)
	req, _ := http.NewRequest(http.MethodPost, in.URL+fakeintake.SeriesV3Path, bytes.NewReader(body))
	req.Header.Set("DD-API-KEY", key)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "zstd")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d; rejections %+v", resp.StatusCode, in.Stats())
	}
	for _, c := range []struct {
		metric string
		tags   []string
		host   string
		vals   []float64
	}{
		{"jobs.count", []string{"kind:a", "kube_namespace:shop"}, "node-a", []float64{3, 4}},
		{"jobs.count", []string{"kind:b"}, "node-b", []float64{0}},
		{"temperature", []string{"kind:a"}, "node-b", []float64{-21.5}},
		{"apiserver_up", []string{"kube_cluster_name:prod"}, "", []float64{1}},
	} {
		pts := in.Points(c.metric, c.tags...)
		if len(pts) != len(c.vals) {
			t.Fatalf("%s %v: %d points, want %d", c.metric, c.tags, len(pts), len(c.vals))
		}
		for i, p := range pts {
			if p.Value != c.vals[i] || p.Host() != c.host {
				t.Errorf("%s %v point %d: %v on host %q, want %v on %q", c.metric, c.tags, i, p.Value, p.Host(), c.vals[i], c.host)
			}
		}
	}
	if p, _ := in.Last("jobs.count", "kind:a"); p.Interval != 15 || p.Type != 1 {
		t.Errorf("count: interval %d type %v, want 15 and count", p.Interval, p.Type)
	}
	if n := in.Stats().SeriesVersions[fakeintake.SeriesV3]; n != 1 {
		t.Errorf("%d v3 payloads counted, want 1", n)
	}
}
