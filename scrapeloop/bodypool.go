package scrapeloop

import (
	"io"
	"sync"
)

// bodyPool keeps response body buffers in levels by capacity, in the
// manner of VictoriaMetrics' leveledbytebufferpool: a loop takes a buffer
// sized from its target's previous body and gives it back once the scrape is
// processed, so the node holds about as many buffers as scrapes run at once,
// not one per target. Levels go in steps of 2^k and 1.5·2^k, so a buffer is
// at most a third larger than asked for; each level keeps a few buffers,
// which bounds what the pool holds whatever the collector's pace (a
// sync.Pool is emptied only by garbage collections, which a steady state
// that allocates nothing seldom runs).
type bodyPool struct {
	// maxIdle bounds the bytes of the buffers kept (0: no bound beyond
	// keepPerLevel): past it a buffer given back is left to the collector.
	maxIdle int64
	// maxChunks bounds the chunks kept (0: none kept).
	maxChunks int

	mu     sync.Mutex
	levels [bodyLevels][]*[]byte
	idle   int64 // capacity of the buffers kept
	// copyMu lets one body at a time be copied out of its chunks (readBody).
	copyMu sync.Mutex
	chunks []*[chunkSize]byte
}

const (
	minBodyShift = 12 // the smallest buffer: 4 KiB
	bodyLevels   = 2 * 20
	keepPerLevel = 4
)

// levelSize is the capacity of level l's buffers.
func levelSize(l int) int {
	size := 1 << (minBodyShift + l/2)
	if l%2 == 1 {
		size += size / 2
	}
	return size
}

// bodyLevel is the smallest level whose buffers hold n bytes.
func bodyLevel(n int) int {
	for l := 0; l < bodyLevels; l++ {
		if levelSize(l) >= n {
			return l
		}
	}
	return bodyLevels - 1
}

// get returns an empty buffer with room for at least size bytes. Past
// exactSize a new buffer is sized in whole chunks rather than to its level
// (up to half as much again: memory the bound on bytes in flight does not
// see), and such a buffer, kept in the level below, serves the sizes it
// holds.
func (bp *bodyPool) get(size int) *[]byte {
	l := bodyLevel(size)
	bp.mu.Lock()
	for _, k := range [2]int{l, l - 1} {
		if k < 0 {
			continue
		}
		if n := len(bp.levels[k]); n > 0 && cap(*bp.levels[k][n-1]) >= size {
			b := bp.levels[k][n-1]
			bp.levels[k] = bp.levels[k][:n-1]
			bp.idle -= int64(cap(*b))
			bp.mu.Unlock()
			return b
		}
	}
	bp.mu.Unlock()
	c := max(size, levelSize(l))
	if size > exactSize {
		c = (size + chunkSize - 1) / chunkSize * chunkSize
	}
	b := make([]byte, 0, c)
	return &b
}

// exactSize is the size past which a new buffer is sized in whole chunks.
const exactSize = 8 << 20

// put gives b back, to the largest level whose size it holds.
func (bp *bodyPool) put(b *[]byte) {
	c := cap(*b)
	if c < levelSize(0) {
		return
	}
	l := bodyLevels - 1
	for l > 0 && levelSize(l) > c {
		l--
	}
	*b = (*b)[:0]
	bp.mu.Lock()
	if len(bp.levels[l]) < keepPerLevel && (bp.maxIdle == 0 || bp.idle+int64(c) <= bp.maxIdle) {
		bp.levels[l] = append(bp.levels[l], b)
		bp.idle += int64(c)
	}
	bp.mu.Unlock()
}

// chunkSize is the unit in which a body larger than its buffer is read:
// chunks are pooled, so a body that grows past expectations (a target's
// first scrape, or one over its limit) leaves no trail of ever larger
// garbage buffers for the collector to catch up with. Chunks hold bytes in
// flight, so no more than maxChunks (the bound over chunkSize) are in use at
// once, and the pool keeps up to that many: a body over its limit read again
// at every scrape (a gzip bomb) then reuses them instead of making 64 MiB of
// garbage each time, which, with the collector's pacing (the next collection
// at twice the live heap), would double the agent's memory.
const chunkSize = 1 << 20

func (bp *bodyPool) getChunk() *[chunkSize]byte {
	bp.mu.Lock()
	if n := len(bp.chunks); n > 0 {
		c := bp.chunks[n-1]
		bp.chunks = bp.chunks[:n-1]
		bp.mu.Unlock()
		return c
	}
	bp.mu.Unlock()
	return new([chunkSize]byte)
}

func (bp *bodyPool) putChunk(c *[chunkSize]byte) {
	bp.mu.Lock()
	if len(bp.chunks) < bp.maxChunks {
		bp.chunks = append(bp.chunks, c)
	}
	bp.mu.Unlock()
}

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
			bp.putChunk(c)
		}
	}()
	last := 0
	for total <= limit {
		c := bp.getChunk()
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
	// For the copy the body is in memory twice, and only its chunks count
	// in the bound on bytes in flight: one body is copied at a time, so
	// this is at most one body limit more, however many outgrow their
	// buffers at once.
	bp.copyMu.Lock()
	defer bp.copyMu.Unlock()
	nb := bp.get(int(total))
	out := append((*nb)[:0], *buf...)
	for i, c := range held {
		if i == len(held)-1 {
			out = append(out, c[:last]...)
		} else {
			out = append(out, c[:]...)
		}
		bp.putChunk(c)
	}
	held = nil
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
