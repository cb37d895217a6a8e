package exposition

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// Consecutive samples of a family repeat most of their series bytes: the
// name, and the leading label pairs (histogram buckets differ only in le).
// Bytes identical to a prefix of the previous series parsed into the same
// sample struct were validated then and tokenize the same way now, because
// every decision the label parser takes depends only on bytes it has
// consumed. So those labels are carried over (their offsets are relative
// to the series start, so they hold on the new line as they are), and
// parsing resumes where the previous parse stood after the last label fully
// inside the common prefix. On the real corpus about half of all label
// pairs are carried over this way.

// reusePrefix carries over from s's previous parse what the line at i
// shares with it, and returns where label parsing resumes. It declines
// (false) when the previous parse did not complete, had escapes, had no
// "name{" start, or shares less than that start.
func (p *Parser) reusePrefix(s *sample, i int) (int, bool) {
	if !s.reusable || s.labelEsc || s.labelsOpen == 0 {
		return 0, false
	}
	d := p.data
	prev := s.seriesStart
	n := min(s.seriesEnd-prev, len(d)-i)
	common := commonPrefix(d[i:i+n], d[prev:prev+n])
	if common < s.labelsOpen {
		return 0, false
	}
	// Spans are relative to the series start: the carried ones need no
	// rewriting.
	resume := s.labelsOpen
	k := 0
	for ; k < len(s.labels); k++ {
		e := s.labels[k].end
		if labelNeeds(e) > common {
			break
		}
		resume = int(e >> 1)
	}
	nameLen, open := s.nameEnd-s.nameStart, s.labelsOpen
	s.labels = s.labels[:k]
	resetLine(s, i)
	s.nameStart, s.nameEnd, s.sameName = i, i+nameLen, true
	s.labelsOpen = open
	return i + resume, true
}

// labelEnd records where parsing stood after a label pair: the offset
// where the next pair's parsing starts, and whether the byte there was
// already looked at (a '}' or a blank-separated next label), in which case
// it must be shared as well for the label to be carried over.
func labelEnd(resume int, peeked bool) uint32 {
	if peeked {
		return uint32(resume)<<1 | 1
	}
	return uint32(resume) << 1
}

// labelNeeds returns how many leading series bytes a labelEnd depends on.
func labelNeeds(e uint32) int { return int(e>>1 + e&1) }

// commonPrefix returns the length of the common prefix of a and b. It
// compares 32 bytes per step and finds the first differing byte of a step
// without branching; the last step overlaps the one before instead of
// falling back to shorter loops. Data-dependent loop exits are what costs
// here (the prefix length differs from line to line), so there are few.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	if n < 32 {
		i := 0
		for i+8 <= n {
			if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
				return i + bits.TrailingZeros64(x)>>3
			}
			i += 8
		}
		for i < n && a[i] == b[i] {
			i++
		}
		return i
	}
	pa, pb := unsafe.Pointer(unsafe.SliceData(a)), unsafe.Pointer(unsafe.SliceData(b))
	i := 0
	for {
		if i+32 > n {
			i = n - 32 // overlap: bytes before i are known equal
		}
		x0 := load64(pa, i) ^ load64(pb, i)
		x1 := load64(pa, i+8) ^ load64(pb, i+8)
		x2 := load64(pa, i+16) ^ load64(pb, i+16)
		x3 := load64(pa, i+24) ^ load64(pb, i+24)
		if x0|x1|x2|x3 != 0 {
			// Byte index of the first difference in each word, 8 when the
			// word is equal; chained so that an equal word defers to the next.
			t0, t1 := bits.TrailingZeros64(x0)>>3, bits.TrailingZeros64(x1)>>3
			t2, t3 := bits.TrailingZeros64(x2)>>3, bits.TrailingZeros64(x3)>>3
			return i + t0 + t0>>3*(t1+t1>>3*(t2+t2>>3*t3))
		}
		i += 32
		if i >= n {
			return n
		}
	}
}
