package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/exporter"
)

// serveHostile serves h on a loopback listener until the test ends.
func serveHostile(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// procStatus returns a field of /proc/<pid>/status in bytes (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestHostileTargets runs the real binary with its default limits against a
// normal target and two hostile ones: one exposing five million series (about
// 330 MB per scrape) and one whose series carry a 1 MB label value. The
// agent's peak RSS must stay within the budget set here, each refusal must be
// reported with its target and reason, and the normal target's counts must
// stay exact.
func TestHostileTargets(t *testing.T) {
	const budget = 176 << 20 // peak RSS: the 64 MiB default body limit plus the agent itself
	const key = "hostile-key-0123456789abcdef0123456"
	in := startIntake(t, key)

	e := exporter.New()
	e.SetStartTime(float64(time.Now().Add(-time.Hour).Unix()))
	reqs := e.Family("http_requests_total", exporter.Counter, "Requests.")
	reqs.Set(`code="200"`, 100)
	normal := serveExporter(t, e)

	// Five million distinct series, written as they are read: one
	// pre-rendered block of 10,000 lines whose three-digit block field is
	// patched for each of 500 blocks, so that even a race-instrumented test
	// writes faster than the agent reads. The agent stops at its body limit.
	var block []byte
	var at []int // offsets of the block field
	for i := range 10_000 {
		block = append(block, `hostile_series_total{id="`...)
		at = append(at, len(block))
		block = fmt.Appendf(block, "000-%d\",pod=\"hostile-pod-with-a-long-name-%d\"} %d\n", i, i%1000, i)
	}
	huge := serveHostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE hostile_series_total counter")
		b := slices.Clone(block)
		for k := range 500 {
			for _, o := range at {
				b[o], b[o+1], b[o+2] = byte('0'+k/100), byte('0'+k/10%10), byte('0'+k%10)
			}
			if _, err := w.Write(b); err != nil {
				return // the agent hung up at its limit
			}
		}
	})
	long := strings.Repeat("x", 1<<20)
	longLabel := serveHostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for i := range 20 {
			fmt.Fprintf(w, "long_label_total{i=\"%d\",v=\"%s\"} %d\n", i, long, i)
		}
	})

	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.yaml")
	file := fmt.Sprintf("- targets: [%q]\n  labels: {job: normal}\n- targets: [%q]\n  labels: {job: huge}\n- targets: [%q]\n  labels: {job: long}\n",
		normal, huge, longLabel)
	if err := os.WriteFile(targets, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startPlainAgent(t, "agent", []string{"DD_API_KEY=" + key},
		"--static-targets", targets, "--node-name", "node-h", "--dd-url", in.URL, "--allow-insecure-datadog-url",
		"--state-dir", filepath.Join(dir, "state"), "--scrape-interval", "3s", "--flush-interval", "200ms")

	want := map[string]float64{}
	waitScrapes(t, e, 1)
	peak := int64(0)
	for i := 1; i <= 4; i++ {
		reqs.Add(`code="200"`, float64(7*i))
		want["http_requests.count|code:200"] += float64(7 * i)
		waitScrapes(t, e, e.Scrapes()+1)
		peak = max(peak, procStatus(t, agent.pid(), "VmHWM"))
	}
	common := []string{"instance:" + normal, "job:normal", "host:node-h"}
	waitCounts(in, want, common)
	peak = max(peak, procStatus(t, agent.pid(), "VmHWM"))
	agent.stop(20 * time.Second)
	checkCounts(t, in, want, common, nil)
	t.Logf("agent peak RSS %.1f MiB (budget %d MiB)", float64(peak)/(1<<20), budget>>20)
	if peak > budget {
		t.Errorf("agent peak RSS %d MiB, budget %d MiB", peak>>20, budget>>20)
	}
	logs := agent.log()
	for _, w := range []string{
		"http://" + huge + "/metrics", "body larger than 67108864 bytes: body size limit exceeded",
		"http://" + longLabel + "/metrics", "value of 1048576 bytes, limit 4096: label value length limit exceeded",
	} {
		if !strings.Contains(logs, w) {
			t.Errorf("agent log lacks %q", w)
		}
	}
	if n := in.Sum("hostile_series.count"); n != 0 {
		t.Errorf("intake got hostile_series points summing to %v", n)
	}
	if st := in.Stats(); st.RejectedTotal() != 0 {
		t.Errorf("intake rejected %d requests: %v", st.RejectedTotal(), st.LastRejects)
	}
}
