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

	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

const acceptHeader = `application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`

var (
	scrapesTotal      = metrics.NewCounter(`nodescraper_scrapes_total`)
	scrapeErrorsTotal = metrics.NewCounter(`nodescraper_scrape_errors_total`)
	samplesTotal      = metrics.NewCounter(`nodescraper_scrape_samples_total`)
	pointsTotal       = metrics.NewCounter(`nodescraper_points_total`)
	scrapeDuration    = metrics.NewHistogram(`nodescraper_scrape_duration_seconds`)
	bodyBytesTotal    = metrics.NewCounter(`nodescraper_scrape_body_bytes_total`)
)

// loop scrapes one target. Its goroutine owns the parser, cache and buffers;
// status is shared with the targets page under mu.
type loop struct {
	cfg    *env
	target Target
	seed   uint64
	client *http.Client
	req    *http.Request
	parser exposition.Parser
	body   bytes.Buffer
	gz     *kgzip.Reader
	batch  ddclient.Batch
	cache  map[uint64]*entry
	gen    uint32

	builder labels.Builder
	// windowStart is when the current observation window began: the last
	// successful scrape, or when the loop started. A series known to start
	// after it counted entirely while we watched.
	windowStart int64
	succeeded   bool
	// marker is the delta-store key under which the target's last successful
	// scrape survives an agent restart, together with its series.
	marker uint64

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
	Interval     time.Duration     `json:"intervalNs"`
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
	l := &loop{
		cfg:    cfg,
		target: t,
		seed:   t.seed(),
		marker: mix(t.seed() ^ markerSalt),
		client: client,
		req:    req,
		cache:  map[uint64]*entry{},
		done:   make(chan struct{}),
		status: Status{URL: t.URL, Labels: t.Labels.Map(), Source: t.Source, Health: "unknown", Interval: t.Interval},
	}
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

// markerSalt keeps a target's marker key apart from its series' keys.
const markerSalt = 0x6d61726b65722e31 // "marker.1"

// resume starts the observation window. When the delta store holds the
// target's last successful scrape (restored from the previous agent's
// checkpoint with the series), the window goes on from there, as if the loop
// had never stopped: a series that appeared since counted entirely after
// that scrape, so its first value is an increase, not a baseline.
func (l *loop) resume() {
	l.windowStart = l.cfg.Now().UnixMilli()
	if v, _, ok := l.cfg.Store.Get(l.marker); ok && v > 0 && int64(v) <= l.windowStart {
		l.windowStart, l.succeeded = int64(v), true
	}
}

// succeed ends the observation window at a successful scrape that started at start.
func (l *loop) succeed(start time.Time) {
	l.windowStart = start.UnixMilli()
	l.succeeded = true
	l.cfg.Store.Put(l.marker, float64(l.windowStart), l.windowStart)
}

// release drops the target's series from the delta store (the target is gone).
func (l *loop) release() {
	for _, e := range l.cache {
		if e.kind == kindCounter {
			l.cfg.Store.Delete(e.key)
		}
	}
	clear(l.cache)
	l.cfg.Store.Delete(l.marker)
}

func (l *loop) scrapeOnce(ctx context.Context) {
	start := l.cfg.Now()
	samples, err := l.scrape(ctx, start)
	dur := l.cfg.Now().Sub(start)
	scrapesTotal.Inc()
	scrapeDuration.Update(dur.Seconds())
	if err != nil && ctx.Err() != nil {
		return // shutting down: not the target's fault
	}
	if err != nil {
		scrapeErrorsTotal.Inc()
		l.cfg.errorLog(l.target.URL, err)
	}
	l.mu.Lock()
	l.status.LastScrape = start
	l.status.LastDuration = dur
	l.status.Samples = samples
	l.status.Series = len(l.cache)
	if err != nil {
		l.status.Health, l.status.LastError = "down", err.Error()
	} else {
		l.status.Health, l.status.LastError = "up", ""
	}
	l.mu.Unlock()
}

// scrape fetches, parses and hands the points to the sink. Points computed
// before a mid-body error are still sent: their deltas are real increases and
// the delta state already counts them, so dropping them would lose data.
func (l *loop) scrape(ctx context.Context, start time.Time) (int, error) {
	ct, err := l.fetch(ctx)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", l.target.URL, err)
	}
	select {
	case l.cfg.parseSem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-l.cfg.parseSem }()
	samples, err := l.process(l.body.Bytes(), ct, start)
	if l.batch.Len() > 0 {
		pointsTotal.Add(l.batch.Len())
		l.cfg.Sink.Submit(&l.batch)
	}
	samplesTotal.Add(samples)
	if err != nil {
		return samples, fmt.Errorf("scrape %s: %w", l.target.URL, err)
	}
	l.succeed(start)
	return samples, nil
}

// fetch reads the response body into l.body and returns its content type.
func (l *loop) fetch(ctx context.Context) (string, error) {
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
	limit := l.target.Limits.BodySize
	if limit <= 0 {
		limit = l.cfg.MaxBodySize
	}
	l.body.Reset()
	n, err := l.body.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	if n > limit {
		return "", fmt.Errorf("body larger than %d bytes: %w", limit, errBodySizeLimit)
	}
	bodyBytesTotal.Add(int(n))
	return resp.Header.Get("Content-Type"), nil
}

// process parses body and turns its samples into points in l.batch.
func (l *loop) process(body []byte, contentType string, start time.Time) (int, error) {
	p := &l.parser
	p.Reset(body, exposition.FormatFor(contentType))
	l.gen++
	nowMs := start.UnixMilli()
	procStart := processStart(body)
	// A target whose process started after our window began counted every
	// first-seen series while we watched.
	freshProcess := procStart > 0 && procStart > l.windowStart
	samples := 0
	limit := l.target.Limits.Samples
	var err error
	for p.Next() {
		samples++
		if limit > 0 && samples > limit {
			err = fmt.Errorf("more than %d samples: %w", limit, errSampleLimit)
			break
		}
		raw := p.Series()
		h := xxhash.Sum64(raw)
		e := l.cache[h]
		isNew := false
		if e == nil || e.raw != string(raw) {
			e, err = l.newEntry(p, raw, h)
			if err != nil {
				break
			}
			l.cache[h] = e
			isNew = true
		}
		e.gen = l.gen
		if e.kind == kindSkip {
			continue
		}
		ts := nowMs
		if l.target.HonorTimestamps {
			if t, ok := p.Timestamp(); ok {
				ts = t
			}
		}
		v := p.Value()
		if e.kind == kindGauge {
			l.batch.Add(e.series, ts/1000, v)
			continue
		}
		created, hasCreated := p.Created()
		obs := deltastore.Obs{Value: v, TS: ts, Created: created}
		if !hasCreated && procStart > 0 {
			obs.Created = procStart
		}
		obs.Fresh = freshProcess || (hasCreated && created > l.windowStart) || (isNew && l.succeeded)
		if d, ok := l.cfg.Store.Update(e.key, obs); ok {
			l.batch.Add(e.series, ts/1000, d)
		}
	}
	if err == nil {
		err = p.Err()
	}
	if err != nil {
		return samples, err
	}
	// Series that went away release their state.
	for h, e := range l.cache {
		if e.gen != l.gen {
			if e.kind == kindCounter {
				l.cfg.Store.Delete(e.key)
			}
			delete(l.cache, h)
		}
	}
	return samples, nil
}

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
