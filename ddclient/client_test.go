package ddclient_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/nodescraper/nodescraper/ddclient/intake"
)

const key = "test-key-0123456789abcdef0123456789"

func start(t *testing.T, mod func(*intake.Config)) *intake.Server {
	t.Helper()
	cfg := intake.Config{APIKeys: []string{key}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := intake.Start("", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newClient(t *testing.T, url string, mod func(*ddclient.Config)) *ddclient.Client {
	t.Helper()
	cfg := ddclient.Config{URL: url, APIKey: key, FlushInterval: 20 * time.Millisecond,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := ddclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// submit sends n count points of one series per timestamp, each with value 1.
func submit(c *ddclient.Client, series, n int) {
	now := time.Now().Unix()
	var b ddclient.Batch
	for s := 0; s < series; s++ {
		sr := ddclient.NewSeries(ddclient.Desc{Metric: "test.count", Type: ddclient.Count, Interval: 10, Host: "n1",
			Tags: []string{fmt.Sprintf("series:%06d", s), "padding:" + fmt.Sprintf("%040d", s*7919)}})
		for i := 0; i < n; i++ {
			b.Add(sr, now-int64(i), 1)
		}
	}
	c.Submit(&b)
}

func runFor(t *testing.T, c *ddclient.Client, in *intake.Server, want int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	err := in.WaitFor(wctx, func(in *intake.Intake) bool { return in.Stats().Points >= want })
	cancel()
	<-done
	if err != nil {
		t.Fatalf("intake got %d points, want %d: %v (stats %+v)", in.Stats().Points, want, err, in.Stats())
	}
}

func TestCompressions(t *testing.T) {
	for _, comp := range []string{"zstd", "gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			in := start(t, nil)
			c := newClient(t, in.URL, func(cfg *ddclient.Config) { cfg.Compression = comp })
			submit(c, 50, 3)
			runFor(t, c, in, 150)
			if got := in.Sum("test.count"); got != 150 {
				t.Fatalf("sum %v, want 150", got)
			}
			enc := map[string]string{"zstd": "zstd1", "gzip": "gzip", "none": "identity"}[comp]
			if st := in.Stats(); st.Encodings[enc] == 0 || len(st.Rejected) != 0 {
				t.Fatalf("stats %+v, want payloads encoded %s", st, enc)
			}
		})
	}
}

// TestPayloadSplitting sends more than one payload's worth, with the intake's
// limits lowered, and checks every payload was accepted.
func TestPayloadSplitting(t *testing.T) {
	const compressed, raw = 20_000, 100_000
	in := start(t, func(cfg *intake.Config) { cfg.MaxCompressedBytes, cfg.MaxUncompressedBytes = compressed, raw })
	c := newClient(t, in.URL, func(cfg *ddclient.Config) { cfg.MaxPayloadBytes, cfg.MaxRawPayloadBytes = compressed, raw })
	submit(c, 3000, 2)
	runFor(t, c, in, 6000)
	st := in.Stats()
	if len(st.Rejected) != 0 || st.Accepted < 6 {
		t.Fatalf("stats %+v: want ≥6 accepted payloads and no rejection", st)
	}
	if got := in.Sum("test.count"); got != 6000 {
		t.Fatalf("sum %v, want 6000", got)
	}
}

func TestRetries(t *testing.T) {
	cases := []struct {
		name   string
		faults []int
		want   int64 // points that must arrive
	}{
		{"5xx and timeouts are retried", []int{500, 503, 408}, 10},
		{"429 is retried", []int{429, 429}, 10},
		{"400 drops the payload", []int{400}, 0},
		{"413 drops the payload", []int{413}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := start(t, nil)
			for _, f := range c.faults {
				in.FailNext(1, f)
			}
			cl := newClient(t, in.URL, nil)
			submit(cl, 10, 1)
			if c.want > 0 {
				runFor(t, cl, in, c.want)
				if in.Sum("test.count") != float64(c.want) {
					t.Fatalf("sum %v", in.Sum("test.count"))
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := cl.Drain(ctx); err != nil {
				t.Fatalf("drain after a dropped payload: %v", err)
			}
			if st := in.Stats(); st.Points != 0 || st.Faults != 1 {
				t.Fatalf("stats %+v: want the payload dropped after one answer", st)
			}
		})
	}
}

func TestForbiddenKeyHoldsPoints(t *testing.T) {
	in := start(t, nil)
	c := newClient(t, in.URL, func(cfg *ddclient.Config) { cfg.APIKey = "wrong-key-0123456789abcdef01234567" })
	if err := c.Validate(context.Background()); err == nil || !c.Forbidden() {
		t.Fatalf("validate with a wrong key: %v, forbidden %v", err, c.Forbidden())
	}
	submit(c, 5, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Drain(ctx); err == nil {
		t.Fatal("drain with a refused key reported success")
	}
	if st := in.Stats(); st.Points != 0 || st.Rejected[intake.ReasonInvalidAPIKey] == 0 {
		t.Fatalf("stats %+v", st)
	}
	good := newClient(t, in.URL, nil)
	if err := good.Validate(context.Background()); err != nil || good.Forbidden() {
		t.Fatalf("validate with the right key: %v", err)
	}
}

func TestTooOldPointsDropped(t *testing.T) {
	in := start(t, nil)
	c := newClient(t, in.URL, nil)
	var b ddclient.Batch
	s := ddclient.NewSeries(ddclient.Desc{Metric: "old", Type: ddclient.Gauge})
	b.Add(s, time.Now().Add(-2*time.Hour).Unix(), 1)
	c.Submit(&b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if st := in.Stats(); st.Accepted+int64(len(st.Rejected)) != 0 {
		t.Fatalf("a too-old payload was sent: %+v", st)
	}
}

// TestQueueBoundDuringOutage fills the queue while the intake fails: memory
// stays within the bound, the oldest points are dropped and counted, and after
// the outage every point is either received or counted as dropped.
func TestQueueBoundDuringOutage(t *testing.T) {
	in := start(t, nil)
	in.FailNext(1_000_000, 503)
	const bound = 8_000
	c := newClient(t, in.URL, func(cfg *ddclient.Config) {
		cfg.MaxQueueBytes = bound
		cfg.Compression = "none"
		cfg.MaxRawPayloadBytes = 4 * 3_000
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	const rounds, perRound = 40, 10
	for i := 0; i < rounds; i++ {
		submit(c, perRound, 1)
		time.Sleep(5 * time.Millisecond)
		if q := c.QueueBytes(); q > bound+3_000 {
			t.Fatalf("queue holds %d bytes, bound %d", q, bound)
		}
	}
	cancel()
	<-done
	if c.Dropped() == 0 {
		t.Fatal("nothing dropped although the queue overflowed")
	}
	in.ClearFaults()
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if err := c.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	if got := int64(in.Sum("test.count")) + c.Dropped(); got != rounds*perRound {
		t.Fatalf("received %v + dropped %d = %d, want %d", in.Sum("test.count"), c.Dropped(), got, rounds*perRound)
	}
}
