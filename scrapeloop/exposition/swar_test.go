package exposition

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestSWARAgainstTable checks the eight-bytes-at-a-time classifiers against
// the byte table on every byte value in every position, and on random words.
func TestSWARAgainstTable(t *testing.T) {
	check := func(w [8]byte) {
		x := binary.LittleEndian.Uint64(w[:])
		for _, colon := range []bool{true, false} {
			m, class := notLabelBytes(x), uint8(cLabel)
			if colon {
				m, class = notMetricBytes(x), cMetric
			}
			for i, c := range w {
				want := charClass[c]&class == 0
				if got := m>>(8*i+7)&1 == 1; got != want {
					t.Fatalf("not-name mask of %q (colon=%v) byte %d: got %v want %v", w, colon, i, got, want)
				}
			}
		}
		for _, f := range []struct {
			name    string
			mask    func(uint64) uint64
			newline bool
		}{{"specialBytes", specialBytes, true}, {"quoteStop", quoteStop, false}} {
			s := f.mask(x)
			first := -1
			for i, c := range w {
				if charClass[c]&cValueStop != 0 && (f.newline || c != '\n') {
					first = i
					break
				}
			}
			got := -1
			for i := range 8 {
				if s>>(8*i+7)&1 == 1 {
					got = i
					break
				}
			}
			if got != first {
				t.Fatalf("%s(%q): first mark %d, want %d", f.name, w, got, first)
			}
		}
	}
	for c := range 256 {
		for pos := range 8 {
			w := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
			w[pos] = byte(c)
			check(w)
			for i := range w { // neighbours that provoke borrows
				if i != pos {
					w[i] = byte(c) ^ 1
				}
			}
			check(w)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		check(w)
	}
}
