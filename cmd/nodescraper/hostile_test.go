package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"maps"
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
	// Peak RSS: the 64 MiB default body limit plus the agent itself. Alone
	// the -race agent peaks at 160 MiB (three runs); under the whole -race
	// suite on 2 cores, with its collector starved, once at 180. Reading the
	// 330 MB body unbounded would pass 330 MiB, so 224 still tells the two apart.
	const budget = 224 << 20
	const key = "hostile-key-0123456789abcdef0123456"
	in := startIntake(t, key)

	e, reqs, normal := normalExporter(t)

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

	want, peak := countWhileHostile(t, e, reqs, agent, 4)
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

// normalExporter serves a normal target: one counter, its process an hour old.
func normalExporter(t *testing.T) (*exporter.Exporter, *exporter.Family, string) {
	t.Helper()
	e := exporter.New()
	e.SetStartTime(float64(time.Now().Add(-time.Hour).Unix()))
	reqs := e.Family("http_requests_total", exporter.Counter, "Requests.")
	reqs.Set(`code="200"`, 100)
	return e, reqs, serveExporter(t, e)
}

// countWhileHostile adds to the normal target's counter before each of
// rounds scrapes of it, and returns what the intake must have of it and the
// agent's peak RSS meanwhile.
func countWhileHostile(t *testing.T, e *exporter.Exporter, reqs *exporter.Family, agent *agentProc, rounds int) (map[string]float64, int64) {
	t.Helper()
	want := map[string]float64{}
	waitScrapes(t, e, 1)
	peak := int64(0)
	for i := 1; i <= rounds; i++ {
		reqs.Add(`code="200"`, float64(7*i))
		want["http_requests.count|code:200"] += float64(7 * i)
		waitScrapes(t, e, e.Scrapes()+1)
		peak = max(peak, procStatus(t, agent.pid(), "VmHWM"))
	}
	return want, peak
}

// hostileNode serves the eight hostile targets of TestHostileNode and
// returns their addresses by name.
func hostileNode(t *testing.T) map[string]string {
	t.Helper()
	text := func(w http.ResponseWriter) { w.Header().Set("Content-Type", "text/plain; version=0.0.4") }
	// slowly writes body in 1 MiB pieces, one every gap, with its length.
	slowly := func(body []byte, gap time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			text(w)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			for b := body; len(b) > 0; b = b[min(len(b), 1<<20):] {
				if _, err := w.Write(b[:min(len(b), 1<<20)]); err != nil {
					return
				}
				time.Sleep(gap)
			}
		}
	}
	line := []byte("hostile_gib_total{a=\"0123456789012345678901234567890123456789\"} 1\n")
	lines := bytes.Repeat(line, (1<<20)/len(line))
	// Sixty MiB of comments around one series: a large body that is valid.
	big := append([]byte("big_total 1\n"), bytes.Repeat([]byte("# "+strings.Repeat("p", 1021)+"\n"), 60<<10)...)
	var million []byte
	for i := range 1_000_000 {
		million = fmt.Appendf(million, "million_total{id=\"%d\"} 1\n", i)
	}
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	for range 256 {
		_, _ = zw.Write(lines) // 256 MiB uncompressed, a few hundred KB sent
	}
	_ = zw.Close()
	long := strings.Repeat("x", 100<<10)
	return map[string]string{
		// A declared GiB, streamed until the agent hangs up.
		"gib": serveHostile(t, func(w http.ResponseWriter, r *http.Request) {
			text(w)
			w.Header().Set("Content-Length", strconv.Itoa(1<<30))
			for range 1 << 10 {
				if _, err := w.Write(lines); err != nil {
					return
				}
			}
		}),
		"bomb": serveHostile(t, func(w http.ResponseWriter, r *http.Request) {
			text(w)
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(bomb.Bytes())
		}),
		"million": serveHostile(t, slowly(million, 0)),
		// Declares 63 MiB (within the body limit), then sends a byte a second.
		"drip": serveHostile(t, func(w http.ResponseWriter, r *http.Request) {
			text(w)
			w.Header().Set("Content-Length", strconv.Itoa(63<<20))
			for {
				if _, err := w.Write([]byte("#")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(time.Second):
				}
			}
		}),
		"long": serveHostile(t, func(w http.ResponseWriter, r *http.Request) {
			text(w)
			for i := range 200 {
				fmt.Fprintf(w, "long_label_total{i=\"%d\",v=\"%s\"} %d\n", i, long, i)
			}
		}),
		"big1": serveHostile(t, slowly(big, 20*time.Millisecond)),
		"big2": serveHostile(t, slowly(big, 20*time.Millisecond)),
		"big3": serveHostile(t, slowly(big, 20*time.Millisecond)),
	}
}

// TestHostileNode runs the real binary as the chart does (a 512 MiB
// container: --memory-limit at its 90%, 460 MiB) with a normal target beside
// eight hostile ones: a declared GiB, a gzip bomb, a million series, a drip
// declaring 63 MiB, 100 KB label values and three 60 MiB bodies sent over a
// second or so, so that several are in flight at once. The normal target's
// counts must stay exact and the agent's peak RSS bounded by the operator's
// settings, not by what the targets send. Before the bound on bytes in flight and the per-target
// series budget the live heap passed the Go limit: 710 and 725 MiB, past the
// container's 512 (OOM-killed in a pod). With them the live heap stays about
// 200 MiB and the peak depends on where the collector runs: 318 to 486 MiB
// in eleven runs (busy machine, 2 cores shared), the upper ones with the heap
// grown to the soft limit (twice the live heap, GOGC=100) before a
// collection: the Go limit, not what the targets send, is then what bounds
// it, as the operator set it. Under the whole -race suite on two cores the
// collector, starved of CPU, once let it reach 549 MiB: past the container's
// 512 but far from the unbounded 710. The bound asserted is what tells the
// two apart on a loaded machine.
func TestHostileNode(t *testing.T) {
	const budget = 600 << 20
	const key = "hostile-key-0123456789abcdef0123456"
	in := startIntake(t, key)
	e, reqs, normal := normalExporter(t)
	hostile := hostileNode(t)
	dir := t.TempDir()
	file := fmt.Sprintf("- targets: [%q]\n  labels: {job: normal}\n", normal)
	for _, name := range slices.Sorted(maps.Keys(hostile)) {
		extra := ""
		if name == "million" {
			// Its points (--max-series-per-target, its budget) are sent at
			// each scrape: scraped as often as the others, it would be the
			// sender's pace that the normal target's counts measure.
			extra = ", __scrape_interval__: 10s"
		}
		file += fmt.Sprintf("- targets: [%q]\n  labels: {job: %s%s}\n", hostile[name], name, extra)
	}
	targets := filepath.Join(dir, "targets.yaml")
	if err := os.WriteFile(targets, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startPlainAgent(t, "agent", []string{"DD_API_KEY=" + key},
		"--static-targets", targets, "--node-name", "node-h", "--dd-url", in.URL, "--allow-insecure-datadog-url", "--memory-limit", "460MiB",
		// The million's admitted series are sent at each of its scrapes;
		// under the whole -race suite 250k of them (an eighth of the default
		// --max-series) held the normal target's points past the wait.
		"--max-series-per-target", "20000",
		"--state-dir", filepath.Join(dir, "state"), "--scrape-interval", "3s", "--flush-interval", "200ms")

	want, peak := countWhileHostile(t, e, reqs, agent, 5)
	common := []string{"instance:" + normal, "job:normal", "host:node-h"}
	for range 4 {
		// Up to a minute: the million's admitted series are sent at each of
		// its scrapes, and the normal target's points queue behind them.
		waitCounts(in, want, common)
	}
	peak = max(peak, procStatus(t, agent.pid(), "VmHWM"))
	t.Logf("agent peak RSS %.1f MiB (budget %d MiB); targets:\n%s", float64(peak)/(1<<20), budget>>20, hostileStatus(t, agent))
	agent.stop(20 * time.Second)
	checkCounts(t, in, want, common, nil)
	if peak > budget {
		t.Errorf("agent peak RSS %d MiB, budget %d MiB", peak>>20, budget>>20)
	}
}

// hostileStatus is each target's health and last error, from the API.
func hostileStatus(t *testing.T, a *agentProc) string {
	t.Helper()
	var resp struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
				Series    int               `json:"series"`
				Refused   int               `json:"lastSeriesRefused"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+a.addr+"/api/v1/targets")), &resp); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tg := range resp.Data.ActiveTargets {
		le := tg.LastError
		if len(le) > 160 {
			le = le[:160] + "..."
		}
		fmt.Fprintf(&b, "  %-8s %-5s series %d refused %d %s\n", tg.Labels["job"], tg.Health, tg.Series, tg.Refused, le)
	}
	return b.String()
}
