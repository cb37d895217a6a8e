package ddclient

// Batch gathers encoded points, typically those of one scrape, before they are
// handed to a Client in one call. A Batch is not safe for concurrent use;
// reuse it after Submit.
type Batch struct {
	buf    []byte
	ends   []int   // end offset of each entry in buf
	tss    []int64 // timestamp of each entry, for the intake's age limit
	minTS  int64
	maxTS  int64
	invals int // points dropped because JSON cannot carry their value
}

// Add appends one point of s at tsSec (Unix seconds).
func (b *Batch) Add(s *Series, tsSec int64, v float64) {
	var ok bool
	b.buf, ok = appendPoint(b.buf, s, tsSec, v)
	if !ok {
		b.invals++
		return
	}
	b.ends = append(b.ends, len(b.buf))
	b.tss = append(b.tss, tsSec)
	if len(b.ends) == 1 || tsSec < b.minTS {
		b.minTS = tsSec
	}
	if tsSec > b.maxTS {
		b.maxTS = tsSec
	}
}

// Len returns the number of points in b.
func (b *Batch) Len() int { return len(b.ends) }

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.ends = b.ends[:0]
	b.tss = b.tss[:0]
	b.minTS, b.maxTS, b.invals = 0, 0, 0
}

// entry returns the i-th encoded entry.
func (b *Batch) entry(i int) []byte {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.buf[start:b.ends[i]]
}
