package deltastore

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Config sets the store's bounds and where its checkpoint lives.
type Config struct {
	// MaxSeries bounds memory: the series of all targets together, restored
	// ones included. New series beyond it are refused (and counted) rather
	// than growing without limit. 0 means 10 million.
	MaxSeries int
	// MaxSeriesPerTarget and MaxSeriesPerNamespace bound, under MaxSeries,
	// the series of one target (table) and of the targets of one namespace
	// (Table.SetNamespace), so that no tenant takes the node's whole budget;
	// 0 means no bound but MaxSeries.
	MaxSeriesPerTarget, MaxSeriesPerNamespace int
	// StaleAfter drops restored state that no target claims within it (a
	// pod that went away while the agent was down) and counter state not
	// observed for as long, and is how long a series missing from its
	// target's scrapes keeps its state (Table.SweepAbsent). It must exceed
	// the longest scrape interval. 0 means one hour.
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

// Store is the node's series state: one Table per target, and the restored
// state of targets not scraped again yet. It is safe for concurrent use.
type Store struct {
	cfg    Config
	m      storeMetrics
	series atomic.Int64 // slots of all tables plus pending records
	absent atomic.Int64 // slots kept while absent from their target's last scrape

	mu     sync.Mutex
	tables map[uint64]*Table // by target seed
	// namespaces count the series of the tables in each (SetNamespace).
	namespaces map[string]*nsCount
	pending    map[uint64]*restored // restored state not claimed by a table yet
	restored   time.Time            // when Restore loaded pending

	// ckptMu serializes checkpoint writes and guards what they share.
	ckptMu  sync.Mutex
	scratch []byte
	unlock  func() // releases the state directory; nil when not held
	closed  bool
}

// restored is one target's state read from a checkpoint.
type restored struct {
	lastSuccess int64
	recs        []record
}

type record struct {
	hash        uint64
	last        float64
	ts, created uint32
}

type storeMetrics struct {
	set                            *metrics.Set
	resets, outOfOrder, evictions  *metrics.Counter
	refused                        [numRefusals]*metrics.Counter // by Refusal
	invalid                        map[string]*metrics.Counter   // by reason
	absentStale, absentBudget      *metrics.Counter
	checkpoints, checkpointErrors  *metrics.Counter
	checkpointDuration             *metrics.PrometheusHistogram
	checkpointSize, checkpointLast *metrics.Gauge
	restoredSeries                 *metrics.Gauge
	outcomes                       map[string]*metrics.Gauge
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
	s := &Store{cfg: cfg, tables: map[uint64]*Table{}, pending: map[uint64]*restored{}, namespaces: map[string]*nsCount{}}
	set := metrics.NewSet()
	s.m = storeMetrics{
		set:                set,
		resets:             set.NewCounter(`nodescraper_delta_resets_total`),
		outOfOrder:         set.NewCounter(`nodescraper_delta_out_of_order_total`),
		evictions:          set.NewCounter(`nodescraper_delta_evictions_total`),
		absentStale:        set.NewCounter(`nodescraper_delta_absent_released_total{reason="stale"}`),
		absentBudget:       set.NewCounter(`nodescraper_delta_absent_released_total{reason="budget"}`),
		invalid:            map[string]*metrics.Counter{},
		checkpoints:        set.NewCounter(`nodescraper_delta_checkpoints_total`),
		checkpointErrors:   set.NewCounter(`nodescraper_delta_checkpoint_errors_total`),
		checkpointDuration: set.NewPrometheusHistogram(`nodescraper_delta_checkpoint_duration_seconds`),
		checkpointSize:     set.NewGauge(`nodescraper_delta_checkpoint_size_bytes`, nil),
		checkpointLast:     set.NewGauge(`nodescraper_delta_checkpoint_last_success_timestamp_seconds`, nil),
		restoredSeries:     set.NewGauge(`nodescraper_delta_restored_series`, nil),
		outcomes:           map[string]*metrics.Gauge{},
	}
	set.NewGauge(`nodescraper_delta_series`, func() float64 { return float64(s.series.Load()) })
	set.NewGauge(`nodescraper_delta_absent_series`, func() float64 { return float64(s.absent.Load()) })
	for _, r := range Refusals {
		s.m.refused[r] = set.NewCounter(`nodescraper_delta_series_refused_total{reason="` + r.String() + `"}`)
	}
	for _, r := range []string{InvalidNaN, InvalidInf, InvalidNegative, InvalidTimestamp} {
		s.m.invalid[r] = set.NewCounter(`nodescraper_delta_invalid_values_total{reason="` + r + `"}`)
	}
	for _, o := range []string{OutcomeOK, OutcomeUnclean, OutcomeNone, OutcomeCorrupt, OutcomeTooOld} {
		s.m.outcomes[o] = set.NewGauge(`nodescraper_delta_restore_outcome{outcome="`+o+`"}`, nil)
	}
	return s
}

// Metrics returns the store's own metrics.
func (s *Store) Metrics() *metrics.Set { return s.m.set }

// MetricsHelp returns the HELP text of the store's metrics by family name.
func (s *Store) MetricsHelp() map[string]string {
	return map[string]string{
		`nodescraper_delta_resets_total`:                              "Counter resets seen (a value lower than the previous one, or a newer _created).",
		`nodescraper_delta_out_of_order_total`:                        "Samples skipped because their timestamp is not after the series' previous one.",
		`nodescraper_delta_series_refused_total`:                      "New series refused by a series budget, by reason: node (--max-series), namespace (--max-series-per-namespace), target (--max-series-per-target).",
		`nodescraper_delta_evictions_total`:                           "Series released because they were not seen for --series-stale-after.",
		`nodescraper_delta_absent_released_total`:                     "Series absent from their target's last scrape whose state was released, by reason.",
		`nodescraper_delta_absent_series`:                             "Series kept while absent from their target's last scrape.",
		`nodescraper_delta_invalid_values_total`:                      "Samples not turned into points because of their value or timestamp, by reason.",
		`nodescraper_delta_checkpoints_total`:                         "Checkpoints of the delta state written to the node's disk.",
		`nodescraper_delta_checkpoint_errors_total`:                   "Checkpoints that failed.",
		`nodescraper_delta_checkpoint_duration_seconds`:               "Duration of checkpoints.",
		`nodescraper_delta_checkpoint_size_bytes`:                     "Size of the last checkpoint.",
		`nodescraper_delta_checkpoint_last_success_timestamp_seconds`: "When the last checkpoint succeeded (Unix time).",
		`nodescraper_delta_restored_series`:                           "Series restored from the checkpoint at start.",
		`nodescraper_delta_restore_outcome`:                           "1 for what the restore at start found (ok, unclean, none, corrupt, too_old), 0 for the others.",
		`nodescraper_delta_series`:                                    "Series whose delta state the store holds.",
	}
}

// Table returns the table of the target with this seed (an identity that
// survives restarts: see scrapeloop). A second call with the same seed
// returns the same table, so a target's next loop continues its state. The
// first call takes over what Restore loaded for the seed.
func (s *Store) Table(seed uint64) *Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tables[seed]; t != nil {
		return t
	}
	t := &Table{store: s, seed: seed}
	if r := s.pending[seed]; r != nil {
		delete(s.pending, seed)
		t.lastSuccess = r.lastSuccess
		t.slots = make([]Slot, len(r.recs))
		t.index.reset(len(r.recs))
		for i, rec := range r.recs {
			t.slots[i] = Slot{Hash: rec.hash, last: rec.last, ts: rec.ts, created: rec.created, used: true}
			t.index.put(t.slots, int32(i))
		}
		t.live = len(r.recs) // already reserved by the restore
	}
	s.tables[seed] = t
	return t
}

func (s *Store) release(t *Table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tables[t.seed] == t {
		delete(s.tables, t.seed)
	}
	t.mu.Lock()
	if !t.released {
		t.released = true
		s.unreserve(int64(t.live))
		s.leaveNamespace(t)
		s.absent.Add(-int64(t.absent))
		t.slots, t.index, t.free, t.live, t.absent = nil, hashIndex{}, nil, 0, 0
	}
	t.mu.Unlock()
}

// reserve counts n new series against MaxSeries.
func (s *Store) reserve(n int64) bool {
	if s.series.Add(n) > int64(s.cfg.MaxSeries) {
		s.series.Add(-n)
		s.m.refused[RefusedNode].Add(int(n))
		return false
	}
	return true
}

func (s *Store) unreserve(n int64) { s.series.Add(-n) }

// Len returns the number of series held, restored ones included.
func (s *Store) Len() int { return int(s.series.Load()) }

// Full reports whether the series budget is exhausted.
func (s *Store) Full() bool { return s.series.Load() >= int64(s.cfg.MaxSeries) }

// evict drops restored state no target claimed within StaleAfter of the
// restore, and counter state not observed for StaleAfter; it returns how
// many series lost their state.
func (s *Store) evict() int {
	cutoff := s.staleCutoff()
	n := 0
	s.mu.Lock()
	if len(s.pending) > 0 && s.cfg.Now().Sub(s.restored) > s.cfg.StaleAfter {
		for seed, r := range s.pending {
			n += len(r.recs)
			s.unreserve(int64(len(r.recs)))
			delete(s.pending, seed)
		}
	}
	tables := make([]*Table, 0, len(s.tables))
	for _, t := range s.tables {
		tables = append(tables, t)
	}
	s.mu.Unlock()
	for _, t := range tables {
		// Only the counter state goes, not the slot: the table's loop still
		// scrapes the target (failing, for so long) and, finding no slot,
		// would take the series for one that appeared since the target's
		// last success and send its whole value. Found without state, it
		// comes back as a baseline; the loop removes it if it vanished.
		t.mu.Lock()
		for i := range t.slots {
			if sl := &t.slots[i]; sl.used && sl.ts != 0 && sl.ts < cutoff {
				sl.last, sl.ts, sl.created = 0, 0, 0
				n++
			}
		}
		t.mu.Unlock()
	}
	if n > 0 {
		s.m.evictions.Add(n)
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
