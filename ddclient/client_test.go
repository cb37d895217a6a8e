package ddclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

const testKey = "0123456789abcdef0123456789abcdef"

// testIntake is the stand-in intake on 127.0.0.1, recording when each
// series request arrived and how it was answered.
type testIntake struct {
	*fakeintake.Intake
	URL string

	mu   sync.Mutex
	reqs []answered
}

type answered struct {
	at     time.Time
	status int
}

// statusWriter records a series request when its answer's status is
// written, before the client can read it.
type statusWriter struct {
	http.ResponseWriter
	ti *testIntake
	at time.Time
}

func (w *statusWriter) WriteHeader(code int) {
	w.ti.mu.Lock()
	w.ti.reqs = append(w.ti.reqs, answered{w.at, code})
	w.ti.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (ti *testIntake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != fakeintake.SeriesPath && r.URL.Path != fakeintake.SeriesV3Path {
		ti.Intake.ServeHTTP(w, r)
		return
	}
	ti.Intake.ServeHTTP(&statusWriter{ResponseWriter: w, ti: ti, at: time.Now()}, r)
}

// requests returns the series requests answered so far.
func (ti *testIntake) requests() []answered {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return slices.Clone(ti.reqs)
}

// newFakeIntake is a fake intake that takes testKey, with mod's changes.
func newFakeIntake(t *testing.T, mod func(*fakeintake.Config)) *fakeintake.Intake {
	t.Helper()
	cfg := fakeintake.Config{APIKeys: []string{testKey}, SeriesAPI: fakeintake.SeriesAPIFromEnv()}
	if mod != nil {
		mod(&cfg)
	}
	in, err := fakeintake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func startIntake(t *testing.T, mod func(*fakeintake.Config)) *testIntake {
	t.Helper()
	in := newFakeIntake(t, mod)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ti := &testIntake{Intake: in, URL: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: ti, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		in.Close() // ends injected hangs
		_ = srv.Close()
		<-served
	})
	return ti
}

func newTestClient(t *testing.T, url string, mod func(*Config)) *Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := Config{
		URL: url, APIKey: testKey, Mapping: Mapping{Host: "node-1"},
		FlushInterval: 20 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		RequestTimeout: 5 * time.Second, HTTPClient: &http.Client{Transport: tr}, Logger: slog.New(slog.DiscardHandler),
		SeriesV3: testV3,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs c until the returned stop is called (or the test ends).
func run(t *testing.T, c *Client) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitIntake(t *testing.T, in *testIntake, what string, timeout time.Duration, cond func(*fakeintake.Intake) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := in.WaitFor(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v; intake stats %+v", what, err, in.Stats())
	}
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for begin := time.Now(); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Since(begin) > 5*time.Second {
			t.Fatalf("waited 5s for %s", what)
		}
	}
}

func drain(t *testing.T, c *Client, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Drain(ctx)
}

// appTarget is a pod's target as the informer gives it.
func appTarget(pod string) *target.Target {
	return &target.Target{
		URL: "http://10.0.0.7:8080/metrics", Interval: 15 * time.Second,
		Labels: labels.FromStrings("job", "app", "instance", "10.0.0.7:8080", "namespace", "prod", "pod", pod),
		Discovered: labels.FromStrings(meta+"namespace", "prod", meta+"pod_name", pod,
			meta+"pod_controller_kind", "ReplicaSet", meta+"pod_controller_name", "app-5d8f9", meta+"pod_label_pod_template_hash", "5d8f9"),
	}
}

// counters is an exposition of n counter series req_total{i, pad}, each of
// value 1, pad being padBytes of hex that compresses about as badly as
// real label values do.
func counters(n, padBytes int) string {
	var b strings.Builder
	b.WriteString("# HELP req Requests.\n# TYPE req counter\n")
	for i := range n {
		pad := make([]byte, 0, padBytes+16)
		for k := 0; len(pad) < padBytes; k++ {
			pad = fmt.Appendf(pad, "%016x", xxhash.Sum64String(fmt.Sprint(i, k)))
		}
		fmt.Fprintf(&b, "req_total{i=\"%06d\",pad=\"%s\"} 1\n", i, pad[:padBytes])
	}
	return b.String()
}

// scrapeTimes returns the timestamps of n scrapes a second apart ending now.
func scrapeTimes(n int) []int64 {
	now := time.Now()
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = now.Add(-time.Duration(n-i) * time.Second).UnixMilli()
	}
	return ts
}

// mixed is an exposition with every kind of family, whose sums per metric
// mixedWant gives.
const mixed = "# TYPE http_requests counter\n" +
	`http_requests_total{code="200",path="/a\"b"} 7` + "\n" +
	`http_requests_total{code="500",path="/"} 1` + "\n" +
	"# TYPE lat histogram\n" +
	`lat_bucket{le="0.1"} 2` + "\n" + `lat_bucket{le="1"} 3` + "\n" + `lat_bucket{le="+Inf"} 4` + "\n" +
	"lat_sum 1.5\nlat_count 4\n" +
	"# TYPE rpc summary\n" + `rpc{quantile="0.5"} 0.25` + "\nrpc_sum 9\nrpc_count 30\n" +
	"# TYPE temp gauge\n" + `temp{room="lab ✓"} 21.5` + "\n"

var mixedWant = map[string]float64{
	"http_requests.count": 8, "lat.bucket": 5, "lat.sum": 1.5, "lat.count": 4,
	"rpc.quantile": 0.25, "rpc.sum": 9, "rpc.count": 30, "temp": 21.5,
}

func TestCompressions(t *testing.T) {
	for _, comp := range []string{"zstd", "gzip", "none", ""} {
		t.Run("compression="+comp, func(t *testing.T) {
			// v3 is zstd only: with another compression the client
			// sends v2 even when v3 is asked for.
			in := startIntake(t, func(cfg *fakeintake.Config) { cfg.SeriesAPI = wantSeriesAPI(comp) })
			c := newTestClient(t, in.URL, func(cfg *Config) {
				cfg.Compression = comp
				cfg.Mapping.Cardinality = OrchestratorCardinality // pod_name
			})
			s := newScraper(t, c, appTarget("app-5d8f9-x2x"), prom)
			const scrapes = 3
			for _, ts := range scrapeTimes(scrapes) {
				s.scrape(mixed, ts)
			}
			if err := drain(t, c, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			st := in.Stats()
			enc := map[string]string{"zstd": "zstd1", "": "zstd1", "gzip": "gzip", "none": "identity"}[comp]
			if st.Encodings[enc] == 0 || st.Accepted != st.Encodings[enc] || st.RejectedTotal() != 0 || st.DuplicatePoints != 0 {
				t.Fatalf("stats %+v, want every payload accepted as %s", st, enc)
			}
			if st.Points != int64(s.finite) || st.Points != 10*scrapes {
				t.Errorf("intake got %d points, %d appended", st.Points, s.finite)
			}
			for metric, want := range mixedWant {
				if got := in.Sum(metric); math.Abs(got-want*scrapes) > 1e-9 {
					t.Errorf("%s: sum %v, want %v", metric, got, want*scrapes)
				}
			}
			p, ok := in.Last("lat.bucket", "upper_bound:1", "kube_deployment:app", "pod_name:app-5d8f9-x2x", "host:node-1")
			if !ok || p.Value != 3 || p.Interval != 15 || p.Type != 1 {
				t.Errorf("lat.bucket upper_bound:1: %+v (found %v)", p, ok)
			}
			if p, ok := in.Last("http_requests.count", `path:/a"b`); !ok || p.Value != 7 {
				t.Errorf(`http_requests.count path:/a"b: %+v (found %v)`, p, ok)
			}
			set := c.Metrics()
			if got := metricValue(t, set, "nodescraper_dd_points_sent_total"); got != float64(st.Points) {
				t.Errorf("points sent metric %v, intake %d", got, st.Points)
			}
			if got := metricValue(t, set, "nodescraper_dd_payloads_sent_total"); got != float64(st.Accepted) {
				t.Errorf("payloads sent metric %v, intake %d", got, st.Accepted)
			}
			if got := metricValue(t, set, "nodescraper_dd_bytes_sent_total"); got != float64(st.CompressedBytes) {
				t.Errorf("bytes sent metric %v, intake %d", got, st.CompressedBytes)
			}
			if got := metricValue(t, set, "nodescraper_dd_bytes_uncompressed_total"); got != float64(st.UncompressedBytes) {
				t.Errorf("raw bytes metric %v, intake %d", got, st.UncompressedBytes)
			}
			if c.Dropped() != 0 || c.QueueBytes() != 0 {
				t.Errorf("dropped %d, queue %d bytes after the drain", c.Dropped(), c.QueueBytes())
			}
		})
	}
}

// wantSeriesAPI is the series API a test client with compression comp
// uses: v3 only with zstd.
func wantSeriesAPI(comp string) string {
	if testV3 && (comp == "zstd" || comp == "") {
		return fakeintake.SeriesV3
	}
	return fakeintake.SeriesV2
}

// TestPayloadSplitting lowers the intake's limits and the client's to
// match: payloads that compress past the limit are split in halves until
// they fit, and every point arrives once.
func TestPayloadSplitting(t *testing.T) {
	const raw = 100_000
	// Sealed buffers hold raw/2 = 50 kB, which compress 6:1 with zstd or
	// gzip: each compressed limit is below what a sealed buffer gives.
	for comp, compressed := range map[string]int64{"none": 8_000, "zstd": 3_000, "gzip": 3_000} {
		t.Run("compression="+comp, func(t *testing.T) {
			in := startIntake(t, func(cfg *fakeintake.Config) {
				cfg.MaxCompressedBytes, cfg.MaxUncompressedBytes = compressed, raw
				cfg.SeriesAPI = wantSeriesAPI(comp)
			})
			c := newTestClient(t, in.URL, func(cfg *Config) {
				cfg.Compression = comp
				cfg.MaxPayloadBytes, cfg.MaxRawPayloadBytes = int(compressed), raw
			})
			stop := run(t, c)
			const series, scrapes = 1500, 2
			s := newScraper(t, c, appTarget("p"), prom)
			body := counters(series, 120)
			for _, ts := range scrapeTimes(scrapes) {
				s.scrape(body, ts)
			}
			waitIntake(t, in, "every point", 20*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= series*scrapes })
			stop()
			st := in.Stats()
			t.Logf("%d payloads, %d bytes raw, %d compressed", st.Accepted, st.UncompressedBytes, st.CompressedBytes)
			if st.RejectedTotal() != 0 || c.Dropped() != 0 {
				t.Fatalf("stats %+v, client dropped %d: want no rejection", st, c.Dropped())
			}
			if got := in.Sum("req.count"); got != series*scrapes || st.Points != series*scrapes || st.DuplicatePoints != 0 {
				t.Fatalf("sum %v, %d points (%d duplicate), want %d", got, st.Points, st.DuplicatePoints, series*scrapes)
			}
			// A sealed buffer holds MaxRawPayloadBytes/2; without splitting
			// payloads would average about that, split at least in halves.
			if avg := st.UncompressedBytes / st.Accepted; avg > raw*3/8 || st.CompressedBytes/st.Accepted > compressed {
				t.Errorf("%d payloads averaging %d bytes raw, %d compressed: not split", st.Accepted, avg, st.CompressedBytes/st.Accepted)
			}
		})
	}
}

// TestRetryPolicy checks the Datadog Agent forwarder's policy per answer.
func TestRetryPolicy(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge} {
		t.Run(fmt.Sprintf("%d drops the payload", code), func(t *testing.T) {
			in := startIntake(t, nil)
			in.FailNext(1, code)
			c := newTestClient(t, in.URL, nil)
			s := newScraper(t, c, appTarget("p"), prom)
			s.scrape(counters(20, 10), time.Now().UnixMilli())
			if err := drain(t, c, 5*time.Second); err != nil {
				t.Fatalf("drain after a dropped payload: %v", err)
			}
			if st := in.Stats(); st.Points != 0 || st.Faults != 1 || len(in.requests()) != 1 {
				t.Fatalf("stats %+v, %d requests: want the payload dropped after one answer", st, len(in.requests()))
			}
			if n := dropped(t, c.Metrics(), "rejected"); n != 20 || c.Dropped() != 20 {
				t.Errorf("rejected %v, dropped %d; want 20", n, c.Dropped())
			}
			if n := metricValue(t, c.Metrics(), "nodescraper_dd_retries_total"); n != 0 {
				t.Errorf("%v retries of a payload that retrying cannot fix", n)
			}
			// The client goes on with the next payloads.
			s.scrape(counters(20, 10), time.Now().Add(time.Second).UnixMilli())
			if err := drain(t, c, 5*time.Second); err != nil || in.Sum("req.count") != 20 {
				t.Fatalf("next payload: %v, sum %v", err, in.Sum("req.count"))
			}
		})
	}

	t.Run("403 holds the points", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			in := startMemIntake(t, nil)
			in.FailNext(3, http.StatusForbidden)
			c := newMemClient(t, in, nil)
			s := newScraper(t, c, appTarget("p"), prom)
			s.scrape(counters(20, 10), time.Now().UnixMilli())
			run(t, c)
			waitIntake(t, in, "two refusals", 5*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Faults >= 2 })
			if !c.Forbidden() || c.QueueBytes() == 0 || c.Dropped() != 0 || !strings.Contains(c.LastError(), "403") {
				t.Errorf("after 403s: forbidden %v, queue %d bytes, dropped %d, last error %q", c.Forbidden(), c.QueueBytes(), c.Dropped(), c.LastError())
			}
			waitIntake(t, in, "the held points", 5*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= 20 })
			// The intake counts a payload before the client reads the answer.
			eventually(t, "the client to read the 202", func() bool { return !c.Forbidden() })
			if c.Forbidden() || c.LastError() != "" || in.Sum("req.count") != 20 {
				t.Errorf("after the key was accepted: forbidden %v, last error %q, sum %v", c.Forbidden(), c.LastError(), in.Sum("req.count"))
			}
			// A refused key waits RetryMax between tries.
			reqs := in.requests()
			for i := 1; i < 4 && i < len(reqs); i++ {
				if gap := reqs[i].at.Sub(reqs[i-1].at); gap < 50*time.Millisecond {
					t.Errorf("try %d came %v after a 403, want ≥ RetryMax (50ms)", i+1, gap)
				}
			}
		})
	})

	t.Run("wrong API key", func(t *testing.T) {
		in := startIntake(t, nil)
		c := newTestClient(t, in.URL, func(cfg *Config) { cfg.APIKey = "fedcba9876543210fedcba9876543210" })
		if err := c.Validate(context.Background()); err == nil || !c.Forbidden() {
			t.Fatalf("validate with a wrong key: %v, forbidden %v", err, c.Forbidden())
		}
		s := newScraper(t, c, appTarget("p"), prom)
		s.scrape(counters(5, 10), time.Now().UnixMilli())
		err := drain(t, c, 300*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "5 points not sent") {
			t.Fatalf("drain with a refused key: %v", err)
		}
		if st := in.Stats(); st.Points != 0 || st.Rejected[fakeintake.ReasonInvalidAPIKey] < 2 {
			t.Fatalf("stats %+v: want the key refused, and tried again", st)
		}
		if n := dropped(t, c.Metrics(), "shutdown"); n != 5 || c.Dropped() != 5 {
			t.Errorf("dropped at shutdown %v, total %d; want 5", n, c.Dropped())
		}
		good := newTestClient(t, in.URL, nil)
		if err := good.Validate(context.Background()); err != nil || good.Forbidden() {
			t.Fatalf("validate with the right key: %v", err)
		}
	})

	t.Run("5xx and 408 retried with backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			in := startMemIntake(t, nil)
			faults := []int{500, 502, 503, 504, 408}
			for _, f := range faults {
				in.FailNext(1, f)
			}
			const retryMin = 20 * time.Millisecond
			c := newMemClient(t, in, func(cfg *Config) { cfg.RetryMin, cfg.RetryMax = retryMin, time.Second })
			s := newScraper(t, c, appTarget("p"), prom)
			s.scrape(counters(10, 10), time.Now().UnixMilli())
			run(t, c)
			waitIntake(t, in, "the points", 10*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= 10 })
			if got := in.Sum("req.count"); got != 10 {
				t.Errorf("sum %v, want 10", got)
			}
			// The intake counts a payload before it writes the answer.
			eventually(t, "the last answer", func() bool { return len(in.requests()) >= len(faults)+1 })
			reqs := in.requests()
			if len(reqs) != len(faults)+1 {
				t.Fatalf("%d requests, want %d", len(reqs), len(faults)+1)
			}
			for i := 1; i < len(reqs); i++ {
				// Try i waits between half and all of RetryMin·2^(i-1).
				d := retryMin << (i - 1)
				if gap := reqs[i].at.Sub(reqs[i-1].at); gap < d/2 || gap > d {
					t.Errorf("try %d came %v after a %d, want in [%v, %v]", i+1, gap, reqs[i-1].status, d/2, d)
				}
			}
			if n := metricValue(t, c.Metrics(), "nodescraper_dd_retries_total"); n != float64(len(faults)) {
				t.Errorf("retries metric %v, want %d", n, len(faults))
			}
		})
	})

	t.Run("429 honors X-RateLimit-Reset", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			in := startMemIntake(t, nil)
			in.InjectFaults(fakeintake.Fault{Status: http.StatusTooManyRequests, RateLimitReset: time.Second})
			c := newMemClient(t, in, func(cfg *Config) { cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 5*time.Second })
			s := newScraper(t, c, appTarget("p"), prom)
			s.scrape(counters(10, 10), time.Now().UnixMilli())
			run(t, c)
			waitIntake(t, in, "the points", 10*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= 10 })
			eventually(t, "the last answer", func() bool { return len(in.requests()) >= 2 })
			reqs := in.requests()
			if len(reqs) != 2 || reqs[0].status != http.StatusTooManyRequests {
				t.Fatalf("requests %+v", reqs)
			}
			// The backoff alone would wait 5-10ms.
			if gap := reqs[1].at.Sub(reqs[0].at); gap != time.Second {
				t.Errorf("retried %v after a 429 with a 1 s reset", gap)
			}
		})
	})

	t.Run("transport errors retried", func(t *testing.T) {
		in := startIntake(t, nil)
		in.HangNext(2, fakeintake.HangForever)
		c := newTestClient(t, in.URL, func(cfg *Config) { cfg.RequestTimeout = 100 * time.Millisecond })
		s := newScraper(t, c, appTarget("p"), prom)
		s.scrape(counters(10, 10), time.Now().UnixMilli())
		run(t, c)
		waitIntake(t, in, "the points", 10*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= 10 })
		if n := metricValue(t, c.Metrics(), "nodescraper_dd_retries_total"); n != 2 || in.Sum("req.count") != 10 {
			t.Errorf("retries %v, sum %v; want 2 and 10", n, in.Sum("req.count"))
		}
	})
}

// TestQueueBoundDuringOutage fills the queue while the intake fails: memory
// stays within the bound, the oldest points are dropped and counted, and
// after the outage every point is either received or counted as dropped.
func TestQueueBoundDuringOutage(t *testing.T) {
	in := startIntake(t, nil)
	in.FailNext(100_000, http.StatusServiceUnavailable)
	const bound, rawMax = 8_000, 4_000
	c := newTestClient(t, in.URL, func(cfg *Config) {
		cfg.MaxQueueBytes = bound
		cfg.Compression = sizeCompression()
		cfg.MaxRawPayloadBytes = rawMax
	})
	stop := run(t, c)
	s := newScraper(t, c, appTarget("p"), prom)
	const rounds = 40
	perRound := int64(v3Scaled(10))
	body := counters(int(perRound), 40)
	for _, ts := range scrapeTimes(rounds) {
		s.scrape(body, ts)
		time.Sleep(3 * time.Millisecond)
		// The queue may pass the bound by the payload being posted.
		if q := c.QueueBytes(); q > bound+rawMax {
			t.Fatalf("queue holds %d bytes, bound %d", q, bound)
		}
		if g := metricValue(t, c.Metrics(), "nodescraper_dd_queue_bytes"); g > bound+rawMax {
			t.Fatalf("queue bytes gauge %v, bound %d", g, bound)
		}
	}
	stop()
	if dropped(t, c.Metrics(), "queue_full") == 0 {
		t.Fatal("nothing dropped although the queue overflowed")
	}
	// Stopping Run may have cancelled a post the intake has yet to handle;
	// were it handled after the outage, the intake would accept a payload
	// the client counts as failed. Let the intake answer every try first.
	tries := int64(metricValue(t, c.Metrics(), "nodescraper_dd_retries_total"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = in.WaitFor(ctx, func(in *fakeintake.Intake) bool { return in.Stats().Faults >= tries })
	cancel()
	in.ClearFaults()
	if err := drain(t, c, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	full := dropped(t, c.Metrics(), "queue_full") // the drain seals the last buffer: the queue may overflow again
	st := in.Stats()
	received := st.Points
	var reasons []string
	for _, r := range []string{"queue_full", "rejected", "too_old", "shutdown", "invalid_value", "oversized"} {
		reasons = append(reasons, fmt.Sprintf("%s=%v", r, dropped(t, c.Metrics(), r)))
	}
	if received == 0 || received+c.Dropped() != rounds*perRound || int64(s.finite) != rounds*perRound {
		t.Fatalf("received %d + dropped %d (%s) = %d, want %d; %v tries, intake %+v", received, c.Dropped(), strings.Join(reasons, " "),
			received+c.Dropped(), rounds*perRound, tries, st)
	}
	if float64(c.Dropped()) != full || int64(in.Sum("req.count")) != st.Points {
		t.Errorf("dropped %d (%s); sum %v; intake %+v", c.Dropped(), strings.Join(reasons, " "), in.Sum("req.count"), in.Stats())
	}
	// The newest points survived, the oldest went.
	pts := in.Points("req.count")
	last := scrapeTimes(1)[0] / 1000
	if newest := slices.MaxFunc(pts, func(a, b fakeintake.Point) int { return int(a.Timestamp - b.Timestamp) }); newest.Timestamp < last-2 {
		t.Errorf("newest point received at %d, the last scrape was at %d", newest.Timestamp, last)
	}
}

// TestNaNInfCountedAsDropped: JSON cannot carry them.
func TestNaNInfCountedAsDropped(t *testing.T) {
	in := startIntake(t, nil)
	c := newTestClient(t, in.URL, nil)
	s := newScraper(t, c, appTarget("p"), prom)
	body := "# TYPE g gauge\ng{i=\"1\"} NaN\ng{i=\"2\"} +Inf\ng{i=\"3\"} -Inf\ng{i=\"4\"} 4\n# TYPE c counter\nc_total 2\n"
	s.scrape(body, time.Now().UnixMilli())
	if err := drain(t, c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st := in.Stats()
	if st.Points != 2 || in.Sum("g") != 4 || in.Sum("c.count") != 2 || st.RejectedTotal() != 0 {
		t.Errorf("stats %+v, g sum %v", st, in.Sum("g"))
	}
	if n := dropped(t, c.Metrics(), "invalid_value"); n != 3 || c.Dropped() != 3 || st.Points+c.Dropped() != int64(s.appended) {
		t.Errorf("invalid values %v, dropped %d, appended %d", n, c.Dropped(), s.appended)
	}
}

func TestTooOldPointsDropped(t *testing.T) {
	in := startIntake(t, nil)
	c := newTestClient(t, in.URL, nil)
	s := newScraper(t, c, appTarget("p"), prom)
	s.scrape("old 1\n", time.Now().Add(-2*time.Hour).UnixMilli())
	if err := drain(t, c, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := in.Stats(); st.Accepted+st.RejectedTotal() != 0 {
		t.Fatalf("a too-old payload was sent: %+v", st)
	}
	if n := dropped(t, c.Metrics(), "too_old"); n != 1 || c.Dropped() != 1 {
		t.Errorf("too old %v, dropped %d; want 1", n, c.Dropped())
	}
}

// TestDrainAtShutdown checks that Drain sends what the scrapes gathered but
// no flush sealed yet, and that what cannot be sent before its deadline is
// counted.
func TestDrainAtShutdown(t *testing.T) {
	t.Run("sends the open buffers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			in := startMemIntake(t, nil)
			c := newMemClient(t, in, func(cfg *Config) { cfg.FlushInterval = time.Hour })
			stop := run(t, c)
			s := newScraper(t, c, appTarget("p"), prom)
			for _, ts := range scrapeTimes(3) {
				s.scrape(mixed, ts)
			}
			time.Sleep(50 * time.Millisecond)
			synctest.Wait()
			if st := in.Stats(); st.Accepted != 0 || c.QueueBytes() == 0 {
				t.Fatalf("sent %+v before the flush interval; %d bytes counted as waiting", st, c.QueueBytes())
			}
			stop()
			if err := drain(t, c, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if st := in.Stats(); st.Points != int64(s.finite) || st.Points == 0 || st.Accepted != 1 {
				t.Errorf("stats %+v, want %d points in one payload", st, s.finite)
			}
			for metric, want := range mixedWant {
				if got := in.Sum(metric); math.Abs(got-3*want) > 1e-9 {
					t.Errorf("%s: %v, want %v", metric, got, 3*want)
				}
			}
		})
	})
	t.Run("counts what the deadline leaves", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			in := startMemIntake(t, nil)
			in.FailNext(100_000, http.StatusServiceUnavailable)
			c := newMemClient(t, in, func(cfg *Config) { cfg.FlushInterval = time.Hour })
			s := newScraper(t, c, appTarget("p"), prom)
			for _, ts := range scrapeTimes(2) {
				s.scrape(counters(30, 10), ts)
			}
			begin := time.Now()
			err := drain(t, c, 300*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), "60 points not sent") {
				t.Fatalf("drain during an outage: %v", err)
			}
			if d := time.Since(begin); d != 300*time.Millisecond {
				t.Errorf("drain took %v, its deadline is 300ms", d)
			}
			if n := dropped(t, c.Metrics(), "shutdown"); n != 60 || c.Dropped()+in.Stats().Points != 60 || c.QueueBytes() != 0 {
				t.Errorf("dropped at shutdown %v, total %d, received %d, queue %d", n, c.Dropped(), in.Stats().Points, c.QueueBytes())
			}
		})
	})
}

// TestConcurrentAppenders has several targets scrape at once into one
// client: their appenders share its buffers and compress from their own
// goroutines.
func TestConcurrentAppenders(t *testing.T) {
	in := startIntake(t, nil)
	c := newTestClient(t, in.URL, func(cfg *Config) {
		cfg.MaxRawPayloadBytes = 200_000
		// The targets differ by their pod alone: its pod label repeats
		// pod_name, which only orchestrator cardinality sends.
		cfg.Mapping.Cardinality = OrchestratorCardinality
	})
	stop := run(t, c)
	const targets, scrapes, series = 4, 5, 400
	body := counters(series, 30)
	times := scrapeTimes(scrapes)
	var wg sync.WaitGroup
	for i := range targets {
		s := newScraper(t, c, appTarget(fmt.Sprintf("p-%d", i)), prom)
		wg.Go(func() {
			for _, ts := range times {
				s.scrape(body, ts)
			}
		})
	}
	wg.Wait()
	waitIntake(t, in, "every point", 20*time.Second, func(in *fakeintake.Intake) bool { return in.Stats().Points >= targets*scrapes*series })
	stop()
	st := in.Stats()
	if st.Points != targets*scrapes*series || st.DuplicatePoints != 0 || st.RejectedTotal() != 0 || c.Dropped() != 0 {
		t.Fatalf("stats %+v, dropped %d", st, c.Dropped())
	}
	for i := range targets {
		if got := in.Sum("req.count", fmt.Sprintf("pod_name:p-%d", i)); got != scrapes*series {
			t.Errorf("target %d: sum %v, want %d", i, got, scrapes*series)
		}
	}
}

func TestNewConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{APIKey: "k"}, {URL: "http://x"}, {URL: "http://x", APIKey: "k", Compression: "lz4"}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestValidate checks the API key check at start.
func TestValidate(t *testing.T) {
	in := startIntake(t, nil)
	if err := newTestClient(t, in.URL, nil).Validate(context.Background()); err != nil {
		t.Errorf("right key: %v", err)
	}
	c := newTestClient(t, "http://127.0.0.1:1", nil)
	if err := c.Validate(context.Background()); err == nil || c.Forbidden() {
		t.Errorf("unreachable intake: %v, forbidden %v", err, c.Forbidden())
	}
	var opErr *net.OpError
	if err := c.Validate(context.Background()); !errors.As(err, &opErr) {
		t.Errorf("unreachable intake: %v is not a network error", err)
	}
}

// TestAPIKeyNotRedirected: a Datadog URL that redirects (here from
// 127.0.0.1 to a listener on 127.0.0.2, for every method and code a client
// could follow) never gets the API key sent to the other host; the points
// are held and reach the intake once the URL answers again.
func TestAPIKeyNotRedirected(t *testing.T) {
	var leaked atomic.Int64
	other := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("DD-API-KEY") != "" {
			leaked.Add(1)
		}
		w.WriteHeader(http.StatusAccepted)
	})}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = other.Serve(ln) }()
	t.Cleanup(func() { _ = other.Close() })
	in := startIntake(t, nil)
	var redirected atomic.Int64
	redirecting := atomic.Bool{}
	redirecting.Store(true)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirecting.Load() {
			codes := []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect}
			http.Redirect(w, r, "http://"+ln.Addr().String()+r.URL.Path, codes[redirected.Add(1)%int64(len(codes))])
			return
		}
		in.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c := newTestClient(t, front.URL, nil)
	run(t, c)
	s := newScraper(t, c, appTarget("p"), prom)
	s.scrape("# TYPE c counter\nc_total 2\n", time.Now().UnixMilli())
	for begin := time.Now(); redirected.Load() < 8 && leaked.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Since(begin) > 10*time.Second {
			t.Fatalf("%d redirects answered, waited for 8", redirected.Load())
		}
	}
	if n := leaked.Load(); n != 0 {
		t.Fatalf("the API key reached the redirect's host %d times", n)
	}
	redirecting.Store(false)
	waitIntake(t, in, "the held point", 10*time.Second, func(i *fakeintake.Intake) bool { return i.Sum("c.count") == 2 })
}
