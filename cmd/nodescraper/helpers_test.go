package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	corev1 "k8s.io/api/core/v1"
)

// startIntake starts the stand-in Datadog intake accepting key on loopback;
// it closes with the test.
func startIntake(t *testing.T, key string) *fakeintake.Server {
	t.Helper()
	return startIntakeConfig(t, fakeintake.Config{APIKeys: []string{key}})
}

// startIntakeConfig starts the stand-in intake with cfg on loopback, serving
// only the series API of this run (see seriesapi_test.go); at the end of the
// test (after the agents it started later have stopped) it closes and fails
// the test if the agent posted to the other version's path.
func startIntakeConfig(t *testing.T, cfg fakeintake.Config) *fakeintake.Server {
	t.Helper()
	cfg.SeriesAPI = fakeintake.SeriesAPIFromEnv()
	in, err := fakeintake.Start("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		checkSeriesAPI(t, in)
	})
	return in
}

// serveExporter serves e on a loopback listener until the test ends and
// returns its address.
func serveExporter(t *testing.T, e *exporter.Exporter) string {
	t.Helper()
	srv, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr()
}

// requestsExporter serves the exporter of the restart tests: started an
// hour ago, http_requests_total{code="200"} at 1000 and latency_seconds
// (one bucket, 0.5) with one observation of 0.25.
func requestsExporter(t *testing.T) (e *exporter.Exporter, reqs, lat *exporter.Family, addr string) {
	t.Helper()
	e = exporter.New()
	e.SetStartTime(float64(time.Now().Add(-time.Hour).Unix()))
	reqs = e.Family("http_requests_total", exporter.Counter, "Requests.")
	lat = e.Family("latency_seconds", exporter.Histogram, "Latency.", 0.5)
	reqs.Set(`code="200"`, 1000)
	lat.Observe("", 0.25)
	return e, reqs, lat, serveExporter(t, e)
}

// waitScrapes waits until e has answered n scrapes.
func waitScrapes(t *testing.T, e *exporter.Exporter, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for e.Scrapes() < n {
		if time.Now().After(deadline) {
			t.Fatalf("exporter served %d scrapes, waited for %d", e.Scrapes(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkCounts compares, for every "metric|tag" key of want (tag may be
// empty), the sum of what the intake received for the series with the common
// tags and tag to the true increase. each, if not nil, sees every point.
func checkCounts(t *testing.T, in *fakeintake.Server, want map[string]float64, common []string, each func(metric string, p fakeintake.Point)) {
	t.Helper()
	for k, w := range want {
		metric, tags := seriesTags(k, common)
		points := in.Points(metric, tags...)
		if got := in.Sum(metric, tags...); !near(got, w) {
			t.Errorf("%s %v: intake sum %v, true increase %v (points %v)", metric, tags, got, w, values(points))
		}
		if each != nil {
			for _, p := range points {
				each(metric, p)
			}
		}
	}
}

// waitCounts waits up to 15 s until the intake has received the whole of
// want (checkCounts then reports what is missing).
func waitCounts(in *fakeintake.Server, want map[string]float64, common []string) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		all := true
		for k, w := range want {
			metric, tags := seriesTags(k, common)
			all = all && near(in.Sum(metric, tags...), w)
		}
		if all {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// seriesTags splits a "metric|tag" key and adds the common tags.
func seriesTags(k string, common []string) (string, []string) {
	metric, tag, _ := strings.Cut(k, "|")
	if tag == "" {
		return metric, common
	}
	return metric, append(slices.Clone(common), tag)
}

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want)) }

func values(ps []fakeintake.Point) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = p.Value
	}
	return out
}

// exporterPod serves e at ip (a loopback address) and creates the pod ns/name
// on node, labeled app, its container port "metrics" the exporter's, with
// ip as its pod IP.
func exporterPod(t *testing.T, cp *controlplane.ControlPlane, e *exporter.Exporter, ns, name, app, node string, ip netip.Addr) {
	t.Helper()
	srv, err := e.Listen(ip.String() + ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	_, port, _ := strings.Cut(srv.Addr(), ":")
	n, _ := strconv.Atoi(port)
	pod := controlplane.Pod(ns, name, node, map[string]string{"app": app},
		corev1.ContainerPort{Name: "metrics", ContainerPort: int32(n), Protocol: corev1.ProtocolTCP})
	if _, err := cp.CreatePod(t.Context(), pod, controlplane.PodStatus{IP: ip}); err != nil {
		t.Fatal(err)
	}
}

// runInProcess runs the agent in this process with args and env as its
// environment (plus this run's DD_USE_V3_API_SERIES_ENABLED, agentGetenv), logging warnings to the test, and returns its endpoint's
// address and a stop that cancels it and reports a failed exit (also run
// at cleanup).
func runInProcess(t *testing.T, env map[string]string, args ...string) (addr string, stop func()) {
	t.Helper()
	c, err := parseConfig(args, agentGetenv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- run(ctx, c, io.Discard, logger, ready) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("agent exited before it was ready: %v", err)
	}
	return addr, stop
}
