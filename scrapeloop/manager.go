package scrapeloop

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
)

// Config configures a Manager.
type Config struct {
	Store *deltastore.Store
	// Backend makes each target's appender (Datadog, or the dry-run printer).
	Backend Backend
	// Transport is shared by all loops; nil means a default transport.
	Transport http.RoundTripper
	// NodeAddrs, when set, are the only addresses a node target's
	// connections may reach (every hop, checked at dial time), and a
	// cluster target's (Target.Cluster) reach only its own host. nil: no
	// check (--allow-other-addresses, file targets). With it, Transport
	// must be an *http.Transport (nil or one); its dials are checked.
	NodeAddrs *target.NodeAddrs
	// DefaultLimits apply where a target sets no limit of its own; zero
	// fields take the package defaults (see Limits).
	DefaultLimits target.Limits
	// MaxInterval refuses targets scraped less often (their delta state
	// would expire between scrapes); 0 means no bound.
	MaxInterval time.Duration
	// ParseConcurrency bounds concurrent parsing; default GOMAXPROCS.
	ParseConcurrency int
	// MaxBytesInFlight bounds the body bytes the node's scrapes hold at once
	// (see byteBudget); 0 means DefaultMaxBytesInFlight. The pool of idle
	// body buffers keeps at most half as much, and the chunks bodies larger
	// than their buffer are read in as many as the bound holds.
	MaxBytesInFlight int64
	// KeepDroppedTargets bounds the dropped targets kept per pool for the
	// targets page and API (all are counted): 0 means
	// DefaultKeepDroppedTargets, a negative value no bound.
	KeepDroppedTargets int
	Logger             *slog.Logger
	Now                func() time.Time
}

// env is what the loops of one Manager share.
type env struct {
	Config
	m        managerMetrics
	bodies   bodyPool
	inflight *byteBudget
	parseSem chan struct{} // bounds CPU-heavy parsing to ParseConcurrency
	errMu    sync.Mutex
	lastLog  map[string]time.Time
	poolMu   sync.Mutex
	pools    map[string]*poolMetrics
}

type managerMetrics struct {
	set                                 *metrics.Set
	scrapes, errors, samples, bodyBytes *metrics.Counter
	collisions, skipped                 *metrics.Counter
	refused                             [deltastore.RefusedNode + 1]*metrics.Counter // by reason
	duration                            *metrics.PrometheusHistogram
}

func newManagerMetrics(targets func() float64) managerMetrics {
	set := metrics.NewSet()
	set.NewGauge(`nodescraper_targets`, targets)
	var refused [deltastore.RefusedNode + 1]*metrics.Counter
	for _, r := range deltastore.Refusals {
		refused[r] = set.NewCounter(`nodescraper_scrape_series_refused_total{reason="` + r.String() + `"}`)
	}
	return managerMetrics{
		refused:    refused,
		set:        set,
		scrapes:    set.NewCounter(`nodescraper_scrapes_total`),
		errors:     set.NewCounter(`nodescraper_scrape_errors_total`),
		samples:    set.NewCounter(`nodescraper_scrape_samples_total`),
		bodyBytes:  set.NewCounter(`nodescraper_scrape_body_bytes_total`),
		collisions: set.NewCounter(`nodescraper_scrape_series_hash_collisions_total`),
		skipped:    set.NewCounter(`nodescraper_scrapes_skipped_total`),
		duration:   set.NewPrometheusHistogram(`nodescraper_scrape_duration_seconds`),
	}
}

// reach is what t's connections may reach: with NodeAddrs, a node
// target the node's addresses, a cluster target its own host.
func (c *env) reach(t *target.Target, u *url.URL) reach {
	switch {
	case c.NodeAddrs == nil:
		return reach{}
	case t.Cluster:
		return reach{only: u.Hostname()}
	}
	return reach{node: c.NodeAddrs}
}

// refusedLog says, at most once a minute per target, that a series budget
// refused some of the target's new series.
func (c *env) refusedLog(target, reason string) {
	c.errorLog(target+" (series budget)", errors.New(reason))
}

// errorLog logs a target's scrape error at most once a minute per target:
// a broken target fails every interval and must not flood the node's logs.
func (c *env) errorLog(target string, err error) {
	now := c.Now()
	c.errMu.Lock()
	last, seen := c.lastLog[target]
	logIt := !seen || now.Sub(last) >= time.Minute
	if logIt {
		c.lastLog[target] = now
	}
	c.errMu.Unlock()
	if logIt {
		c.Logger.Warn("scrape failed (repeats of this error are logged once a minute)", "target", target, "err", err)
	}
}

func (c *env) forget(target string) {
	c.errMu.Lock()
	delete(c.lastLog, target)
	c.errMu.Unlock()
}

// Manager runs one loop per target.
type Manager struct {
	cfg     *env
	mu      sync.Mutex
	loops   map[string]*loop
	dropped droppedSet
	// refused holds the targets newLoop refused in the last Sync, by key,
	// with the reason logged.
	refused map[string]string
}

// NewManager returns a manager with no targets.
func NewManager(cfg Config) *Manager {
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     5 * time.Minute,
			// Bodies are decompressed by the loop with a reused reader.
			DisableCompression: true,
		}
	}
	if t, ok := cfg.Transport.(*http.Transport); ok && cfg.NodeAddrs != nil {
		t = t.Clone()
		r := reach{node: cfg.NodeAddrs}
		r.guard(t)
		cfg.Transport = t
	}
	if cfg.ParseConcurrency <= 0 {
		cfg.ParseConcurrency = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBytesInFlight <= 0 {
		cfg.MaxBytesInFlight = DefaultMaxBytesInFlight
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &env{Config: cfg, parseSem: make(chan struct{}, cfg.ParseConcurrency), lastLog: map[string]time.Time{}, pools: map[string]*poolMetrics{}}
	m := &Manager{cfg: e, loops: map[string]*loop{}}
	e.m = newManagerMetrics(func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return float64(len(m.loops))
	})
	e.m.set.RegisterMetricsWriter(m.writePoolTargets)
	e.inflight = newByteBudget(cfg.MaxBytesInFlight, e.m.set)
	e.bodies.maxIdle = cfg.MaxBytesInFlight / 2
	e.bodies.maxChunks = int(cfg.MaxBytesInFlight/chunkSize) + 1
	return m
}

// Metrics returns the manager's own metrics.
func (m *Manager) Metrics() *metrics.Set { return m.cfg.m.set }

// Sync makes the running loops match targets: loops of removed targets stop
// before new ones start, and release their delta state unless the next loop
// of their identity (URL and labels) takes it over. Loops stop when ctx
// is cancelled. Targets discovery dropped (Drop set), targets whose settings
// a loop refuses and duplicates of a running target are listed as dropped.
func (m *Manager) Sync(ctx context.Context, targets []target.Target) {
	want, bySeed, dropped := m.wanted(targets)
	handover := m.stopGone(want, bySeed)
	m.mu.Lock()
	defer m.mu.Unlock()
	dropped = append(dropped, m.startNew(ctx, want, handover)...)
	keep := m.cfg.KeepDroppedTargets
	if keep == 0 {
		keep = DefaultKeepDroppedTargets
	}
	m.dropped = newDroppedSet(dropped, keep)
	live := map[string]bool{}
	for _, l := range m.loops {
		live[l.pool] = true
	}
	m.cfg.prunePools(live)
}

// wanted returns the targets to run by key, the key of each identity's
// (seed's) running one, and the targets listed as dropped: those discovery
// dropped and duplicates of another identity's configuration.
func (m *Manager) wanted(targets []target.Target) (map[string]target.Target, map[uint64]string, []DroppedTarget) {
	want := make(map[string]target.Target, len(targets))
	var dropped []DroppedTarget
	// One loop per identity (URL and labels): loops of one identity would
	// share its delta table. Of several configurations of one identity (two
	// monitors selecting one endpoint) the smallest key runs, in every Sync.
	bySeed := make(map[uint64]string, len(targets))
	for _, t := range targets {
		if t.Drop.Reason != "" {
			dropped = append(dropped, droppedOf(&t, t.Drop))
			continue
		}
		k, s := t.Key(), t.Seed()
		if other, dup := bySeed[s]; dup && other != k {
			running, ignored := want[other], t
			if other > k {
				running, ignored = t, want[other]
				delete(want, other)
			}
			m.cfg.Logger.Warn("target ignored: another configuration of it runs", "target", t.URL, "source", ignored.Source, "running", running.Source)
			dropped = append(dropped, droppedOf(&ignored, target.Drop{Reason: target.DroppedDuplicate, Detail: "the same target (URL and labels) runs from " + running.Source}))
			if other < k {
				continue
			}
		}
		bySeed[s] = k
		want[k] = t
	}
	return want, bySeed, dropped
}

// stopGone stops the loops of targets no longer wanted, all cancelled before
// any is waited for, and returns those whose identity runs on (in bySeed) to
// hand their tables over; the others' state is released.
func (m *Manager) stopGone(want map[string]target.Target, bySeed map[uint64]string) map[uint64]*loop {
	m.mu.Lock()
	var gone []*loop
	for k, l := range m.loops {
		if _, ok := want[k]; !ok {
			gone = append(gone, l)
			delete(m.loops, k)
		}
	}
	m.mu.Unlock()
	// Cancel all before waiting for any: each loop then ends its scrape
	// under its own context at once, not one after the other.
	for _, l := range gone {
		l.cancel()
	}
	// Stopped loops whose identity (URL and labels) runs on under a new
	// configuration: the next loop continues the same table.
	handover := map[uint64]*loop{}
	for _, l := range gone {
		l.stop()
		if _, ok := bySeed[l.seed]; ok {
			handover[l.seed] = l
		} else {
			l.release()
		}
		m.cfg.forget(l.target.URL)
	}
	return handover
}

// startNew starts a loop for each wanted target that has none, on the table
// of its identity's previous loop if handover holds one, and returns the
// targets newLoop refused, to be listed as dropped. Call with m.mu held.
func (m *Manager) startNew(ctx context.Context, want map[string]target.Target, handover map[uint64]*loop) []DroppedTarget {
	var dropped []DroppedTarget
	refused := map[string]string{}
	for k, t := range want {
		if _, ok := m.loops[k]; ok {
			continue
		}
		seed := t.Seed()
		prev := handover[seed]
		delete(handover, seed)
		l, err := newLoop(m.cfg, t)
		if err != nil {
			// Logged once, not at every Sync that refuses it again.
			refused[k] = err.Error()
			if m.refused[k] != err.Error() {
				m.cfg.Logger.Error("cannot scrape target", "target", t.URL, "source", t.Source, "err", err)
			}
			dropped = append(dropped, droppedOf(&t, target.Drop{Reason: target.DroppedRefused, Detail: err.Error()}))
			if prev != nil {
				// No loop holds the identity now, so none would release
				// its state when the target goes.
				prev.release()
			}
			continue
		}
		if prev != nil {
			// The series the previous loop could not admit are still
			// unadmitted: a new one may have been counting all along.
			l.incomplete = prev.incomplete
		}
		lctx, cancel := context.WithCancel(ctx)
		l.cancel = cancel
		m.loops[k] = l
		go l.run(lctx)
	}
	m.refused = refused
	return dropped
}

// stop waits for a cancelled loop to end, then closes its appender and idle
// connections. Its delta state stays for the next loop of the identity, or
// the checkpoint.
func (l *loop) stop() {
	<-l.done
	l.closeIdle()
	l.app.Close()
}

// Run applies target sets from updates until ctx is cancelled, then waits for
// every loop to stop. The delta state of stopped loops is kept for the
// checkpoint.
func (m *Manager) Run(ctx context.Context, updates <-chan []target.Target) {
	for {
		select {
		case <-ctx.Done():
			m.Wait()
			return
		case ts := <-updates:
			m.Sync(ctx, ts)
		}
	}
}

// Wait cancels every loop and waits for them to stop.
func (m *Manager) Wait() {
	m.mu.Lock()
	loops := make([]*loop, 0, len(m.loops))
	for _, l := range m.loops {
		loops = append(loops, l)
	}
	m.mu.Unlock()
	for _, l := range loops {
		l.cancel()
	}
	for _, l := range loops {
		l.stop()
	}
}

// Targets returns the status of every target, sorted by URL.
func (m *Manager) Targets() []Status {
	m.mu.Lock()
	out := make([]Status, 0, len(m.loops))
	for _, l := range m.loops {
		out = append(out, l.getStatus())
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out
}
