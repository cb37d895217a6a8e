package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/exporter"
)

// ddCounts renames an exporter.Flap's true increases, by `name{label="v"}`
// of counters of one label, to Datadog's "metric|tag" names.
func ddCounts(t *testing.T, want map[string]float64) map[string]float64 {
	t.Helper()
	out := make(map[string]float64, len(want))
	for k, v := range want {
		name, lbl, _ := strings.Cut(strings.TrimSuffix(k, "}"), "{")
		ln, lv, _ := strings.Cut(lbl, "=")
		uv, err := strconv.Unquote(lv)
		if err != nil || !strings.HasSuffix(name, "_total") {
			t.Fatalf("series %s: not a counter of one label", k)
		}
		out[strings.TrimSuffix(name, "_total")+".count|"+ln+":"+uv] = v
	}
	return out
}

// TestFlappingSeriesExact runs the real binary against an exporter.Flap and
// the stand-in intake: what the intake received adds up, per series, to the
// true increase exactly, with no point twice. A series missing from an
// answer keeps its delta state (--series-stale-after), so its return is a
// delta, not its whole value sent again as a new series'.
func TestFlappingSeriesExact(t *testing.T) {
	const key = "flap-key-0123456789abcdef0123456789"
	in := startIntake(t, key)
	const steps = 18
	e := exporter.NewFlap(11, steps, exporter.FlapScript())
	addr := serveHostile(t, e.ServeHTTP)

	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.yaml")
	if err := os.WriteFile(targets, []byte(fmt.Sprintf("- targets: [%q]\n", addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, "agent", []string{"DD_API_KEY=" + key},
		"--static-targets", targets, "--node-name", "node-f", "--dd-url", in.URL, "--allow-insecure-datadog-url",
		"--state-dir", filepath.Join(dir, "state"), "--scrape-interval", "1s", "--flush-interval", "200ms")

	// Every step, then the last answer again, whole, and all of it sent.
	deadline := time.Now().Add(time.Duration(steps)*time.Second + 30*time.Second)
	for {
		if served, _, _ := e.State(); served > steps+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not scrape every step in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, truth, cuts := e.State()
	want := ddCounts(t, truth)
	common := []string{"instance:" + addr, "job:static", "host:node-f"}
	waitCounts(in, want, common)
	agent.stop(20 * time.Second)
	checkCounts(t, in, want, common, nil)
	for k, w := range want {
		metric, tags := seriesTags(k, common)
		t.Logf("%s %v: true increase %v, received %v", metric, tags[len(tags)-1], w, in.Sum(metric, tags...))
	}
	if cuts == 0 {
		t.Fatal("no answer was cut")
	}
	if st := in.Stats(); st.DuplicatePoints != 0 || st.RejectedTotal() != 0 {
		t.Errorf("intake: %d duplicate points, %d rejected requests (%v)", st.DuplicatePoints, st.RejectedTotal(), st.LastRejects)
	}
}
