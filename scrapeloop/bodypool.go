package scrapeloop

import (
	"io"
	"math/bits"
	"sync"
)

// bodyPool keeps response body buffers in levels by capacity (powers of
// two), in the manner of VictoriaMetrics' leveledbytebufferpool: a loop
// takes a buffer sized from its target's previous body and gives it back
// once the scrape is processed, so the node holds about as many buffers as
// scrapes run at once, not one per target.
type bodyPool struct {
	levels [bodyLevels]sync.Pool
}

const (
	minBodyLevel = 12 // 4 KiB
	bodyLevels   = 20 // up to 2 GiB
)

func bodyLevel(n int) int {
	if n <= 1<<minBodyLevel {
		return 0
	}
	l := bits.Len(uint(n-1)) - minBodyLevel
	return min(l, bodyLevels-1)
}

// get returns an empty buffer with room for at least size bytes.
func (bp *bodyPool) get(size int) *[]byte {
	l := bodyLevel(size)
	if v := bp.levels[l].Get(); v != nil {
		return v.(*[]byte)
	}
	b := make([]byte, 0, 1<<(l+minBodyLevel))
	return &b
}

// put gives b back.
func (bp *bodyPool) put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minBodyLevel {
		return
	}
	// The level whose every buffer is at least c: get hands out buffers of
	// its level's full size.
	l := bits.Len(uint(c)) - 1 - minBodyLevel
	*b = (*b)[:0]
	bp.levels[min(l, bodyLevels-1)].Put(b)
}

// chunkSize is the unit in which a body larger than its buffer is read:
// chunks are pooled, so a body that grows past expectations (a target's
// first scrape, or one over its limit) leaves no trail of ever larger
// garbage buffers for the collector to catch up with.
const chunkSize = 1 << 20

var chunks = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// readBody reads r into *buf and stops past limit bytes. It returns the bytes
// read (up to limit+1). A body that fits the buffer is read in place; a
// longer one is read in pooled chunks and copied once into a buffer of its
// size from bp.
func (bp *bodyPool) readBody(buf *[]byte, r io.Reader, limit int64) (int64, error) {
	b := (*buf)[:cap(*buf)]
	n, err := readFull(b, r, limit+1)
	*buf = b[:n]
	if err != nil || n < len(b) || int64(n) > limit {
		return int64(n), eofOK(err)
	}
	total := int64(n)
	var held []*[chunkSize]byte
	defer func() {
		for _, c := range held {
			chunks.Put(c)
		}
	}()
	last := 0
	for total <= limit {
		c := chunks.Get().(*[chunkSize]byte)
		held = append(held, c)
		m, err := readFull(c[:], r, limit+1-total)
		last = m
		total += int64(m)
		if err != nil {
			if err = eofOK(err); err != nil {
				return total, err
			}
			break
		}
		if m < chunkSize {
			break
		}
	}
	if total > limit {
		return total, nil
	}
	nb := bp.get(int(total))
	out := append((*nb)[:0], *buf...)
	for i, c := range held {
		if i == len(held)-1 {
			out = append(out, c[:last]...)
		} else {
			out = append(out, c[:]...)
		}
	}
	// The caller keeps buf (now the body) and gives it back later: the
	// buffer put back here is the old one, in nb.
	*nb, *buf = *buf, out
	bp.put(nb)
	return total, nil
}

// readFull reads into b until it is full, r ends, or max bytes were read.
func readFull(b []byte, r io.Reader, max int64) (int, error) {
	if int64(len(b)) > max {
		b = b[:max]
	}
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func eofOK(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}
