package ddclient

import (
	"sync/atomic"
	"time"
)

// payload framing: {"series":[ e1,e2,... ]}
const (
	payloadOpen  = `{"series":[`
	payloadClose = `]}`
)

// buffer is one raw payload being filled. For v2 it is the JSON: the
// opening, entries joined by commas, and the end offset of each entry so an
// oversized payload can be split. For v3 it is w, the columns and
// dictionaries of the payload. A buffer belongs to one appender at a time.
type buffer struct {
	b    []byte
	ends []int32
	w    *v3Writer // nil for v2
	// gen is new at each reset: appenders keep the dictionary indexes of
	// their names and target tags for one gen of one buffer.
	gen   uint64
	minTS int64 // oldest point, Unix seconds
	// seal is the size at which the buffer is handed on; limit the size no
	// payload may pass (the intake's uncompressed limit).
	seal, limit int
	opened      time.Time
}

// gens numbers buffer generations across all buffers.
var gens atomic.Uint64

func (bf *buffer) reset(now time.Time) {
	bf.gen = gens.Add(1)
	if bf.w != nil {
		bf.w.reset()
	}
	bf.b = append(bf.b[:0], payloadOpen...)
	bf.ends = bf.ends[:0]
	bf.minTS = 0
	bf.opened = now
}

func (bf *buffer) points() int {
	if bf.w != nil {
		return bf.w.npoints
	}
	return len(bf.ends)
}

// size is the payload's uncompressed size (estimated for v3).
func (bf *buffer) size() int {
	if bf.w != nil {
		return bf.w.size()
	}
	return len(bf.b)
}

// MaxPointsPerPayload is how many points a payload holds at most, as the
// Datadog Agent's serializer_max_series_points_per_payload.
const MaxPointsPerPayload = 10_000

// sealed reports whether bf is full: past its size or its points.
func (bf *buffer) sealed() bool {
	return bf.size() >= bf.seal || bf.points() >= MaxPointsPerPayload
}

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
