package deltastore

import (
	"math/rand/v2"
	"testing"
)

// checkIndex compares x with want (hash → slot) and checks that every entry
// is reachable: no empty position between its home and where it sits.
func checkIndex(t *testing.T, x *hashIndex, slots []Slot, want map[uint64]int32, hashes []uint64) {
	t.Helper()
	if x.n != len(want) {
		t.Fatalf("index holds %d entries, want %d", x.n, len(want))
	}
	mask := uint64(len(x.pos) - 1)
	entries := 0
	for p, e := range x.pos {
		if e == 0 {
			continue
		}
		entries++
		h := slots[x.slot(e)].Hash
		if tag := uint32(x.mix(h) >> (32 + x.slotBits)); e>>x.slotBits != tag {
			t.Fatalf("entry of %x at %d has tag %x, want %x", h, p, e>>x.slotBits, tag)
		}
		for q := x.mix(h) & mask; q != uint64(p); q = (q + 1) & mask {
			if x.pos[q] == 0 {
				t.Fatalf("entry of %x at %d unreachable: %d is empty", h, p, q)
			}
		}
	}
	if entries != x.n {
		t.Fatalf("%d positions used, n = %d", entries, x.n)
	}
	for _, h := range hashes {
		i, ok := want[h]
		if !ok {
			i = -1
		}
		if got := x.find(slots, h); got != i {
			t.Fatalf("find(%x) = %d, want %d", h, got, i)
		}
	}
}

// TestHashIndexWrap fills a fixed-size index with hashes whose homes are the
// last and first positions of the array, so that runs wrap around its end,
// and removes and inserts them in random order, comparing it with a map after
// each step.
func TestHashIndexWrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var x hashIndex
	x.reset(48) // 64 positions, no growth below 48 entries
	size := len(x.pos)
	if size != 64 {
		t.Fatalf("reset(48) made %d positions", size)
	}
	// 40 hashes whose homes are among the last 4 and first 3 positions:
	// one cluster across the end of the array.
	var hashes []uint64
	for len(hashes) < 40 {
		h := rng.Uint64()
		if p := x.mix(h) & uint64(size-1); p >= uint64(size-4) || p < 3 {
			hashes = append(hashes, h)
		}
	}
	slots := make([]Slot, len(hashes))
	want := map[uint64]int32{}
	var free []int32
	for i := len(slots) - 1; i >= 0; i-- {
		free = append(free, int32(i))
	}
	wrapped := false
	for step := range 5000 {
		h := hashes[rng.IntN(len(hashes))]
		if i, ok := want[h]; ok {
			x.remove(slots, h)
			slots[i] = Slot{}
			free = append(free, i)
			delete(want, h)
		} else {
			if len(want) >= 44 {
				continue
			}
			i := free[len(free)-1]
			free = free[:len(free)-1]
			slots[i] = Slot{Hash: h, used: true}
			x.put(slots, i)
			want[h] = i
		}
		if len(x.pos) != size {
			t.Fatalf("step %d: index grew to %d", step, len(x.pos))
		}
		wrapped = wrapped || (x.pos[size-1] != 0 && x.pos[0] != 0 && x.pos[1] != 0)
		checkIndex(t, &x, slots, want, hashes)
	}
	if !wrapped {
		t.Fatal("no run wrapped around the end of the array")
	}
}

// TestHashIndexWiden puts slot numbers larger than the index's array into
// it: the tags give up bits for them, and the entries stay found.
func TestHashIndexWiden(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var x hashIndex
	x.reset(5)
	bits0 := x.slotBits
	slots := make([]Slot, 1<<20)
	want := map[uint64]int32{}
	var hashes []uint64
	for _, i := range []int32{1, 3, 1 << 9, 5, 1<<20 - 1, 1 << 12} {
		h := rng.Uint64()
		slots[i] = Slot{Hash: h, used: true}
		x.put(slots, i)
		want[h] = i
		hashes = append(hashes, h)
		checkIndex(t, &x, slots, want, hashes)
	}
	if x.slotBits != 21 || bits0 >= 21 {
		t.Fatalf("slot bits %d, then %d; want 21 in the end (slot 2^20-1 is entry 2^20)", bits0, x.slotBits)
	}
	for _, h := range hashes[:3] {
		x.remove(slots, h)
		delete(want, h)
		checkIndex(t, &x, slots, want, hashes)
	}
}

// TestTableIndexChurn adds and removes series through the table's API in
// random order, growth and shrinks included, and compares Find with a map.
// Half the hashes are consecutive integers: the mixing, not the hashes,
// must spread them.
func TestTableIndexChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const universe = 6000
	hashes := make([]uint64, universe)
	for k := range hashes {
		if k%2 == 0 {
			hashes[k] = uint64(k)
		} else {
			hashes[k] = rng.Uint64()
		}
	}
	s := New(Config{})
	tab := s.Table(1)
	tab.Lock()
	defer tab.Unlock()
	want := map[uint64]int32{}
	steps := 200_000
	if testing.Short() || raceEnabled {
		steps = 20_000
	}
	for step := range steps {
		// Phases that favour adding, then removing, so that the table grows
		// past several doublings and shrinks (maybeShrink) again.
		addBias := 0.7
		if step/20_000%2 == 1 {
			addBias = 0.25
		}
		h := hashes[rng.IntN(universe)]
		i, ok := want[h]
		switch {
		case ok && rng.Float64() > addBias:
			n := len(tab.Slots())
			tab.Remove(i)
			delete(want, h)
			if len(tab.Slots()) != n { // maybeShrink moved the slots
				clear(want)
				for i, sl := range tab.Slots() {
					if sl.used {
						want[sl.Hash] = int32(i)
					}
				}
			}
		case !ok:
			if rng.Float64() > addBias {
				continue
			}
			i, why := tab.Admit(h)
			if why != Admitted {
				t.Fatalf("step %d: refused: %v", step, why)
			}
			want[h] = i
		}
		if step%997 == 0 || step == steps-1 {
			checkIndex(t, &tab.index, tab.slots, want, hashes)
			continue
		}
		wantI, live := want[h]
		if !live {
			wantI = -1
		}
		if got := tab.Find(h); got != wantI {
			t.Fatalf("step %d: Find(%x) = %d, want %d", step, h, got, wantI)
		}
	}
	if tab.live != len(want) {
		t.Fatalf("live %d, want %d", tab.live, len(want))
	}
}

// TestFindAllocs: a lookup, hit or miss, allocates nothing.
func TestFindAllocs(t *testing.T) {
	s := New(Config{})
	tab := s.Table(1)
	fillTable(tab, 1000)
	tab.Lock()
	defer tab.Unlock()
	if n := testing.AllocsPerRun(100, func() {
		tab.Find(benchKey(5))
		tab.Find(benchKey(5000))
	}); n != 0 {
		t.Fatalf("Find allocates %v times", n)
	}
}
