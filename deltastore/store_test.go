package deltastore

import (
	"math"
	"testing"
	"time"
)

// t0 is a wall-clock time in milliseconds; steps in the tests are seconds.
const t0 = int64(1_800_000_000_000)

func sec(n int64) int64 { return t0 + n*1000 }

func TestUpdate(t *testing.T) {
	type step struct {
		obs     Obs
		delta   float64
		emitted bool
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"first sight sets the baseline only", []step{
			{Obs{Value: 10, TS: sec(1)}, 0, false},
			{Obs{Value: 15, TS: sec(2)}, 5, true},
			{Obs{Value: 15, TS: sec(3)}, 0, true},
		}},
		{"fresh series emits its first value", []step{
			{Obs{Value: 3, TS: sec(1), Fresh: true}, 3, true},
			{Obs{Value: 4, TS: sec(2)}, 1, true},
		}},
		{"fresh is ignored for a known series", []step{
			{Obs{Value: 3, TS: sec(1)}, 0, false},
			{Obs{Value: 4, TS: sec(2), Fresh: true}, 1, true},
		}},
		{"decrease is a reset: delta is the new value", []step{
			{Obs{Value: 100, TS: sec(1)}, 0, false},
			{Obs{Value: 7, TS: sec(2)}, 7, true},
			{Obs{Value: 9, TS: sec(3)}, 2, true},
		}},
		{"newer created time is a reset even when the value grew", []step{
			{Obs{Value: 5, TS: sec(1), Created: sec(-100)}, 0, false},
			{Obs{Value: 8, TS: sec(2), Created: sec(-50)}, 8, true},
			{Obs{Value: 10, TS: sec(3), Created: sec(-50)}, 2, true},
			{Obs{Value: 11, TS: sec(4)}, 1, true}, // created unknown: the stored one stays
			{Obs{Value: 13, TS: sec(5), Created: sec(-50)}, 2, true},
		}},
		{"a created time where none was known is no reset", []step{
			{Obs{Value: 5, TS: sec(1)}, 0, false},
			{Obs{Value: 8, TS: sec(2), Created: sec(-50)}, 3, true},
		}},
		{"created times within one second are one start", []step{
			{Obs{Value: 5, TS: sec(1), Created: sec(-50) + 100}, 0, false},
			{Obs{Value: 8, TS: sec(2), Created: sec(-50) + 900}, 3, true},
		}},
		{"out-of-order sample is skipped", []step{
			{Obs{Value: 5, TS: sec(10)}, 0, false},
			{Obs{Value: 9, TS: sec(5)}, 0, false},
			{Obs{Value: 9, TS: sec(11)}, 4, true},
		}},
		{"a repeated timestamp is the same observation", []step{
			{Obs{Value: 5, TS: sec(10)}, 0, false},
			{Obs{Value: 8, TS: sec(20)}, 3, true},
			{Obs{Value: 8, TS: sec(20)}, 0, false},
			{Obs{Value: 9, TS: sec(30)}, 1, true},
		}},
		{"a second sample within the same second waits for the next one", []step{
			{Obs{Value: 5, TS: sec(10)}, 0, false},
			{Obs{Value: 8, TS: sec(11) + 100}, 3, true},
			{Obs{Value: 12, TS: sec(11) + 900}, 0, false},
			{Obs{Value: 13, TS: sec(12)}, 5, true},
		}},
		{"NaN and infinities are ignored and keep the state", []step{
			{Obs{Value: 5, TS: sec(1)}, 0, false},
			{Obs{Value: math.NaN(), TS: sec(2)}, 0, false},
			{Obs{Value: math.Inf(1), TS: sec(3)}, 0, false},
			{Obs{Value: 6, TS: sec(4)}, 1, true},
		}},
		{"a NaN first sight stores nothing", []step{
			{Obs{Value: math.NaN(), TS: sec(1), Fresh: true}, 0, false},
			{Obs{Value: 4, TS: sec(2)}, 0, false},
			{Obs{Value: 6, TS: sec(3)}, 2, true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(Config{})
			for i, st := range c.steps {
				d, ok := s.Update(42, st.obs)
				if d != st.delta || ok != st.emitted {
					t.Fatalf("step %d %+v: got (%v, %v), want (%v, %v)", i, st.obs, d, ok, st.delta, st.emitted)
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

func TestMaxSeries(t *testing.T) {
	s := New(Config{MaxSeries: numShards}) // one series per shard
	if _, ok := s.Update(0, Obs{Value: 1, TS: sec(1), Fresh: true}); !ok {
		t.Fatal("first series refused")
	}
	before := refusedTotal.Get()
	if _, ok := s.Update(numShards, Obs{Value: 1, TS: sec(1), Fresh: true}); ok {
		t.Fatal("series beyond the bound accepted")
	}
	s.Put(2*numShards, 1, sec(1))
	if n := refusedTotal.Get() - before; n != 2 {
		t.Fatalf("refusals counted %d, want 2", n)
	}
	s.Delete(0)
	if _, ok := s.Update(numShards, Obs{Value: 1, TS: sec(1), Fresh: true}); !ok {
		t.Fatal("series refused after a delete freed room")
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func TestPutGet(t *testing.T) {
	s := New(Config{})
	if _, _, ok := s.Get(7); ok {
		t.Fatal("Get of an unknown key found something")
	}
	s.Put(7, float64(sec(3)+456), sec(3)+456)
	v, ts, ok := s.Get(7)
	if !ok || v != float64(sec(3)+456) || ts != sec(3) {
		t.Fatalf("Get = %v, %d, %v; want the exact value and the whole second %d", v, ts, ok, sec(3))
	}
	// Put keeps the created time Update learnt; a later Update sees the put value.
	s.Update(8, Obs{Value: 5, TS: sec(1), Created: sec(-10)})
	s.Put(8, 6, sec(2))
	if d, ok := s.Update(8, Obs{Value: 9, TS: sec(3), Created: sec(-10)}); !ok || d != 3 {
		t.Fatalf("Update after Put = %v, %v; want 3, true", d, ok)
	}
}

func TestEvict(t *testing.T) {
	now := time.UnixMilli(sec(10_000))
	s := New(Config{StaleAfter: time.Hour, Now: func() time.Time { return now }})
	s.Update(1, Obs{Value: 1, TS: sec(10_000 - 3600 - 1)}) // older than an hour
	s.Update(2, Obs{Value: 1, TS: sec(10_000 - 3600)})     // exactly an hour: kept
	s.Update(3, Obs{Value: 1, TS: sec(10_000)})
	s.Put(4, 1, sec(10))
	before := evictionsTotal.Get()
	if n := s.evict(); n != 2 {
		t.Fatalf("evicted %d, want 2", n)
	}
	if n := evictionsTotal.Get() - before; n != 2 {
		t.Fatalf("evictions counted %d, want 2", n)
	}
	for key, want := range map[uint64]bool{1: false, 2: true, 3: true, 4: false} {
		if _, _, ok := s.Get(key); ok != want {
			t.Errorf("series %d kept = %v, want %v", key, ok, want)
		}
	}
	// An evicted series comes back as a first sight.
	if _, ok := s.Update(1, Obs{Value: 50, TS: sec(10_001)}); ok {
		t.Fatal("evicted series emitted a delta against its forgotten value")
	}
}
