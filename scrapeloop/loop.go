package scrapeloop

import (
	"bytes"
	"context"
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
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

const acceptHeader = `application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`

// loop scrapes one target. Its goroutine owns the parser and appender, and
// holds its table's lock while it processes a scrape; status is shared with
// the targets page under mu.
type loop struct {
	cfg    *env
	target Target
	limits Limits
	seed   uint64
	client *http.Client
	req    *http.Request
	parser exposition.Parser
	gz     *kgzip.Reader
	app    Appender
	table  *deltastore.Table
	gen    uint32
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
	// incomplete says the scrape that began the window saw series it did
	// not admit (refused by the series budget, or a hash collision): a new
	// series now may have been there, counting, all along.
	incomplete bool

	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status Status
}

// Status is what the targets page shows of a target.
type Status struct {
	URL          string            `json:"url"`
	Labels       map[string]string `json:"labels"`
	Source       string            `json:"source,omitempty"`
	Health       string            `json:"health"` // "up", "down", "unknown"
	LastScrape   time.Time         `json:"lastScrape"`
	LastDuration time.Duration     `json:"lastDurationNs"`
	LastError    string            `json:"lastError,omitempty"`
	Samples      int               `json:"samples"`
	Series       int               `json:"series"`
	// Refused counts the series the node's series budget refused in the last scrape.
	Refused  int           `json:"refused,omitempty"`
	Interval time.Duration `json:"intervalNs"`
}

func newLoop(cfg *env, t Target) (*loop, error) {
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
	client, err := httpClient(context.Background(), cfg.Transport, t.HTTP, req)
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
		limits: t.Limits.orDefaults(cfg.DefaultLimits),
		seed:   t.seed(),
		client: client,
		req:    req,
		app:    app,
		done:   make(chan struct{}),
		status: Status{URL: t.URL, Labels: t.Labels.Map(), Source: t.Source, Health: "unknown", Interval: t.Interval},
	}
	l.table = cfg.Store.Table(l.seed)
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
	if err != nil && ctx.Err() != nil {
		return // shutting down: not the target's fault
	}
	if err != nil {
		m.errors.Inc()
		l.cfg.errorLog(l.target.URL, err)
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

// fetch reads the response body into buf and returns its content type.
func (l *loop) fetch(ctx context.Context, buf *[]byte) (string, error) {
	req := l.req.WithContext(ctx)
	resp, err := l.client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("server returned HTTP status %s", resp.Status)
	}
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if l.gz == nil {
			l.gz, err = kgzip.NewReader(resp.Body)
		} else {
			err = l.gz.Reset(resp.Body)
		}
		if err != nil {
			return "", fmt.Errorf("gzip: %w", err)
		}
		r = l.gz
	}
	limit := l.limits.BodySize
	if n := resp.ContentLength; r == resp.Body && n > int64(cap(*buf)) && n <= limit {
		// The declared size: one buffer of its level instead of chunks.
		nb := l.cfg.bodies.get(int(n))
		*nb, *buf = *buf, *nb // buf stays the caller's; the old buffer goes back
		l.cfg.bodies.put(nb)
	}
	n, err := l.cfg.bodies.readBody(buf, r, limit)
	if err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	if n > limit {
		return "", fmt.Errorf("body larger than %d bytes: %w", limit, errBodySizeLimit)
	}
	l.cfg.m.bodyBytes.Add(int(n))
	return resp.Header.Get("Content-Type"), nil
}

// process parses body and hands its points to the appender. Call with the
// table locked. It returns the samples read and the new series the node's
// series budget refused.
func (l *loop) process(body []byte, contentType string, start time.Time) (samples, refused int, err error) {
	p := &l.parser
	p.Reset(body, exposition.FormatFor(contentType))
	tab := l.table
	app := l.app
	l.gen++
	gen := l.gen
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
	collided := false
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
			sl.Ref, sl.Kind, sl.Len = ref, uint8(kind), len16(raw)
		} else if sl.Len != len16(raw) {
			// Two series with one 64-bit hash (about one in 10^8 for a
			// million series): the first keeps the slot, the other is not sent.
			l.cfg.m.collisions.Inc()
			collided = true
			continue
		}
		sl.Gen = gen
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
	// Series that went away release their state.
	tab.Sweep(func(sl *deltastore.Slot) bool {
		if sl.Gen == gen {
			return false
		}
		if sl.Kind != 0 {
			app.Forget(sl.Ref)
		}
		return true
	})
	l.incomplete = refused > 0 || collided
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
