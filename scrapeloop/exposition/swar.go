package exposition

// Word-at-a-time (SWAR) scanning: eight payload bytes classified per step.

import (
	"math/bits"
	"unsafe"
)

// SWAR constants: one in every byte, and every byte's high bit.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// firstMarked returns the index of the first byte that mark marks in the
// eight-byte words from base+i on, and true; or false and the index where
// fewer than eight bytes are left before n. mark is one of the classifiers
// below, whose lowest mark is exact. The scans for the end of a name, of a
// quoted string and of a line all use it: it and the classifier named at
// the call site are inlined into each caller (go build -gcflags=-m lists
// both at every call), so each gets the loop it would write by hand.
func firstMarked(base unsafe.Pointer, i, n int, mark func(uint64) uint64) (int, bool) {
	for ; i+8 <= n; i += 8 {
		if m := mark(load64(base, i)); m != 0 {
			return i + bits.TrailingZeros64(m)>>3, true
		}
	}
	return i, false
}

// The SWAR classifiers below mark bytes in their high bit, eight bytes of a
// little-endian word at a time. A range test (x+0x80-lo) &^ (x+0x7f-hi) is
// exact per byte for bytes below 0x80 (no carry crosses bytes), so the high
// bit is cleared first and non-ASCII bytes are marked separately.

// notLabelBytes marks the bytes that cannot continue a label name
// ([a-zA-Z0-9_]).
func notLabelBytes(x uint64) uint64 {
	x7 := x &^ swarHi
	y := x7 | swarLo*0x20 // folds A-Z onto a-z and nothing else onto a-z
	ok := (y + swarLo*(0x80-'a')) &^ (y + swarLo*(0x7f-'z'))
	ok |= (x7 + swarLo*(0x80-'0')) &^ (x7 + swarLo*(0x7f-'9'))
	ok |= (x7 + swarLo*(0x80-'_')) &^ (x7 + swarLo*(0x7f-'_'))
	return (^ok | x) & swarHi
}

// notMetricBytes marks the bytes that cannot continue a metric name
// ([a-zA-Z0-9_:]).
func notMetricBytes(x uint64) uint64 {
	x7 := x &^ swarHi
	y := x7 | swarLo*0x20
	ok := (y + swarLo*(0x80-'a')) &^ (y + swarLo*(0x7f-'z'))
	ok |= (x7 + swarLo*(0x80-'0')) &^ (x7 + swarLo*(0x7f-':'))
	ok |= (x7 + swarLo*(0x80-'_')) &^ (x7 + swarLo*(0x7f-'_'))
	return (^ok | x) & swarHi
}

// specialBytes marks (in the byte's high bit) the bytes of x that are a
// quote, a backslash, a newline or non-ASCII. The lowest mark is exact;
// marks above a true one may be spurious, which is all scanQuoted needs.
func specialBytes(x uint64) uint64 {
	q := x ^ (swarLo * '"')
	b := x ^ (swarLo * '\\')
	n := x ^ (swarLo * '\n')
	zero := (q - swarLo) &^ q
	zero |= (b - swarLo) &^ b
	zero |= (n - swarLo) &^ n
	return (zero | x) & swarHi
}

// quoteStop marks the bytes of x that end a plain run inside a text-format
// quoted string, where raw newlines are allowed: a quote, a backslash or a
// non-ASCII byte. As with specialBytes only the lowest mark is exact.
func quoteStop(x uint64) uint64 {
	q := x ^ (swarLo * '"')
	b := x ^ (swarLo * '\\')
	return ((q-swarLo)&^q | (b-swarLo)&^b | x) & swarHi
}

// newlineOrHigh marks the bytes of x that are a newline or non-ASCII. As
// with specialBytes only the lowest mark is exact.
func newlineOrHigh(x uint64) uint64 {
	n := x ^ (swarLo * '\n')
	return ((n-swarLo)&^n | x) & swarHi
}

// notDigits marks the bytes of x that are not 0-9 (x holds digits with
// '0' xored out); every mark is exact.
func notDigits(x uint64) uint64 {
	return ((x &^ swarHi) + swarLo*(0x80-10) | x) & swarHi
}

// swarDigits returns the number written by the k (1 to 8) leading decimal
// digits of x, most significant first (x holds digits with '0' xored out):
// shifted to the top, the digits are combined pairwise, then in fours,
// then in eights, three multiplications in all.
func swarDigits(x uint64, k int) uint64 {
	x <<= 64 - 8*uint(k) // the bytes below become leading zeros
	x = (x & 0x0f0f0f0f0f0f0f0f) * (10<<8 + 1) >> 8
	x = (x & 0x00ff00ff00ff00ff) * (100<<16 + 1) >> 16
	return (x & 0x0000ffff0000ffff) * (10000<<32 + 1) >> 32
}

// plainQuoted reports whether data[i:end] holds no backslash and no
// non-ASCII byte. It accumulates marks over whole words and tests once:
// the lowest mark of a word is exact and a spurious mark needs a true one
// below it, so the total is non-zero exactly when such a byte is there.
func plainQuoted(base unsafe.Pointer, i, end int) bool {
	var acc uint64
	for ; i+8 <= end; i += 8 {
		w := load64(base, i)
		b := w ^ swarLo*'\\'
		acc |= (b-swarLo)&^b | w
	}
	for ; i < end; i++ {
		c := byteAt(base, i)
		if c == '\\' {
			return false
		}
		acc |= uint64(c)
	}
	return acc&swarHi == 0
}
