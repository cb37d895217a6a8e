package ddclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/spool"
)

// signal tells an idle worker, and Drain, that the queue, the posts in
// flight or the spool changed.
func (c *Client) signal() {
	poke(c.wake)
	poke(c.changed)
}

// poke is a non-blocking send on a 1-slot channel: signals sent while the
// receiver is busy coalesce into one.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// worker posts queued payloads until stop is closed, refilling the queue
// from the spool when memory has room.
func (c *Client) worker(stop <-chan struct{}, draining bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		c.refill()
		p, wait := c.take()
		if p != nil {
			c.signal() // more may wait: another worker looks
			c.send(p, draining)
			continue
		}
		var fire <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			fire = timer.C
		}
		select {
		case <-stop:
			return
		case <-c.wake:
		case <-fire:
		}
	}
}

// take returns the oldest queued payload, marked in flight, or how long to
// wait before one may be posted (0: until woken).
func (c *Client) take() (*payload, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return nil, 0
	}
	if d := c.retryAt.Sub(c.cfg.Now()); d > 0 {
		return nil, d
	}
	if c.failures > 0 && c.inflight > 0 {
		// Datadog failed last time: one probe at a time until it answers.
		return nil, 0
	}
	p := c.queue[0]
	c.queue[0] = nil
	c.queue = c.queue[1:]
	c.qbytes -= len(p.body)
	c.inflight++
	c.ibytes += len(p.body)
	p.round = c.round
	return p, 0
}

// send posts p and settles it: done, dropped, or back at the queue's head
// for a retry after a backoff every worker honours.
func (c *Client) send(p *payload, draining bool) {
	defer c.signal()
	if age := c.cfg.Now().Unix() - p.minTS; age > int64(MaxPointAge/time.Second)-60 {
		c.cfg.Logger.Warn("dropping points older than Datadog accepts", "points", p.points, "age_s", age)
		c.drop(c.m.tooOld, p.points)
		c.settle(p, true)
		return
	}
	c.mu.Lock()
	hard := c.hard
	c.mu.Unlock()
	wait, err := c.post(hard, p)
	switch {
	case err == nil:
		c.mu.Lock()
		c.failures, c.retryAt = 0, time.Time{}
		c.mu.Unlock()
		if p.seg != nil {
			c.m.replayed.Add(p.points)
		}
		c.settle(p, true)
	case errors.Is(err, errDrop):
		c.drop(c.m.rejected, p.points)
		c.settle(p, false)
	default:
		c.retry(p, err, wait, draining, hard)
	}
}

// retry puts p back at the queue's head after a failed post, sets the
// backoff once per round, and sends what waits behind p to the spool.
// wait is the server's delay (rate limit, refused key), or 0.
func (c *Client) retry(p *payload, err error, wait time.Duration, draining bool, hard context.Context) {
	p.tries++
	c.m.retries.Inc()
	msg := err.Error()
	c.lastErr.Store(&msg)
	c.mu.Lock()
	cancelled := hard.Err() != nil
	if p.round == c.round {
		// The first failure of this round: back off, longer each round.
		c.round++
		c.failures++
		if wait == 0 {
			wait = c.backoff(c.failures)
		}
		if draining {
			// Shutdown has seconds, not minutes: retry soon, and the
			// drain spools the rest after a few failed rounds.
			wait = min(wait, time.Second)
		}
		if !cancelled {
			c.retryAt = c.cfg.Now().Add(wait)
		}
	} else {
		wait = c.retryAt.Sub(c.cfg.Now())
	}
	c.inflight--
	c.ibytes -= len(p.body)
	c.queue = append(c.queue, nil)
	copy(c.queue[1:], c.queue)
	c.queue[0] = p
	c.qbytes += len(p.body)
	var move []*payload
	if c.spool != nil && !cancelled {
		move = c.unqueueMemoryLocked()
	}
	c.mu.Unlock()
	if len(move) > 0 {
		if err := c.spoolPayloads(move, c.m.queueFull); err != nil {
			c.cfg.Logger.Error("spool: cannot write; points dropped", "points", len(move), "err", err)
		}
		for _, q := range move {
			c.recycle(q)
		}
	}
	if !cancelled {
		c.cfg.Logger.Warn("send to Datadog failed; will retry", "err", err, "attempt", p.tries, "retry_in", wait, "draining", draining)
	}
}

// unqueueMemoryLocked takes out of the queue, for the spool, the payloads
// behind its head that are not on disk already: while Datadog fails, a
// killed agent then loses no more than the payloads being retried.
func (c *Client) unqueueMemoryLocked() []*payload {
	var move []*payload
	keep := c.queue[:1]
	for _, q := range c.queue[1:] {
		if q.seg == nil {
			move = append(move, q)
			c.qbytes -= len(q.body)
		} else {
			keep = append(keep, q)
		}
	}
	clear(c.queue[len(keep):])
	c.queue = keep
	return move
}

// settle ends an in-flight payload that was sent or dropped.
func (c *Client) settle(p *payload, reuse bool) {
	c.mu.Lock()
	c.inflight--
	c.ibytes -= len(p.body)
	var done *spool.Segment
	if ls := p.seg; ls != nil {
		if ls.left--; ls.left == 0 {
			done = ls.g
			c.loaded--
		}
	}
	c.mu.Unlock()
	if done != nil {
		if err := c.spool.Done(done); err != nil {
			c.cfg.Logger.Error("spool: cannot delete a sent segment; its points may be sent again", "err", err)
		}
	}
	if reuse && p.seg == nil {
		c.recycle(p)
	}
}

// refill reads the oldest spool segment not yet read into the queue, behind
// the segments already there, when memory has room (half the bound: a
// segment is small beside it) and Datadog takes payloads.
func (c *Client) refill() {
	if c.spool == nil {
		return
	}
	c.mu.Lock()
	if c.refilling || c.failures > 0 || c.memLocked() > c.cfg.MaxQueueBytes/2 || c.spool.Empty() {
		c.mu.Unlock()
		return
	}
	c.refilling = true
	c.mu.Unlock()
	g, err := c.spool.Next()
	c.mu.Lock()
	c.refilling = false
	if err != nil || g == nil {
		c.mu.Unlock()
		if err != nil {
			c.cfg.Logger.Error("spool: cannot read a segment", "err", err)
		}
		return
	}
	ls := &loadedSegment{g: g, left: len(g.Records)}
	for _, r := range g.Records {
		p := &payload{body: r.Body, enc: r.Encoding, raw: r.Raw, points: r.Points, minTS: r.MinTS, endpoint: r.Endpoint, seg: ls}
		c.queue = append(c.queue, p)
		c.qbytes += len(p.body)
	}
	empty := len(g.Records) == 0
	if !empty {
		c.loaded++
	}
	c.mu.Unlock()
	if empty {
		_ = c.spool.Done(g)
	}
	c.signal()
}

// backoff is capped exponential with full jitter in its upper half.
func (c *Client) backoff(tries int) time.Duration {
	d := c.cfg.RetryMin << min(tries-1, 20)
	if d > c.cfg.RetryMax || d <= 0 {
		d = c.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

var errDrop = errors.New("payload rejected")

// post sends one payload. It returns errDrop for answers that retrying cannot
// fix, and for a rate limit the server's reset delay.
func (c *Client) post(ctx context.Context, p *payload) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	url, ctype := c.url, "application/json"
	if p.endpoint == spool.SeriesV3 {
		url, ctype = c.urlV3, "application/x-protobuf"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(p.body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errDrop, err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("DD-API-KEY", *c.key.Load())
	req.Header.Set("User-Agent", "nodescraper")
	if p.enc != "" {
		req.Header.Set("Content-Encoding", p.enc)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post %s: %w", url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch code := resp.StatusCode; {
	case code < 300:
		c.forbidden.Store(false)
		c.lastErr.Store(nil)
		c.m.payloads.Inc()
		c.m.points.Add(p.points)
		c.m.bytes.Add(len(p.body))
		c.m.raw.Add(p.raw)
		return 0, nil
	case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge:
		c.cfg.Logger.Error("Datadog rejected a payload; dropping it", "status", code, "points", p.points, "body", string(msg))
		return 0, fmt.Errorf("%w: %d %s", errDrop, code, msg)
	case code == http.StatusForbidden || code == http.StatusUnauthorized:
		c.forbidden.Store(true)
		if c.reloadKey(true) {
			// A new key is there: retry with it at once.
			return time.Millisecond, fmt.Errorf("post %s: %d: API key refused; read a new one from %s", url, code, c.cfg.APIKeyFile)
		}
		c.cfg.Logger.Error("Datadog refused the API key (check DD_API_KEY / DD_SITE); holding points and retrying", "status", code)
		return c.cfg.RetryMax, fmt.Errorf("post %s: %d: API key refused", url, code)
	case code < 400:
		c.cfg.Logger.Error("Datadog's URL answered with a redirect, which is not followed: the API key goes only to the configured URL; holding points and retrying", "status", code, "location", resp.Header.Get("Location"))
		return 0, fmt.Errorf("post %s: %d: redirect to %q not followed", url, code, resp.Header.Get("Location"))
	default:
		var wait time.Duration
		if s := resp.Header.Get("X-RateLimit-Reset"); s != "" {
			if sec, err := strconv.Atoi(s); err == nil && sec > 0 {
				wait = min(time.Duration(sec)*time.Second, c.cfg.RetryMax)
			}
		}
		return wait, fmt.Errorf("post %s: %d %s", url, code, bytes.TrimSpace(msg))
	}
}
