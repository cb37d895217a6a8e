package ddclient

import (
	"runtime"
	"sync"

	"github.com/nodescraper/nodescraper/ddclient/spool"
)

func (c *Client) counters() *encodeMetrics { return c.enc }

func (c *Client) seriesV3() bool { return c.cfg.SeriesV3 }

func (c *Client) maxEntry() int {
	return c.cfg.MaxRawPayloadBytes - len(payloadOpen) - len(payloadClose)
}

// acquire implements sink: a partly filled buffer if one waits, else an
// empty one.
func (c *Client) acquire() *buffer {
	c.mu.Lock()
	if n := len(c.open); n > 0 {
		bf := c.open[n-1]
		c.open = c.open[:n-1]
		c.openBytes -= bf.size()
		c.mu.Unlock()
		return bf
	}
	c.mu.Unlock()
	return c.empty()
}

func (c *Client) empty() *buffer {
	c.mu.Lock()
	var bf *buffer
	if n := len(c.free); n > 0 {
		bf = c.free[n-1]
		c.free = c.free[:n-1]
	}
	c.mu.Unlock()
	if bf == nil {
		bf = &buffer{seal: c.sealAt, limit: c.cfg.MaxRawPayloadBytes - len(payloadClose)}
		if c.cfg.SeriesV3 {
			bf.w = new(v3Writer)
		}
	}
	bf.reset(c.cfg.Now())
	return bf
}

// full implements sink.
func (c *Client) full(bf *buffer) *buffer {
	c.seal(bf)
	return c.empty()
}

// release implements sink: a buffer that is full enough, or has waited a
// flush interval, is sealed; others wait for the next appender.
func (c *Client) release(bf *buffer) {
	if bf.sealed() || c.cfg.Now().Sub(bf.opened) >= c.cfg.FlushInterval {
		c.seal(bf)
		return
	}
	c.mu.Lock()
	if c.memLocked()+bf.size() > c.cfg.MaxQueueBytes {
		// Kept open it would pass the memory bound: sealed, it goes to
		// the spool (or pushes out the oldest) like any payload.
		c.mu.Unlock()
		c.seal(bf)
		return
	}
	c.open = append(c.open, bf)
	c.openBytes += bf.size()
	c.mu.Unlock()
}

// seal compresses bf into the send queue, in the caller's goroutine, and
// keeps bf for reuse.
func (c *Client) seal(bf *buffer) {
	if bf.points() > 0 {
		c.compress(bf, 0, bf.points())
		c.signal()
	}
	c.mu.Lock()
	// Keep about as many buffers as can be in use at once.
	if len(c.free) < runtime.GOMAXPROCS(0)+2 {
		c.free = append(c.free, bf)
	}
	c.mu.Unlock()
}

// sealOpen seals every buffer no appender holds.
func (c *Client) sealOpen() {
	c.mu.Lock()
	open := c.open
	c.open, c.openBytes = nil, 0
	c.mu.Unlock()
	for _, bf := range open {
		c.seal(bf)
	}
}

// compress turns entries [from, to) of bf into a compressed payload,
// splitting it when it compresses past the limit.
func (c *Client) compress(bf *buffer, from, to int) {
	if bf.w != nil {
		c.compressV3(bf.w, bf.minTS)
		return
	}
	raw := bf.body(nil, from, to)
	body, err := c.encode(newBody(), raw)
	if err == nil && len(body) > c.cfg.MaxPayloadBytes && to-from > 1 {
		mid := from + (to-from)/2
		c.recycle(&payload{body: body})
		c.compress(bf, from, mid)
		c.compress(bf, mid, to)
		return
	}
	if err != nil || len(body) > c.cfg.MaxPayloadBytes || len(raw) > c.cfg.MaxRawPayloadBytes {
		c.cfg.Logger.Error("dropping a series payload the intake would refuse", "points", to-from, "raw_bytes", len(raw), "compressed_bytes", len(body), "err", err)
		c.drop(c.m.rejected, to-from)
		return
	}
	c.enqueue(&payload{body: body, enc: c.encTag, raw: len(raw), points: to - from, minTS: bf.minTS})
}

// compressV3 turns the v3 payload of w into a compressed payload, split in
// two halves (each again if need be) when it is past either limit.
func (c *Client) compressV3(w *v3Writer, minTS int64) {
	raw := w.appendPayload(newBody())
	body, err := c.encode(newBody(), raw)
	n := len(raw)
	recycleRaw(raw)
	if err == nil && (len(body) > c.cfg.MaxPayloadBytes || n > c.cfg.MaxRawPayloadBytes) && w.nseries > 1 {
		c.recycle(&payload{body: body})
		// Rare: sealing at MaxPointsPerPayload or the size estimate keeps
		// payloads well under the limits.
		mid := w.nseries / 2
		var a, b v3Writer
		w.copyRange(&a, 0, mid)
		w.copyRange(&b, mid, w.nseries)
		c.compressV3(&a, minTS)
		c.compressV3(&b, minTS)
		return
	}
	if err != nil || len(body) > c.cfg.MaxPayloadBytes || n > c.cfg.MaxRawPayloadBytes {
		c.cfg.Logger.Error("dropping a v3 series payload the intake would refuse", "points", w.npoints, "raw_bytes", n, "compressed_bytes", len(body), "err", err)
		c.drop(c.m.rejected, w.npoints)
		return
	}
	c.enqueue(&payload{body: body, enc: c.encTag, raw: n, points: w.npoints, minTS: minTS, endpoint: spool.SeriesV3})
}

// recycleRaw gives an uncompressed payload's buffer back to the pool.
func recycleRaw(b []byte) {
	if cap(b) <= 2*MaxUncompressedBytes {
		b = b[:0]
		bodies.Put(&b)
	}
}

// enqueue puts p in the send queue, or in the spool past the memory bound,
// while Datadog fails, or behind what the spool holds.
func (c *Client) enqueue(p *payload) {
	c.mu.Lock()
	over := c.memLocked()+len(p.body) > c.cfg.MaxQueueBytes
	if c.spool != nil && (over || c.failures > 0 || !c.spool.Empty()) {
		// Past the memory bound, while Datadog fails (so that a killed
		// agent loses no more than the payloads being retried), and behind
		// what the spool already holds (oldest first), payloads go to disk.
		c.mu.Unlock()
		if err := c.spoolPayloads([]*payload{p}, c.m.queueFull); err != nil {
			c.cfg.Logger.Error("spool: cannot write; points dropped", "points", p.points, "err", err)
		}
		c.recycle(p)
		return
	}
	c.queue = append(c.queue, p)
	c.qbytes += len(p.body)
	dropped := 0
	for c.memLocked() > c.cfg.MaxQueueBytes && len(c.queue) > 1 {
		old := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.qbytes -= len(old.body)
		dropped += old.points
		defer c.recycle(old)
	}
	c.mu.Unlock()
	if dropped > 0 {
		c.drop(c.m.queueFull, dropped)
		c.cfg.Logger.Warn("send queue full: dropped the oldest points", "points", dropped, "max_queue_bytes", c.cfg.MaxQueueBytes)
	}
}

// bodies pools compressed payload bodies: they live from compression to
// the intake's answer, and a fresh one each time would be most of what the
// agent allocates in steady state.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// newBody returns an empty body buffer.
func newBody() []byte { return (*bodies.Get().(*[]byte))[:0] }

// recycle gives p's body back once nothing reads it: p was sent and
// answered with success, or dropped before any post. (After a failed post the
// transport may still hold the body; such payloads are left to the collector.)
func (c *Client) recycle(p *payload) {
	if p.tries > 0 || cap(p.body) == 0 || cap(p.body) > 2*c.cfg.MaxPayloadBytes {
		return
	}
	b := p.body[:0]
	p.body = nil
	bodies.Put(&b)
}
