package scrapeloop

import (
	"bytes"
	"testing"
	"time"
)

// TestReadBodyKeepsBufferOwned: a body larger than its buffer is read into a
// new, larger one. The buffer the loop then holds (and gives back after the
// parse) must not be in the pool meanwhile: another loop would get it and
// read its body into the one being parsed.
func TestReadBodyKeepsBufferOwned(t *testing.T) {
	var bp bodyPool
	for _, size := range []int{5000, 3<<20 + 17} { // past the buffer; past a chunk
		buf := bp.get(0)
		body := bytes.Repeat([]byte("abcdefg\n"), size/8+1)[:size]
		n, err := bp.readBody(buf, bytes.NewReader(body), 1<<30)
		if err != nil || n != int64(size) || !bytes.Equal(*buf, body) {
			t.Fatalf("size %d: read %d, %v, equal %v", size, n, err, bytes.Equal(*buf, body))
		}
		for _, want := range []int{0, size} {
			for range 4 {
				if other := bp.get(want); other == buf {
					t.Fatalf("size %d: the pool handed out the buffer being used (get(%d))", size, want)
				}
			}
		}
		bp.put(buf)
	}
}

// TestBodyPoolDropsIdle: the pool keeps what its scrapes take within a
// window; a buffer or chunk left idle for a whole window goes, whatever the
// bounds would have kept.
func TestBodyPoolDropsIdle(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	bp := bodyPool{maxChunks: 8, now: func() time.Time { return now }}
	const window = 30 * time.Second
	bp.setWindow(window)
	const size = 3 << 20
	// A burst: three scrapes at once, one of them read in chunks.
	bufs := []*[]byte{bp.get(size), bp.get(size), bp.get(size)}
	chunks := []*[chunkSize]byte{bp.getChunk(), bp.getChunk()}
	for _, b := range bufs {
		bp.put(b)
	}
	for _, c := range chunks {
		bp.putChunk(c)
	}
	held := func() (int, int) {
		_, n, c := poolHeld(&bp)
		return n, c
	}
	if n, c := held(); n != 3 || c != 2 {
		t.Fatalf("after the burst the pool keeps %d buffers and %d chunks, want 3 and 2", n, c)
	}
	// Then one scrape at a time, for three windows: the one buffer it takes
	// stays, the rest go once idle for a whole window.
	for range 3 * 6 {
		now = now.Add(window / 6)
		bp.put(bp.get(size))
	}
	if n, c := held(); n != 1 || c != 0 {
		t.Errorf("after two idle windows the pool keeps %d buffers and %d chunks, want 1 and 0", n, c)
	}
	if idle, _, _ := poolHeld(&bp); bp.idle != idle {
		t.Errorf("the pool counts %d idle bytes, holds %d", bp.idle, idle)
	}
	// No targets left: nothing is kept.
	bp.putChunk(bp.getChunk())
	bp.setWindow(0)
	if n, c := held(); n != 0 || c != 0 || bp.idle != 0 {
		t.Errorf("with no scrapes the pool keeps %d buffers (%d bytes) and %d chunks, want none", n, bp.idle, c)
	}
}

// TestBodyPoolServesLarger: a size whose level is empty takes a kept buffer
// up to two levels larger (twice its level's size) rather than a new one,
// and no larger.
func TestBodyPoolServesLarger(t *testing.T) {
	var bp bodyPool
	big := bp.get(2 << 20)
	bp.put(big)
	if b := bp.get(1<<20 + 1); b != big {
		t.Errorf("get(1 MiB+1) made a new buffer of %d bytes with one of 2 MiB idle", cap(*b))
	} else {
		bp.put(b)
	}
	if b := bp.get(768 << 10); b == big {
		t.Error("get(768 KiB) took the idle buffer of 2 MiB, three levels up")
	}
}
