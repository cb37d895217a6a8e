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
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/nodescraper/nodescraper/ddclient/spool"
	"github.com/nodescraper/nodescraper/relabel/target"
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
	// APIKeyFile, if set, holds the API key: it is read again when the file
	// changes (checked every flush interval; a mounted Secret is replaced,
	// not edited) and when Datadog refuses the key. APIKey is the first key.
	APIKeyFile string
	// Mapping names and tags the series.
	Mapping Mapping
	// ServiceChecks sends every target's health service check
	// (<namespace>.openmetrics.health) after each scrape.
	ServiceChecks bool
	// AppKey or AppKeyFile (read again each time metadata is sent) is the
	// application key that metric metadata needs; without one no metadata
	// is sent.
	AppKey, AppKeyFile string
	// MetadataInterval is how often a metric name's metadata is sent again;
	// default 24h. MetadataDelay is how long after its first sight it is
	// first sent (Datadog must know the metric) and how long a refused or
	// failed edit waits; default 1m.
	MetadataInterval, MetadataDelay time.Duration
	// Compression is "zstd" (default), "gzip" or "none".
	Compression string
	// FlushInterval is how often gathered points are sent; default 5s.
	FlushInterval time.Duration
	// MaxQueueBytes bounds the memory held by points waiting to be sent:
	// open raw buffers, compressed payloads queued, in flight and waiting
	// for a retry. Past it payloads go to the spool, or without one the
	// oldest are dropped and counted. Default 64 MiB.
	MaxQueueBytes int
	// SendConcurrency is how many POSTs may be in flight at once; default 8,
	// which keeps up with 1M series every 15s over a 150 ms round trip.
	SendConcurrency int
	// SpoolMaxBytes bounds the disk spool (OpenSpool); default 512 MiB.
	// Past it the oldest payloads are dropped and counted.
	SpoolMaxBytes int64
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

	spool *spool.Spool // nil without SpoolDir
	api   *apiClient   // service checks and metadata

	mu        sync.Mutex
	open      []*buffer  // partly filled, held by no appender
	openBytes int        // raw bytes in open
	free      []*buffer  // empty, for reuse
	queue     []*payload // compressed payloads waiting to be sent, oldest first
	qbytes    int        // bytes of queue
	inflight  int        // payloads being posted
	ibytes    int        // bytes of those
	// failures counts consecutive failed rounds of posts; while retryAt is
	// in the future no worker posts. round numbers the rounds: the posts
	// of one round that fail together (Datadog down) back off once.
	failures int
	retryAt  time.Time
	round    uint64
	// refilling: a worker is reading a spool segment into the queue.
	refilling bool
	loaded    int // spool segments read into the queue, not yet done

	// hard cancels in-flight POSTs: only when Drain runs out of time.
	hard       context.Context
	cancelHard context.CancelFunc
	workers    sync.WaitGroup

	// key is the API key in use; keyStamp the APIKeyFile's size and mtime
	// when it was read.
	key      atomic.Pointer[string]
	keyMu    sync.Mutex
	keyStamp string

	wake      chan struct{}
	dropped   atomic.Int64 // points this client dropped, all reasons
	forbidden atomic.Bool
	lastErr   atomic.Pointer[string]
}

type clientMetrics struct {
	set                                   *metrics.Set
	payloads, points, bytes, raw, retries *metrics.Counter
	rejected, tooOld, queueFull, shutdown *metrics.Counter
	spoolFull, spoolCorrupt               *metrics.Counter
	spooled, replayed                     *metrics.Counter
}

type payload struct {
	body   []byte
	enc    string // Content-Encoding
	raw    int
	points int
	minTS  int64
	tries  int
	round  uint64 // the client's round when the payload was taken
	// seg is the spool segment the payload was read from, if any.
	seg *loadedSegment
}

// loadedSegment is a spool segment read into the queue: it is deleted when
// its last payload is sent or dropped.
type loadedSegment struct {
	g    *spool.Segment
	left int
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
	if cfg.SendConcurrency <= 0 {
		cfg.SendConcurrency = 8
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
	if cfg.MetadataInterval <= 0 {
		cfg.MetadataInterval = 24 * time.Hour
	}
	if cfg.MetadataDelay <= 0 {
		cfg.MetadataDelay = time.Minute
	}
	c := &Client{cfg: cfg, url: cfg.URL + "/api/v2/series", wake: make(chan struct{}, 1)}
	// Half the raw limit: payloads compress to well under 512 kB, and any
	// entry still fits in the buffer that holds it.
	c.sealAt = cfg.MaxRawPayloadBytes / 2
	set := metrics.NewSet()
	c.m = clientMetrics{
		set:          set,
		payloads:     set.NewCounter(`nodescraper_dd_payloads_sent_total`),
		points:       set.NewCounter(`nodescraper_dd_points_sent_total`),
		bytes:        set.NewCounter(`nodescraper_dd_bytes_sent_total`),
		raw:          set.NewCounter(`nodescraper_dd_bytes_uncompressed_total`),
		retries:      set.NewCounter(`nodescraper_dd_retries_total`),
		rejected:     set.NewCounter(`nodescraper_dd_points_dropped_total{reason="rejected"}`),
		tooOld:       set.NewCounter(`nodescraper_dd_points_dropped_total{reason="too_old"}`),
		queueFull:    set.NewCounter(`nodescraper_dd_points_dropped_total{reason="queue_full"}`),
		shutdown:     set.NewCounter(`nodescraper_dd_points_dropped_total{reason="shutdown"}`),
		spoolFull:    set.NewCounter(`nodescraper_dd_points_dropped_total{reason="spool_full"}`),
		spoolCorrupt: set.NewCounter(`nodescraper_dd_points_dropped_total{reason="spool_corrupt"}`),
		spooled:      set.NewCounter(`nodescraper_dd_points_spooled_total`),
		replayed:     set.NewCounter(`nodescraper_dd_points_replayed_total`),
	}
	c.enc = newEncodeMetrics(set)
	var err error
	if c.api, err = newAPIClient(c); err != nil {
		return nil, err
	}
	c.hard, c.cancelHard = context.WithCancel(context.Background())
	key := cfg.APIKey
	c.key.Store(&key)
	if cfg.APIKeyFile != "" {
		c.reloadKey(false)
	}
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

// OpenSpool opens the disk spool in dir (created if missing): payloads past
// MaxQueueBytes and those unsent at shutdown go there, and what a previous
// process left is sent first. Call it before Run, once the directory is
// this process's alone (the state directory's lock is held).
func (c *Client) OpenSpool(dir string) error {
	sp, err := spool.Open(spool.Config{Dir: dir, MaxBytes: c.cfg.SpoolMaxBytes, Logger: c.cfg.Logger,
		Dropped: func(n int, reason string) {
			if reason == "spool_corrupt" {
				c.drop(c.m.spoolCorrupt, n)
			} else {
				c.drop(c.m.spoolFull, n)
			}
		}})
	if err != nil {
		return fmt.Errorf("ddclient: %w", err)
	}
	c.mu.Lock()
	c.spool = sp
	c.mu.Unlock()
	c.m.set.NewGauge(`nodescraper_dd_spool_bytes`, func() float64 { return float64(sp.Bytes()) })
	c.m.set.NewGauge(`nodescraper_dd_spool_points`, func() float64 { return float64(sp.Points()) })
	if n := sp.Points(); n > 0 {
		c.cfg.Logger.Info("the spool holds points from before; sending them first", "points", n, "bytes", sp.Bytes(), "dir", dir)
	}
	return nil
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

// QueueBytes returns the bytes in memory waiting to be sent: open raw
// buffers, queued and in-flight payloads.
func (c *Client) QueueBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memLocked()
}

func (c *Client) memLocked() int { return c.openBytes + c.qbytes + c.ibytes }

// SpoolPoints returns the points in the disk spool (0 without one).
func (c *Client) SpoolPoints() int {
	if c.spool == nil {
		return 0
	}
	return c.spool.Points()
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
func (c *Client) NewAppender(t *target.Target) (scrapeloop.Appender, error) {
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
		c.openBytes -= len(bf.b)
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
	if c.memLocked()+len(bf.b) > c.cfg.MaxQueueBytes {
		// Kept open it would pass the memory bound: sealed, it goes to
		// the spool (or pushes out the oldest) like any payload.
		c.mu.Unlock()
		c.seal(bf)
		return
	}
	c.open = append(c.open, bf)
	c.openBytes += len(bf.b)
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

func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run sends payloads with SendConcurrency workers until ctx is cancelled;
// POSTs in flight then are not cancelled but finish under Drain, which the
// caller runs afterwards with the shutdown's deadline.
func (c *Client) Run(ctx context.Context) {
	for range c.cfg.SendConcurrency {
		c.workers.Add(1)
		go c.worker(ctx.Done(), false)
	}
	var api sync.WaitGroup
	defer api.Wait()
	api.Go(func() { c.api.run(ctx) })
	t := time.NewTicker(c.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sealOpen()
			c.reloadKey(false)
			c.signal()
		}
	}
}

// worker posts queued payloads until stop is closed, refilling the queue
// from the spool when memory has room.
func (c *Client) worker(stop <-chan struct{}, draining bool) {
	defer c.workers.Done()
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
		// Datadog fails: what waits behind p goes to disk, so that a killed
		// agent loses no more than the payloads being retried. Payloads read
		// from the spool are on disk already.
		var move []*payload
		if c.spool != nil && !cancelled {
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
	c.signal()
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
		p := &payload{body: r.Body, enc: r.Encoding, raw: r.Raw, points: r.Points, minTS: r.MinTS, seg: ls}
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

// drainRounds is how many failed rounds of posts end a drain early when
// there is a spool to take the rest (Datadog is down, not blinking).
const drainRounds = 3

// Drain seals what is gathered and sends everything queued until ctx ends
// or Datadog fails; POSTs in flight are let finish until then. What is not
// sent goes to the spool for the next start (or, without one, is counted as
// dropped).
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
	for range c.cfg.SendConcurrency {
		c.workers.Add(1)
		go c.worker(stop, true)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timedOut := false
wait:
	for {
		c.mu.Lock()
		idle := len(c.queue) == 0 && c.inflight == 0 && !c.refilling && c.loaded == 0
		// With a spool, a failing Datadog ends the drain: waiting longer
		// would only delay the spooling.
		failing := c.spool != nil && c.round-startRound >= drainRounds && c.inflight == 0
		c.mu.Unlock()
		if failing || idle && (c.spool == nil || c.spool.Empty()) {
			break
		}
		c.signal() // workers look at the spool again
		select {
		case <-ctx.Done():
			timedOut = true
			break wait
		case <-tick.C:
		}
	}
	close(stop)
	c.mu.Lock()
	c.cancelHard()
	c.mu.Unlock()
	c.workers.Wait()

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

// Close closes the spool, whose files stay for the next start. Call it
// after Drain.
func (c *Client) Close() error {
	if c.spool == nil {
		return nil
	}
	return c.spool.Close()
}

// spoolPayloads writes payloads to the spool, counting them; if it fails
// they are counted under lost.
func (c *Client) spoolPayloads(ps []*payload, lost *metrics.Counter) error {
	recs := make([]spool.Record, 0, len(ps))
	n := 0
	for _, p := range ps {
		recs = append(recs, spool.Record{Body: p.body, Encoding: p.enc, Raw: p.raw, Points: p.points, MinTS: p.minTS})
		n += p.points
	}
	if err := c.spool.Append(recs...); err != nil {
		c.drop(lost, n)
		return err
	}
	c.m.spooled.Add(n)
	return nil
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
	p := &payload{body: body, enc: c.encTag, raw: len(raw), points: to - from, minTS: bf.minTS}
	c.mu.Lock()
	over := c.memLocked()+len(body) > c.cfg.MaxQueueBytes
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
	c.qbytes += len(body)
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
	req.Header.Set("DD-API-KEY", *c.key.Load())
	req.Header.Set("User-Agent", "nodescraper")
	if p.enc != "" {
		req.Header.Set("Content-Encoding", p.enc)
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
		if c.reloadKey(true) {
			// A new key is there: retry with it at once.
			return time.Millisecond, fmt.Errorf("post %s: %d: API key refused; read a new one from %s", c.url, code, c.cfg.APIKeyFile)
		}
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

// reloadKey reads APIKeyFile again if it changed since the last read (or,
// with force, whatever its stamp) and reports whether the key changed.
func (c *Client) reloadKey(force bool) bool {
	if c.cfg.APIKeyFile == "" {
		return false
	}
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	st, err := os.Stat(c.cfg.APIKeyFile)
	if err != nil {
		c.cfg.Logger.Warn("API key file unreadable; keeping the current key", "file", c.cfg.APIKeyFile, "err", err)
		return false
	}
	stamp := fmt.Sprint(st.Size(), st.ModTime().UnixNano())
	if stamp == c.keyStamp && !force {
		return false
	}
	b, err := os.ReadFile(c.cfg.APIKeyFile)
	key := strings.TrimSpace(string(b))
	if err != nil || key == "" {
		c.cfg.Logger.Warn("API key file unreadable or empty; keeping the current key", "file", c.cfg.APIKeyFile, "err", err)
		return false
	}
	c.keyStamp = stamp
	if key == *c.key.Load() {
		return false
	}
	c.key.Store(&key)
	c.cfg.Logger.Info("API key read again from its file", "file", c.cfg.APIKeyFile)
	return true
}

// Validate checks the API key against GET /api/v1/validate.
func (c *Client) Validate(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL+"/api/v1/validate", nil)
	if err != nil {
		return err
	}
	req.Header.Set("DD-API-KEY", *c.key.Load())
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
