package deltastore

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// The fidelity simulation drives the store as a node would: targets whose
// counters grow, restart, gain and lose series, series missing from one
// scrape (a flap, a body cut at a line boundary), scrapes that fail, outages
// longer than StaleAfter, targets that come and go, and an agent that stops
// cleanly or is killed and starts again on the same state directory. The
// scrape loop is modelled after scrapeloop: one table per target, a series
// new when its table lacks it, the series a successful scrape did not see
// swept (SweepAbsent), the target's last successful scrape kept in its table
// (SetLastSuccess) and a new loop's window resumed from it (LastSuccess).
// The ground truth is kept apart from it.
//
// The truth for a series is the increase an observer that never restarts
// would report without extrapolation, as Prometheus' increase() does:
// increments between two observations, where after a counter reset only what
// was counted since the reset is visible. The window starts at the series'
// first observation, or at its creation when it started while its target was
// already watched (after the target's first successful scrape). As doc.go
// decides, no delta spans more than StaleAfter: a series whose state is
// dropped as stale (evicted, or not restored) starts again from a baseline,
// unless it restarted since its last observation and the agent still knows
// the target's last successful scrape, so that it can tell.
//
// Beside the truth the simulation models what the store holds of each series
// (whether an observation, and its second) and of each target (its last
// success), in the running agent and in the last checkpoint, and checks the
// store against that model at every scrape.

type simSeries struct {
	hash    uint64
	target  *simTarget
	value   float64
	created int64 // ms
	alive   bool
	// hidden: missing from its target's last successful scrape. A flap lasts
	// one scrape and no outage starts during one: a series absent for longer
	// than StaleAfter is a new series when it returns (doc.go), a rule the
	// truth here does not model.
	hidden bool
	// lastEmit is the second of the last point emitted.
	lastEmit uint32

	// Truth.
	pending   float64 // visible increase since the last observation
	inWindow  bool    // the window started: pending counts
	want, got float64
	// resetSinceObs: the series restarted since its last observation.
	resetSinceObs bool

	// Model of the store: an observation held, and its second; the same in
	// the last checkpoint.
	hasState, ckptState bool
	obsSec, ckptSec     uint32

	// Kill bound: true increments since the observation the store holds,
	// since the one the last checkpoint holds, and after a kill until the
	// next agent's first observation.
	sinceStored float64
	sinceCkpt   float64
	killOpen    bool
	bound       float64
	// continuityLost: a kill took the checkpoint from before the target's
	// first successful scrape; only then may a kill lose increments.
	continuityLost bool
}

type simTarget struct {
	seed      uint64
	interval  int // ticks
	phase     int
	procStart int64 // ms
	om        bool  // exposes _created per series (OpenMetrics)
	series    []*simSeries
	alive     bool
	watched   bool // truth: first successful scrape happened (in the agent's continuity)
	downUntil int  // the target does not answer before this tick

	// Model of the table's last success (ms, 0 = none), in the running
	// agent and in the last checkpoint.
	lastOK, ckptOK int64

	loop *simLoop // nil while no agent runs it
}

// simLoop is the scrape loop's per-target state, lost with the agent.
type simLoop struct {
	tab         *Table
	windowStart int64
	succeeded   bool
}

type simStats struct {
	scrapes, failed, resets, targetRestarts, newSeries, goneSeries, newTargets, goneTargets int
	cleanRestarts, kills, sameSecond, checkpoints, evicted, freshEmits, flaps               int
	outages, outageEvictions, staleAtRestore, windowsDropped                                int // windowsDropped: series of targets whose last success was stale at a restore
	overCounted, underCounted                                                               int
}

type sim struct {
	t       *testing.T
	r       *rand.Rand
	dir     string
	now     int64 // ms
	tickNo  int
	store   *Store
	up      bool
	downFor int
	targets []*simTarget
	all     []*simSeries
	kills   bool
	stats   simStats
	logger  *slog.Logger
}

// simTicks is the length of a simulated history in seconds.
func simTicks() int {
	if raceEnabled {
		return 1000
	}
	return 3000
}

// simStaleAfter is short beside a history, so that state goes stale in
// outages, and unclaimed state is evicted, many times in one.
func simStaleAfter() time.Duration { return time.Minute }

func newSim(t *testing.T, seed uint64, kills bool) *sim {
	s := &sim{t: t, r: rand.New(rand.NewPCG(seed, 7)), dir: memDir(t), now: sec(0), kills: kills,
		logger: slog.New(slog.DiscardHandler)}
	for range 6 {
		s.addTarget()
	}
	s.start(0)
	return s
}

// memDir is a temporary directory in memory when the machine has one: the
// simulation writes thousands of checkpoints and an fsync to disk costs
// milliseconds. The disk path itself is tested in checkpoint_test.go.
func memDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "deltastore-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func (s *sim) clock() time.Time { return time.UnixMilli(s.now) }

// cutoff is the store's stale cutoff now.
func (s *sim) cutoff() uint32 { return seconds(s.now - simStaleAfter().Milliseconds()) }

func (s *sim) addTarget() {
	tg := &simTarget{seed: s.r.Uint64(), interval: 1 + s.r.IntN(3), procStart: s.now - int64(s.r.IntN(1e6)) - 1000,
		om: s.r.IntN(2) == 0, alive: true}
	tg.phase = s.r.IntN(tg.interval)
	for range 1 + s.r.IntN(8) {
		s.addSeries(tg, float64(s.r.IntN(1000)), tg.procStart)
	}
	s.targets = append(s.targets, tg)
	if s.up {
		tg.loop = s.newLoop(tg, 0)
	}
}

func (s *sim) addSeries(tg *simTarget, v float64, created int64) {
	se := &simSeries{hash: s.r.Uint64(), target: tg, value: v, created: created, alive: true, sinceStored: v, sinceCkpt: v}
	// Created while the target is watched: all of it is inside the window.
	se.inWindow = tg.watched
	se.pending = 0
	if se.inWindow {
		se.pending = v
	}
	tg.series = append(tg.series, se)
	s.all = append(s.all, se)
}

// increment adds n to a series: truth and kill bound follow.
func (s *sim) increment(se *simSeries, n float64) {
	se.value += n
	se.pending += n
	se.sinceStored += n
	se.sinceCkpt += n
	if se.killOpen {
		se.bound += n
	}
}

// newLoop starts tg's loop at s.now plus at, as scrapeloop's resume does.
func (s *sim) newLoop(tg *simTarget, at int64) *simLoop {
	start := s.now + at
	l := &simLoop{tab: s.store.Table(tg.seed), windowStart: start}
	l.tab.Lock()
	defer l.tab.Unlock()
	l.tab.ForgetKinds()
	v := l.tab.LastSuccess()
	if v != tg.lastOK {
		s.t.Fatalf("target %x: table's last success %d, model %d", tg.seed, v, tg.lastOK)
	}
	if v > 0 && v <= start {
		l.windowStart, l.succeeded = v, true
	}
	return l
}

// start starts an agent at s.now plus at: it restores the last checkpoint.
func (s *sim) start(at int64) {
	s.store = New(Config{Dir: s.dir, StaleAfter: simStaleAfter(), Logger: s.logger, Now: s.clock})
	r, err := s.store.Restore(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	if r.Outcome == OutcomeCorrupt || r.Outcome == OutcomeTooOld {
		s.t.Fatalf("restore: %+v", r)
	}
	s.stats.staleAtRestore += r.Skipped
	s.up = true
	cut := s.cutoff()
	for _, tg := range s.targets {
		if !tg.alive {
			continue
		}
		// The model of the restore: what the checkpoint holds, less what
		// went stale since.
		tg.lastOK = tg.ckptOK
		drop := false
		if tg.lastOK != 0 && seconds(tg.lastOK) < cut {
			// The target's last success is stale: the new loop cannot tell
			// series that appeared or restarted since from the others.
			tg.lastOK = 0
			drop = tg.watched
			tg.watched = false
		}
		for _, se := range tg.series {
			se.hasState = se.ckptState && se.ckptSec >= cut
			se.obsSec = se.ckptSec
			if drop && !se.hasState && se.alive {
				se.inWindow, se.pending = false, 0
				s.stats.windowsDropped++
			}
		}
		tg.loop = s.newLoop(tg, at)
	}
}

// noteCheckpoint updates the model after a checkpoint was written.
func (s *sim) noteCheckpoint() {
	cut := s.cutoff()
	for _, tg := range s.targets {
		if tg.loop == nil {
			continue // gone: not in the checkpoint
		}
		tg.ckptOK = tg.lastOK
		for _, se := range tg.series {
			se.ckptState = se.hasState && se.obsSec >= cut
			se.ckptSec = se.obsSec
			se.sinceCkpt = se.sinceStored
		}
	}
}

// stop ends the agent: cleanly (loops stop, final checkpoint) or killed (the
// last periodic checkpoint is what the next agent finds).
func (s *sim) stop(kill bool) {
	if !kill {
		if err := s.store.Close(); err != nil {
			s.t.Fatal(err)
		}
		s.noteCheckpoint()
		s.stats.cleanRestarts++
	} else {
		s.store.ckptMu.Lock()
		s.store.unlock() // the kernel drops a dead process's flock
		s.store.unlock = nil
		s.store.ckptMu.Unlock()
		s.stats.kills++
		for _, tg := range s.targets {
			// Without its last success in the checkpoint the next agent does
			// not know the target was watched: its series start from baselines.
			lost := tg.watched && tg.ckptOK == 0
			tg.watched = tg.watched && tg.ckptOK != 0
			for _, se := range tg.series {
				se.continuityLost = se.continuityLost || lost
				// The next agent starts from the checkpointed observation.
				se.bound += se.sinceCkpt
				se.sinceStored = se.sinceCkpt
				se.killOpen = true
			}
		}
	}
	for _, tg := range s.targets {
		tg.loop = nil
	}
	s.store = nil
	s.up = false
}

func (s *sim) checkpoint() {
	if _, err := s.store.Checkpoint(); err != nil {
		s.t.Fatal(err)
	}
	s.stats.checkpoints++
	s.noteCheckpoint()
}

// evict runs the store's eviction and its model: the state of a series not
// observed for StaleAfter (its target not answering) goes.
func (s *sim) evict() {
	s.stats.evicted += s.store.evict()
	cut := s.cutoff()
	for _, tg := range s.targets {
		if tg.loop == nil {
			continue
		}
		for _, se := range tg.series {
			if !se.alive || !se.hasState || se.obsSec >= cut {
				continue
			}
			se.hasState = false
			s.stats.outageEvictions++
			if !se.resetSinceObs {
				// The next observation is a baseline: what was counted
				// since the last one is part of no delta.
				se.inWindow, se.pending = false, 0
			}
		}
	}
}

func (s *sim) tick(i int) {
	s.now = sec(int64(i))
	s.tickNo = i
	r := s.r
	// The world moves.
	for _, tg := range s.targets {
		if !tg.alive {
			continue
		}
		for _, se := range tg.series {
			if se.alive && r.IntN(2) == 0 {
				s.increment(se, float64(r.IntN(20))/4)
			}
		}
		if !tg.watched {
			continue // creations only once the window is open (see the file comment)
		}
		switch x := r.IntN(1000); {
		case x < 8: // the target process restarts: every counter from zero
			tg.procStart = s.now
			for _, se := range tg.series {
				if se.alive {
					se.value, se.pending, se.created, se.inWindow, se.resetSinceObs = 0, 0, tg.procStart, true, true
				}
			}
			s.stats.targetRestarts++
		case x < 40:
			s.addSeries(tg, float64(r.IntN(5)), s.now)
			s.stats.newSeries++
		case x < 60:
			if se := tg.series[r.IntN(len(tg.series))]; se.alive {
				se.alive = false // gone for good; a returning label set is a new series
				s.stats.goneSeries++
			}
		}
		if tg.downUntil <= i && r.IntN(5000) == 0 && !flapping(tg) {
			// Unreachable for longer than StaleAfter.
			stale := int(simStaleAfter() / time.Second)
			tg.downUntil = i + stale + 11 + r.IntN(stale)
			s.stats.outages++
		}
	}
	if x := r.IntN(1000); x < 6 && len(s.targets) < 30 {
		s.addTarget()
		s.stats.newTargets++
	} else if x < 9 {
		tg := s.targets[r.IntN(len(s.targets))]
		if tg.alive {
			tg.alive = false
			for _, se := range tg.series {
				se.alive = false
			}
			if tg.loop != nil {
				tg.loop.tab.Release()
			}
			tg.loop = nil
			s.stats.goneTargets++
		}
	}

	// The agent stops for a few seconds, or comes back.
	if !s.up {
		if s.downFor--; s.downFor < 0 {
			s.start(0)
		}
	} else if x := r.IntN(1000); x < 8 || (s.kills && x < 16) {
		s.stop(x >= 8)
		s.downFor = r.IntN(5)
	}
	if !s.up {
		return
	}
	if i%10 == 0 {
		s.checkpoint()
		s.evict()
	}
	for _, tg := range s.targets {
		if tg.loop != nil && (i+tg.phase)%tg.interval == 0 {
			s.scrape(tg, s.now+int64(r.IntN(999)))
		}
	}
	// Or restarts at once and scrapes everything within the same second.
	if x := r.IntN(1000); x < 3 || (s.kills && x < 6) {
		s.stop(x >= 3)
		s.start(999) // after every scrape of this tick (jitter < 999 ms)
		for _, tg := range s.targets {
			if tg.loop != nil {
				s.scrape(tg, s.now+999)
			}
		}
	}
}

// scrape is one scrape of tg by its loop at ts, with scrapeloop's rules.
func (s *sim) scrape(tg *simTarget, ts int64) {
	l := tg.loop
	if s.r.IntN(20) == 0 || s.tickNo < tg.downUntil {
		s.stats.failed++
		return
	}
	s.stats.scrapes++
	tab := l.tab
	tab.Lock()
	defer tab.Unlock()
	if v := tab.LastSuccess(); v != tg.lastOK {
		s.t.Fatalf("target %x: table's last success %d, model %d", tg.seed, v, tg.lastOK)
	}
	gen := tab.NextGen()
	freshProcess := tg.procStart > l.windowStart
	keepSince := seconds(ts - simStaleAfter().Milliseconds())
	for _, se := range tg.series {
		if !se.alive {
			continue
		}
		if !se.hidden && se.hasState && se.obsSec >= keepSince && s.r.IntN(15) == 0 {
			// Missing from this scrape: its state stays, its truth goes on.
			se.hidden = true
			s.stats.flaps++
			continue
		}
		se.hidden = false
		i := tab.Find(se.hash)
		isNew := i < 0
		if isNew {
			var ok bool
			if i, ok = tab.Add(se.hash); !ok {
				s.t.Fatal("series refused")
			}
		}
		sl := &tab.Slots()[i]
		sl.Gen = gen
		if sl.HasState() != se.hasState || (se.hasState && sl.ts != se.obsSec) {
			s.t.Fatalf("series %x: store holds state %v of second %d, model %v of %d", se.hash, sl.HasState(), sl.ts, se.hasState, se.obsSec)
		}
		o := Obs{Value: se.value, TS: ts, Created: tg.procStart}
		if tg.om {
			o.Created = se.created
		}
		o.Fresh = freshProcess || (tg.om && se.created > l.windowStart) || (isNew && l.succeeded)
		prevLast, prevTS, had := sl.last, sl.ts, sl.HasState()
		d, ok := tab.Update(sl, o)
		if !had || seconds(ts) > prevTS {
			// The store holds this observation now.
			se.hasState, se.obsSec, se.sinceStored = true, seconds(ts), 0
		}
		if sl.ts != se.obsSec {
			s.t.Fatalf("series %x: store holds second %d after the update, model %d", se.hash, sl.ts, se.obsSec)
		}
		if ok {
			se.got += d
			if !had {
				s.stats.freshEmits++
			} else if se.value < prevLast {
				s.stats.resets++
			}
			// Datadog keeps one point per series and second.
			if sec := seconds(ts); sec <= se.lastEmit && !s.kills {
				s.t.Fatalf("series %x: a second point in second %d", se.hash, sec)
			} else {
				se.lastEmit = sec
			}
		} else if had && seconds(ts) <= prevTS {
			s.stats.sameSecond++
		}
		// Truth: this is an observation.
		if se.inWindow {
			se.want += se.pending
		}
		se.pending, se.inWindow, se.killOpen, se.resetSinceObs = 0, true, false, false
	}
	// Series that went away release their state, unless they hold a fresh
	// observation: the flapping ones.
	tab.SweepAbsent(gen, ts, func(*Slot) {})
	for _, se := range tg.series {
		if se.alive && se.hidden && tab.Find(se.hash) < 0 {
			s.t.Fatalf("series %x: missing from one scrape, its state was released", se.hash)
		}
	}
	l.windowStart, l.succeeded = ts, true
	tab.SetLastSuccess(ts)
	tg.lastOK = ts
	tg.watched = true
}

// flapping reports whether a series of tg was missing from its last
// successful scrape.
func flapping(tg *simTarget) bool {
	for _, se := range tg.series {
		if se.alive && se.hidden {
			return true
		}
	}
	return false
}

func (s *sim) check() {
	for _, se := range s.all {
		diff := se.got - se.want
		switch {
		case diff > 0:
			s.stats.overCounted++
		case diff < 0:
			s.stats.underCounted++
			if !se.continuityLost {
				s.t.Fatalf("series %x lost %v although every kill restored its target's window", se.hash, -diff)
			}
		}
		if math.Abs(diff) > se.bound {
			s.t.Fatalf("series %x (target %x): deltas add up to %v, true increase %v, kill bound %v", se.hash, se.target.seed, se.got, se.want, se.bound)
		}
	}
}

// runSims runs the histories of seeds first..first+11 and returns their totals.
func runSims(t *testing.T, first uint64, kills bool) simStats {
	var total simStats
	for seed := first; seed < first+12; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			s := newSim(t, seed, kills)
			for i := 1; i <= simTicks(); i++ {
				s.tick(i)
			}
			s.check()
			addStats(&total, s.stats)
			if !kills && s.stats.overCounted+s.stats.underCounted != 0 {
				t.Fatalf("not exact: %+v", s.stats)
			}
		})
	}
	t.Logf("%+v", total)
	return total
}

// TestFidelityAcrossRestarts: with clean restarts only, every series' deltas
// add up exactly to its true increase, over many seeded histories.
func TestFidelityAcrossRestarts(t *testing.T) {
	total := runSims(t, 1, false)
	// The histories must have exercised every path.
	for name, n := range map[string]int{"scrapes": total.scrapes, "failed": total.failed, "resets": total.resets,
		"target restarts": total.targetRestarts, "new series": total.newSeries, "gone series": total.goneSeries,
		"new targets": total.newTargets, "gone targets": total.goneTargets, "clean restarts": total.cleanRestarts,
		"same-second restarts": total.sameSecond, "evictions": total.evicted, "fresh emits": total.freshEmits,
		"outages": total.outages, "evictions in outages": total.outageEvictions, "flaps": total.flaps,
		"stale last successes at a restore": total.windowsDropped} {
		if n == 0 {
			t.Errorf("no %s in the simulated histories", name)
		}
	}
}

// TestFidelityWithKills adds agents killed without a final checkpoint. The
// next agent restores the last periodic checkpoint, the targets' last
// successful scrapes with their series; per series, deltas then differ from
// the true increase by at most the increments made since the observation
// that checkpoint holds, until the next agent's first one (see doc.go: an
// over-count of what the dead agent had sent since; a loss only where the
// target's first successful scrape came after the checkpoint).
func TestFidelityWithKills(t *testing.T) {
	total := runSims(t, 100, true)
	if total.kills == 0 || total.overCounted == 0 {
		t.Fatalf("kills %d, over-counted series %d: the kill path was not exercised", total.kills, total.overCounted)
	}
	if total.outageEvictions == 0 {
		t.Errorf("no evictions in outages in the simulated histories")
	}
}

func addStats(dst *simStats, s simStats) {
	dst.scrapes += s.scrapes
	dst.failed += s.failed
	dst.resets += s.resets
	dst.targetRestarts += s.targetRestarts
	dst.newSeries += s.newSeries
	dst.goneSeries += s.goneSeries
	dst.newTargets += s.newTargets
	dst.goneTargets += s.goneTargets
	dst.cleanRestarts += s.cleanRestarts
	dst.kills += s.kills
	dst.sameSecond += s.sameSecond
	dst.checkpoints += s.checkpoints
	dst.evicted += s.evicted
	dst.freshEmits += s.freshEmits
	dst.flaps += s.flaps
	dst.outages += s.outages
	dst.outageEvictions += s.outageEvictions
	dst.staleAtRestore += s.staleAtRestore
	dst.windowsDropped += s.windowsDropped
	dst.overCounted += s.overCounted
	dst.underCounted += s.underCounted
}
