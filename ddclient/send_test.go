package ddclient

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// concurrencyIntake wraps the test intake, holding each series request for
// delay and recording how many were in flight at most.
type concurrencyIntake struct {
	*testIntake
	delay     time.Duration
	now, peak atomic.Int32
}

// v3Scaled is n points, or 20 times as many on the v3 wire, whose payloads
// are about 20 times smaller: enough to pass a test's byte bounds.
func v3Scaled(n int) int {
	if testV3 {
		return 20 * n
	}
	return n
}

func (ci *concurrencyIntake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == fakeintake.SeriesPath || r.URL.Path == fakeintake.SeriesV3Path {
		n := ci.now.Add(1)
		defer ci.now.Add(-1)
		for p := ci.peak.Load(); n > p && !ci.peak.CompareAndSwap(p, n); p = ci.peak.Load() {
		}
		time.Sleep(ci.delay)
	}
	ci.testIntake.ServeHTTP(w, r)
}

// TestSendConcurrency: with a slow intake (a cluster's round trip to
// Datadog) payloads are posted SendConcurrency at a time, never more, and
// all of them arrive once. The bubble's clock makes the durations exact.
func TestSendConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := startMemIntake(t, nil)
		ci := &concurrencyIntake{testIntake: base, delay: 150 * time.Millisecond}
		const workers = 4
		c := newMemClient(t, ci, func(cfg *Config) {
			cfg.SendConcurrency = workers
			cfg.Compression = sizeCompression()
			cfg.MaxRawPayloadBytes = 4_000 // one payload per few points
		})
		stop := run(t, c)
		s := newScraper(t, c, appTarget("p"), prom)
		const rounds, perRound = 6, 40
		for _, ts := range scrapeTimes(rounds) {
			s.scrape(counters(int(perRound), 40), ts)
		}
		s.app.Commit()
		begin := time.Now()
		waitIntake(t, base, "every point", 20*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= rounds*perRound })
		took := time.Since(begin)
		stop()
		st := base.Stats()
		t.Logf("%d payloads in %s, at most %d in flight", st.Accepted, took, ci.peak.Load())
		if p := ci.peak.Load(); p != workers {
			t.Errorf("at most %d POSTs in flight, want %d", p, workers)
		}
		if st.Accepted < 2*workers {
			t.Fatalf("only %d payloads: the test does not exercise concurrency", st.Accepted)
		}
		// SendConcurrency at a time: no faster than a delay per batch of
		// workers, and well under one at a time.
		serial := time.Duration(st.Accepted) * ci.delay
		least := time.Duration((st.Accepted+workers-1)/workers) * ci.delay
		if took < least || took > serial*3/4 {
			t.Errorf("%d payloads took %s, want in [%s, %s]; one at a time takes %s", st.Accepted, took, least, serial*3/4, serial)
		}
		if st.Points != rounds*perRound || st.DuplicatePoints != 0 || c.Dropped() != 0 {
			t.Errorf("stats %+v, dropped %d", st, c.Dropped())
		}
	})
}

func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// TestSpoolThroughOutage: while Datadog fails, payloads go to the spool
// rather than memory; when it is back the spool is sent, oldest first,
// nothing lost or twice, and its files are gone.
func TestSpoolThroughOutage(t *testing.T) {
	in := startIntake(t, nil)
	in.FailNext(100_000, http.StatusServiceUnavailable)
	const bound = 64 << 10
	c := newTestClient(t, in.URL, func(cfg *Config) {
		cfg.MaxQueueBytes = bound
		cfg.Compression = sizeCompression()
		cfg.MaxRawPayloadBytes = 4_000
	})
	dir := filepath.Join(t.TempDir(), "spool")
	if err := c.OpenSpool(dir); err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	s := newScraper(t, c, appTarget("p"), prom)
	const rounds, perRound = 40, 10
	for _, ts := range scrapeTimes(rounds) {
		s.scrape(counters(int(perRound), 40), ts)
		time.Sleep(2 * time.Millisecond)
		if q := c.QueueBytes(); q > bound {
			t.Fatalf("%d bytes in memory, bound %d", q, bound)
		}
	}
	s.app.Commit()
	eventually(t, "points in the spool", func() bool { return c.SpoolPoints() > rounds*perRound/2 })
	if files, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(files) == 0 {
		t.Fatal("no spool segment on disk")
	}
	in.ClearFaults()
	waitIntake(t, in, "every point", 20*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= rounds*perRound })
	eventually(t, "the spool emptied", func() bool { return c.SpoolPoints() == 0 })
	stop()
	if err := drain(t, c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st := in.Stats()
	if st.Points != rounds*perRound || st.DuplicatePoints != 0 || c.Dropped() != 0 {
		t.Fatalf("stats %+v, dropped %d; want %d points once", st, c.Dropped(), rounds*perRound)
	}
	if n := metricValue(t, c.Metrics(), "nodescraper_dd_points_replayed_total"); n == 0 {
		t.Error("nothing counted as replayed")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(files) != 0 {
		t.Errorf("segments left: %v", files)
	}
}

// TestDrainSpoolsForNextStart: Drain during an outage returns at once with
// everything in the spool; the next client on the directory sends it.
func TestDrainSpoolsForNextStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	synctest.Test(t, func(t *testing.T) {
		in := startMemIntake(t, nil)
		in.FailNext(100_000, http.StatusServiceUnavailable)
		c := newMemClient(t, in, nil)
		if err := c.OpenSpool(dir); err != nil {
			t.Fatal(err)
		}
		stop := run(t, c)
		s := newScraper(t, c, appTarget("p"), prom)
		for _, ts := range scrapeTimes(5) {
			s.scrape(mixed, ts)
		}
		s.app.Commit()
		eventually(t, "a failed POST", func() bool { return in.Stats().Faults > 0 })
		stop()
		begin := time.Now()
		if err := drain(t, c, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		// drainRounds failed rounds, each retried within RetryMax (50ms).
		if took := time.Since(begin); took > drainRounds*50*time.Millisecond {
			t.Errorf("Drain took %s with Datadog down and a spool to write to", took)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if c.Dropped() != 0 || in.Stats().Points != 0 {
			t.Fatalf("dropped %d, intake %+v", c.Dropped(), in.Stats())
		}

		in.ClearFaults()
		next := newMemClient(t, in, nil)
		if err := next.OpenSpool(dir); err != nil {
			t.Fatal(err)
		}
		if next.SpoolPoints() != s.finite {
			t.Fatalf("the next client finds %d points in the spool, want %d", next.SpoolPoints(), s.finite)
		}
		stopNext := run(t, next)
		waitIntake(t, in, "the spooled points", 10*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= int64(s.finite) })
		stopNext()
		if err := drain(t, next, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		for metric, want := range mixedWant {
			if got := in.Sum(metric); got != 5*want {
				t.Errorf("%s: %v, want %v", metric, got, 5*want)
			}
		}
		if st := in.Stats(); st.DuplicatePoints != 0 || st.Points != int64(s.finite) {
			t.Errorf("stats %+v", st)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("files left in the spool: %v", ents)
		}
	})
}

// TestDrainLetsInFlightFinish: stopping the client does not cancel a POST
// the intake is answering; Drain, run as Run returns, waits for its answer
// and sends nothing twice.
func TestDrainLetsInFlightFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := startMemIntake(t, nil)
		const hang = 400 * time.Millisecond
		in.HangNext(1, hang)
		c := newMemClient(t, in, nil)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			c.Run(ctx)
		}()
		t.Cleanup(func() { cancel(); <-ran })
		s := newScraper(t, c, appTarget("p"), prom)
		s.scrape(mixed, time.Now().UnixMilli())
		s.app.Commit()
		eventually(t, "the POST to start", func() bool { return in.PendingFaults() == 0 })
		begin := time.Now()
		cancel() // while the intake holds the POST
		if err := drain(t, c, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		<-ran
		if took := time.Since(begin); took > hang {
			t.Errorf("Drain took %s, the POST's answer came after %s", took, hang)
		}
		st := in.Stats()
		if st.Points != int64(s.finite) || st.Accepted != 1 || st.DuplicatePoints != 0 || len(in.requests()) != 1 {
			t.Errorf("stats %+v, %d requests: want the one POST answered, nothing resent", st, len(in.requests()))
		}
		if n := metricValue(t, c.Metrics(), "nodescraper_dd_retries_total"); n != 0 {
			t.Errorf("%v retries", n)
		}
	})
}

// TestSpoolPastMemoryBound: a slow but healthy Datadog lets the memory
// bound fill; the payloads past it go to the spool and still all arrive,
// once each.
func TestSpoolPastMemoryBound(t *testing.T) {
	base := startIntake(t, nil)
	ci := &concurrencyIntake{testIntake: base, delay: 100 * time.Millisecond}
	url := serve(t, &http.Server{Handler: ci, ReadHeaderTimeout: 10 * time.Second})
	const bound = 16_000
	c := newTestClient(t, url, func(cfg *Config) {
		cfg.SendConcurrency = 1
		cfg.MaxQueueBytes = bound
		cfg.Compression = sizeCompression()
		cfg.MaxRawPayloadBytes = 4_000
	})
	if err := c.OpenSpool(filepath.Join(t.TempDir(), "spool")); err != nil {
		t.Fatal(err)
	}
	stop := run(t, c)
	s := newScraper(t, c, appTarget("p"), prom)
	const rounds = 30
	perRound := int64(v3Scaled(10))
	for _, ts := range scrapeTimes(rounds) {
		s.scrape(counters(int(perRound), 40), ts)
		if q := c.QueueBytes(); q > bound {
			t.Fatalf("%d bytes in memory, bound %d", q, bound)
		}
	}
	s.app.Commit()
	waitIntake(t, base, "every point", 30*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= rounds*perRound })
	stop()
	if err := drain(t, c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	spooled := metricValue(t, c.Metrics(), "nodescraper_dd_points_spooled_total")
	if spooled == 0 {
		t.Fatal("nothing spooled although the memory bound was passed")
	}
	if st := base.Stats(); st.Points != rounds*perRound || st.DuplicatePoints != 0 || st.RejectedTotal() != 0 || c.Dropped() != 0 {
		t.Errorf("stats %+v, dropped %d", st, c.Dropped())
	}
	t.Logf("%v of %d points went through the spool", spooled, rounds*perRound)
}

// TestAPIKeyFileReadAgain: the key file holds a key Datadog refuses; the
// points are held (readiness reports it) until the file is replaced, as a
// mounted Secret is, and then sent with the new key.
func TestAPIKeyFileReadAgain(t *testing.T) {
	in := startIntake(t, nil)
	dir := t.TempDir()
	file := filepath.Join(dir, "api-key")
	const wrong = "wrong-key-0123456789abcdef01234567"
	if err := os.WriteFile(file, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, in.URL, func(cfg *Config) {
		cfg.APIKey, cfg.APIKeyFile = wrong, file
	})
	stop := run(t, c)
	s := newScraper(t, c, appTarget("p"), prom)
	s.scrape(mixed, time.Now().UnixMilli())
	s.app.Commit()
	eventually(t, "the key refused", c.Forbidden)
	if st := in.Stats(); st.Points != 0 {
		t.Fatalf("points accepted with a wrong key: %+v", st)
	}
	// The Secret is updated: a new file renamed over the old one.
	tmp := filepath.Join(dir, "api-key.new")
	if err := os.WriteFile(tmp, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	waitIntake(t, in, "the points, with the new key", 10*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= int64(s.finite) })
	eventually(t, "readiness back once the new key worked", func() bool { return !c.Forbidden() })
	stop()
	if st := in.Stats(); st.Points != int64(s.finite) || st.DuplicatePoints != 0 || c.Dropped() != 0 {
		t.Errorf("stats %+v, dropped %d", st, c.Dropped())
	}
}
