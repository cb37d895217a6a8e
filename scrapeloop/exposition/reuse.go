package exposition

import (
	"encoding/binary"
	"math/bits"
)

// Consecutive samples of a family repeat most of their series bytes: the
// name, and the leading label pairs (histogram buckets differ only in le).
// Bytes identical to a prefix of the previous series parsed into the same
// sample struct were validated then and tokenize the same way now, because
// every decision the label parser takes depends only on bytes it has
// consumed. So those labels are carried over, moved to the new line, and
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
	delta := int32(i - prev)
	resume := s.labelsOpen
	k := 0
	for ; k < len(s.labels); k++ {
		l := &s.labels[k]
		if labelNeeds(l.end) > common {
			break
		}
		l.ns, l.ne, l.vs, l.ve = l.ns+delta, l.ne+delta, l.vs+delta, l.ve+delta
		resume = int(l.end >> 1)
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

// commonPrefix returns the length of the common prefix of a and b,
// comparing 32 bytes per step, then eight, then one.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	// Reslicing as it goes lets the compiler drop the bounds checks.
	for len(a) >= 32 {
		b = b[:len(a)]
		d := binary.LittleEndian.Uint64(a) ^ binary.LittleEndian.Uint64(b)
		d |= binary.LittleEndian.Uint64(a[8:]) ^ binary.LittleEndian.Uint64(b[8:])
		d |= binary.LittleEndian.Uint64(a[16:]) ^ binary.LittleEndian.Uint64(b[16:])
		d |= binary.LittleEndian.Uint64(a[24:]) ^ binary.LittleEndian.Uint64(b[24:])
		if d != 0 {
			break
		}
		a, b = a[32:], b[32:]
	}
	for len(a) >= 8 {
		b = b[:len(a)]
		if x := binary.LittleEndian.Uint64(a) ^ binary.LittleEndian.Uint64(b); x != 0 {
			return n - len(a) + bits.TrailingZeros64(x)>>3
		}
		a, b = a[8:], b[8:]
	}
	b = b[:len(a)]
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	return n - len(a) + i
}
