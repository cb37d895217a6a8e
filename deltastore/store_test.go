package deltastore

import (
	"math"
	"math/rand/v2"
	"testing"
)

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
			{Obs{Value: 10, TS: 1}, 0, false},
			{Obs{Value: 15, TS: 2}, 5, true},
			{Obs{Value: 15, TS: 3}, 0, true},
		}},
		{"fresh series emits its first value", []step{
			{Obs{Value: 3, TS: 1, Fresh: true}, 3, true},
			{Obs{Value: 4, TS: 2}, 1, true},
		}},
		{"decrease is a reset: delta is the new value", []step{
			{Obs{Value: 100, TS: 1}, 0, false},
			{Obs{Value: 7, TS: 2}, 7, true},
			{Obs{Value: 9, TS: 3}, 2, true},
		}},
		{"newer created time is a reset even when the value grew", []step{
			{Obs{Value: 5, TS: 1, Created: 1000}, 0, false},
			{Obs{Value: 8, TS: 2, Created: 1500}, 8, true},
			{Obs{Value: 10, TS: 3, Created: 1500}, 2, true},
		}},
		{"out-of-order sample is skipped", []step{
			{Obs{Value: 5, TS: 10}, 0, false},
			{Obs{Value: 9, TS: 5}, 0, false},
			{Obs{Value: 9, TS: 11}, 4, true},
		}},
		{"a repeated timestamp is the same observation", []step{
			{Obs{Value: 5, TS: 10}, 0, false},
			{Obs{Value: 8, TS: 20}, 3, true},
			{Obs{Value: 8, TS: 20}, 0, false},
			{Obs{Value: 9, TS: 30}, 1, true},
		}},
		{"NaN is ignored and keeps the state", []step{
			{Obs{Value: 5, TS: 1}, 0, false},
			{Obs{Value: math.NaN(), TS: 2}, 0, false},
			{Obs{Value: 6, TS: 3}, 1, true},
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

// TestFidelity replays random counter histories with resets and checks that the
// emitted deltas add up to the true increase after the first observation.
func TestFidelity(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := New(Config{})
	for key := uint64(0); key < 200; key++ {
		v := float64(r.IntN(1000))
		var want, got float64
		first := true
		for i := 0; i < 100; i++ {
			prev := v
			if r.IntN(20) == 0 && prev > 0 {
				// Restart: counts since the restart, below the old value (a
				// restart that overtakes the old value is invisible without a
				// created time, to Prometheus' increase() as well).
				v = float64(r.IntN(int(min(prev, 5))))
				if !first {
					want += v
				}
			} else {
				v += float64(r.IntN(10))
				if !first {
					want += v - prev
				}
			}
			d, ok := s.Update(key, Obs{Value: v, TS: int64(i)})
			if ok {
				got += d
			}
			first = false
		}
		if got != want {
			t.Fatalf("series %d: deltas add up to %v, true increase %v", key, got, want)
		}
	}
}

func TestMaxSeries(t *testing.T) {
	s := New(Config{MaxSeries: numShards}) // one series per shard
	if _, ok := s.Update(0, Obs{Value: 1, Fresh: true}); !ok {
		t.Fatal("first series refused")
	}
	if _, ok := s.Update(numShards, Obs{Value: 1, Fresh: true}); ok {
		t.Fatal("series beyond the bound accepted")
	}
	s.Delete(0)
	if _, ok := s.Update(numShards, Obs{Value: 1, Fresh: true}); !ok {
		t.Fatal("series refused after a delete freed room")
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func BenchmarkUpdate(b *testing.B) {
	s := New(Config{})
	const n = 1 << 16
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Update(uint64(i%n)*0x9E3779B97F4A7C15, Obs{Value: float64(i), TS: int64(i)})
	}
}
