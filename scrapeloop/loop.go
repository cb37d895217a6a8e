package scrapeloop

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
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
	// meter reads the current body within the node's bytes in flight; it
	// holds the body's bytes until the scrape has processed it.
	meter meteredBody
	app   Appender
	table *deltastore.Table
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
	// lastSec is the Unix second of the target's last scrape: its points'
	// timestamp (see due).
	lastSec int64
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
	// refused counts, in the last process, the new series a series budget
	// refused, by reason.
	refused [deltastore.RefusedNode + 1]int

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
	// Refused counts the new series a series budget (the target's, its
	// namespace's or the node's) refused in the last scrape; RefusedReason
	// says which and how many, "" when none.
	Refused       int
	RefusedReason string
	Interval      time.Duration
	Timeout       time.Duration
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
	client, closeIdle, err := httpClient(cfg.Transport, cfg.reach(&t, req.URL), t.HTTP, t.OwnCredentials, req)
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
	// The namespace's series budget: its monitors' targets share it (file_sd
	// targets have no namespace, and share "").
	l.table.SetNamespace(t.Discovered.Get("__meta_kubernetes_namespace"))
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
	if l.target.Cluster {
		// A target of no node starts at once: this agent just took it over
		// from a holder that is gone, and its first scrape is the baseline
		// of the new holder's deltas. (A few such targets need no spread.)
		next = now
	}
	timer := time.NewTimer(next.Sub(now))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if l.due(l.cfg.Now()) {
			l.scrapeOnce(ctx)
		}
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

// due reports whether a tick at now may scrape. Datadog keeps one point per
// series and second, and a scrape's points carry its start second: a tick
// that fires late, into the second of the scrape before it (a 1s interval
// whose phase is near the end of a second, on a busy node), would send a
// second point at that timestamp and one of the two deltas would be lost
// there. Such a tick is skipped and counted; its increase goes into the next
// scrape's deltas.
func (l *loop) due(now time.Time) bool {
	if now.Unix() <= l.lastSec {
		l.cfg.m.skipped.Inc()
		return false
	}
	return true
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
		l.lastSec = v / 1000 // the target's previous loop scraped in that second
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
	l.lastSec = start.Unix()
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
	l.postRelabel, l.added, l.refused = 0, 0, [len(l.refused)]int{}
	// The buffer sized from the previous body is taken once its bytes are
	// (fetch); until then the smallest one.
	buf := l.cfg.bodies.get(0)
	defer l.cfg.bodies.put(buf)
	defer l.meter.done()
	ct, err := l.fetch(ctx, buf)
	if err != nil {
		// The next buffer is sized from the last whole body, not this one: a
		// target that failed once (a timeout, no bytes in flight free) would
		// otherwise be read in chunks and copied at its next success, twice
		// its body's memory for a moment.
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
	reason := ""
	if refused > 0 {
		reason = l.countRefused()
		l.cfg.refusedLog(l.target.URL, reason)
	}
	l.mu.Lock()
	l.status.Refused, l.status.RefusedReason = refused, reason
	l.mu.Unlock()
	if err != nil {
		return samples, fmt.Errorf("scrape %s: %w", l.target.URL, err)
	}
	l.succeed(start)
	return samples, nil
}

// process parses body and hands its points to the appender. Call with the
// table locked. It returns the samples read and the new series a series
// budget refused (by reason in l.refused).
func (l *loop) process(body []byte, contentType string, start time.Time) (samples, refused int, err error) {
	p := &l.parser
	p.Reset(body, exposition.FormatFor(contentType))
	tab := l.table
	w := l.newWindow(body, start)
	limit := l.limits.Samples
	next := int32(0)
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
		// saves the lookup and keeps memory access sequential.
		i := next
		isNew := false
		if slots := tab.Slots(); int(i) >= len(slots) || slots[i].Hash != h || !slots[i].Used() {
			var why deltastore.Refusal
			if i, isNew, why = l.findOrAdd(h); why != deltastore.Admitted {
				l.refused[why]++
				refused++
				continue
			}
		}
		next = i + 1
		sl := &tab.Slots()[i]
		if sl.Kind == 0 {
			if err = l.classifySlot(p, raw, i, isNew); err != nil {
				break
			}
		} else if sl.Len != len16(raw) {
			// Two series with one 64-bit hash (see len16): the first keeps
			// the slot, the other is not sent.
			l.cfg.m.collisions.Inc()
			l.collided = append(l.collided, h)
			continue
		}
		sl.Gen = w.gen
		if Kind(sl.Kind) == kindRelabeled {
			continue
		}
		l.postRelabel++
		if Kind(sl.Kind) == KindDrop {
			continue
		}
		l.appendSample(p, sl, isNew, &w)
	}
	if err == nil {
		err = p.Err()
	}
	if err != nil {
		return samples, refused, err
	}
	l.sweep(w.gen, w.nowMs)
	l.incomplete = refused > 0 || len(l.collided) > 0
	return samples, refused, nil
}

// window is what process decides once per scrape for all its samples.
type window struct {
	gen   uint32 // the scrape's generation: the slots it saw carry it
	nowMs int64  // the scrape's start, each sample's time unless honored
	// procStart is the target's process_start_time_seconds in milliseconds,
	// 0 if unknown: the Created of counters that have no _created.
	procStart int64
	// freshProcess says the target's process started after the observation
	// window began: it counted every first-seen series while we watched.
	freshProcess bool
	// newIsFresh says a series added now was not there at the window's
	// start: that scrape succeeded and admitted every series it saw.
	newIsFresh bool
}

func (l *loop) newWindow(body []byte, start time.Time) window {
	procStart := processStart(body)
	return window{
		gen:          l.table.NextGen(),
		nowMs:        start.UnixMilli(),
		procStart:    procStart,
		freshProcess: procStart > 0 && procStart > l.windowStart,
		newIsFresh:   l.succeeded && !l.incomplete,
	}
}

// findOrAdd returns the slot of hash h, adding one for a new series; why
// says which series budget refused it, if one did.
func (l *loop) findOrAdd(h uint64) (i int32, isNew bool, why deltastore.Refusal) {
	if i = l.table.Find(h); i >= 0 {
		return i, false, deltastore.Admitted
	}
	if i, why = l.table.Admit(h); why != deltastore.Admitted {
		return -1, false, why
	}
	l.added++
	return i, true, deltastore.Admitted
}

// classifySlot classifies the series of slot i, seen for the first time
// (or the first time by this loop). A series classify fails (a label limit)
// leaves no slot behind.
func (l *loop) classifySlot(p *exposition.Parser, raw []byte, i int32, isNew bool) error {
	ref, kind, err := l.classify(p, raw)
	if err != nil {
		l.table.Remove(i)
		return err
	}
	if isNew && kind == kindRelabeled {
		l.added-- // Prometheus' scrape_series_added counts the series it stores
	}
	sl := &l.table.Slots()[i]
	sl.Ref, sl.Kind, sl.Len = ref, uint8(kind), len16(raw)
	return nil
}

// appendSample hands the current sample, of slot sl, to the appender: a
// gauge's value as it is, a counter's increase since its last observation
// (none at the first sight of a series that may have counted before we
// watched, see deltastore.Obs.Fresh).
func (l *loop) appendSample(p *exposition.Parser, sl *deltastore.Slot, isNew bool, w *window) {
	ts := w.nowMs
	if l.target.HonorTimestamps {
		if t, ok := p.Timestamp(); ok {
			ts = t
		}
	}
	v := p.Value()
	if Kind(sl.Kind) == KindGauge {
		l.app.Append(sl.Ref, p, ts, v)
		return
	}
	created, hasCreated := p.Created()
	obs := deltastore.Obs{Value: v, TS: ts, Created: created}
	if !hasCreated && w.procStart > 0 {
		obs.Created = w.procStart
	}
	obs.Fresh = w.freshProcess || (hasCreated && created > l.windowStart) || (isNew && w.newIsFresh)
	if d, ok := l.table.Update(sl, obs); ok {
		l.app.Append(sl.Ref, p, ts, d)
	}
}

// sweep ends a whole scrape of generation gen. A series this scrape lacks
// keeps its counter state until it is stale, so its return is a delta, not
// its whole value again (see SweepAbsent); the others release their state
// and backend handle. A series kept although absent keeps its delta state
// but not its classification: the appender releases what it holds for it
// (its metric name's shape) and the series is classified again if it comes
// back, so a target that keeps inventing counter names costs, per name it
// dropped, the slot only.
func (l *loop) sweep(gen uint32, nowMs int64) {
	tab, app := l.table, l.app
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
	if tab.Absent() == 0 {
		return
	}
	slots := tab.Slots()
	for i := range slots {
		if sl := &slots[i]; sl.Used() && sl.Gen != gen && sl.Kind != 0 {
			forget(sl)
			sl.Ref, sl.Kind = 0, 0
		}
	}
}

// len16 is a series' length as a slot keeps it, the check beside the hash
// that two series are one. It compares lengths only: keeping each series'
// bytes would undo the slot's 40 pointer-free bytes, and a 64-bit hash
// collision is already about one in 10^8 for a million series of a target.
// Two colliding series of one length (rarer still) are taken for one: the
// second's values then go into the first's delta state, under its labels.
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

// budgetFlags name the setting behind each series budget.
var budgetFlags = [...]string{
	deltastore.RefusedTarget:    "the target's series budget (--max-series-per-target)",
	deltastore.RefusedNamespace: "its namespace's series budget (--max-series-per-namespace)",
	deltastore.RefusedNode:      "the node's series budget (--max-series)",
}

// countRefused counts the last process's refused series by reason and says
// why they were refused, for the target's status and log.
func (l *loop) countRefused() string {
	var b strings.Builder
	for _, r := range deltastore.Refusals {
		n := l.refused[r]
		if n == 0 {
			continue
		}
		l.cfg.m.refused[r].Add(n)
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d new series refused: %s is exhausted", n, budgetFlags[r])
	}
	return b.String()
}
