package ddclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/nodescraper/nodescraper/scrapeloop"
)

// Intake limits of POST /api/v2/series.
const (
	MaxCompressedBytes   = 512_000
	MaxUncompressedBytes = 5_242_880
	// MaxPointAge is how old a point the intake still accepts.
	MaxPointAge = time.Hour
)

// Config configures a Client.
type Config struct {
	// URL is the API base, e.g. "https://api.datadoghq.com".
	URL    string
	APIKey string
	// Mapping names and tags the series.
	Mapping Mapping
	// Compression is "zstd" (default), "gzip" or "none".
	Compression string
	// FlushInterval is how often gathered points are sent; default 5s.
	FlushInterval time.Duration
	// MaxQueueBytes bounds the memory held by payloads waiting to be sent;
	// past it the oldest are dropped and counted. Default 64 MiB.
	MaxQueueBytes int
	// MaxPayloadBytes and MaxRawPayloadBytes override the intake's limits
	// (compressed and uncompressed); tests lower them.
	MaxPayloadBytes    int
	MaxRawPayloadBytes int
	// RetryMin and RetryMax bound the exponential backoff; defaults 2s and 64s
	// as in the Datadog Agent's forwarder.
	RetryMin, RetryMax time.Duration
	// RequestTimeout bounds one POST; default 20s.
	RequestTimeout time.Duration
	HTTPClient     *http.Client
	Logger         *slog.Logger
	Now            func() time.Time
}

// Client encodes points into payloads, compresses them and sends them. It
// is the scrape loops' backend: NewAppender gives each target an appender
// that writes into buffers shared by all targets, at most one per scrape in
// progress, so memory follows concurrency rather than the number of targets.
type Client struct {
	cfg    Config
	url    string
	encode func(dst, src []byte) ([]byte, error) // safe for concurrent use
	encTag string
	m      clientMetrics
	enc    *encodeMetrics
	sealAt int

	mu     sync.Mutex
	open   []*buffer  // partly filled, held by no appender
	free   []*buffer  // empty, for reuse
	queue  []*payload // compressed payloads waiting to be sent
	qbytes int
	// sending is the payload being posted: never dropped from under the post.
	sending *payload

	wake      chan struct{}
	dropped   atomic.Int64 // points this client dropped, all reasons
	forbidden atomic.Bool
	lastErr   atomic.Pointer[string]
}

type clientMetrics struct {
	set                                   *metrics.Set
	payloads, points, bytes, raw, retries *metrics.Counter
	rejected, tooOld, queueFull, shutdown *metrics.Counter
}

type payload struct {
	body   []byte
	raw    int
	points int
	minTS  int64
	tries  int
}

// New returns a Client; it sends nothing until Run.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("ddclient: URL is empty")
	}
	if cfg.APIKey == "" {
		return nil, errors.New("ddclient: API key is empty")
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 5 * time.Second
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = 64 << 20
	}
	if cfg.MaxPayloadBytes <= 0 {
		cfg.MaxPayloadBytes = MaxCompressedBytes
	}
	if cfg.MaxRawPayloadBytes <= 0 {
		cfg.MaxRawPayloadBytes = MaxUncompressedBytes
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 2 * time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 64 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 20 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, url: cfg.URL + "/api/v2/series", wake: make(chan struct{}, 1)}
	// Half the raw limit: payloads compress to well under 512 kB, and any
	// entry still fits in the buffer that holds it.
	c.sealAt = cfg.MaxRawPayloadBytes / 2
	set := metrics.NewSet()
	c.m = clientMetrics{
		set:       set,
		payloads:  set.NewCounter(`nodescraper_dd_payloads_sent_total`),
		points:    set.NewCounter(`nodescraper_dd_points_sent_total`),
		bytes:     set.NewCounter(`nodescraper_dd_bytes_sent_total`),
		raw:       set.NewCounter(`nodescraper_dd_bytes_uncompressed_total`),
		retries:   set.NewCounter(`nodescraper_dd_retries_total`),
		rejected:  set.NewCounter(`nodescraper_dd_points_dropped_total{reason="rejected"}`),
		tooOld:    set.NewCounter(`nodescraper_dd_points_dropped_total{reason="too_old"}`),
		queueFull: set.NewCounter(`nodescraper_dd_points_dropped_total{reason="queue_full"}`),
		shutdown:  set.NewCounter(`nodescraper_dd_points_dropped_total{reason="shutdown"}`),
	}
	c.enc = newEncodeMetrics(set)
	set.NewGauge(`nodescraper_dd_queue_bytes`, func() float64 { return float64(c.QueueBytes()) })
	switch cfg.Compression {
	case "", "zstd":
		// Level 1 (SpeedFastest), the Datadog Agent's default zstd level:
		// series JSON is repetitive enough that higher levels gain little
		// for twice the CPU. EncodeAll is safe for concurrent use; appenders
		// seal payloads from their own goroutines.
		// No frame checksum: HTTP and TLS already protect the body, and the
		// checksum is about 5% of the compression's CPU.
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("ddclient: zstd: %w", err)
		}
		c.encode = func(dst, src []byte) ([]byte, error) { return enc.EncodeAll(src, dst), nil }
		c.encTag = "zstd1"
	case "gzip":
		var writers sync.Pool
		c.encode = func(dst, src []byte) ([]byte, error) {
			buf := bytes.NewBuffer(dst)
			zw, _ := writers.Get().(*kgzip.Writer)
			if zw == nil {
				zw, _ = kgzip.NewWriterLevel(buf, kgzip.DefaultCompression)
			} else {
				zw.Reset(buf)
			}
			defer writers.Put(zw)
			if _, err := zw.Write(src); err != nil {
				return nil, err
			}
			if err := zw.Close(); err != nil {
				return nil, err
			}
			return buf.Bytes(), nil
		}
		c.encTag = "gzip"
	case "none":
		c.encode = func(dst, src []byte) ([]byte, error) { return append(dst, src...), nil }
	default:
		return nil, fmt.Errorf("ddclient: unknown compression %q (want zstd, gzip or none)", cfg.Compression)
	}
	return c, nil
}

func (c *Client) drop(m *metrics.Counter, n int) {
	m.Add(n)
	c.dropped.Add(int64(n))
}

// Metrics returns the client's own metrics.
func (c *Client) Metrics() *metrics.Set { return c.m.set }

// Dropped returns how many points this client dropped, for any reason.
func (c *Client) Dropped() int64 {
	return c.dropped.Load() + int64(c.enc.invalid.Get()+c.enc.oversized.Get())
}

// QueueBytes returns the compressed bytes waiting to be sent.
func (c *Client) QueueBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.qbytes
}

// Forbidden reports whether Datadog rejected the API key on the last try.
func (c *Client) Forbidden() bool { return c.forbidden.Load() }

// LastError returns the last send error, or "".
func (c *Client) LastError() string {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// NewAppender implements scrapeloop.Backend.
func (c *Client) NewAppender(t *scrapeloop.Target) (scrapeloop.Appender, error) {
	return newAppender(c, &c.cfg.Mapping, t), nil
}

func (c *Client) counters() *encodeMetrics { return c.enc }

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
	if len(bf.b) >= c.sealAt || c.cfg.Now().Sub(bf.opened) >= c.cfg.FlushInterval {
		c.seal(bf)
		return
	}
	c.mu.Lock()
	c.open = append(c.open, bf)
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
	c.open = nil
	c.mu.Unlock()
	for _, bf := range open {
		c.seal(bf)
	}
}

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run sends payloads until ctx is cancelled. Call Drain afterwards, with a
// fresh context, to send what is left.
func (c *Client) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.FlushInterval)
	defer t.Stop()
	var retryAt time.Time
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sealOpen()
		case <-c.wake:
		}
		if c.cfg.Now().Before(retryAt) {
			continue
		}
		wait, err := c.sendQueued(ctx)
		if err != nil && ctx.Err() == nil {
			retryAt = c.cfg.Now().Add(wait)
			if retry == nil {
				retry = time.AfterFunc(wait, c.signal)
			} else {
				retry.Reset(wait)
			}
		}
	}
}

// Drain seals what is gathered and sends everything queued until ctx ends;
// what could not be sent is counted as dropped.
func (c *Client) Drain(ctx context.Context) error {
	c.sealOpen()
	for {
		wait, err := c.sendQueued(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			c.mu.Lock()
			n := 0
			for _, p := range c.queue {
				n += p.points
			}
			for _, p := range c.queue {
				c.recycle(p)
			}
			c.queue, c.qbytes = nil, 0
			c.mu.Unlock()
			c.drop(c.m.shutdown, n)
			return fmt.Errorf("drain: %d points not sent: %w", n, err)
		case <-time.After(min(wait, time.Second)):
		}
	}
}

// compress turns entries [from, to) of bf into a compressed payload,
// splitting it when it compresses past the limit.
func (c *Client) compress(bf *buffer, from, to int) {
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
	p := &payload{body: body, raw: len(raw), points: to - from, minTS: bf.minTS}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	c.qbytes += len(body)
	dropped := 0
	for c.qbytes > c.cfg.MaxQueueBytes && len(c.queue) > 1 {
		i := 0
		if c.queue[0] == c.sending {
			i = 1
		}
		old := c.queue[i]
		c.queue = append(c.queue[:i], c.queue[i+1:]...)
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

// sendQueued posts queued payloads in order until the queue is empty or a
// retryable failure; then it returns how long to wait before the next try.
func (c *Client) sendQueued(ctx context.Context) (time.Duration, error) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return 0, nil
		}
		p := c.queue[0]
		c.sending = p
		c.mu.Unlock()
		if age := c.cfg.Now().Unix() - p.minTS; age > int64(MaxPointAge/time.Second)-60 {
			c.cfg.Logger.Warn("dropping points older than Datadog accepts", "points", p.points, "age_s", age)
			c.drop(c.m.tooOld, p.points)
			c.pop(p)
			c.recycle(p)
			continue
		}
		wait, err := c.post(ctx, p)
		if err == nil {
			c.pop(p)
			c.recycle(p)
			continue
		}
		if errors.Is(err, errDrop) {
			c.drop(c.m.rejected, p.points)
			c.pop(p)
			continue
		}
		c.mu.Lock()
		c.sending = nil
		c.mu.Unlock()
		p.tries++
		c.m.retries.Inc()
		msg := err.Error()
		c.lastErr.Store(&msg)
		if wait == 0 {
			wait = c.backoff(p.tries)
		}
		c.cfg.Logger.Warn("send to Datadog failed; will retry", "err", err, "attempt", p.tries, "retry_in", wait)
		return wait, err
	}
}

func (c *Client) pop(p *payload) {
	c.mu.Lock()
	c.sending = nil
	if len(c.queue) > 0 && c.queue[0] == p {
		c.queue = c.queue[1:]
		c.qbytes -= len(p.body)
	}
	c.mu.Unlock()
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(p.body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errDrop, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("DD-API-KEY", c.cfg.APIKey)
	req.Header.Set("User-Agent", "nodescraper")
	if c.encTag != "" {
		req.Header.Set("Content-Encoding", c.encTag)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post %s: %w", c.url, err)
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
		c.cfg.Logger.Error("Datadog refused the API key (check DD_API_KEY / DD_SITE); holding points and retrying", "status", code)
		return c.cfg.RetryMax, fmt.Errorf("post %s: %d: API key refused", c.url, code)
	default:
		var wait time.Duration
		if s := resp.Header.Get("X-RateLimit-Reset"); s != "" {
			if sec, err := strconv.Atoi(s); err == nil && sec > 0 {
				wait = min(time.Duration(sec)*time.Second, c.cfg.RetryMax)
			}
		}
		return wait, fmt.Errorf("post %s: %d %s", c.url, code, bytes.TrimSpace(msg))
	}
}

// Validate checks the API key against GET /api/v1/validate.
func (c *Client) Validate(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL+"/api/v1/validate", nil)
	if err != nil {
		return err
	}
	req.Header.Set("DD-API-KEY", c.cfg.APIKey)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("validate API key at %s: %w", c.cfg.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusForbidden, http.StatusUnauthorized:
		c.forbidden.Store(true)
		return fmt.Errorf("validate API key at %s: refused (%d): check DD_API_KEY and DD_SITE", c.cfg.URL, resp.StatusCode)
	}
	return fmt.Errorf("validate API key at %s: unexpected status %d", c.cfg.URL, resp.StatusCode)
}
