package deltastore

import (
	"math"
	"sync"
)

// Table holds the series of one target: per series one Slot with its delta
// state beside the fields its scrape loop caches, so a sample costs one
// lookup (Find), and in steady state none: Add appends slots in the order the
// series first appear, which is the exposition's order, so the loop first
// tries the slot after the previous sample's in Slots and looks up only when
// its Hash differs. The loop that owns a table holds its lock while it
// processes a scrape; checkpoints take the same lock for the moment they copy
// the table.
//
// Memory is the slots (40 bytes a series) and the index (4 bytes a position,
// 5.3 to 10.7 a series, see hashIndex); a table that stopped growing gives
// back the room append left in its slots (trim): 47.5 bytes a series in
// steady state for targets of 10,000 series (BenchmarkNodeHeap).
type Table struct {
	store *Store
	seed  uint64

	mu    sync.Mutex
	index hashIndex // series hash → slot
	slots []Slot
	free  []int32
	live  int
	// sweptLen is len(slots) at the last SweepAbsent: the same at the next
	// one says the table stopped growing.
	sweptLen int
	// lastSuccess is the target's last successful scrape in Unix
	// milliseconds, kept with its series across restarts: a series that
	// appeared after it counted entirely while the agent watched or was away.
	lastSuccess int64
	released    bool
	// ns is the namespace whose budget the table's series count against
	// (SetNamespace); nil until set.
	ns *nsCount
	// gen numbers the table's scrapes, across the loops that own it in turn,
	// so a slot's Gen from a previous loop never passes for the current scrape.
	gen uint32
	// absent is how many series the last SweepAbsent kept although its
	// scrape did not see them (counted in the store's absent gauge).
	absent int
}

// Slot is one series: its delta state, and what the scrape loop keeps of the
// series between scrapes (Ref, Kind, Gen, Len). 40 bytes, no pointers, so
// the garbage collector never scans the tables.
type Slot struct {
	// Hash is the 64-bit hash of the series' raw exposition bytes, the
	// series' identity within its target. The table's index finds the slot
	// by it: it is the table's to set (Add), not the caller's.
	Hash    uint64
	last    float64
	ts      uint32 // last observation, Unix seconds; 0 = no delta state
	created uint32 // when the series started counting; 0 = unknown
	// Ref is the scrape loop's handle of the series in its backend.
	Ref uint64
	// Gen is the last scrape generation (NextGen) that saw the series.
	Gen uint32
	// Len is the length of the raw series (capped), a second check beside
	// the hash.
	Len uint16
	// Kind is the scrape loop's classification; 0 means not classified
	// (a slot restored from a checkpoint, or handed to a new loop).
	Kind uint8
	used bool
}

// Used reports whether the slot holds a series (a removed one does not).
func (sl *Slot) Used() bool { return sl.used }

// HasState reports whether the slot holds a counter observation.
func (sl *Slot) HasState() bool { return sl.ts != 0 }

// Lock and Unlock guard the table; the owning loop holds the lock around
// each scrape's processing.
func (t *Table) Lock()   { t.mu.Lock() }
func (t *Table) Unlock() { t.mu.Unlock() }

// Slots returns the table's slots, valid until the next Add, Remove, Sweep
// or SweepAbsent. Call with the lock held.
func (t *Table) Slots() []Slot { return t.slots }

// Find returns the slot of hash, or -1. It does not allocate.
func (t *Table) Find(hash uint64) int32 {
	return t.index.find(t.slots, hash)
}

// Len returns the number of series in the table.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}

// Add inserts a slot for hash and returns its index; false when a series
// budget refuses it (see Admit). Call with the lock held.
func (t *Table) Add(hash uint64) (int32, bool) {
	i, why := t.Admit(hash)
	return i, why == Admitted
}

// Admit inserts a slot for hash and returns its index, or -1 and why a
// series budget refused it: the target's (MaxSeriesPerTarget), its
// namespace's (MaxSeriesPerNamespace) or the node's (MaxSeries), counted in
// nodescraper_delta_series_refused_total by reason. Call with the lock held.
func (t *Table) Admit(hash uint64) (int32, Refusal) {
	if why := t.admit(); why != Admitted {
		return -1, why
	}
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if len(t.slots) >= math.MaxInt32 {
			t.unadmit(1)
			return -1, RefusedTarget
		}
		t.slots = append(t.slots, Slot{})
		i = int32(len(t.slots) - 1)
	}
	t.slots[i] = Slot{Hash: hash, used: true}
	t.index.put(t.slots, i)
	t.live++
	return i, Admitted
}

// trim gives back the room for growth of a table that stopped growing (the
// second scrape in a row without a new slot) when it exceeds a 32nd: append
// leaves up to a quarter of a large slice free. Trimming costs one copy of
// the table, once per growth; growing by less than append does instead would
// copy and leave garbage at every step, and still leave room free in a table
// that keeps growing. A 64th is kept, so that a few new series do not copy
// the table at once.
func (t *Table) trim() {
	n := len(t.slots)
	steady := n == t.sweptLen
	t.sweptLen = n
	if !steady || cap(t.slots)-n <= max(n/32, 64) {
		return
	}
	slots := make([]Slot, n, n+n/64)
	copy(slots, t.slots)
	t.slots = slots
}

// Remove frees slot i. Call with the lock held.
func (t *Table) Remove(i int32) {
	sl := &t.slots[i]
	t.index.remove(t.slots, sl.Hash)
	*sl = Slot{}
	t.free = append(t.free, i)
	t.live--
	t.unadmit(1)
	t.maybeShrink()
}

// maybeShrink gives memory back after a target lost most of its series: a
// table whose slots are mostly free is rebuilt at its live size.
func (t *Table) maybeShrink() {
	if len(t.slots) < 1024 || t.live > len(t.slots)/4 {
		return
	}
	slots := make([]Slot, 0, t.live+t.live/4)
	for _, sl := range t.slots {
		if sl.used {
			slots = append(slots, sl)
		}
	}
	t.slots, t.free = slots, nil
	t.index.reset(len(slots))
	for i := range slots {
		t.index.put(slots, int32(i))
	}
}

// Sweep removes every slot for which gone returns true. Call with the lock held.
func (t *Table) Sweep(gone func(*Slot) bool) int {
	n := 0
	for i := range t.slots {
		sl := &t.slots[i]
		if sl.used && gone(sl) {
			t.index.remove(t.slots, sl.Hash)
			*sl = Slot{}
			t.free = append(t.free, int32(i))
			t.live--
			n++
		}
	}
	if n > 0 {
		t.unadmit(n)
		t.maybeShrink()
	}
	return n
}

// NextGen starts a scrape: it returns the generation the loop marks the
// scrape's series with (Slot.Gen) and hands to SweepAbsent. Call with the
// lock held.
func (t *Table) NextGen() uint32 {
	t.gen++
	if t.gen == 0 { // wrapped: 0 is the generation of restored slots
		t.gen = 1
	}
	return t.gen
}

// SweepAbsent ends the successful scrape of generation gen that started at
// nowMs (Unix ms). A series that scrape did not see keeps its slot, delta
// state and backend handle while its last observation is within StaleAfter
// of nowMs: a series missing from one scrape (one that flaps, or a text body
// cut at a line boundary) comes back as a delta against its last value, not
// as a new series whose whole value would be sent again. The other absent
// slots are removed: those without counter state (a gauge, a dropped series:
// the loop's cache alone), those whose state is stale, and, while the
// store's series budget, or the table's or its namespace's, is exhausted,
// every absent one, since the budget is for series that are there. forget sees each slot before it is removed.
// SweepAbsent returns how many it removed. Call with the lock held.
func (t *Table) SweepAbsent(gen uint32, nowMs int64, forget func(*Slot)) int {
	keepSince := seconds(nowMs - t.store.cfg.StaleAfter.Milliseconds())
	pressure := t.store.Full() || t.overBudget()
	kept, stale, budget := 0, 0, 0
	n := t.Sweep(func(sl *Slot) bool {
		switch {
		case sl.Gen == gen:
			return false
		case sl.ts == 0:
		case pressure:
			budget++
		case sl.ts < keepSince:
			stale++
		default:
			kept++
			return false
		}
		forget(sl)
		return true
	})
	m := &t.store.m
	m.absentStale.Add(stale)
	m.absentBudget.Add(budget)
	t.store.absent.Add(int64(kept - t.absent))
	t.absent = kept
	t.trim()
	return n
}

// Absent returns how many series the last SweepAbsent kept although its
// scrape did not see them. Call with the lock held.
func (t *Table) Absent() int { return t.absent }

// ForgetKinds clears what a previous loop cached in the slots (Ref, Kind,
// Len), keeping the delta state: the next loop of the same target, with a new
// configuration, classifies its series again. Call with the lock held.
func (t *Table) ForgetKinds() {
	for i := range t.slots {
		sl := &t.slots[i]
		sl.Ref, sl.Kind, sl.Len = 0, 0, 0
	}
}

// LastSuccess returns the target's last successful scrape (Unix ms), 0 if none.
func (t *Table) LastSuccess() int64 { return t.lastSuccess }

// SetLastSuccess records a successful scrape that started at ms.
func (t *Table) SetLastSuccess(ms int64) { t.lastSuccess = ms }

// Release drops the table and its state: the target is gone.
func (t *Table) Release() {
	t.store.release(t)
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

// Reasons an observation is refused by Update: the label values of
// nodescraper_delta_invalid_values_total. See doc.go, "Invalid values".
const (
	InvalidNaN       = "nan"
	InvalidInf       = "inf"      // +Inf or -Inf
	InvalidNegative  = "negative" // below zero; -0 is zero
	InvalidTimestamp = "timestamp"
)

// Update records o for slot sl and returns the increase since the previous
// observation. ok is false when nothing must be emitted: first sight of a
// series that may have counted before we saw it, an invalid observation, or
// a sample not newer (by whole seconds) than the last one. An invalid
// observation is a NaN, infinite or negative value, or a time before 1970-01-01
// 00:00:01 or from 2106 on (whole Unix seconds a uint32 cannot hold): it is
// counted under its reason and changes nothing, so the increase it hides is
// part of the next valid delta. A skipped sample leaves the state as it was,
// so its increase is part of the next delta too. Call with the lock held.
func (t *Table) Update(sl *Slot, o Obs) (delta float64, ok bool) {
	if !(o.Value >= 0 && o.Value <= math.MaxFloat64) {
		// A counter is never negative; taking one as a reset would send its
		// magnitude twice, and NaN or an infinity would poison every later
		// delta. One comparison pair on the hot path; the reason is cold.
		t.store.m.invalid[invalidReason(o.Value)].Inc()
		return 0, false
	}
	ts, created := seconds(o.TS), seconds(o.Created)
	if ts == 0 || ts == math.MaxUint32 {
		// 0 stands for "no state" and a clamped time would make every later
		// sample look older, freezing the series until the clamp's year.
		t.store.m.invalid[InvalidTimestamp].Inc()
		return 0, false
	}
	if sl.ts == 0 {
		sl.last, sl.ts, sl.created = o.Value, ts, created
		if o.Fresh {
			return o.Value, true
		}
		return 0, false
	}
	if ts <= sl.ts {
		// Older, or within the second of the last observation: Datadog keeps
		// one value per series and second, so a second point there would
		// overwrite the first one's delta. This also covers an agent that
		// restarts within the second of its predecessor's last scrape.
		if ts < sl.ts {
			t.store.m.outOfOrder.Inc()
		}
		return 0, false
	}
	reset := o.Value < sl.last || (created > sl.created && sl.created != 0)
	if reset {
		delta = o.Value
		t.store.m.resets.Inc()
	} else {
		delta = o.Value - sl.last
	}
	if created == 0 {
		created = sl.created
	}
	sl.last, sl.ts, sl.created = o.Value, ts, created
	return delta, true
}

func invalidReason(v float64) string {
	switch {
	case math.IsNaN(v):
		return InvalidNaN
	case math.IsInf(v, 0):
		return InvalidInf
	}
	return InvalidNegative
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
