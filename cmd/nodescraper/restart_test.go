package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestartLosesNothing runs the real binary against a test exporter and
// the stand-in intake, stops it with SIGTERM mid-stream and starts a new
// process on the same state directory, twice, with counters growing, a new
// series appearing and the target restarting while no agent runs. What the
// intake received must add up, per series, exactly to the exporter's increase
// since the first agent's first scrape.
func TestRestartLosesNothing(t *testing.T) {
	const key = "restart-key-0123456789abcdef012345"
	in := startIntake(t, key)

	e, reqs, lat, addr := requestsExporter(t)

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	targets := filepath.Join(dir, "targets.yaml")
	if err := os.WriteFile(targets, []byte(fmt.Sprintf("- targets: [%q]\n", addr)), 0o600); err != nil {
		t.Fatal(err)
	}

	// want is the true increase by "metric|tag" since the first scrape.
	want := map[string]float64{}
	add := func(code string, n float64) {
		reqs.Add(`code="`+code+`"`, n)
		want["http_requests.count|code:"+code] += n
	}
	observe := func(v float64) {
		lat.Observe("", v)
		want["latency_seconds.count|"]++
		want["latency_seconds.sum|"] += v
		if v <= 0.5 {
			want["latency_seconds.bucket|upper_bound:0.5"]++
		}
	}
	wait := func(n int) {
		t.Helper()
		waitScrapes(t, e, n)
	}

	var agents []*agentProc
	start := func() *agentProc {
		t.Helper()
		a := startAgent(t, fmt.Sprintf("agent %d", len(agents)+1), []string{"DD_API_KEY=" + key},
			"--static-targets", targets, "--node-name", "node-r", "--dd-url", in.URL, "--allow-insecure-datadog-url",
			"--state-dir", state, "--scrape-interval", "1s", "--flush-interval", "200ms",
			"--checkpoint-interval", "1s")
		agents = append(agents, a)
		return a
	}
	stop := func(a *agentProc) {
		t.Helper()
		a.stop(20 * time.Second)
	}
	step := func(i int) {
		add("200", float64(10*i))
		if i%2 == 0 {
			add("500", 1)
		}
		observe(0.1 * float64(i))
	}

	// Agent 1: the baseline, then a few scrapes.
	a := start()
	wait(1)
	for i := 1; i <= 3; i++ {
		step(i)
		wait(e.Scrapes() + 1)
	}
	// Mid-stream: these may or may not be in agent 1's last scrape.
	step(4)
	stop(a)

	// Nobody scrapes: counters grow and a new series appears.
	step(5)
	add("503", 4)
	time.Sleep(1500 * time.Millisecond) // more than a scrape interval of outage

	a = start()
	n := e.Scrapes()
	for i := 6; i <= 8; i++ {
		wait(n + 1)
		step(i)
		n = e.Scrapes()
	}
	// The target is about to restart: what it counted since the last scrape
	// the agent processed would be gone for anyone. Stop once all of it is in.
	common := []string{"instance:" + addr, "job:static", "host:node-r"}
	waitCounts(in, want, common)
	stop(a)

	// The target restarts while no agent runs; what it counts after is an increase.
	e.Restart(float64(time.Now().Unix()))
	step(9)
	add("503", 2)

	a = start()
	n = e.Scrapes()
	wait(n + 1)
	step(10)
	waitCounts(in, want, common) // the window ends with the last scrape processed
	stop(a)

	for i, agent := range agents[1:] {
		if l := agent.log(); !strings.Contains(l, `msg="delta state restored"`) {
			t.Errorf("agent %d did not restore the delta state cleanly:\n%s", i+2, l)
		}
	}
	checkCounts(t, in, want, common, nil)
	if st := in.Stats(); st.DuplicatePoints != 0 || st.RejectedTotal() != 0 {
		t.Errorf("intake: %d duplicate points, %d rejected requests (%v)", st.DuplicatePoints, st.RejectedTotal(), st.LastRejects)
	}
}
