package deltastore

import (
	"math"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

var (
	resetsTotal     = metrics.NewCounter(`nodescraper_delta_resets_total`)
	outOfOrderTotal = metrics.NewCounter(`nodescraper_delta_out_of_order_total`)
	refusedTotal    = metrics.NewCounter(`nodescraper_delta_series_refused_total`)
)

// Config sets the store's bounds.
type Config struct {
	// MaxSeries bounds memory: new series beyond it are refused (and counted)
	// rather than growing without limit. 0 means 10 million.
	MaxSeries int
}

const numShards = 64

// Store is the node's cumulative→delta state. It is safe for concurrent use.
type Store struct {
	maxPerShard int
	shards      [numShards]shard
}

type shard struct {
	mu sync.Mutex
	m  map[uint64]state
	_  [40]byte // keep shards on separate cache lines
}

// state is everything a series needs between two observations.
type state struct {
	last    float64
	ts      int64 // ms of the last observation
	created int64 // ms; 0 = unknown
}

// New returns an empty store.
func New(cfg Config) *Store {
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = 10_000_000
	}
	s := &Store{maxPerShard: (cfg.MaxSeries + numShards - 1) / numShards}
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
// of a series that may have counted before we saw it, a NaN, an out-of-order
// sample, or a refused series.
func (s *Store) Update(key uint64, o Obs) (delta float64, ok bool) {
	if math.IsNaN(o.Value) {
		return 0, false
	}
	sh := &s.shards[key%numShards]
	sh.mu.Lock()
	st, found := sh.m[key]
	if !found {
		if len(sh.m) >= s.maxPerShard {
			sh.mu.Unlock()
			refusedTotal.Inc()
			return 0, false
		}
		sh.m[key] = state{last: o.Value, ts: o.TS, created: o.Created}
		sh.mu.Unlock()
		if o.Fresh {
			return o.Value, true
		}
		return 0, false
	}
	if o.TS <= st.ts {
		// Older, or the same observation again (an exporter that repeats its
		// own timestamp): Datadog keeps one value per series and second, so
		// a second point at the same time would overwrite the first one's delta.
		sh.mu.Unlock()
		if o.TS < st.ts {
			outOfOrderTotal.Inc()
		}
		return 0, false
	}
	reset := o.Value < st.last || (o.Created > st.created && st.created != 0)
	if reset {
		delta = o.Value
	} else {
		delta = o.Value - st.last
	}
	created := st.created
	if o.Created != 0 {
		created = o.Created
	}
	sh.m[key] = state{last: o.Value, ts: o.TS, created: created}
	sh.mu.Unlock()
	if reset {
		resetsTotal.Inc()
	}
	return delta, true
}

// Delete releases the state of a series that went away.
func (s *Store) Delete(key uint64) {
	sh := &s.shards[key%numShards]
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
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
