package scrapeloop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
)

// TestByteBudgetWaitsThenTimesOut: a request the free bytes cannot serve
// waits, in arrival order, and gets its bytes once they are released; one
// whose bytes are not released within its deadline fails with the bound's
// reason, counted, and holds nothing.
func TestByteBudgetWaitsThenTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newByteBudget(1000, metrics.NewSet())
		ctx := context.Background()
		if err := b.acquire(ctx, 800, 0, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		var order []int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, n := range []int64{300, 100} { // the second fits now, but waits its turn
			wg.Go(func() {
				if err := b.acquire(ctx, n, 0, time.Now().Add(10*time.Second)); err != nil {
					t.Errorf("waiter %d: %v", i, err)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			})
			synctest.Wait()
		}
		if len(order) != 0 || b.waits.Get() != 2 {
			// The second fits the free bytes but does not pass the first.
			t.Fatalf("granted %v, waits %d: want both waiting", order, b.waits.Get())
		}
		time.Sleep(5 * time.Second)
		b.release(800)
		wg.Wait()
		if len(order) != 2 || b.held() != 400 {
			t.Fatalf("granted %v, used %d; want both and 400", order, b.held())
		}

		// Nobody releases: the waiter fails at its deadline.
		start := time.Now()
		err := b.acquire(ctx, 700, 0, start.Add(3*time.Second))
		if !errors.Is(err, errBytesInFlight) || !strings.Contains(err.Error(), "--max-bytes-in-flight") {
			t.Fatalf("acquire past the deadline: %v, want the bound's reason", err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("failed after %s, want at its deadline, 3s", waited)
		}
		if b.held() != 400 || len(b.waiters) != 0 || b.failTimeout.Get() != 1 {
			t.Errorf("used %d, waiters %d, timeouts %d: want 400, 0, 1", b.held(), len(b.waiters), b.failTimeout.Get())
		}
	})
}

// stalledBody is a response body that sends head, then nothing until
// released or closed.
type stalledBody struct {
	head    *bytes.Reader
	release chan struct{}
	once    sync.Once
	rest    *bytes.Reader
}

func (s *stalledBody) Read(p []byte) (int, error) {
	if s.head.Len() > 0 {
		return s.head.Read(p)
	}
	<-s.release
	return s.rest.Read(p)
}

func (s *stalledBody) Close() error {
	s.once.Do(func() { close(s.release) })
	return nil
}

// bodyRoutes answers each URL with a body made per request.
type bodyRoutes map[string]func() (io.ReadCloser, int64)

func (r bodyRoutes) RoundTrip(req *http.Request) (*http.Response, error) {
	body, n := r[req.URL.String()]()
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {textCT}}, Body: body, ContentLength: n, Request: req,
	}, nil
}

// gaugeLines is a text body of about size bytes.
func gaugeLines(name string, size int) []byte {
	line := []byte("# " + strings.Repeat("p", 97) + "\n")
	return append([]byte("# TYPE "+name+" gauge\n"+name+" 1\n"), bytes.Repeat(line, size/len(line))...)
}

// TestBytesInFlight: with a node bound of 1 MiB, a scrape whose body would
// need more than what another scrape holds leaves waits for it (counted) and
// succeeds once the other one ends; it fails with the bound's reason when the
// other one holds its bytes past its timeout; a body larger than the bound
// fails at once, declared (Content-Length) or not, without waiting.
func TestBytesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound = 1 << 20
		big := gaugeLines("big", 700<<10)
		var mu sync.Mutex
		var stalled *stalledBody
		unstall := func() {
			mu.Lock()
			defer mu.Unlock()
			stalled.Close()
		}
		routes := bodyRoutes{
			"http://holder/metrics": func() (io.ReadCloser, int64) {
				mu.Lock()
				defer mu.Unlock()
				stalled = &stalledBody{head: bytes.NewReader(big[:600<<10]), rest: bytes.NewReader(big[600<<10:]), release: make(chan struct{})}
				return stalled, -1
			},
			"http://waiter/metrics": func() (io.ReadCloser, int64) { return io.NopCloser(bytes.NewReader(big)), int64(len(big)) },
			"http://huge/metrics": func() (io.ReadCloser, int64) {
				return io.NopCloser(bytes.NewReader(gaugeLines("huge", 2*bound))), -1
			},
			"http://declared/metrics": func() (io.ReadCloser, int64) { return io.NopCloser(strings.NewReader("x 1\n")), 2 * bound },
		}
		store := deltastore.New(deltastore.Config{Logger: slog.New(slog.DiscardHandler)})
		e := newTestEnv(t, store, time.Now(), func(c *Config) { c.Transport, c.MaxBytesInFlight = routes, bound })
		tg := func(url string) target.Target {
			return target.Target{URL: url, Interval: 10 * time.Second, Timeout: 5 * time.Second}
		}
		holder, waiter := e.loop(t, tg("http://holder/metrics")), e.loop(t, tg("http://waiter/metrics"))
		ctx := context.Background()
		scrape := func(l *testLoop) (time.Duration, error) {
			start := time.Now()
			_, err := l.scrape(ctx, start)
			return time.Since(start), err
		}
		var holderErr error
		var wg sync.WaitGroup
		wg.Go(func() { _, holderErr = scrape(holder) })
		synctest.Wait() // the holder holds 600 KiB and waits for the rest of its body
		wg.Go(func() {
			time.Sleep(2 * time.Second)
			unstall() // the rest comes
		})
		if took, err := scrape(waiter); err != nil || took != 2*time.Second {
			t.Errorf("waiter: %v after %s, want success once the holder's body ended, after 2s", err, took)
		}
		wg.Wait()
		if holderErr != nil {
			t.Errorf("holder: %v", holderErr)
		}
		inflight := e.mgr.cfg.inflight
		if inflight.waits.Get() == 0 || inflight.held() != 0 {
			t.Errorf("waits %d, bytes held after both scrapes %d: want some, and 0", inflight.waits.Get(), inflight.held())
		}

		// The holder keeps its bytes past the waiter's timeout.
		wg.Go(func() { _, holderErr = scrape(holder) })
		synctest.Wait()
		took, err := scrape(waiter)
		if !errors.Is(err, errBytesInFlight) || took != 5*time.Second || !strings.Contains(err.Error(), "--max-bytes-in-flight") {
			t.Errorf("waiter: %v after %s, want the bound's reason at its 5s timeout", err, took)
		}
		unstall()
		wg.Wait()

		for _, url := range []string{"http://huge/metrics", "http://declared/metrics"} {
			l := e.loop(t, tg(url))
			took, err := scrape(l)
			if !errors.Is(err, errBytesInFlight) || took != 0 {
				t.Errorf("%s: %v after %s, want the bound's reason at once", url, err, took)
			}
		}
		if n := inflight.failOversized.Get(); n != 2 {
			t.Errorf("oversize failures %d, want 2", n)
		}
		if inflight.held() != 0 {
			t.Errorf("%d bytes held after every scrape ended", inflight.held())
		}
	})
}

// held is what the budget's scrapes hold now.
func (b *byteBudget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// TestByteBudgetStalled: two bodies growing at once hold all the bytes and
// each waits for more. Nothing would be released before their timeouts, so
// the newer one fails at once (counted), and the older one gets its bytes
// as soon as the newer one's scrape gives its own back.
func TestByteBudgetStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newByteBudget(100, metrics.NewSet())
		ctx := context.Background()
		deadline := time.Now().Add(10 * time.Second)
		for _, n := range []int64{60, 30} { // older A, newer B
			if err := b.acquire(ctx, n, 0, deadline); err != nil {
				t.Fatal(err)
			}
		}
		var errA error
		var wg sync.WaitGroup
		wg.Go(func() { errA = b.acquire(ctx, 30, 60, deadline) }) // A waits: B still reads
		synctest.Wait()
		start := time.Now()
		errB := b.acquire(ctx, 30, 30, deadline) // B waits too: all 90 are held by waiters
		if !errors.Is(errB, errBytesInFlight) || time.Since(start) != 0 || b.failStalled.Get() != 1 {
			t.Fatalf("B: %v after %s, stalled %d: want the bound's reason at once, counted", errB, time.Since(start), b.failStalled.Get())
		}
		b.release(30) // B's scrape ends
		wg.Wait()
		if errA != nil || b.held() != 90 {
			t.Errorf("A: %v, held %d: want its 30 more, 90 in all", errA, b.held())
		}
	})
}
