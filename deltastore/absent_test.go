package deltastore

import (
	"math"
	"testing"
	"time"
)

// TestSweepAbsent: what the end of a successful scrape does with a series it
// did not see. One with counter state keeps its slot, state and handle until
// its last observation is StaleAfter old, or the series budget is exhausted;
// the others go at once.
func TestSweepAbsent(t *testing.T) {
	const stale = 3600
	now := int64(10_000) // seconds after t0: the sweeping scrape
	cases := []struct {
		name     string
		seen     bool          // in the sweeping scrape
		obs      *Obs          // the series' last observation; nil: no counter state (a gauge)
		restored bool          // a slot from a checkpoint, never seen by a loop
		full     bool          // the store's series budget is exhausted
		keep     bool          // slot, state and handle kept
		released string        // the reason counted when an absent slot with state goes
		back     *Obs          // observed again after the sweep
		delta    float64       // ... giving this delta
		emitted  bool          // ... or none
		cfg      time.Duration // StaleAfter; 0: one hour
	}{
		{name: "present with state", seen: true, obs: &Obs{Value: 5, TS: sec(now)}, keep: true},
		{name: "present without state", seen: true, keep: true},
		{name: "absent without state goes", keep: false, back: &Obs{Value: 9, TS: sec(now + 30)}},
		{name: "absent with state stays and returns as a delta", obs: &Obs{Value: 5, TS: sec(now - 30)}, keep: true,
			back: &Obs{Value: 9, TS: sec(now + 30)}, delta: 4, emitted: true},
		{name: "absent with state returns lower: a reset", obs: &Obs{Value: 5, TS: sec(now - 30)}, keep: true,
			back: &Obs{Value: 2, TS: sec(now + 30)}, delta: 2, emitted: true},
		{name: "absent with a newer created time on return: a reset", obs: &Obs{Value: 5, TS: sec(now - 30), Created: sec(-100)}, keep: true,
			back: &Obs{Value: 9, TS: sec(now + 30), Created: sec(now)}, delta: 9, emitted: true},
		{name: "absent, observed exactly StaleAfter ago: stays", obs: &Obs{Value: 5, TS: sec(now - stale)}, keep: true},
		{name: "absent, observed longer than StaleAfter ago: goes", obs: &Obs{Value: 5, TS: sec(now - stale - 1)}, released: "stale"},
		{name: "absent under a short StaleAfter: goes", obs: &Obs{Value: 5, TS: sec(now - 61)}, cfg: time.Minute, released: "stale"},
		{name: "absent while the budget is exhausted: goes", obs: &Obs{Value: 5, TS: sec(now - 30)}, full: true, released: "budget"},
		{name: "present while the budget is exhausted: stays", seen: true, obs: &Obs{Value: 5, TS: sec(now - 30)}, full: true, keep: true},
		{name: "restored and absent from the first scrape: stays", obs: &Obs{Value: 5, TS: sec(now - 30)}, restored: true, keep: true,
			back: &Obs{Value: 8, TS: sec(now + 30)}, delta: 3, emitted: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{StaleAfter: c.cfg}
			if c.full {
				cfg.MaxSeries = 2
			}
			s := New(cfg)
			tab := s.Table(1)
			tab.Lock()
			defer tab.Unlock()
			mustAdd(t, tab, 2) // a series every scrape sees
			sl := addSlot(t, tab, 1)
			sl.Ref, sl.Kind, sl.Len = 77, 3, 9
			if c.obs != nil {
				tab.Update(sl, *c.obs)
			}
			if !c.restored {
				sl.Gen = tab.NextGen() // seen by the previous scrape
			}
			gen := tab.NextGen()
			tab.Slots()[tab.Find(2)].Gen = gen
			if c.seen {
				tab.Slots()[tab.Find(1)].Gen = gen
			}
			var forgot []uint64
			removed := tab.SweepAbsent(gen, sec(now), func(sl *Slot) { forgot = append(forgot, sl.Ref) })
			i := tab.Find(1)
			if (i >= 0) != c.keep || (removed == 0) != c.keep {
				t.Fatalf("slot kept %v (%d removed), want %v", i >= 0, removed, c.keep)
			}
			if c.keep {
				if len(forgot) != 0 {
					t.Fatalf("forgot %v of a kept slot", forgot)
				}
				if got := tab.Slots()[i]; got.Ref != 77 || got.Kind != 3 || got.Len != 9 || got.HasState() != (c.obs != nil) {
					t.Fatalf("kept slot changed: %+v", got)
				}
			} else if len(forgot) != 1 || forgot[0] != 77 {
				t.Fatalf("forgot %v, want the removed slot's handle 77", forgot)
			}
			if tab.Find(2) < 0 {
				t.Fatal("the present series was removed")
			}
			wantAbsent := int64(0)
			if c.keep && !c.seen {
				wantAbsent = 1
			}
			if got := s.absent.Load(); got != wantAbsent {
				t.Errorf("absent series gauge %d, want %d", got, wantAbsent)
			}
			for _, r := range []string{"stale", "budget"} {
				want := uint64(0)
				if r == c.released {
					want = 1
				}
				got := map[string]uint64{"stale": s.m.absentStale.Get(), "budget": s.m.absentBudget.Get()}[r]
				if got != want {
					t.Errorf("absent series released for %s counted %d, want %d", r, got, want)
				}
			}
			if s.Len() != 1+btoi(c.keep) {
				t.Errorf("store holds %d series, want %d", s.Len(), 1+btoi(c.keep))
			}
			if c.back == nil {
				return
			}
			if i = tab.Find(1); i < 0 {
				i = mustAdd(t, tab, 1)
			}
			d, ok := tab.Update(&tab.Slots()[i], *c.back)
			if d != c.delta || ok != c.emitted {
				t.Fatalf("on return: (%v, %v), want (%v, %v)", d, ok, c.delta, c.emitted)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAbsentGaugeFollowsTables: the absent series gauge is the sum of what
// each table's last sweep kept, and a released table takes its share along.
func TestAbsentGaugeFollowsTables(t *testing.T) {
	s := New(Config{})
	sweep := func(tab *Table, present, absent []uint64, at int64) {
		t.Helper()
		tab.Lock()
		defer tab.Unlock()
		gen := tab.NextGen()
		for _, h := range append(present, absent...) {
			i := tab.Find(h)
			if i < 0 {
				i = mustAdd(t, tab, h)
			}
			tab.Update(&tab.Slots()[i], Obs{Value: 1, TS: sec(at - 10)})
		}
		for _, h := range present {
			tab.Slots()[tab.Find(h)].Gen = gen
		}
		tab.SweepAbsent(gen, sec(at), func(*Slot) {})
	}
	a, b := s.Table(1), s.Table(2)
	sweep(a, []uint64{1}, []uint64{2, 3}, 100)
	sweep(b, []uint64{1}, []uint64{4}, 100)
	if got := s.absent.Load(); got != 3 {
		t.Fatalf("absent %d, want 3", got)
	}
	sweep(a, []uint64{1, 2}, nil, 200) // 2 is back, 3 still absent
	if got := s.absent.Load(); got != 2 {
		t.Fatalf("absent %d, want 2", got)
	}
	b.Release()
	if got := s.absent.Load(); got != 1 {
		t.Fatalf("absent after a release %d, want 1", got)
	}
}

// TestNextGen: generations go on across the loops of one table, so a slot
// marked by a previous loop never passes for one the current scrape saw, and
// a wrap skips 0, the generation of restored slots.
func TestNextGen(t *testing.T) {
	tab := New(Config{}).Table(1)
	tab.Lock()
	defer tab.Unlock()
	if g := tab.NextGen(); g != 1 {
		t.Fatalf("first generation %d, want 1", g)
	}
	tab.ForgetKinds() // a new loop takes over
	if g := tab.NextGen(); g != 2 {
		t.Fatalf("generation after a new loop %d, want 2", g)
	}
	tab.gen = math.MaxUint32
	if g := tab.NextGen(); g != 1 {
		t.Fatalf("generation after a wrap %d, want 1", g)
	}
}

// TestCheckpointKeepsAbsentSeries: a series kept while absent is in the
// checkpoint with its last observation, and the next agent computes its
// return's delta against it; one gone stale is in neither.
func TestCheckpointKeepsAbsentSeries(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	c.set(time.UnixMilli(sec(10_000)))
	s := testStore(t, dir, c)
	restore(t, s)
	tab := s.Table(7)
	tab.Lock()
	for h, ts := range map[uint64]int64{1: 10_000, 2: 10_000 - 30, 3: 10_000 - 3601} {
		tab.Update(addSlot(t, tab, h), Obs{Value: 100, TS: sec(ts)})
	}
	gen := tab.NextGen()
	tab.Slots()[tab.Find(1)].Gen = gen // 2 and 3 are absent from this scrape
	tab.SweepAbsent(gen, sec(10_000), func(*Slot) {})
	tab.SetLastSuccess(sec(10_000))
	if tab.Find(2) < 0 || tab.Find(3) >= 0 {
		t.Fatalf("after the sweep: series 2 kept %v, stale series 3 kept %v", tab.Find(2) >= 0, tab.Find(3) >= 0)
	}
	tab.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	c.set(time.UnixMilli(sec(10_010)))
	s2 := testStore(t, dir, c)
	if r := restore(t, s2); r.Outcome != OutcomeOK || r.Series != 2 {
		t.Fatalf("restore: %+v, want ok with 2 series", r)
	}
	got := contents(s2)
	if st := got[7]; len(st.series) != 2 || st.series[2].ts != secs(10_000-30) || st.series[2].last != 100 {
		t.Fatalf("restored target 7: %+v, want series 2 with its last observation (100 at %d)", got[7], secs(10_000-30))
	}
	tab2 := s2.Table(7)
	if d, ok := observe(tab2, 2, Obs{Value: 130, TS: sec(10_020)}); !ok || d != 30 {
		t.Fatalf("the absent series' return after a restart: (%v, %v), want (30, true)", d, ok)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}
