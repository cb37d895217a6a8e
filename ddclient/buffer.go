package ddclient

import "time"

// payload framing: {"series":[ e1,e2,... ]}
const (
	payloadOpen  = `{"series":[`
	payloadClose = `]}`
)

// buffer is one raw payload being filled: the opening, entries joined by
// commas, and the end offset of each entry so an oversized payload can be
// split. A buffer belongs to one appender at a time.
type buffer struct {
	b     []byte
	ends  []int32
	minTS int64 // oldest point, Unix seconds
	// seal is the size at which the buffer is handed on; limit the size no
	// payload may pass (the intake's uncompressed limit).
	seal, limit int
	opened      time.Time
}

func (bf *buffer) reset(now time.Time) {
	bf.b = append(bf.b[:0], payloadOpen...)
	bf.ends = bf.ends[:0]
	bf.minTS = 0
	bf.opened = now
}

func (bf *buffer) points() int { return len(bf.ends) }

// entry returns the i-th encoded entry.
func (bf *buffer) entry(i int) []byte {
	start := len(payloadOpen)
	if i > 0 {
		start = int(bf.ends[i-1]) + 1 // after the comma
	}
	return bf.b[start:bf.ends[i]]
}

// body returns the payload of entries [from, to) in dst: the whole buffer
// without copying when it is all of it.
func (bf *buffer) body(dst []byte, from, to int) []byte {
	if from == 0 && to == len(bf.ends) {
		bf.b = append(bf.b[:bf.ends[to-1]], payloadClose...)
		return bf.b
	}
	dst = append(dst[:0], payloadOpen...)
	start := len(payloadOpen)
	if from > 0 {
		start = int(bf.ends[from-1]) + 1
	}
	dst = append(dst, bf.b[start:bf.ends[to-1]]...)
	return append(dst, payloadClose...)
}
