package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// TestNewNamesBounded runs the real binary, with an application key so
// that HELP texts become metadata updates, against a target that exposes
// 10,000 metric names it never exposed before at each 1s scrape, for a
// minute (600,000 names), half of them counters. What the agent keeps per
// name (the appender's shapes, the metadata waiting to be sent) must follow
// the names still exposed, bounded by --metadata-max-names, not every name
// ever seen: the heap after the first 20s stays flat and under a bound.
// An absent counter's delta state stays for --series-stale-after by design
// (set to 10s here: with the default hour it grows within --max-series, 40
// bytes and an index entry a series), its name's shape not: the appender
// holds the shapes of one scrape's names. Before the bounds the heap grew
// by about 4 MiB a second.
func TestNewNamesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of scrapes")
	}
	const (
		key, appKey = "names-key-0123456789abcdef01234567", "names-app-key-0123456789abcdef0123456789"
		perScrape   = 10_000
		run         = 60 * time.Second
		heapBound   = 160 << 20 // the heap's peak in any second of the run
		growthBound = 24 << 20  // how much the late peak may pass the early one
	)
	in := startIntakeConfig(t, fakeintake.Config{APIKeys: []string{key}, AppKeys: []string{appKey}, MaxStoredSeries: 2 * perScrape})

	var scrapes atomic.Int64
	addr := serveHostile(t, func(w http.ResponseWriter, r *http.Request) {
		k := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		b := make([]byte, 0, perScrape*90)
		for i := range perScrape {
			// Half gauges, half counters: an absent counter's delta state
			// stays for --series-stale-after (1h), its name's shape not.
			typ := [2]string{"gauge", "counter"}[i%2]
			b = fmt.Appendf(b, "# HELP fresh_%d_%d A name no scrape had before.\n# TYPE fresh_%d_%d %s\nfresh_%d_%d{pod=\"p\"} %d\n", k, i, k, i, typ, k, i, i)
		}
		b = append(b, "# HELP steady_requests_total Requests.\n# TYPE steady_requests_total counter\nsteady_requests_total 1\n"...)
		_, _ = w.Write(b)
	})
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.yaml")
	if err := os.WriteFile(targets, fmt.Appendf(nil, "- targets: [%q]\n  labels: {job: fresh}\n", addr), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startPlainAgent(t, "agent", []string{"DD_API_KEY=" + key, "DD_APP_KEY=" + appKey},
		"--static-targets", targets, "--node-name", "node-n", "--dd-url", in.URL, "--allow-insecure-datadog-url",
		"--state-dir", filepath.Join(dir, "state"), "--scrape-interval", "1s", "--flush-interval", "1s", "--series-stale-after", "10s")

	deadline := time.Now().Add(15 * time.Second)
	for scrapes.Load() == 0 || !endpointUp(agent.addr) {
		if time.Now().After(deadline) {
			t.Fatal("agent neither scraping nor listening after 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The heap's peak per second (in use, sampled every 100 ms): the
	// collector's cycles make the heap a saw, whose peaks follow what is
	// live.
	start := time.Now()
	var peaks []float64
	for time.Since(start) < run {
		second := time.Now().Add(time.Second)
		peak := 0.0
		for time.Now().Before(second) {
			peak = max(peak, agent.metric("go_memstats_heap_inuse_bytes"))
			time.Sleep(100 * time.Millisecond)
		}
		peaks = append(peaks, peak)
	}
	rss := procStatus(t, agent.pid(), "VmRSS")
	early, late := 0.0, 0.0
	for i, p := range peaks {
		if i >= 10 && i < 25 {
			early = max(early, p)
		}
		if i >= len(peaks)-15 {
			late = max(late, p)
		}
	}
	t.Logf("%d scrapes (%d names); heap peak %.1f MiB in seconds 10-25, %.1f MiB in the last 15; RSS %.1f MiB", scrapes.Load(), scrapes.Load()*perScrape, early/(1<<20), late/(1<<20), float64(rss)/(1<<20))
	if n := scrapes.Load(); n < int64(run/time.Second)*3/4 {
		t.Fatalf("only %d scrapes in %s", n, run)
	}
	if late > early+growthBound || late > heapBound {
		t.Errorf("heap grew with new names: peak %.1f MiB in seconds 10-25, %.1f MiB at the end (bounds: +%d MiB, %d MiB)", early/(1<<20), late/(1<<20), growthBound>>20, heapBound>>20)
	}
	body := httpGet(t, "http://"+agent.addr+"/metrics")
	shapes, shapesEvicted := metricSample(t, body, "nodescraper_dd_metric_shapes"), metricSample(t, body, "nodescraper_dd_metric_shapes_evicted_total")
	names, namesEvicted := metricSample(t, body, "nodescraper_dd_metadata_names"), metricSample(t, body, "nodescraper_dd_metadata_evicted_total")
	t.Logf("shapes %v held, %v evicted; metadata of %v names held, %v evicted", shapes, shapesEvicted, names, namesEvicted)
	// Evicted: about all names but the last scrape's (a scrape the loaded
	// agent timed out on was served but not read).
	if n := float64(perScrape * scrapes.Load() / 2); shapes > 2*perScrape+10 || shapesEvicted < n {
		t.Errorf("shapes: %v held, %v evicted after %d scrapes of %d new names", shapes, shapesEvicted, scrapes.Load(), perScrape)
	}
	if names > 10_000 || namesEvicted < shapesEvicted-10_000 {
		t.Errorf("metadata: %v names held, %v evicted", names, namesEvicted)
	}
	if n := in.Sum("steady_requests.count"); in.Stats().Points == 0 {
		t.Errorf("no points reached the intake (steady_requests.count %v)", n)
	}
	agent.stop(20 * time.Second)
}

// endpointUp reports whether the agent's endpoint answers /healthz.
func endpointUp(addr string) bool {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
