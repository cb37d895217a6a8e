package deltastore

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

var (
	seriesGauge     = metrics.NewGauge(`nodescraper_delta_series`, nil)
	resetsTotal     = metrics.NewCounter(`nodescraper_delta_resets_total`)
	outOfOrderTotal = metrics.NewCounter(`nodescraper_delta_out_of_order_total`)
	refusedTotal    = metrics.NewCounter(`nodescraper_delta_series_refused_total`)
	evictionsTotal  = metrics.NewCounter(`nodescraper_delta_evictions_total`)
)

// Config sets the store's bounds and where its checkpoint lives.
type Config struct {
	// MaxSeries bounds memory: new series beyond it are refused (and counted)
	// rather than growing without limit. It is enforced per shard, so the
	// store may refuse a little before it is reached. 0 means 10 million.
	MaxSeries int
	// StaleAfter evicts a series whose last observation is older: state no
	// scrape loop claims any more (a pod that went away while the agent was
	// down). It must exceed the longest scrape interval. 0 means one hour.
	StaleAfter time.Duration

	// Dir is the node's state directory; "" keeps the state in memory only.
	Dir string
	// CheckpointInterval is how often Run writes a checkpoint; 0 means only
	// Close does.
	CheckpointInterval time.Duration
	// MaxAge is the age beyond which a checkpoint is not restored (its series
	// restart from baselines, see doc.go). 0 means one hour.
	MaxAge time.Duration

	Logger *slog.Logger
	Now    func() time.Time
}

const numShards = 64

// Store is the node's cumulative→delta state. It is safe for concurrent use.
type Store struct {
	cfg         Config
	maxPerShard int
	shards      [numShards]shard

	// ckptMu serializes checkpoint writes and guards what they share.
	ckptMu  sync.Mutex
	scratch []byte
	unlock  func() // releases the state directory; nil when not held
	closed  bool
}

type shard struct {
	mu sync.Mutex
	m  map[uint64]state
	_  [48]byte // keep shards on separate cache lines
}

// state is everything a series needs between two observations. It is 16
// bytes, so a map slot with its key is 24: the store's memory per series is
// dominated by it (see BenchmarkMemory). Times are whole Unix seconds:
// Datadog keeps one point per series and second anyway, and uint32 seconds
// last until 2106.
type state struct {
	last    float64
	ts      uint32 // the last observation
	created uint32 // when the series started counting; 0 = unknown
}

// New returns an empty store. Restore fills it from the checkpoint.
func New(cfg Config) *Store {
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = 10_000_000
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = time.Hour
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{cfg: cfg, maxPerShard: (cfg.MaxSeries + numShards - 1) / numShards}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]state)
	}
	return s
}

// Obs is one observation of a cumulative series.
type Obs struct {
	Value float64
	// TS is the sample time in milliseconds.
	TS int64
	// Created is when the series started counting, in milliseconds
	// (OpenMetrics _created or the process start time); 0 if unknown.
	// A newer Created than the stored one is a reset even if the value grew.
	Created int64
	// Fresh says the series is known to have started after the previous
	// observation window, so its whole first value is an increase that
	// happened while we watched. Without it a first sight only sets the baseline.
	Fresh bool
}

// Update records o for the series key and returns the increase since the
// previous observation. ok is false when nothing must be emitted: first sight
// of a series that may have counted before we saw it, a NaN or infinite
// value, a sample not newer (by whole seconds) than the last one, or a
// refused series. A skipped sample leaves the state as it was, so its
// increase is part of the next delta.
func (s *Store) Update(key uint64, o Obs) (delta float64, ok bool) {
	if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) {
		return 0, false
	}
	ts, created := seconds(o.TS), seconds(o.Created)
	sh := &s.shards[key%numShards]
	sh.mu.Lock()
	st, found := sh.m[key]
	if !found {
		if len(sh.m) >= s.maxPerShard {
			sh.mu.Unlock()
			refusedTotal.Inc()
			return 0, false
		}
		sh.m[key] = state{last: o.Value, ts: ts, created: created}
		sh.mu.Unlock()
		seriesGauge.Inc()
		if o.Fresh {
			return o.Value, true
		}
		return 0, false
	}
	if ts <= st.ts {
		// Older, or within the second of the last observation: Datadog keeps
		// one value per series and second, so a second point there would
		// overwrite the first one's delta. This also covers an agent that
		// restarts within the second of its predecessor's last scrape.
		sh.mu.Unlock()
		if ts < st.ts {
			outOfOrderTotal.Inc()
		}
		return 0, false
	}
	reset := o.Value < st.last || (created > st.created && st.created != 0)
	if reset {
		delta = o.Value
	} else {
		delta = o.Value - st.last
	}
	if created == 0 {
		created = st.created
	}
	sh.m[key] = state{last: o.Value, ts: ts, created: created}
	sh.mu.Unlock()
	if reset {
		resetsTotal.Inc()
	}
	return delta, true
}

// Put sets key's value and time without computing a delta. Callers keep
// bookkeeping in it that must survive a restart together with the series,
// such as a target's last successful scrape.
func (s *Store) Put(key uint64, v float64, tsMs int64) {
	sh := &s.shards[key%numShards]
	sh.mu.Lock()
	st, found := sh.m[key]
	if !found && len(sh.m) >= s.maxPerShard {
		sh.mu.Unlock()
		refusedTotal.Inc()
		return
	}
	st.last, st.ts = v, seconds(tsMs)
	sh.m[key] = st
	sh.mu.Unlock()
	if !found {
		seriesGauge.Inc()
	}
}

// Get returns key's last value and its time in milliseconds (whole seconds).
func (s *Store) Get(key uint64) (v float64, tsMs int64, ok bool) {
	sh := &s.shards[key%numShards]
	sh.mu.Lock()
	st, ok := sh.m[key]
	sh.mu.Unlock()
	return st.last, int64(st.ts) * 1000, ok
}

// Delete releases the state of a series that went away.
func (s *Store) Delete(key uint64) {
	sh := &s.shards[key%numShards]
	sh.mu.Lock()
	_, found := sh.m[key]
	delete(sh.m, key)
	sh.mu.Unlock()
	if found {
		seriesGauge.Dec()
	}
}

// Len returns the number of series held.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// evict drops the series whose last observation is older than StaleAfter,
// one shard at a time, and returns how many went.
func (s *Store) evict() int {
	cutoff := s.staleCutoff()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, st := range sh.m {
			if st.ts < cutoff {
				delete(sh.m, k)
				n++
			}
		}
		sh.mu.Unlock()
	}
	if n > 0 {
		evictionsTotal.Add(n)
		seriesGauge.Add(-float64(n))
	}
	return n
}

// staleCutoff is the oldest last-observation time (Unix seconds) a kept series may have.
func (s *Store) staleCutoff() uint32 {
	return seconds(s.cfg.Now().Add(-s.cfg.StaleAfter).UnixMilli())
}

// Run evicts stale series and, with a state directory and an interval,
// writes a checkpoint every CheckpointInterval, until ctx is cancelled.
// Call Close after Run returned and the scrape loops stopped.
func (s *Store) Run(ctx context.Context) {
	period := s.cfg.CheckpointInterval
	checkpoints := period > 0 && s.cfg.Dir != ""
	if !checkpoints {
		period = time.Minute // eviction only
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.evict()
		if !checkpoints {
			continue
		}
		if _, err := s.Checkpoint(); err != nil && !errors.Is(err, errClosed) {
			s.cfg.Logger.Error("delta checkpoint failed; the previous one stays in place", "err", err)
		}
	}
}

// seconds converts milliseconds to the stored Unix seconds, clamped to what
// a uint32 holds.
func seconds(ms int64) uint32 {
	switch {
	case ms <= 0:
		return 0
	case ms/1000 > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(ms / 1000)
}
