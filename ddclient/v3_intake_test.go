package ddclient

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/spool"

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

// TestV3Split: a v3 payload past the intake's compressed limit is split in
// halves until each fits, every point kept; a series that fits in no
// payload is dropped and counted, and the others pass.
func TestV3Split(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1", func(cfg *Config) { cfg.SeriesV3, cfg.MaxPayloadBytes = true, 2_000 })
	var w v3Writer
	w.reset()
	const n = 300
	for i := range n {
		// Distinct random-looking tags: the payload compresses little.
		d := Desc{Metric: "m", Type: Gauge, Tags: []string{fmt.Sprintf("id:%x", uint64(i)*0x9E3779B97F4A7C15)}}
		w.add(&d, []int64{time.Now().Unix()}, []float64{float64(i)})
	}
	huge := Desc{Metric: "huge", Type: Gauge}
	for i := range 100 {
		v := uint64(i+1) * 0x9E3779B97F4A7C15
		huge.Tags = append(huge.Tags, fmt.Sprintf("t%d:%x%x%x%x", i, v, v*31, v*0xC2B2AE3D27D4EB4F, v^0x165667B19E3779F9))
	}
	w.add(&huge, []int64{time.Now().Unix()}, []float64{1})
	c.compressV3(&w, 0)
	c.mu.Lock()
	queue := c.queue
	c.mu.Unlock()
	points, sum := 0, 0.0
	for _, p := range queue {
		if len(p.body) > 2_000 || p.endpoint != spool.SeriesV3 {
			t.Errorf("payload of %d bytes for endpoint %d, limit 2000", len(p.body), p.endpoint)
		}
		raw, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := raw.DecodeAll(p.body, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range decodeV3(t, b) {
			if s.Name == "huge" {
				t.Errorf("the series no payload can hold was sent")
			}
			points++
			sum += s.Vals[0]
		}
	}
	if len(queue) < 4 || points != n || sum != n*(n-1)/2 {
		t.Errorf("%d payloads, %d points summing to %v; want %d points summing to %d", len(queue), points, sum, n, n*(n-1)/2)
	}
	if got := dropped(t, c.Metrics(), "rejected"); got != 1 {
		t.Errorf("rejected %v, want the huge series counted", got)
	}
}

// TestV3SpoolKeepsEndpoint: v3 payloads spooled during an outage are sent
// to the v3 path by the next process even when it sends v2 itself, and its
// own points go to v2: a payload is posted where its format is read.
func TestV3SpoolKeepsEndpoint(t *testing.T) {
	in := startIntake(t, func(cfg *fakeintake.Config) { cfg.SeriesAPI = "" })
	in.FailNext(100_000, http.StatusServiceUnavailable)
	dir := filepath.Join(t.TempDir(), "spool")
	first := newTestClient(t, in.URL, func(cfg *Config) { cfg.SeriesV3 = true })
	if err := first.OpenSpool(dir); err != nil {
		t.Fatal(err)
	}
	stop := run(t, first)
	s := newScraper(t, first, appTarget("p"), prom)
	times := scrapeTimes(4)
	for _, ts := range times[:2] {
		s.scrape(counters(50, 10), ts)
	}
	s.app.Commit()
	stop()
	if err := drain(t, first, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if first.SpoolPoints() != 100 || in.Stats().Points != 0 {
		t.Fatalf("spool holds %d points, intake %d: want all 100 spooled", first.SpoolPoints(), in.Stats().Points)
	}
	in.ClearFaults()
	next := newTestClient(t, in.URL, func(cfg *Config) { cfg.SeriesV3 = false })
	if err := next.OpenSpool(dir); err != nil {
		t.Fatal(err)
	}
	defer run(t, next)()
	s = newScraper(t, next, appTarget("p"), prom)
	for _, ts := range times[2:] {
		s.scrape(counters(50, 10), ts)
	}
	s.app.Commit()
	waitIntake(t, in, "every point", 10*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= 200 })
	st := in.Stats()
	if st.Points != 200 || st.SeriesVersions[fakeintake.SeriesV3] == 0 || st.SeriesVersions[fakeintake.SeriesV2] == 0 || st.RejectedTotal() != 0 {
		t.Errorf("stats %+v: want 200 points, the spooled ones by v3 and the new ones by v2", st)
	}
}
