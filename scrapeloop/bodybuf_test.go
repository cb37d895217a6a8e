package scrapeloop

import (
	"bytes"
	"testing"
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
