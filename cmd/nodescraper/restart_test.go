package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/exporter"
)

// TestRestartLosesNothing runs the real binary against a test exporter and
// the stand-in intake, stops it with SIGTERM mid-stream and starts a new
// process on the same state directory, twice, with counters growing, a new
// series appearing and the target restarting while no agent runs. What the
// intake received must add up, per series, exactly to the exporter's increase
// since the first agent's first scrape.
func TestRestartLosesNothing(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "nodescraper")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	const key = "restart-key-0123456789abcdef012345"
	in := startIntake(t, key)

	e := exporter.New()
	e.SetStartTime(float64(time.Now().Add(-time.Hour).Unix()))
	reqs := e.Family("http_requests_total", exporter.Counter, "Requests.")
	lat := e.Family("latency_seconds", exporter.Histogram, "Latency.", 0.5)
	reqs.Set(`code="200"`, 1000)
	lat.Observe("", 0.25)
	srv, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	targets := filepath.Join(dir, "targets.yaml")
	if err := os.WriteFile(targets, []byte(fmt.Sprintf("- targets: [%q]\n", srv.Addr())), 0o600); err != nil {
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

	var logs []*bytes.Buffer
	defer func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("agent %d log:\n%s", i+1, l)
			}
		}
	}()
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, "--static-targets", targets, "--node-name", "node-r", "--dd-url", in.URL,
			"--listen", "127.0.0.1:0", "--state-dir", state, "--scrape-interval", "1s", "--flush-interval", "200ms",
			"--checkpoint-interval", "1s")
		cmd.Env = []string{"DD_API_KEY=" + key}
		log := &bytes.Buffer{}
		cmd.Stderr = log
		logs = append(logs, log)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("agent exited with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("agent did not stop within 20s of SIGTERM")
		}
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
	common := []string{"instance:" + srv.Addr(), "job:static", "host:node-r"}
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

	for i, l := range logs[1:] {
		if !strings.Contains(l.String(), `msg="delta state restored"`) {
			t.Errorf("agent %d did not restore the delta state cleanly:\n%s", i+2, l)
		}
	}
	checkCounts(t, in, want, common, nil)
	if st := in.Stats(); st.DuplicatePoints != 0 || st.RejectedTotal() != 0 {
		t.Errorf("intake: %d duplicate points, %d rejected requests (%v)", st.DuplicatePoints, st.RejectedTotal(), st.LastRejects)
	}
}
