package ddclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
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
	// SeriesV3 sends series as Datadog's v3 columnar payload to
	// /api/intake/metrics/v3/series instead of v2 JSON to /api/v2/series.
	// UseV3Series decides it for a URL as the Datadog Agent does.
	SeriesV3 bool
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
	// MetadataMaxNames bounds the metric names whose metadata is held for
	// sending (and their text to 1 KiB each on average); past it the least
	// recently met names are evicted and counted, and may be sent again.
	// Default DefaultMetadataMaxNames.
	MetadataMaxNames int
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
	url    string                                // series v2
	urlV3  string                                // series v3
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
	// running is held while Run is: Drain waits for Run's workers to have
	// ended their last POSTs before it spools what is left.
	running sync.WaitGroup

	// key is the API key in use; keyStamp the APIKeyFile's size and mtime
	// when it was read.
	key      atomic.Pointer[string]
	keyMu    sync.Mutex
	keyStamp string

	// wake tells idle workers to look at the queue again; changed tells
	// Drain that the queue, the posts in flight or the spool changed.
	wake, changed chan struct{}
	dropped       atomic.Int64 // points this client dropped, all reasons
	forbidden     atomic.Bool
	lastErr       atomic.Pointer[string]
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
	// endpoint is where the payload's format is read: a payload read back
	// from the spool goes there whatever SeriesV3 is now.
	endpoint spool.Endpoint
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
	cfg.setDefaults()
	cfg.v3Compression()
	c := &Client{cfg: cfg, url: cfg.URL + "/api/v2/series", urlV3: cfg.URL + "/api/intake/metrics/v3/series", wake: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
	// Half the raw limit: payloads compress to well under 512 kB, and any
	// entry still fits in the buffer that holds it. A v3 payload is sealed
	// at the compressed limit, which it reaches only past
	// MaxPointsPerPayload unless its tags are long and rarely shared.
	c.sealAt = cfg.MaxRawPayloadBytes / 2
	if cfg.SeriesV3 {
		c.sealAt = min(c.sealAt, cfg.MaxPayloadBytes)
	}
	c.m = newClientMetrics()
	c.enc = newEncodeMetrics(c.m.set)
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
	c.m.set.NewGauge(`nodescraper_dd_queue_bytes`, func() float64 { return float64(c.QueueBytes()) })
	if c.encode, c.encTag, err = newEncoder(cfg.Compression); err != nil {
		return nil, err
	}
	return c, nil
}

// v3Compression turns SeriesV3 off for a compression other than zstd: v3
// payloads are zstd compressed (the intake requires it), and the Datadog
// Agent too sends v2 when its compression is not zstd.
func (cfg *Config) v3Compression() {
	if cfg.SeriesV3 && cfg.Compression != "" && cfg.Compression != "zstd" {
		cfg.Logger.Warn("v3 series need zstd compression: sending v2 series", "compression", cfg.Compression)
		cfg.SeriesV3 = false
	}
}

// setDefaults fills in the defaults Config documents.
func (cfg *Config) setDefaults() {
	setDefault(&cfg.FlushInterval, 5*time.Second)
	setDefault(&cfg.MaxQueueBytes, 64<<20)
	setDefault(&cfg.SendConcurrency, 8)
	setDefault(&cfg.MaxPayloadBytes, MaxCompressedBytes)
	setDefault(&cfg.MaxRawPayloadBytes, MaxUncompressedBytes)
	setDefault(&cfg.RetryMin, 2*time.Second)
	setDefault(&cfg.RetryMax, 64*time.Second)
	setDefault(&cfg.RequestTimeout, 20*time.Second)
	setDefault(&cfg.MetadataInterval, 24*time.Hour)
	setDefault(&cfg.MetadataDelay, time.Minute)
	setDefault(&cfg.MetadataMaxNames, DefaultMetadataMaxNames)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	// Go's client forwards headers it does not know to be secret, such as
	// DD-API-KEY and DD-APPLICATION-KEY, to wherever a redirect points;
	// Datadog's intake never redirects, so the agent follows none: a 3xx is
	// a failed send, retried, and the keys go only to the configured URL.
	hc := *cfg.HTTPClient
	hc.CheckRedirect = refuseRedirect
	cfg.HTTPClient = &hc
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
}

// refuseRedirect stops at a redirect: the response is the 3xx itself.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// setDefault sets *v to def unless it is positive.
func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func newClientMetrics() clientMetrics {
	set := metrics.NewSet()
	return clientMetrics{
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
}

// newEncoder returns the compression function (safe for concurrent use) and
// its Content-Encoding.
func newEncoder(compression string) (func(dst, src []byte) ([]byte, error), string, error) {
	switch compression {
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
			return nil, "", fmt.Errorf("ddclient: zstd: %w", err)
		}
		return func(dst, src []byte) ([]byte, error) { return enc.EncodeAll(src, dst), nil }, "zstd1", nil
	case "gzip":
		var writers sync.Pool
		return func(dst, src []byte) ([]byte, error) {
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
		}, "gzip", nil
	case "none":
		return func(dst, src []byte) ([]byte, error) { return append(dst, src...), nil }, "", nil
	}
	return nil, "", fmt.Errorf("ddclient: unknown compression %q (want zstd, gzip or none)", compression)
}

// OpenSpool opens the disk spool in dir (created if missing): payloads past
// MaxQueueBytes and those unsent at shutdown go there, and what a previous
// process left is sent first. Call it before Run, once the directory is
// this process's alone (the state directory's lock is held).
func (c *Client) OpenSpool(dir string) error {
	refused := c.m.set.GetOrCreateCounter(`nodescraper_dd_spool_segments_refused_total`)
	// No payload larger than MaxPayloadBytes is ever spooled (compress
	// drops it), so a segment the spool may read is bounded by it.
	sp, err := spool.Open(spool.Config{Dir: dir, MaxBytes: c.cfg.SpoolMaxBytes, MaxRecord: c.cfg.MaxPayloadBytes, Logger: c.cfg.Logger,
		Refused: func(string) { refused.Inc() },
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

// Run sends payloads with SendConcurrency workers until ctx is cancelled,
// then waits for its workers: a POST in flight is not cancelled with ctx but
// finishes, under Drain's deadline when Drain runs meanwhile (call Drain
// once ctx is cancelled, without waiting for Run to return first).
func (c *Client) Run(ctx context.Context) {
	c.running.Add(1)
	defer c.running.Done()
	var wg sync.WaitGroup
	defer wg.Wait()
	for range c.cfg.SendConcurrency {
		wg.Go(func() { c.worker(ctx.Done(), false) })
	}
	wg.Go(func() { c.api.run(ctx) })
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

// Close closes the spool, whose files stay for the next start. Call it
// after Drain.
func (c *Client) Close() error {
	if c.spool == nil {
		return nil
	}
	return c.spool.Close()
}
