package exposition

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
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
			name  string
			mask  func(uint64) uint64
			marks func(c byte) bool
		}{
			{"specialBytes", specialBytes, func(c byte) bool { return charClass[c]&cValueStop != 0 }},
			{"quoteStop", quoteStop, func(c byte) bool { return charClass[c]&cValueStop != 0 && c != '\n' }},
			{"newlineOrHigh", newlineOrHigh, func(c byte) bool { return c == '\n' || c >= 0x80 }},
		} {
			s := f.mask(x)
			first := -1
			for i, c := range w {
				if f.marks(c) {
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

// TestSWARDigits checks the one-word integer conversion and digit count
// against strconv for every length, leading zeros included.
func TestSWARDigits(t *testing.T) {
	for k := 1; k <= 8; k++ {
		for _, v := range []uint64{0, 1, 7, 9, 10, 42, 99, 100, 12345, 99999999, 10000000, 1234567, 8000001} {
			s := strconv.FormatUint(v, 10)
			if len(s) > k {
				continue
			}
			s = strings.Repeat("0", k-len(s)) + s
			var b [8]byte
			copy(b[:], s)
			for j := k; j < 8; j++ {
				b[j] = "\n x.e}/:"[j] // whatever follows the digits
			}
			x := binary.LittleEndian.Uint64(b[:]) ^ swarLo*'0'
			if got := swarDigits(x, k); got != v {
				t.Errorf("swarDigits(%q, %d) = %d, want %d", s, k, got, v)
			}
			if n := bits.TrailingZeros64(notDigits(x)) >> 3; n != k {
				t.Errorf("notDigits(%q): %d leading digits, want %d", b[:], n, k)
			}
		}
	}
	for c := 0; c < 256; c++ { // every byte value in every position
		for pos := 0; pos < 8; pos++ {
			b := [8]byte{'1', '2', '3', '4', '5', '6', '7', '8'}
			b[pos] = byte(c)
			x := binary.LittleEndian.Uint64(b[:]) ^ swarLo*'0'
			want := pos
			if c >= '0' && c <= '9' {
				want = 8
			}
			if n := bits.TrailingZeros64(notDigits(x)) >> 3; n != want {
				t.Errorf("byte %#x at %d: %d leading digits, want %d", c, pos, n, want)
			}
		}
	}
}
