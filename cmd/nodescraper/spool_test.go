package main

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"

	"github.com/nodescraper/nodescraper/internal/exporter"
)

// outageAgent starts runs of the real binary in local mode against one
// exporter, all on one state directory, for the tests of sending through
// Datadog outages.
type outageAgent struct {
	t       *testing.T
	key     string
	intake  string
	targets string
	state   string
	extra   []string
	runs    int
}

func newOutageAgent(t *testing.T, key, intakeURL, exporterAddr string, extra ...string) *outageAgent {
	dir := t.TempDir()
	a := &outageAgent{t: t, key: key, intake: intakeURL,
		targets: filepath.Join(dir, "targets.yaml"), state: filepath.Join(dir, "state"), extra: extra}
	if err := os.WriteFile(a.targets, []byte(fmt.Sprintf("- targets: [%q]\n", exporterAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

// start runs an agent on the shared state directory.
func (a *outageAgent) start() *agentProc {
	a.t.Helper()
	a.runs++
	args := append([]string{"--static-targets", a.targets, "--node-name", "node-o", "--dd-url", a.intake, "--allow-insecure-datadog-url",
		"--state-dir", a.state, "--scrape-interval", "1s", "--flush-interval", "200ms",
		"--checkpoint-interval", "1s", "--shutdown-flush-timeout", "3s"}, a.extra...)
	return startAgent(a.t, fmt.Sprintf("agent %d", a.runs), []string{"DD_API_KEY=" + a.key}, args...)
}

// spoolFiles lists the spool's segment files.
func (a *outageAgent) spoolFiles() []string {
	files, _ := filepath.Glob(filepath.Join(a.state, "spool", "*.seg"))
	return files
}

// TestRestartDuringOutage: Datadog is down when the agent is stopped with
// SIGTERM; the unsent points go to the spool, a new agent on the same state
// directory (still in the outage) keeps scraping, and once Datadog answers
// again the intake holds exactly the true increase, no point twice.
func TestRestartDuringOutage(t *testing.T) {
	const key = "outage-key-0123456789abcdef0123456"
	in := startIntake(t, key)
	e, reqs, lat, addr := requestsExporter(t)
	want := map[string]float64{}
	step := func(i int) {
		reqs.Add(`code="200"`, float64(10*i))
		want["http_requests.count|code:200"] += float64(10 * i)
		if i%2 == 0 {
			reqs.Add(`code="500"`, 1)
			want["http_requests.count|code:500"]++
		}
		v := 0.1 * float64(i)
		lat.Observe("", v)
		want["latency_seconds.count|"]++
		want["latency_seconds.sum|"] += v
		if v <= 0.5 {
			want["latency_seconds.bucket|upper_bound:0.5"]++
		}
	}
	a := newOutageAgent(t, key, in.URL, addr)

	first := a.start()
	waitScrapes(t, e, 1)
	for i := 1; i <= 2; i++ {
		step(i)
		waitScrapes(t, e, e.Scrapes()+1)
	}
	// Datadog goes down: every POST answers 503.
	in.FailNext(1_000_000, http.StatusServiceUnavailable)
	for i := 3; i <= 5; i++ {
		step(i)
		waitScrapes(t, e, e.Scrapes()+1)
	}
	time.Sleep(300 * time.Millisecond) // the last scrape's points reach the client
	// While Datadog fails, what waits behind the payload being retried goes
	// to the spool.
	first.waitMetric("nodescraper_dd_points_spooled_total", 15*time.Second)
	took := first.stop(8 * time.Second)
	if !strings.Contains(first.log(), "spooled for the next start") {
		t.Fatalf("the stopped agent did not spool what it could not send")
	}
	if len(a.spoolFiles()) == 0 {
		t.Fatal("no spool segment left for the next agent")
	}
	t.Logf("agent 1 stopped in %s, leaving %d spool segments", took.Round(time.Millisecond), len(a.spoolFiles()))

	step(6) // while no agent runs
	second := a.start()
	n := e.Scrapes()
	waitScrapes(t, e, n+1)
	for i := 7; i <= 8; i++ {
		step(i)
		waitScrapes(t, e, e.Scrapes()+1)
	}
	// Datadog is back.
	in.ClearFaults()
	waitCounts(in, want, []string{"host:node-o"})
	checkCounts(t, in, want, []string{"host:node-o"}, nil)
	if st := in.Stats(); st.DuplicatePoints != 0 {
		t.Errorf("%d points received twice", st.DuplicatePoints)
	}
	if n := second.metric("nodescraper_dd_points_replayed_total"); n == 0 {
		t.Error("the second agent replayed nothing from the spool")
	}
	second.stop(8 * time.Second)
	if f := a.spoolFiles(); len(f) != 0 {
		t.Errorf("spool segments left after everything was sent: %v", f)
	}
}

// TestOutageSpillsToDisk: an outage longer than the memory bound holds is
// exact while the spool holds it; past the spool's bound, what is missing
// at the intake is exactly what the agent counted as dropped.
func TestOutageSpillsToDisk(t *testing.T) {
	const series = 3000
	// v3 payloads are zstd compressed (v3 requires it; with
	// --compression none the agent sends v2) and some 20 times smaller
	// than v2's uncompressed JSON: the bound of the smaller spool
	// (1 MiB, the least spool) is passed with queue names that compress
	// little and a longer outage.
	compression, outage, queue := "none", 6, func(i int) string { return fmt.Sprintf("queue-%05d-with-a-long-name-for-size", i) }
	if fakeintake.SeriesAPIFromEnv() == fakeintake.SeriesV3 {
		compression, outage = "zstd", 18
		queue = func(i int) string { return fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i), byte(i >> 8)})) }
	}
	for _, tc := range []struct {
		name      string
		spool     string
		wantDrops bool
	}{
		{"within the spool", "16MiB", false},
		{"past the spool", "1MiB", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const key = "spill-key-0123456789abcdef01234567"
			in := startIntake(t, key)
			e := exporter.New()
			work := e.Family("work_items_total", exporter.Counter, "Work.")
			for i := range series {
				work.Set(fmt.Sprintf(`queue="%s",shard="%d"`, queue(i), i%17), 0)
			}
			// Every scrape sees each counter exactly 1 higher: each point
			// sent is 1, so lost points and lost increase are one number.
			e.AddPerScrape(1)
			addr := serveExporter(t, e)
			// Uncompressed, a scrape's payload is about 0.5 MB: past the
			// memory bound at once, and a 1 MiB spool holds two.
			// Without the per-target report gauges, every point counted
			// (sent, spooled or dropped) is one of the counters' points.
			a := newOutageAgent(t, key, in.URL, addr, "--compression", compression,
				"--queue-max-bytes", "256KiB", "--spool-max-bytes", tc.spool, "--report-series=false")
			agent := a.start()
			waitScrapes(t, e, 2)
			in.FailNext(1_000_000, http.StatusServiceUnavailable)
			for range outage / 6 { // waitScrapes waits 15s at most
				waitScrapes(t, e, e.Scrapes()+6)
			}
			time.Sleep(300 * time.Millisecond)
			spooled := agent.metric("nodescraper_dd_points_spooled_total")
			if spooled == 0 {
				t.Fatal("nothing went to the spool during the outage")
			}
			in.ClearFaults()
			// The exporter now fails every scrape: no new points queue
			// behind the spool (on a loaded machine, under -race, replay
			// may trail new scrapes for long), and a failed scrape adds
			// nothing, so the truth stays exact. Two failed scrapes show the
			// agent is past the last good one; then it sends the spool.
			errs := agent.metric("nodescraper_scrape_errors_total")
			e.FailNext(1_000_000)
			deadline := time.Now().Add(90 * time.Second)
			for agent.metric("nodescraper_scrape_errors_total") < errs+2 || agent.metric("nodescraper_dd_spool_points") > 0 || agent.metric("nodescraper_dd_queue_bytes") > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the spool still holds %v points 90s after the outage", agent.metric("nodescraper_dd_spool_points"))
				}
				time.Sleep(100 * time.Millisecond)
			}
			drops := agent.metric(`nodescraper_dd_points_dropped_total{reason="spool_full"}`)
			other := agent.metric(`nodescraper_dd_points_dropped_total{reason="queue_full"}`) +
				agent.metric(`nodescraper_dd_points_dropped_total{reason="shutdown"}`)
			agent.stop(10 * time.Second)
			scrapes := e.Scrapes()                   // successful ones: a failed scrape adds nothing
			truth := float64(series * (scrapes - 1)) // the first scrape is the baseline
			got := in.Sum("work_items.count")
			t.Logf("%d scrapes: true increase %v, received %v, spooled %v points, dropped %v (spool full)", scrapes, truth, got, spooled, drops)
			if other != 0 {
				t.Errorf("%v points dropped for other reasons", other)
			}
			if tc.wantDrops != (drops > 0) {
				t.Fatalf("dropped %v points with a %s spool", drops, tc.spool)
			}
			if truth-got != drops {
				t.Errorf("missing %v of the increase, counted %v dropped points (each point is 1)", truth-got, drops)
			}
			if st := in.Stats(); st.DuplicatePoints != 0 {
				t.Errorf("%d points received twice", st.DuplicatePoints)
			}
		})
	}
}

// TestKillDuringOutage: SIGKILL while Datadog is down. What the dying agent
// spooled survives (the spool hands every record to the kernel at once); it
// loses the payload it was retrying, and the next agent's deltas restart
// from the last checkpoint, so a series may be short by that payload's
// points or counted twice for the scrapes after the checkpoint. With a 1s
// scrape and checkpoint interval both are at most two points (each point is
// 1 here) per series; the test asserts that bound and no duplicate point.
func TestKillDuringOutage(t *testing.T) {
	const key = "kill-key-0123456789abcdef012345678"
	const series = 50
	in := startIntake(t, key)
	e := exporter.New()
	work := e.Family("work_items_total", exporter.Counter, "Work.")
	for i := range series {
		work.Set(fmt.Sprintf(`queue="q%02d"`, i), 0)
	}
	e.AddPerScrape(1)
	addr := serveExporter(t, e)
	a := newOutageAgent(t, key, in.URL, addr)
	first := a.start()
	waitScrapes(t, e, 3)
	in.FailNext(1_000_000, http.StatusServiceUnavailable)
	waitScrapes(t, e, e.Scrapes()+4)
	time.Sleep(500 * time.Millisecond)
	first.waitMetric("nodescraper_dd_points_spooled_total", 15*time.Second)
	first.kill()
	spooled := len(a.spoolFiles())
	if spooled == 0 {
		t.Fatal("the killed agent left no spool")
	}
	second := a.start()
	waitScrapes(t, e, e.Scrapes()+2)
	in.ClearFaults()
	deadline := time.Now().Add(30 * time.Second)
	for second.metric("nodescraper_dd_points_replayed_total") == 0 || second.metric("nodescraper_dd_spool_points") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the spool was not sent within 30s of Datadog's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	second.stop(10 * time.Second)
	truth := float64(e.Scrapes() - 1) // per series: every scrape adds 1, the first is the baseline
	var short, over float64
	for i := range series {
		got := in.Sum("work_items.count", fmt.Sprintf("queue:q%02d", i))
		d := got - truth
		if d < -2 || d > 2 {
			t.Errorf("queue q%02d: received %v, true increase %v: off by more than two points", i, got, truth)
		}
		if d < 0 {
			short -= d
		} else {
			over += d
		}
	}
	t.Logf("%d series x true increase %v: %v short, %v counted twice in all; %d spool segments survived the kill", series, truth, short, over, spooled)
	if st := in.Stats(); st.DuplicatePoints != 0 {
		t.Errorf("%d points received twice", st.DuplicatePoints)
	}
}
