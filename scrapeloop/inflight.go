package scrapeloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// errBytesInFlight marks a scrape failed on the node's bound of body bytes
// in flight (Config.MaxBytesInFlight).
var errBytesInFlight = errors.New("bytes in flight bound (--max-bytes-in-flight)")

// Why a scrape failed on the bound: the label values of
// nodescraper_scrape_bytes_in_flight_failures_total.
const (
	inFlightTimeout  = "timeout"  // it waited until its scrape timeout
	inFlightOversize = "oversize" // its body alone is larger than the bound
	inFlightStalled  = "stalled"  // all bytes were held by scrapes waiting for more
)

// byteBudget is a weighted semaphore over the body bytes all scrapes of the
// node hold at once: a scrape acquires its body's bytes as it reads them (see
// meteredBody) and releases them once the body is processed. Waiters are
// served in arrival order, so a scrape asking for much is not passed over
// forever by ones asking for little; each request is a step of one body
// (minStep to a quarter of what the body holds), so a large body does not
// hold up the queue for long. Bodies that grow at once can hold every byte
// while each waits for more: none would be released before their timeouts,
// and large bodies would fail together at every scrape. So when all bytes
// held are held by waiters, the newest waiter that holds some fails at once
// and its bytes go to the older ones. The fast path (nobody waiting, room
// left) takes a lock and allocates nothing.
type byteBudget struct {
	size int64

	mu       sync.Mutex
	used     int64
	waiters  []*byteWaiter // in arrival order
	waitHeld int64         // bytes held by the waiters' scrapes

	waits                                   *metrics.Counter
	failTimeout, failOversized, failStalled *metrics.Counter
}

type byteWaiter struct {
	n, held int64         // bytes asked for, bytes its scrape holds
	ready   chan struct{} // closed once the bytes are granted, or err set
	err     error
}

func newByteBudget(size int64, set *metrics.Set) *byteBudget {
	b := &byteBudget{
		size:          size,
		waits:         set.NewCounter(`nodescraper_scrape_bytes_in_flight_waits_total`),
		failTimeout:   set.NewCounter(`nodescraper_scrape_bytes_in_flight_failures_total{reason="` + inFlightTimeout + `"}`),
		failOversized: set.NewCounter(`nodescraper_scrape_bytes_in_flight_failures_total{reason="` + inFlightOversize + `"}`),
		failStalled:   set.NewCounter(`nodescraper_scrape_bytes_in_flight_failures_total{reason="` + inFlightStalled + `"}`),
	}
	set.NewGauge(`nodescraper_scrape_bytes_in_flight`, func() float64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		return float64(b.used)
	})
	set.NewGauge(`nodescraper_scrape_bytes_in_flight_limit`, func() float64 { return float64(b.size) })
	return b
}

// acquire takes n bytes for a scrape that holds held, waiting while they are
// not free until ctx ends or deadline passes; on an error nothing is taken.
// held+n must not exceed size.
func (b *byteBudget) acquire(ctx context.Context, n, held int64, deadline time.Time) error {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &byteWaiter{n: n, held: held, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.waitHeld += held
	b.grant() // w may be the waiter that stalls them all
	b.mu.Unlock()
	b.waits.Inc()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		if w.err != nil {
			b.failStalled.Inc()
		}
		return w.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("no %d bytes free within the scrape timeout: the node's scrapes hold all of its %d: %w", n, b.size, errBytesInFlight)
	}
	b.mu.Lock()
	select {
	case <-w.ready: // granted (or failed) meanwhile: give them back
		if w.err == nil {
			b.used -= n
		}
	default:
		i := slices.Index(b.waiters, w)
		b.waiters = slices.Delete(b.waiters, i, i+1)
		b.waitHeld -= w.held
	}
	b.grant()
	b.mu.Unlock()
	if ctx.Err() == nil {
		b.failTimeout.Inc()
	}
	return err
}

// release gives back n bytes.
func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grant()
	b.mu.Unlock()
}

// grant wakes the waiters at the head of the queue that the free bytes
// serve. When the head cannot be served and every byte held is held by a
// waiter, no byte would come back before a timeout: the newest waiter that
// holds bytes fails, and they come back when its scrape ends. Call with mu
// held.
func (b *byteBudget) grant() {
	for len(b.waiters) > 0 {
		if w := b.waiters[0]; b.used+w.n <= b.size {
			b.used += w.n
			b.waitHeld -= w.held
			b.waiters = slices.Delete(b.waiters, 0, 1)
			close(w.ready)
			continue
		}
		if b.used > b.waitHeld {
			return // a scrape that is not waiting will release its bytes
		}
		i := len(b.waiters) - 1
		for i >= 0 && b.waiters[i].held == 0 {
			i--
		}
		if i < 0 {
			return
		}
		w := b.waiters[i]
		b.waiters = slices.Delete(b.waiters, i, i+1)
		b.waitHeld -= w.held
		w.err = fmt.Errorf("no %d bytes free: the node's %d are held by scrapes waiting for more, this one the newest: %w", w.n, b.size, errBytesInFlight)
		close(w.ready)
	}
}

// Steps in which a body's bytes are acquired: from minStep, a quarter of
// what the body already holds, so a body takes O(log n) steps and holds at
// most a quarter (or minStep) more than it read.
const minStep = 256 << 10

// meteredBody reads a response body through the node's byteBudget: no byte
// is read before it is acquired. A loop keeps one and resets it per scrape.
type meteredBody struct {
	r        io.Reader
	budget   *byteBudget
	ctx      context.Context
	deadline time.Time
	max      int64 // the most the body may hold: its limit + 1, the byte that tells it is over
	held     int64 // acquired; released by done
	read     int64
}

func (m *meteredBody) Read(p []byte) (int, error) {
	if m.read >= m.held {
		if err := m.grow(); err != nil {
			return 0, err
		}
	}
	if room := m.held - m.read; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := m.r.Read(p)
	m.read += int64(n)
	return n, err
}

// grow acquires the body's next step. A body that needs more than the whole
// bound fails at once: waiting would not help.
func (m *meteredBody) grow() error {
	step := min(max(minStep, m.held/4), m.max-m.held)
	if step <= 0 {
		return fmt.Errorf("read past %d bytes", m.max) // readBody stops at max
	}
	if m.held+step > m.budget.size {
		if step = m.budget.size - m.held; step <= 0 {
			m.budget.failOversized.Inc()
			return fmt.Errorf("body larger than the node's %d bytes in flight: %w", m.budget.size, errBytesInFlight)
		}
	}
	if err := m.budget.acquire(m.ctx, step, m.held, m.deadline); err != nil {
		return err
	}
	m.held += step
	return nil
}

// reserve acquires n bytes before any is read: a buffer's worth.
func (m *meteredBody) reserve(n int64) error {
	if err := m.budget.acquire(m.ctx, n, m.held, m.deadline); err != nil {
		return err
	}
	m.held += n
	return nil
}

// trim gives back what the body acquired beyond what it read and beyond
// floor, the capacity of the buffer it is in.
func (m *meteredBody) trim(floor int64) {
	keep := max(m.read, min(floor, m.held))
	m.budget.release(m.held - keep)
	m.held = keep
}

// done gives back all the body holds.
func (m *meteredBody) done() {
	if m.budget != nil {
		m.budget.release(m.held)
	}
	*m = meteredBody{}
}
