package scrapeloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

const acceptHeader = `application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`

// loop scrapes one target. Its goroutine owns the parser and appender, and
// holds its table's lock while it processes a scrape; status is shared with
// the targets page under mu.
type loop struct {
	cfg    *env
	target target.Target
	limits scrapeLimits
	seed   uint64
	client *http.Client
	req    *http.Request
	parser exposition.Parser
	gz     *kgzip.Reader
	body   bodyReader // the current response body (see fetch)
	app    Appender
	table  *deltastore.Table
	// bodySize is the previous body's size: the next one's buffer is taken
	// from the pool at about that size.
	bodySize int

	builder    labels.Builder
	keyA, keyB []byte // label names under the Verbatim rules, in sameAsVerbatim
	// scratch and final build a plain series' labels without allocating;
	// final is valid only during AddSeries.
	scratch labels.ScratchBuilder
	final   labels.Labels
	// windowStart is when the current observation window began: the last
	// successful scrape, or when the loop started. A series known to start
	// after it counted entirely while we watched.
	windowStart int64
	succeeded   bool
	// collided holds the hashes of the slots a series met that were not its
	// own (same hash, other bytes) in the current scrape.
	collided []uint64
	// incomplete says the scrape that began the window saw series it did
	// not admit (refused by the series budget, or a hash collision): a new
	// series now may have been there, counting, all along.
	incomplete bool
	// postRelabel and added count, in the last process, the samples left
	// after metric relabeling and the series added (see Report).
	postRelabel, added int

	// closeIdle closes the idle connections of the target's own transports
	// (TLS, proxy, OAuth2 token client) once the loop has stopped.
	closeIdle func()

	cancel context.CancelFunc
	done   chan struct{}

	pool string       // the target's scrape pool
	pm   *poolMetrics // the pool's series

	mu     sync.Mutex
	status Status
}

// Status is what the targets page and API show of a target.
type Status struct {
	URL    string
	Labels map[string]string
	// Discovered are the target's labels before relabeling.
	Discovered   labels.Labels
	Source       string
	Pool         string
	Health       string // "up", "down", "unknown"
	LastScrape   time.Time
	LastDuration time.Duration
	LastError    string
	Samples      int
	Series       int
	// Refused counts the series the node's series budget refused in the last scrape.
	Refused  int
	Interval time.Duration
	Timeout  time.Duration
}

func newLoop(cfg *env, t target.Target) (*loop, error) {
	if t.Interval < time.Second || t.Timeout <= 0 || t.Timeout > t.Interval {
		// Datadog keeps one point per series and second.
		return nil, fmt.Errorf("target %s: interval %s must be at least 1s and timeout %s within it", t.URL, t.Interval, t.Timeout)
	}
	if cfg.MaxInterval > 0 && t.Interval > cfg.MaxInterval {
		return nil, fmt.Errorf("target %s: interval %s is longer than half of --series-stale-after (%s): its delta state would expire between scrapes", t.URL, t.Interval, cfg.MaxInterval)
	}
	req, err := http.NewRequest(http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t.URL, err)
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", "nodescraper")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(t.Timeout.Seconds(), 'f', -1, 64))
	client, closeIdle, err := httpClient(cfg.Transport, t.HTTP, req)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t.URL, err)
	}
	client.Timeout = t.Timeout
	app, err := cfg.Backend.NewAppender(&t)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", t.URL, err)
	}
	l := &loop{
		cfg:    cfg,
		target: t,
		limits: resolveLimits(t.Limits, cfg.DefaultLimits),
		seed:   t.Seed(),
		client: client,
		req:    req,
		app:    app,
		done:   make(chan struct{}),
		pool:   t.ScrapePool(),
		status: Status{
			URL: t.URL, Labels: t.Labels.Map(), Discovered: t.Discovered, Source: t.Source, Pool: t.ScrapePool(),
			Health: "unknown", Interval: t.Interval, Timeout: t.Timeout,
		},
	}
	l.pm = cfg.pool(l.pool)
	l.table = cfg.Store.Table(l.seed)
	l.closeIdle = closeIdle
	return l, nil
}

// run scrapes on the target's schedule until ctx is cancelled.
func (l *loop) run(ctx context.Context) {
	defer close(l.done)
	l.resume()
	// Spread start times by the target's hash so a node's scrapes do not fire together.
	iv := l.target.Interval
	offset := time.Duration(l.seed % uint64(iv))
	now := l.cfg.Now()
	next := now.Truncate(iv).Add(offset)
	if next.Before(now) {
		next = next.Add(iv)
	}
	timer := time.NewTimer(next.Sub(now))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		l.scrapeOnce(ctx)
		next = next.Add(iv)
		if now := l.cfg.Now(); next.Before(now) {
			// Missed ticks (a slow scrape, a suspended process): skip ahead.
			next = now.Truncate(iv).Add(offset)
			if next.Before(now) {
				next = next.Add(iv)
			}
		}
		timer.Reset(next.Sub(l.cfg.Now()))
	}
}

// resume starts the observation window. When the table holds the target's
// last successful scrape (restored from the previous agent's checkpoint with
// the series, or kept from the target's previous loop), the window goes on
// from there, as if the loop had never stopped: a series that appeared since
// counted entirely after that scrape, so its first value is an increase, not
// a baseline. A previous loop's classifications are dropped: the new loop's
// configuration (relabeling, limits) may differ.
func (l *loop) resume() {
	l.table.Lock()
	defer l.table.Unlock()
	l.table.ForgetKinds()
	l.windowStart = l.cfg.Now().UnixMilli()
	if v := l.table.LastSuccess(); v > 0 && v <= l.windowStart {
		l.windowStart, l.succeeded = v, true
	}
}

// succeed ends the observation window at a successful scrape that started
// at start. Call with the table locked.
func (l *loop) succeed(start time.Time) {
	l.windowStart = start.UnixMilli()
	l.succeeded = true
	l.table.SetLastSuccess(l.windowStart)
}

// release drops the target's series and state (the target is gone).
func (l *loop) release() {
	l.table.Release()
}

func (l *loop) scrapeOnce(ctx context.Context) {
	start := l.cfg.Now()
	samples, err := l.scrape(ctx, start)
	dur := l.cfg.Now().Sub(start)
	m := &l.cfg.m
	m.scrapes.Inc()
	m.duration.Update(dur.Seconds())
	l.pm.scrapes.Inc()
	l.pm.duration.Update(dur.Seconds())
	if err != nil && ctx.Err() != nil {
		return // shutting down: not the target's fault
	}
	if err != nil {
		m.errors.Inc()
		l.pm.failures.Inc()
		l.cfg.errorLog(l.target.URL, err)
	}
	if rep, ok := l.app.(Reporter); ok {
		rep.Report(&Report{Start: start, Duration: dur, Err: err, Samples: samples, PostRelabel: l.postRelabel, SeriesAdded: l.added})
	}
	l.mu.Lock()
	l.status.LastScrape = start
	l.status.LastDuration = dur
	l.status.Samples = samples
	l.status.Series = l.table.Len()
	if err != nil {
		l.status.Health, l.status.LastError = "down", err.Error()
	} else {
		l.status.Health, l.status.LastError = "up", ""
	}
	l.mu.Unlock()
}

// scrape fetches, parses and hands the points to the appender. Points
// computed before a mid-body error are still sent: their deltas are real
// increases and the delta state already counts them, so dropping them would
// lose data.
func (l *loop) scrape(ctx context.Context, start time.Time) (int, error) {
	l.postRelabel, l.added = 0, 0
	buf := l.cfg.bodies.get(l.bodySize + l.bodySize/8)
	defer l.cfg.bodies.put(buf)
	ct, err := l.fetch(ctx, buf)
	if err != nil {
		// Size the next buffer afresh: an oversized or broken body says
		// nothing of the next one.
		l.bodySize = 0
		return 0, fmt.Errorf("scrape %s: %w", l.target.URL, err)
	}
	l.bodySize = len(*buf)
	select {
	case l.cfg.parseSem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-l.cfg.parseSem }()
	l.table.Lock()
	defer l.table.Unlock()
	samples, refused, err := l.process(*buf, ct, start)
	l.app.Commit()
	l.cfg.m.samples.Add(samples)
	if refused > 0 {
		l.cfg.m.refused.Add(refused)
		l.cfg.refusedLog(l.target.URL, refused)
	}
	l.mu.Lock()
	l.status.Refused = refused
	l.mu.Unlock()
	if err != nil {
		return samples, fmt.Errorf("scrape %s: %w", l.target.URL, err)
	}
	l.succeed(start)
	return samples, nil
}

// fetch reads the response body into buf and returns its content type. A
// body that provably is not the whole exposition fails the scrape (see
// incomplete): taken as a short body it would pass for one whose missing
// series vanished, and a value cut within its line for a counter reset.
func (l *loop) fetch(ctx context.Context, buf *[]byte) (string, error) {
	req := l.req.WithContext(ctx)
	resp, err := l.client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		l.body = bodyReader{} // the response is not kept until the next scrape
	}()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("server returned HTTP status %s", resp.Status)
	}
	// The body goes through l.body, which keeps the transport's own error:
	// a cut connection and a broken gzip stream both end in an unexpected
	// EOF, and only the transport's tells them apart.
	l.body = bodyReader{r: resp.Body}
	var r io.Reader = &l.body
	gzipped := resp.Header.Get("Content-Encoding") == "gzip"
	if gzipped {
		if l.gz == nil {
			l.gz, err = kgzip.NewReader(&l.body)
		} else {
			err = l.gz.Reset(&l.body)
		}
		if err != nil {
			return "", l.readFailed(ctx, resp, fmt.Errorf("gzip: %w", err))
		}
		r = l.gz
	}
	limit := l.limits.BodySize
	if n := resp.ContentLength; !gzipped && n > int64(cap(*buf)) && n <= limit {
		// The declared size: one buffer of its level instead of chunks.
		nb := l.cfg.bodies.get(int(n))
		*nb, *buf = *buf, *nb // buf stays the caller's; the old buffer goes back
		l.cfg.bodies.put(nb)
	}
	n, err := l.cfg.bodies.readBody(buf, r, limit)
	if err != nil {
		return "", l.readFailed(ctx, resp, fmt.Errorf("read body: %w", err))
	}
	if n > limit {
		return "", fmt.Errorf("body larger than %d bytes: %w", limit, errBodySizeLimit)
	}
	ct := resp.Header.Get("Content-Type")
	// Framing ends a body where its sender meant it to end: a declared
	// length, the last chunk, an HTTP/2 stream's end, gzip's trailer.
	framed := resp.ProtoMajor != 1 || resp.ContentLength >= 0 || isChunked(resp) || gzipped
	if reason, why := incomplete(*buf, exposition.FormatFor(ct), framed); reason != "" {
		l.countIncomplete(reason)
		return "", fmt.Errorf("%w (%s): %s", errIncomplete, reason, why)
	}
	l.cfg.m.bodyBytes.Add(int(n))
	return ct, nil
}

// errIncomplete marks a body that provably is not the whole exposition.
var errIncomplete = errors.New("incomplete body")

// Why a body is incomplete: the label values of
// nodescraper_scrape_incomplete_bodies_total.
const (
	incompleteLength  = "content_length"    // the connection ended before the declared Content-Length
	incompleteChunked = "chunked"           // a chunked stream ended without its last chunk
	incompleteStream  = "truncated"         // another framing (HTTP/2) ended early
	incompleteGzip    = "gzip"              // the gzip stream is cut or damaged, its framing intact
	incompleteRead    = "read_error"        // the read failed otherwise (a reset, the scrape timeout)
	incompleteEOF     = "no_eof"            // OpenMetrics without its final # EOF line
	incompleteLine    = "unterminated_line" // an unframed text body that ends within a line
)

// bodyReader passes a response body through and keeps its first error other
// than io.EOF.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func isChunked(resp *http.Response) bool {
	return len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
}

// readFailed names and counts why reading the body failed.
func (l *loop) readFailed(ctx context.Context, resp *http.Response, err error) error {
	if ctx.Err() != nil {
		return err // shutting down: not the target's fault, nor counted
	}
	te := l.body.err
	reason := incompleteRead
	switch {
	case te == nil:
		reason = incompleteGzip // the transport delivered all it had
	case errors.Is(te, io.ErrUnexpectedEOF) && resp.ContentLength >= 0:
		reason = incompleteLength
		err = fmt.Errorf("connection ended before the %d bytes of its Content-Length: %w", resp.ContentLength, err)
	case errors.Is(te, io.ErrUnexpectedEOF) && isChunked(resp):
		reason = incompleteChunked
		err = fmt.Errorf("chunked body ended without its last chunk: %w", err)
	case errors.Is(te, io.ErrUnexpectedEOF):
		reason = incompleteStream
	}
	l.countIncomplete(reason)
	return fmt.Errorf("%w (%s): %w", errIncomplete, reason, err)
}

func (l *loop) countIncomplete(reason string) {
	l.cfg.m.set.GetOrCreateCounter(`nodescraper_scrape_incomplete_bodies_total{reason="` + reason + `"}`).Inc()
}

var eofLine = []byte("# EOF")

// incomplete tells a whole body from one provably cut short, where the
// transport could not: OpenMetrics ends with "# EOF", and a text body whose
// connection's end was its only end (no framing) and that ends within a line
// was cut there, its last value perhaps within its digits. A text body cut
// at a line boundary cannot be told from a whole one; the delta state copes
// with it (a series missing from a scrape keeps its state).
func incomplete(body []byte, f exposition.Format, framed bool) (reason, why string) {
	switch {
	case f == exposition.FormatOpenMetrics:
		b := bytes.TrimSuffix(body, []byte{'\n'})
		if !bytes.HasSuffix(b, eofLine) || (len(b) > len(eofLine) && b[len(b)-len(eofLine)-1] != '\n') {
			return incompleteEOF, "OpenMetrics body does not end with # EOF"
		}
	case !framed && len(body) > 0 && body[len(body)-1] != '\n':
		return incompleteLine, "body without Content-Length or chunked framing ends within a line"
	}
	return "", ""
}

// process parses body and hands its points to the appender. Call with the
// table locked. It returns the samples read and the new series the node's
// series budget refused.
func (l *loop) process(body []byte, contentType string, start time.Time) (samples, refused int, err error) {
	p := &l.parser
	p.Reset(body, exposition.FormatFor(contentType))
	tab := l.table
	app := l.app
	gen := tab.NextGen()
	nowMs := start.UnixMilli()
	procStart := processStart(body)
	// A target whose process started after our window began counted every
	// first-seen series while we watched.
	freshProcess := procStart > 0 && procStart > l.windowStart
	honorTS := l.target.HonorTimestamps
	limit := l.limits.Samples
	slots := tab.Slots()
	next := int32(0)
	newIsFresh := l.succeeded && !l.incomplete
	l.collided = l.collided[:0]
	for p.Next() {
		samples++
		if limit > 0 && samples > limit {
			err = fmt.Errorf("more than %d samples: %w", limit, errSampleLimit)
			break
		}
		raw := p.Series()
		h := xxhash.Sum64(raw)
		// Expositions keep their order from scrape to scrape, and slots are
		// added in it: the next sample is most often in the next slot, which
		// saves the map lookup and keeps memory access sequential.
		i := next
		isNew := false
		if int(i) >= len(slots) || slots[i].Hash != h || !slots[i].Used() {
			if i = tab.Find(h); i < 0 {
				var ok bool
				if i, ok = tab.Add(h); !ok {
					refused++
					continue
				}
				slots = tab.Slots()
				isNew = true
				l.added++
			}
		}
		next = i + 1
		sl := &slots[i]
		if sl.Kind == 0 {
			ref, kind, cerr := l.classify(p, raw)
			if cerr != nil {
				tab.Remove(i)
				err = cerr
				break
			}
			if isNew && kind == kindRelabeled {
				l.added-- // Prometheus' scrape_series_added counts the series it stores
			}
			sl.Ref, sl.Kind, sl.Len = ref, uint8(kind), len16(raw)
		} else if sl.Len != len16(raw) {
			// Two series with one 64-bit hash (about one in 10^8 for a
			// million series): the first keeps the slot, the other is not sent.
			l.cfg.m.collisions.Inc()
			l.collided = append(l.collided, h)
			continue
		}
		sl.Gen = gen
		if Kind(sl.Kind) == kindRelabeled {
			continue
		}
		l.postRelabel++
		if Kind(sl.Kind) == KindDrop {
			continue
		}
		ts := nowMs
		if honorTS {
			if t, ok := p.Timestamp(); ok {
				ts = t
			}
		}
		v := p.Value()
		if Kind(sl.Kind) == KindGauge {
			app.Append(sl.Ref, p, ts, v)
			continue
		}
		created, hasCreated := p.Created()
		obs := deltastore.Obs{Value: v, TS: ts, Created: created}
		if !hasCreated && procStart > 0 {
			obs.Created = procStart
		}
		obs.Fresh = freshProcess || (hasCreated && created > l.windowStart) || (isNew && newIsFresh)
		if d, ok := tab.Update(sl, obs); ok {
			app.Append(sl.Ref, p, ts, d)
		}
	}
	if err == nil {
		err = p.Err()
	}
	if err != nil {
		return samples, refused, err
	}
	// A series this scrape lacks keeps its counter state until it is stale,
	// so its return is a delta, not its whole value again (see SweepAbsent);
	// the others release their state and backend handle.
	forget := func(sl *deltastore.Slot) {
		if sl.Kind != 0 {
			app.Forget(sl.Ref)
		}
	}
	for _, h := range l.collided {
		// The slot's own series is gone and another one with its hash is
		// here: the slot goes to the one that is here, from a baseline.
		if i := tab.Find(h); i >= 0 && tab.Slots()[i].Gen != gen {
			forget(&tab.Slots()[i])
			tab.Remove(i)
		}
	}
	tab.SweepAbsent(gen, nowMs, forget)
	l.incomplete = refused > 0 || len(l.collided) > 0
	return samples, refused, nil
}

// len16 is a series' length as a slot keeps it.
func len16(raw []byte) uint16 { return uint16(min(len(raw), math.MaxUint16)) }

var processStartName = []byte("\nprocess_start_time_seconds ")

// processStart finds process_start_time_seconds (milliseconds) without a full
// parse: counters come before it in most expositions, and their first-sight
// rule needs it.
func processStart(body []byte) int64 {
	i := bytes.Index(body, processStartName)
	if i < 0 {
		if !bytes.HasPrefix(body, processStartName[1:]) {
			return 0
		}
		i = -1
	}
	rest := body[i+len(processStartName):]
	if j := bytes.IndexAny(rest, " \n"); j >= 0 {
		rest = rest[:j]
	}
	v, err := strconv.ParseFloat(string(rest), 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) {
		return 0
	}
	return int64(v * 1000)
}

func (l *loop) getStatus() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}
