package ddclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/ddclient/spool"
)

// drainRounds is how many failed rounds of posts end a drain early when
// there is a spool to take the rest (Datadog is down, not blinking).
const drainRounds = 3

// Drain seals what is gathered and sends everything queued until ctx ends
// or Datadog fails; POSTs in flight, its own and Run's, are let finish until
// then. What is not sent goes to the spool for the next start (or, without
// one, is counted as dropped). Call it once Run's ctx is cancelled: it
// returns after Run's workers have ended too.
func (c *Client) Drain(ctx context.Context) error {
	defer func() {
		// A later Drain (tests) starts with POSTs allowed again.
		c.mu.Lock()
		c.hard, c.cancelHard = context.WithCancel(context.Background())
		c.mu.Unlock()
	}()
	c.sealOpen()
	// One more try at once, whatever the backoff: Datadog may be back.
	// With a spool, drainRounds failed rounds end the drain.
	c.mu.Lock()
	c.retryAt = time.Time{}
	startRound := c.round
	c.mu.Unlock()
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for range c.cfg.SendConcurrency {
		workers.Go(func() { c.worker(stop, true) })
	}
	timedOut := !c.waitDrained(ctx, startRound)
	close(stop)
	c.mu.Lock()
	c.cancelHard()
	c.mu.Unlock()
	workers.Wait()
	c.running.Wait()
	return c.spoolLeft(timedOut)
}

// waitDrained waits until nothing is left to send, or (with a spool)
// Datadog has failed drainRounds rounds since startRound; false if ctx ended
// first. It wakes on every change the workers signal.
func (c *Client) waitDrained(ctx context.Context, startRound uint64) bool {
	for {
		c.mu.Lock()
		idle := len(c.queue) == 0 && c.inflight == 0 && !c.refilling && c.loaded == 0
		// With a spool, a failing Datadog ends the drain: waiting longer
		// would only delay the spooling.
		failing := c.spool != nil && c.round-startRound >= drainRounds && c.inflight == 0
		c.mu.Unlock()
		if failing || idle && (c.spool == nil || c.spool.Empty()) {
			return true
		}
		poke(c.wake) // workers look at the spool again
		select {
		case <-ctx.Done():
			return false
		case <-c.changed:
		}
	}
}

// spoolLeft spools what the drain left in the queue (segments read from the
// spool are written again and their old files deleted), or without a spool
// counts it as dropped.
func (c *Client) spoolLeft(timedOut bool) error {
	c.mu.Lock()
	left := c.queue
	c.queue, c.qbytes = nil, 0
	c.mu.Unlock()
	n := 0
	for _, p := range left {
		n += p.points
	}
	if c.spool == nil {
		if n == 0 {
			return nil
		}
		c.drop(c.m.shutdown, n)
		return fmt.Errorf("drain: %d points not sent (no spool)", n)
	}
	err := c.spoolPayloads(left, c.m.shutdown)
	if err == nil {
		err = c.spool.Sync()
	}
	// Segments read into the queue: what of them is unsent was spooled
	// again above.
	segs := map[*spool.Segment]bool{}
	for _, p := range left {
		if p.seg != nil {
			segs[p.seg.g] = true
		}
	}
	if err == nil {
		for g := range segs {
			if derr := c.spool.Done(g); derr != nil {
				err = derr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("drain: spooling %d points: %w", n, err)
	}
	if n > 0 {
		c.cfg.Logger.Info("points not sent at shutdown are spooled for the next start", "points", n, "timed_out", timedOut, "spool_points", c.spool.Points())
	}
	return nil
}

// spoolPayloads writes payloads to the spool, counting them; if it fails
// they are counted under lost.
func (c *Client) spoolPayloads(ps []*payload, lost *metrics.Counter) error {
	recs := make([]spool.Record, 0, len(ps))
	n := 0
	for _, p := range ps {
		recs = append(recs, spool.Record{Body: p.body, Encoding: p.enc, Endpoint: p.endpoint, Raw: p.raw, Points: p.points, MinTS: p.minTS})
		n += p.points
	}
	if err := c.spool.Append(recs...); err != nil {
		c.drop(lost, n)
		return err
	}
	c.m.spooled.Add(n)
	return nil
}
