package deltastore

import (
	"bytes"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// t0 is a wall-clock time in milliseconds; steps in the tests are seconds.
const t0 = int64(1_800_000_000_000)

func sec(n int64) int64 { return t0 + n*1000 }

// observe is one observation of the series hash of tab, as a scrape loop
// makes it: under the table's lock, the slot found or added, then Update.
// ok is false also when the series budget refused the series.
func observe(tab *Table, hash uint64, o Obs) (delta float64, ok bool) {
	tab.Lock()
	defer tab.Unlock()
	i := tab.Find(hash)
	if i < 0 {
		if i, ok = tab.Add(hash); !ok {
			return 0, false
		}
	}
	return tab.Update(&tab.Slots()[i], o)
}

// slotOf returns a copy of the slot of hash in tab.
func slotOf(tab *Table, hash uint64) (Slot, bool) {
	tab.Lock()
	defer tab.Unlock()
	if i := tab.Find(hash); i >= 0 {
		return tab.Slots()[i], true
	}
	return Slot{}, false
}

func mustAdd(t testing.TB, tab *Table, hash uint64) int32 {
	t.Helper()
	i, ok := tab.Add(hash)
	if !ok {
		t.Fatalf("Add(%x) refused", hash)
	}
	return i
}

// addSlot adds hash to tab and returns its slot (valid until the next Add
// or Remove; the slice is read after the Add, which may grow it).
func addSlot(t testing.TB, tab *Table, hash uint64) *Slot {
	t.Helper()
	i := mustAdd(t, tab, hash)
	return &tab.Slots()[i]
}

func TestUpdate(t *testing.T) {
	type step struct {
		obs     Obs
		delta   float64
		emitted bool
	}
	cases := []struct {
		name  string
		steps []step
		// Counted: resets and samples older than the stored one. Invalid
		// observations are counted too, each under its reason.
		resets, outOfOrder int
		invalid            map[string]int
	}{
		{name: "first sight sets the baseline only", steps: []step{
			{Obs{Value: 10, TS: sec(1)}, 0, false},
			{Obs{Value: 15, TS: sec(2)}, 5, true},
			{Obs{Value: 15, TS: sec(3)}, 0, true},
		}},
		{name: "fresh series emits its first value", steps: []step{
			{Obs{Value: 3, TS: sec(1), Fresh: true}, 3, true},
			{Obs{Value: 4, TS: sec(2)}, 1, true},
		}},
		{name: "fresh is ignored for a known series", steps: []step{
			{Obs{Value: 3, TS: sec(1)}, 0, false},
			{Obs{Value: 4, TS: sec(2), Fresh: true}, 1, true},
		}},
		{name: "decrease is a reset: delta is the new value", resets: 1, steps: []step{
			{Obs{Value: 100, TS: sec(1)}, 0, false},
			{Obs{Value: 7, TS: sec(2)}, 7, true},
			{Obs{Value: 9, TS: sec(3)}, 2, true},
		}},
		{name: "a reset to zero emits zero", resets: 1, steps: []step{
			{Obs{Value: 100, TS: sec(1)}, 0, false},
			{Obs{Value: 0, TS: sec(2)}, 0, true},
			{Obs{Value: 4, TS: sec(3)}, 4, true},
		}},
		{name: "newer created time is a reset even when the value grew", resets: 1, steps: []step{
			{Obs{Value: 5, TS: sec(1), Created: sec(-100)}, 0, false},
			{Obs{Value: 8, TS: sec(2), Created: sec(-50)}, 8, true},
			{Obs{Value: 10, TS: sec(3), Created: sec(-50)}, 2, true},
			{Obs{Value: 11, TS: sec(4)}, 1, true}, // created unknown: the stored one stays
			{Obs{Value: 13, TS: sec(5), Created: sec(-50)}, 2, true},
		}},
		{name: "an older created time is no reset", steps: []step{
			{Obs{Value: 5, TS: sec(1), Created: sec(-50)}, 0, false},
			{Obs{Value: 8, TS: sec(2), Created: sec(-100)}, 3, true},
		}},
		{name: "a created time where none was known is no reset", steps: []step{
			{Obs{Value: 5, TS: sec(1)}, 0, false},
			{Obs{Value: 8, TS: sec(2), Created: sec(-50)}, 3, true},
			{Obs{Value: 9, TS: sec(3), Created: sec(-40)}, 9, true}, // now it is known
		}, resets: 1},
		{name: "created times within one second are one start", steps: []step{
			{Obs{Value: 5, TS: sec(1), Created: sec(-50) + 100}, 0, false},
			{Obs{Value: 8, TS: sec(2), Created: sec(-50) + 900}, 3, true},
		}},
		{name: "out-of-order sample is skipped", outOfOrder: 1, steps: []step{
			{Obs{Value: 5, TS: sec(10)}, 0, false},
			{Obs{Value: 9, TS: sec(5)}, 0, false},
			{Obs{Value: 9, TS: sec(11)}, 4, true},
		}},
		{name: "a repeated timestamp is the same observation", steps: []step{
			{Obs{Value: 5, TS: sec(10)}, 0, false},
			{Obs{Value: 8, TS: sec(20)}, 3, true},
			{Obs{Value: 8, TS: sec(20)}, 0, false},
			{Obs{Value: 9, TS: sec(30)}, 1, true},
		}},
		{name: "a second sample within the same second waits for the next one", steps: []step{
			{Obs{Value: 5, TS: sec(10)}, 0, false},
			{Obs{Value: 8, TS: sec(11) + 100}, 3, true},
			{Obs{Value: 12, TS: sec(11) + 900}, 0, false},
			{Obs{Value: 13, TS: sec(12)}, 5, true},
		}},
		{name: "NaN and infinities are ignored and keep the state", invalid: map[string]int{InvalidNaN: 1, InvalidInf: 2}, steps: []step{
			{Obs{Value: 5, TS: sec(1)}, 0, false},
			{Obs{Value: math.NaN(), TS: sec(2)}, 0, false},
			{Obs{Value: math.Inf(1), TS: sec(3)}, 0, false},
			{Obs{Value: math.Inf(-1), TS: sec(4)}, 0, false},
			{Obs{Value: 6, TS: sec(5)}, 1, true},
		}},
		{name: "a NaN first sight stores nothing", invalid: map[string]int{InvalidNaN: 1}, steps: []step{
			{Obs{Value: math.NaN(), TS: sec(1), Fresh: true}, 0, false},
			{Obs{Value: 4, TS: sec(2)}, 0, false},
			{Obs{Value: 6, TS: sec(3)}, 2, true},
		}},
		{name: "an infinite first sight stores nothing", invalid: map[string]int{InvalidInf: 1}, steps: []step{
			{Obs{Value: math.Inf(1), TS: sec(1), Fresh: true}, 0, false},
			{Obs{Value: 4, TS: sec(2)}, 0, false},
			{Obs{Value: 6, TS: sec(3)}, 2, true},
		}},
		{name: "a negative value is refused, not taken for a reset", invalid: map[string]int{InvalidNegative: 1}, steps: []step{
			{Obs{Value: 5, TS: sec(1)}, 0, false},
			{Obs{Value: -3, TS: sec(2)}, 0, false},
			{Obs{Value: 7, TS: sec(3)}, 2, true}, // against 5: no reset, nothing sent twice
		}},
		{name: "a negative first sight stores nothing", invalid: map[string]int{InvalidNegative: 1}, steps: []step{
			{Obs{Value: -1, TS: sec(1), Fresh: true}, 0, false},
			{Obs{Value: 4, TS: sec(2)}, 0, false},
			{Obs{Value: 6, TS: sec(3)}, 2, true},
		}},
		{name: "the largest finite value is a value", steps: []step{
			{Obs{Value: 1, TS: sec(1)}, 0, false},
			{Obs{Value: math.MaxFloat64, TS: sec(2)}, math.MaxFloat64 - 1, true},
		}},
		{name: "invalid values in a row, then a reset, count once as a reset", resets: 1,
			invalid: map[string]int{InvalidNaN: 2, InvalidNegative: 1, InvalidInf: 1}, steps: []step{
				{Obs{Value: 50, TS: sec(1)}, 0, false},
				{Obs{Value: math.NaN(), TS: sec(2)}, 0, false},
				{Obs{Value: -50, TS: sec(3)}, 0, false},
				{Obs{Value: math.Inf(-1), TS: sec(4)}, 0, false},
				{Obs{Value: math.NaN(), TS: sec(5)}, 0, false},
				{Obs{Value: 3, TS: sec(6)}, 3, true},
				{Obs{Value: 4, TS: sec(7)}, 1, true},
			}},
		{name: "a time before 1970-01-01 00:00:01 is refused", invalid: map[string]int{InvalidTimestamp: 3}, steps: []step{
			{Obs{Value: 5, TS: 999, Fresh: true}, 0, false},
			{Obs{Value: 5, TS: -5000}, 0, false},
			{Obs{Value: 6, TS: sec(1)}, 0, false}, // the first valid one is the first sight
			{Obs{Value: 7, TS: 0}, 0, false},
			{Obs{Value: 9, TS: sec(2)}, 3, true},
		}},
		{name: "a time a uint32 of seconds cannot hold is refused, not clamped", invalid: map[string]int{InvalidTimestamp: 2}, steps: []step{
			{Obs{Value: 5, TS: sec(1)}, 0, false},
			{Obs{Value: 6, TS: sec(1) * 1000}, 0, false}, // microseconds taken for milliseconds
			{Obs{Value: 7, TS: math.MaxUint32 * 1000}, 0, false},
			{Obs{Value: 8, TS: sec(2)}, 3, true}, // not frozen behind a clamped time
		}},
		{name: "negative zero is zero", steps: []step{
			{Obs{Value: math.Copysign(0, -1), TS: sec(1)}, 0, false},
			{Obs{Value: 2, TS: sec(2)}, 2, true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(Config{})
			tab := s.Table(1)
			tab.Lock()
			defer tab.Unlock()
			sl := addSlot(t, tab, 42)
			for i, st := range c.steps {
				d, ok := tab.Update(sl, st.obs)
				if d != st.delta || ok != st.emitted {
					t.Fatalf("step %d %+v: got (%v, %v), want (%v, %v)", i, st.obs, d, ok, st.delta, st.emitted)
				}
			}
			counted := map[string]struct{ got, want uint64 }{
				"resets":       {s.m.resets.Get(), uint64(c.resets)},
				"out of order": {s.m.outOfOrder.Get(), uint64(c.outOfOrder)},
			}
			for _, r := range []string{InvalidNaN, InvalidInf, InvalidNegative, InvalidTimestamp} {
				counted["invalid "+r] = struct{ got, want uint64 }{s.m.invalid[r].Get(), uint64(c.invalid[r])}
			}
			for name, got := range counted {
				if got.got != got.want {
					t.Errorf("%s counted %d, want %d", name, got.got, got.want)
				}
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	for _, c := range []struct {
		ms   int64
		want uint32
	}{
		{-5, 0}, {0, 0}, {999, 0}, {1000, 1}, {t0 + 999, uint32(t0 / 1000)},
		{math.MaxUint32 * 1000, math.MaxUint32}, {math.MaxInt64, math.MaxUint32},
	} {
		if got := seconds(c.ms); got != c.want {
			t.Errorf("seconds(%d) = %d, want %d", c.ms, got, c.want)
		}
	}
}

// TestSlotLayout holds Slot to what its comment promises: 40 bytes and no
// pointers, so that a million series cost 40 MB the collector never scans.
func TestSlotLayout(t *testing.T) {
	if n := unsafe.Sizeof(Slot{}); n != 40 {
		t.Errorf("Slot is %d bytes, want 40", n)
	}
	typ := reflect.TypeFor[Slot]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		switch f.Type.Kind() {
		case reflect.Bool, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float64:
		default:
			t.Errorf("Slot.%s is a %s: the tables must hold no pointers", f.Name, f.Type)
		}
	}
}

// TestTable: one table per target seed, its series found by hash, slots
// reused after a removal.
func TestTable(t *testing.T) {
	s := New(Config{})
	a := s.Table(1)
	if s.Table(1) != a {
		t.Fatal("a second Table call for the same seed returned another table")
	}
	b := s.Table(2)
	if b == a {
		t.Fatal("two seeds share a table")
	}
	a.Lock()
	if i := a.Find(10); i != -1 {
		t.Fatalf("Find in an empty table = %d, want -1", i)
	}
	i10, i20, i30 := mustAdd(t, a, 10), mustAdd(t, a, 20), mustAdd(t, a, 30)
	for h, i := range map[uint64]int32{10: i10, 20: i20, 30: i30} {
		if got := a.Find(h); got != i {
			t.Errorf("Find(%d) = %d, want %d", h, got, i)
		}
		sl := &a.Slots()[i]
		if sl.Hash != h || !sl.Used() || sl.HasState() || sl.Kind != 0 || sl.Ref != 0 {
			t.Errorf("new slot %d = %+v", i, *sl)
		}
	}
	a.Remove(i20)
	if got := a.Find(20); got != -1 {
		t.Fatalf("Find of a removed series = %d", got)
	}
	if sl := a.Slots()[i20]; sl.Used() || sl != (Slot{}) {
		t.Fatalf("removed slot = %+v, want it cleared", sl)
	}
	if i := mustAdd(t, a, 40); i != i20 {
		t.Errorf("Add after a Remove took slot %d, want the freed %d", i, i20)
	}
	a.Unlock()
	if a.Len() != 3 || s.Len() != 3 {
		t.Fatalf("table Len %d, store Len %d, want 3, 3", a.Len(), s.Len())
	}

	// The same hash in two targets is two series.
	observe(a, 10, Obs{Value: 5, TS: sec(1)})
	observe(b, 10, Obs{Value: 100, TS: sec(1)})
	if d, ok := observe(a, 10, Obs{Value: 6, TS: sec(2)}); !ok || d != 1 {
		t.Fatalf("target a: delta %v, %v; want 1", d, ok)
	}
	if d, ok := observe(b, 10, Obs{Value: 103, TS: sec(2)}); !ok || d != 3 {
		t.Fatalf("target b: delta %v, %v; want 3", d, ok)
	}
	if s.Len() != 4 {
		t.Fatalf("store Len %d, want 4", s.Len())
	}
}

// TestMaxSeries: the budget holds for the tables together; a refusal is
// counted and changes nothing; Remove, Sweep and Release give budget back.
func TestMaxSeries(t *testing.T) {
	s := New(Config{MaxSeries: 3})
	a, b := s.Table(1), s.Table(2)
	a.Lock()
	mustAdd(t, a, 1)
	i2 := mustAdd(t, a, 2)
	a.Unlock()
	b.Lock()
	mustAdd(t, b, 1)
	if !s.Full() {
		t.Fatal("store not full at MaxSeries")
	}
	if i, ok := b.Add(2); ok || i != -1 {
		t.Fatalf("series beyond the bound: Add = %d, %v", i, ok)
	}
	if b.Find(2) != -1 || len(b.Slots()) != 1 {
		t.Fatalf("a refused series left a slot: %d slots", len(b.Slots()))
	}
	b.Unlock()
	if _, ok := observe(a, 3, Obs{Value: 1, TS: sec(1), Fresh: true}); ok {
		t.Fatal("series beyond the bound emitted")
	}
	if n := s.m.refused[RefusedNode].Get(); n != 2 {
		t.Fatalf("refusals counted %d, want 2", n)
	}
	if s.Len() != 3 || a.Len() != 2 || b.Len() != 1 {
		t.Fatalf("Len: store %d, a %d, b %d; want 3, 2, 1", s.Len(), a.Len(), b.Len())
	}

	a.Lock()
	a.Remove(i2)
	a.Unlock()
	if _, ok := observe(b, 2, Obs{Value: 1, TS: sec(1), Fresh: true}); !ok {
		t.Fatal("series refused after a Remove freed room")
	}
	b.Lock()
	if n := b.Sweep(func(sl *Slot) bool { return sl.Hash == 1 }); n != 1 {
		t.Fatalf("Sweep removed %d, want 1", n)
	}
	b.Unlock()
	if _, ok := observe(a, 4, Obs{Value: 1, TS: sec(1), Fresh: true}); !ok {
		t.Fatal("series refused after a Sweep freed room")
	}
	if s.Len() != 3 {
		t.Fatalf("store Len %d, want 3", s.Len())
	}
	a.Release() // two series
	if s.Len() != 1 || s.Full() {
		t.Fatalf("after a Release: store Len %d, full %v", s.Len(), s.Full())
	}
	c := s.Table(3)
	for h := range uint64(2) {
		if _, ok := observe(c, h, Obs{Value: 1, TS: sec(1)}); ok {
			t.Fatal("a first sight emitted")
		}
		if _, ok := slotOf(c, h); !ok {
			t.Fatalf("series %d refused after a Release freed room", h)
		}
	}
	if n := s.m.refused[RefusedNode].Get(); n != 2 {
		t.Fatalf("refusals counted %d, want still 2", n)
	}
}

func TestSweep(t *testing.T) {
	s := New(Config{})
	tab := s.Table(1)
	tab.Lock()
	defer tab.Unlock()
	for h := range uint64(10) {
		sl := addSlot(t, tab, h)
		sl.Gen = uint32(h % 3)
		tab.Update(sl, Obs{Value: float64(h), TS: sec(1)})
	}
	var seen []uint64
	n := tab.Sweep(func(sl *Slot) bool {
		if !sl.Used() {
			t.Error("Sweep offered a free slot")
		}
		seen = append(seen, sl.Hash)
		return sl.Gen != 0
	})
	if n != 6 || len(seen) != 10 {
		t.Fatalf("Sweep removed %d of %d offered, want 6 of 10", n, len(seen))
	}
	if s.Len() != 4 || tab.live != 4 {
		t.Fatalf("store Len %d, table %d, want 4", s.Len(), tab.live)
	}
	for h := range uint64(10) {
		i := tab.Find(h)
		if (i >= 0) != (h%3 == 0) {
			t.Errorf("series %d kept = %v", h, i >= 0)
			continue
		}
		if i >= 0 {
			if d, ok := tab.Update(&tab.Slots()[i], Obs{Value: float64(h) + 1, TS: sec(2)}); !ok || d != 1 {
				t.Errorf("series %d kept its state badly: delta %v, %v", h, d, ok)
			}
		}
	}
	// Swept slots are reused.
	for h := uint64(100); h < 106; h++ {
		if i := mustAdd(t, tab, h); int(i) >= 10 {
			t.Errorf("Add after a Sweep grew the table to slot %d", i)
		}
	}
	if n := tab.Sweep(func(*Slot) bool { return false }); n != 0 {
		t.Fatalf("Sweep keeping everything removed %d", n)
	}
}

// TestShrink: a table that lost most of its series is rebuilt smaller, by
// Remove and by Sweep, and every live series keeps its slot contents (delta
// state and the loop's cached fields), stays findable, and keeps its order.
func TestShrink(t *testing.T) {
	const n = 4096
	for _, how := range []string{"Remove", "Sweep"} {
		t.Run(how, func(t *testing.T) {
			s := New(Config{})
			tab := s.Table(1)
			tab.Lock()
			defer tab.Unlock()
			hash := func(k int) uint64 { return uint64(k)*0x9E3779B97F4A7C15 + 1 }
			for k := range n {
				sl := addSlot(t, tab, hash(k))
				sl.Ref, sl.Kind, sl.Gen, sl.Len = uint64(k)<<8, uint8(k%7+1), uint32(k), uint16(k)
				tab.Update(sl, Obs{Value: float64(k), TS: sec(1), Created: sec(-int64(k))})
			}
			want := map[uint64]Slot{}
			for k := range n {
				if k%5 == 0 { // 820 of 4096 stay: fewer than a quarter
					want[hash(k)] = tab.Slots()[tab.Find(hash(k))]
				}
			}
			switch how {
			case "Remove":
				for k := range n {
					if k%5 != 0 {
						tab.Remove(tab.Find(hash(k)))
					}
				}
			case "Sweep":
				if got := tab.Sweep(func(sl *Slot) bool { return sl.Gen%5 != 0 }); got != n-len(want) {
					t.Fatalf("Sweep removed %d, want %d", got, n-len(want))
				}
			}
			if len(tab.slots) > n/4 || len(tab.slots)-len(tab.free) != len(want) {
				t.Fatalf("not shrunk: %d slots, %d free for %d series", len(tab.slots), len(tab.free), len(want))
			}
			if tab.live != len(want) || s.Len() != len(want) || tab.index.n != len(want) {
				t.Fatalf("live %d, store %d, index %d; want %d", tab.live, s.Len(), tab.index.n, len(want))
			}
			prev := int32(-1)
			for k := range n {
				h := hash(k)
				i := tab.Find(h)
				w, live := want[h]
				if !live {
					if i != -1 {
						t.Fatalf("removed series %d found in slot %d", k, i)
					}
					continue
				}
				if i < 0 {
					t.Fatalf("series %d lost by the shrink", k)
				}
				if got := tab.Slots()[i]; got != w {
					t.Fatalf("series %d: slot %+v after the shrink, want %+v", k, got, w)
				}
				if i <= prev {
					t.Fatalf("series %d in slot %d after slot %d: the shrink reordered the table", k, i, prev)
				}
				prev = i
				if d, ok := tab.Update(&tab.Slots()[i], Obs{Value: float64(k) + 2, TS: sec(2), Created: sec(-int64(k))}); !ok || d != 2 {
					t.Fatalf("series %d: delta %v, %v after the shrink, want 2", k, d, ok)
				}
			}
			// The shrunk table grows again without clashing.
			for k := n; k < n+1000; k++ {
				mustAdd(t, tab, hash(k))
			}
			for k := range n + 1000 {
				_, live := want[hash(k)]
				if i := tab.Find(hash(k)); (i >= 0) != (live || k >= n) || (i >= 0 && tab.Slots()[i].Hash != hash(k)) {
					t.Fatalf("after regrowing: series %d in slot %d", k, i)
				}
			}
		})
	}
	// A small table is not rebuilt for every removal.
	s := New(Config{})
	tab := s.Table(1)
	tab.Lock()
	defer tab.Unlock()
	for h := range uint64(1000) {
		mustAdd(t, tab, h+1)
	}
	tab.Sweep(func(sl *Slot) bool { return sl.Hash > 1 })
	if len(tab.slots) != 1000 || tab.Find(1) != 0 {
		t.Fatalf("small table rebuilt: %d slots", len(tab.slots))
	}
}

// TestForgetKinds: a target's next loop gets the delta state, not the
// previous loop's classifications.
func TestForgetKinds(t *testing.T) {
	s := New(Config{})
	tab := s.Table(1)
	tab.Lock()
	defer tab.Unlock()
	sl := addSlot(t, tab, 7)
	sl.Ref, sl.Kind, sl.Len, sl.Gen = 99, 2, 31, 5
	tab.Update(sl, Obs{Value: 10, TS: sec(1), Created: sec(-5)})
	tab.Remove(mustAdd(t, tab, 8)) // a free slot too
	tab.ForgetKinds()
	sl = &tab.Slots()[tab.Find(7)]
	if sl.Ref != 0 || sl.Kind != 0 || sl.Len != 0 {
		t.Fatalf("ForgetKinds kept the classification: %+v", *sl)
	}
	if !sl.Used() || !sl.HasState() || sl.last != 10 || sl.ts != seconds(sec(1)) || sl.created != seconds(sec(-5)) {
		t.Fatalf("ForgetKinds changed the delta state: %+v", *sl)
	}
	if d, ok := tab.Update(sl, Obs{Value: 12, TS: sec(2), Created: sec(-5)}); !ok || d != 2 {
		t.Fatalf("delta after ForgetKinds %v, %v; want 2", d, ok)
	}
}

// TestRelease: a released table's budget comes back, and its seed's next
// table starts empty; releasing twice, or a stale handle, is harmless.
func TestRelease(t *testing.T) {
	s := New(Config{})
	a := s.Table(1)
	observe(a, 1, Obs{Value: 5, TS: sec(1)})
	observe(a, 2, Obs{Value: 5, TS: sec(1)})
	a.Lock()
	a.SetLastSuccess(sec(1))
	if a.LastSuccess() != sec(1) {
		t.Fatalf("LastSuccess = %d", a.LastSuccess())
	}
	a.Unlock()
	observe(s.Table(2), 1, Obs{Value: 5, TS: sec(1)})
	a.Release()
	if s.Len() != 1 || a.Len() != 0 {
		t.Fatalf("after Release: store %d, table %d", s.Len(), a.Len())
	}
	a2 := s.Table(1)
	if a2 == a {
		t.Fatal("Table returned the released table")
	}
	a2.Lock()
	if a2.LastSuccess() != 0 || a2.Find(1) != -1 {
		t.Fatal("the released target's state came back")
	}
	a2.Unlock()
	observe(a2, 1, Obs{Value: 9, TS: sec(2)})
	a.Release() // again, after its seed has a new table
	if s.Table(1) != a2 || s.Len() != 2 {
		t.Fatalf("a second Release of the old table touched the new one (store %d)", s.Len())
	}
	if _, ok := observe(a2, 1, Obs{Value: 10, TS: sec(3)}); !ok {
		t.Fatal("the new table lost its series")
	}
}

// TestEvict: counter state not observed for StaleAfter goes, but its slot
// stays with the loop that still scrapes the target: the series comes back
// as a baseline, not as one new since the target's last success.
func TestEvict(t *testing.T) {
	now := time.UnixMilli(sec(10_000))
	s := New(Config{StaleAfter: time.Hour, Now: func() time.Time { return now }})
	tab := s.Table(1)
	observe(tab, 1, Obs{Value: 1, TS: sec(10_000 - 3600 - 1)}) // older than an hour
	observe(tab, 2, Obs{Value: 1, TS: sec(10_000 - 3600)})     // exactly an hour: kept
	observe(tab, 3, Obs{Value: 1, TS: sec(10_000)})
	observe(s.Table(2), 1, Obs{Value: 1, TS: sec(10)})
	tab.Lock()
	mustAdd(t, tab, 4) // no counter state (a gauge): the loop's alone
	sl := &tab.Slots()[tab.Find(1)]
	sl.Ref, sl.Kind, sl.Len = 77, 2, 9
	tab.SetLastSuccess(sec(10))
	tab.Unlock()
	if n := s.evict(); n != 2 {
		t.Fatalf("evicted %d, want 2", n)
	}
	if n := s.m.evictions.Get(); n != 2 {
		t.Fatalf("evictions counted %d, want 2", n)
	}
	for h, want := range map[uint64]bool{1: false, 2: true, 3: true, 4: false} {
		sl, ok := slotOf(tab, h)
		if !ok {
			t.Fatalf("series %d lost its slot", h)
		}
		if sl.HasState() != want {
			t.Errorf("series %d kept its state = %v, want %v", h, sl.HasState(), want)
		}
	}
	if sl, _ := slotOf(tab, 1); sl.Ref != 77 || sl.Kind != 2 || sl.Len != 9 {
		t.Fatalf("eviction dropped the loop's fields: %+v", sl)
	}
	if s.Len() != 5 {
		t.Fatalf("store Len %d, want 5 (slots stay)", s.Len())
	}
	// An evicted series comes back as a first sight: a baseline.
	if _, ok := observe(tab, 1, Obs{Value: 50, TS: sec(10_001)}); ok {
		t.Fatal("evicted series emitted a delta against its forgotten value")
	}
	if d, ok := observe(tab, 1, Obs{Value: 52, TS: sec(10_002)}); !ok || d != 2 {
		t.Fatalf("delta after the new baseline %v, %v", d, ok)
	}
	if n := s.evict(); n != 0 {
		t.Fatalf("second eviction evicted %d", n)
	}
}

// TestMetrics: each store has its own metrics.
func TestMetrics(t *testing.T) {
	a, b := New(Config{}), New(Config{})
	observe(a.Table(1), 1, Obs{Value: 5, TS: sec(1)})
	observe(a.Table(1), 1, Obs{Value: 1, TS: sec(2)})
	observe(a.Table(1), 2, Obs{Value: -1, TS: sec(2)})
	var buf bytes.Buffer
	a.Metrics().WritePrometheus(&buf)
	for _, line := range []string{
		"nodescraper_delta_series 2", "nodescraper_delta_resets_total 1", `nodescraper_delta_invalid_values_total{reason="negative"} 1`,
		`nodescraper_delta_invalid_values_total{reason="nan"} 0`, "nodescraper_delta_absent_series 0",
		`nodescraper_delta_restore_outcome{outcome="ok"} 0`, "nodescraper_delta_evictions_total 0",
	} {
		if !slices.Contains(strings.Split(buf.String(), "\n"), line) {
			t.Errorf("store a metrics lack %q:\n%s", line, buf.String())
		}
	}
	buf.Reset()
	b.Metrics().WritePrometheus(&buf)
	if !strings.Contains(buf.String(), "nodescraper_delta_resets_total 0\n") || !strings.Contains(buf.String(), "nodescraper_delta_series 0\n") {
		t.Errorf("store b counts store a's work:\n%s", buf.String())
	}
}

// TestMetricsHelp: every metric of the store has HELP text.
func TestMetricsHelp(t *testing.T) {
	s := New(Config{})
	help := s.MetricsHelp()
	for _, name := range s.Metrics().ListMetricNames() {
		family, _, _ := strings.Cut(name, "{")
		if help[family] == "" {
			t.Errorf("%s has no HELP text", family)
		}
	}
}
