package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
	"github.com/nodescraper/nodescraper/internal/exporter"
)

// TestEndToEnd runs the agent in-process against a test exporter and the
// stand-in intake over real loopback HTTP, changes the exporter's values
// between scrapes (with a target restart, a failed scrape and an intake
// outage along the way), and checks that what reached the intake adds up,
// per series, to the true increase, with Datadog's names, types and tags.
func TestEndToEnd(t *testing.T) {
	const key = "e2e-key-0123456789abcdef0123456789"
	in := startIntake(t, key)

	e := exporter.New()
	e.SetStartTime(float64(time.Now().Add(-time.Hour).Unix()))
	reqs := e.Family("http_requests_total", exporter.Counter, "Requests.")
	temp := e.Family("room_temperature_celsius", exporter.Gauge, "Temperature.")
	lat := e.Family("latency_seconds", exporter.Histogram, "Latency.", 0.1, 1)
	rpc := e.Family("rpc_seconds", exporter.Summary, "RPC latency.")
	reqs.Set(`code="200"`, 1000)
	reqs.Set(`code="500"`, 5)
	jobs := e.Family("jobs_total", exporter.Counter, "Jobs.")
	jobs.Set("", 2)
	temp.Set(`room="lab"`, 20)
	lat.Observe("", 0.05)
	rpc.Observe("", 0.2)
	rpc.SetQuantile("", 0.5, 0.2)
	srv, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.yaml")
	if err := os.WriteFile(targets, []byte(fmt.Sprintf("- targets: [%q]\n  labels: {team: core}\n", srv.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig([]string{
		"--static-targets", targets, "--node-name", "node-e2e", "--cluster-name", "lab",
		"--dd-url", in.URL, "--allow-insecure-datadog-url", "--listen", "127.0.0.1:0", "--state-dir", dir,
		"--scrape-interval", "1s", "--flush-interval", "300ms", "--metric-namespace", "e2e",
	}, agentGetenv(map[string]string{"DD_API_KEY": key}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- run(ctx, c, io.Discard, logger, ready) }()
	addr := <-ready

	// want accumulates the true increase after the first scrape, by series.
	want := map[string]float64{}
	waitScrape := func(n int) {
		t.Helper()
		waitScrapes(t, e, n)
	}
	observe := func(v float64) {
		lat.Observe("", v)
		want["e2e.latency_seconds.count|"] += 1
		want["e2e.latency_seconds.sum|"] += v
		for _, ub := range []string{"0.1", "1"} {
			if v <= map[string]float64{"0.1": 0.1, "1": 1}[ub] {
				want["e2e.latency_seconds.bucket|upper_bound:"+ub] += 1
			}
		}
	}
	waitScrape(1) // baselines
	for step := 1; step <= 8; step++ {
		switch step {
		case 3:
			// The target restarts: everything counts from zero again. jobs
			// grows past its old value at once: only the new
			// process_start_time_seconds tells this reset apart.
			e.Restart(float64(time.Now().Unix()))
			jobs.Add("", 50)
			want["e2e.jobs.count|"] += 50
		case 5:
			e.FailNext(1) // one failed scrape: its increments show up in the next one
		case 6:
			in.FailNext(2, http.StatusServiceUnavailable) // an intake outage: retried
		}
		reqs.Add(`code="200"`, float64(10*step))
		want["e2e.http_requests.count|code:200"] += float64(10 * step)
		if step%2 == 0 {
			reqs.Add(`code="500"`, 1)
			want["e2e.http_requests.count|code:500"]++
		}
		observe(0.01 * float64(step))
		observe(0.5)
		rpc.Observe("", 0.3)
		want["e2e.rpc_seconds.count|"]++
		want["e2e.rpc_seconds.sum|"] += 0.3
		temp.Set(`room="lab"`, 20+float64(step))
		rpc.SetQuantile("", 0.5, 0.2+float64(step)/100)
		waitScrape(e.Scrapes() + 1)
	}
	// The exporter's 500 answer is not a scrape; wait for one more good one.
	waitScrape(e.Scrapes() + 1)

	// The targets page, its API and the agent's own metrics.
	api := httpGet(t, "http://"+addr+"/api/v1/targets")
	if !strings.Contains(api, `"health":"up"`) || !strings.Contains(api, srv.Addr()) {
		t.Errorf("/api/v1/targets: %s", api)
	}
	if page := httpGet(t, "http://"+addr+"/targets"); !strings.Contains(page, `<td class="up">up</td>`) || !strings.Contains(page, srv.Addr()) {
		t.Errorf("targets page: %s", page)
	}
	self := httpGet(t, "http://"+addr+"/metrics")
	for _, m := range []string{"nodescraper_scrapes_total", "nodescraper_dd_points_sent_total", "nodescraper_dd_retries_total"} {
		if !strings.Contains(self, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	// The intake outage of step 6 was retried: both failed posts counted.
	for deadline := time.Now().Add(15 * time.Second); metricSample(t, self, "nodescraper_dd_retries_total") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("nodescraper_dd_retries_total = %v 15s after two failed posts, want 2 or more", metricSample(t, self, "nodescraper_dd_retries_total"))
		}
		time.Sleep(50 * time.Millisecond)
		self = httpGet(t, "http://"+addr+"/metrics")
	}
	if got := httpGet(t, "http://"+addr+"/readyz"); strings.TrimSpace(got) != "ok" {
		t.Errorf("/readyz = %q", got)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Every series' counts add up to the true increase.
	common := []string{"instance:" + srv.Addr(), "job:static", "team:core"}
	checkCounts(t, in, want, common, func(metric string, p fakeintake.Point) {
		if p.Type != 1 || p.Interval != 1 || p.Host() != "node-e2e-lab" {
			t.Errorf("%s: type %v interval %d host %q, want count, 1, node-e2e-lab", metric, p.Type, p.Interval, p.Host())
		}
	})
	// The +Inf bucket is not sent: it equals .count.
	if ps := in.Points("e2e.latency_seconds.bucket", "upper_bound:+Inf"); len(ps) != 0 {
		t.Errorf("+Inf bucket sent: %v", ps)
	}
	// Gauges carry the last value.
	for metric, w := range map[string]float64{"e2e.room_temperature_celsius": 28, "e2e.rpc_seconds.quantile": 0.28} {
		tags := common
		if metric == "e2e.rpc_seconds.quantile" {
			tags = append(slices.Clone(common), "quantile:0.5")
		} else {
			tags = append(slices.Clone(common), "room:lab")
		}
		p, ok := in.Last(metric, tags...)
		if !ok || p.Value != w || p.Type != 3 || p.Host() != "node-e2e-lab" {
			t.Errorf("%s: last %+v (found %v), want gauge %v", metric, p, ok, w)
		}
		sort.Strings(p.Tags)
		if got := strings.Join(p.Tags, ","); !strings.Contains(got, "team:core") {
			t.Errorf("%s tags %s", metric, got)
		}
	}
	st := in.Stats()
	if st.DuplicatePoints != 0 || st.Faults != 2 || len(st.Rejected) != 0 {
		t.Errorf("intake stats: %+v", st)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
