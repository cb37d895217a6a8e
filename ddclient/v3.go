// Datadog's v3 columnar series payload (agent-payload
// proto/metrics/intake_v3.proto): what the Datadog Agent sends to
// /api/intake/metrics/v3/series since 7.81.

package ddclient

import (
	"math"

	"github.com/cespare/xxhash/v2"

	"google.golang.org/protobuf/encoding/protowire"
)

// v3 series type bits: metricType | valueType | metricFlags.
const (
	v3Count = 1
	v3Rate  = 2
	v3Gauge = 3

	v3ValueZero    = 0x00
	v3ValueSint64  = 0x10
	v3ValueFloat64 = 0x30
)

// v3Writer builds one v3 payload from series added one by one. Names, tags,
// tag sets and resources are dictionaries (base-1 indexes; 0 is empty), so a
// name or tag repeated across series is written once: the reason the v3
// payload is smaller than v2's JSON, which repeats every tag of every series.
// The index columns are delta encoded, as the format requires. A writer is
// reused after reset without allocating once its buffers have grown.
type v3Writer struct {
	names, tags, resStr dict
	// tagsets finds a tag set by the hash of its tag indexes: the first
	// set (index) of that hash; tagsetNext chains the others (a collision
	// is told apart by comparing the sets).
	tagsets          map[uint64]int32
	tagsetNext       []int32
	tagsetCol        []int64          // dictTagsets: length, then delta-encoded tag indexes
	tagsetOff        []int32          // where each set starts in tagsetCol
	resources        map[string]int64 // host → resource index
	resLen           []int64
	resType, resName []int64 // delta encoded within each set
	nres             int64

	types, numPoints                                         []uint64
	intervals                                                []int64 // delta encoded, as the Agent writes them
	nameRefs, tagsetRefs, resourceRefs                       []int64 // delta encoded
	lastName, lastTagset, lastResource, lastTS, lastInterval int64
	timestamps                                               []int64 // delta encoded over the whole column
	sint64s                                                  []int64
	float64s                                                 []float64

	key []byte // scratch: a tag set's key
	idx []int64
}

// dict is a dictionary of strings: varint length + bytes each, in order.
type dict struct {
	index map[string]int64
	b     []byte
}

func (d *dict) ref(s string) int64 {
	if s == "" {
		return 0
	}
	if i, ok := d.index[s]; ok {
		return i
	}
	if d.index == nil {
		d.index = map[string]int64{}
	}
	d.b = protowire.AppendVarint(d.b, uint64(len(s)))
	d.b = append(d.b, s...)
	i := int64(len(d.index) + 1)
	d.index[s] = i
	return i
}

func (d *dict) reset() {
	clear(d.index)
	d.b = d.b[:0]
}

func (w *v3Writer) reset() {
	w.names.reset()
	w.tags.reset()
	w.resStr.reset()
	clear(w.tagsets)
	clear(w.resources)
	w.tagsetCol, w.tagsetOff, w.tagsetNext, w.resLen, w.resType, w.resName = w.tagsetCol[:0], w.tagsetOff[:0], w.tagsetNext[:0], w.resLen[:0], w.resType[:0], w.resName[:0]
	w.nres = 0
	w.types, w.intervals, w.numPoints = w.types[:0], w.intervals[:0], w.numPoints[:0]
	w.nameRefs, w.tagsetRefs, w.resourceRefs = w.nameRefs[:0], w.tagsetRefs[:0], w.resourceRefs[:0]
	w.lastName, w.lastTagset, w.lastResource, w.lastTS, w.lastInterval = 0, 0, 0, 0, 0
	w.timestamps, w.sint64s, w.float64s = w.timestamps[:0], w.sint64s[:0], w.float64s[:0]
}

// tagset returns the index of the tag set of tags (in the caller's order:
// the same tags in another order are another set).
func (w *v3Writer) tagset(tags []string) int64 {
	if len(tags) == 0 {
		return 0
	}
	w.idx = w.idx[:0]
	w.key = w.key[:0]
	for _, t := range tags {
		i := w.tags.ref(t)
		w.idx = append(w.idx, i)
		w.key = protowire.AppendVarint(w.key, uint64(i))
	}
	h := xxhash.Sum64(w.key)
	first, seen := w.tagsets[h]
	for i := first; seen && i > 0; i = w.tagsetNext[i-1] {
		if w.sameSet(w.tagsetOff[i-1]) {
			return int64(i)
		}
	}
	if w.tagsets == nil {
		w.tagsets = map[uint64]int32{}
	}
	w.tagsetNext = append(w.tagsetNext, first) // 0 ends the chain
	w.tagsets[h] = int32(len(w.tagsetOff) + 1)
	w.tagsetOff = append(w.tagsetOff, int32(len(w.tagsetCol)))
	w.tagsetCol = append(w.tagsetCol, int64(len(w.idx)))
	var prev int64
	for _, i := range w.idx {
		w.tagsetCol = append(w.tagsetCol, i-prev)
		prev = i
	}
	return int64(len(w.tagsetOff))
}

// sameSet reports whether the set at off in tagsetCol is w.idx.
func (w *v3Writer) sameSet(off int32) bool {
	c := w.tagsetCol[off:]
	if c[0] != int64(len(w.idx)) {
		return false
	}
	var prev int64
	for k, i := range w.idx {
		if c[1+k] != i-prev {
			return false
		}
		prev = i
	}
	return true
}

// resource returns the index of the resource list [host] (0: none).
func (w *v3Writer) resource(host string) int64 {
	if host == "" {
		return 0
	}
	if i, ok := w.resources[host]; ok {
		return i
	}
	if w.resources == nil {
		w.resources = map[string]int64{}
	}
	typ, name := w.resStr.ref("host"), w.resStr.ref(host)
	w.resLen = append(w.resLen, 1)
	// Delta encoded within each set, from 0 (as agent-payload's writer.rs
	// and the Agent write it): a set of one is its indexes.
	w.resType = append(w.resType, typ)
	w.resName = append(w.resName, name)
	w.nres++
	w.resources[host] = w.nres
	return w.nres
}

// add adds a series of d with points (timestamps in Unix seconds). Its
// values are written as integers when every one is one (most counts), as
// zero when all are 0, else as float64.
func (w *v3Writer) add(d *Desc, ts []int64, vals []float64) {
	vt := uint64(v3ValueZero)
	for _, v := range vals {
		switch {
		case v == 0 && !math.Signbit(v):
		case v == math.Trunc(v) && math.Abs(v) < 1<<53 && v != 0: // -0 is no integer
			vt = max(vt, v3ValueSint64)
		default:
			vt = v3ValueFloat64
		}
	}
	typ := uint64(v3Gauge)
	switch d.Type {
	case Count:
		typ = v3Count
	case Rate:
		typ = v3Rate
	}
	w.types = append(w.types, typ|vt)
	name := w.names.ref(d.Metric)
	w.nameRefs = append(w.nameRefs, name-w.lastName)
	w.lastName = name
	set := w.tagset(d.Tags)
	w.tagsetRefs = append(w.tagsetRefs, set-w.lastTagset)
	w.lastTagset = set
	res := w.resource(d.Host)
	w.resourceRefs = append(w.resourceRefs, res-w.lastResource)
	w.lastResource = res
	iv := max(d.Interval, 0)
	w.intervals = append(w.intervals, iv-w.lastInterval)
	w.lastInterval = iv
	w.numPoints = append(w.numPoints, uint64(len(ts)))
	for i, t := range ts {
		w.timestamps = append(w.timestamps, t-w.lastTS)
		w.lastTS = t
		switch vt {
		case v3ValueSint64:
			w.sint64s = append(w.sint64s, int64(vals[i]))
		case v3ValueFloat64:
			w.float64s = append(w.float64s, vals[i])
		}
	}
}

// Field numbers of intake_v3.proto.
const (
	v3PayloadMetricData = 3

	v3DictNameStr       = 1
	v3DictTagStr        = 2
	v3DictTagsets       = 3
	v3DictResourceStr   = 4
	v3DictResourceLen   = 5
	v3DictResourceType  = 6
	v3DictResourceName  = 7
	v3Types             = 10
	v3NameRefs          = 11
	v3TagsetRefs        = 12
	v3ResourcesRefs     = 13
	v3Intervals         = 14
	v3NumPoints         = 15
	v3Timestamps        = 16
	v3SourceTypeRefs    = 23
	v3OriginInfoRefs    = 24
	v3ValsSint64        = 17
	v3ValsFloat64       = 19
	v3MaxVarintLen      = 10
	v3PackedFixed64Size = 8
)

// appendPayload appends the payload (a Payload message holding the
// MetricData) to b: the MetricData is written first at the end of b, then
// moved behind its field header, so no second buffer is needed.
func (w *v3Writer) appendPayload(b []byte) []byte {
	start := len(b)
	b = w.appendMetricData(b)
	n := len(b) - start
	var hdr [1 + v3MaxVarintLen]byte
	h := protowire.AppendTag(hdr[:0], v3PayloadMetricData, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(n))
	b = append(b, h...) // grow by the header's size
	copy(b[start+len(h):], b[start:start+n])
	copy(b[start:], h)
	return b
}

func (w *v3Writer) appendMetricData(b []byte) []byte {
	b = appendBytesField(b, v3DictNameStr, w.names.b)
	b = appendBytesField(b, v3DictTagStr, w.tags.b)
	b = appendPackedSint(b, v3DictTagsets, w.tagsetCol)
	b = appendBytesField(b, v3DictResourceStr, w.resStr.b)
	b = appendPackedInt(b, v3DictResourceLen, w.resLen)
	b = appendPackedSint(b, v3DictResourceType, w.resType)
	b = appendPackedSint(b, v3DictResourceName, w.resName)
	b = appendPackedUint(b, v3Types, w.types)
	b = appendPackedSint(b, v3NameRefs, w.nameRefs)
	b = appendPackedSint(b, v3TagsetRefs, w.tagsetRefs)
	b = appendPackedSint(b, v3ResourcesRefs, w.resourceRefs)
	b = appendPackedSint(b, v3Intervals, w.intervals)
	b = appendPackedUint(b, v3NumPoints, w.numPoints)
	// No source type and no origin, but the columns, one 0 per series, as
	// the Agent writes them (its reader requires them).
	b = appendZeros(b, v3SourceTypeRefs, len(w.types))
	b = appendZeros(b, v3OriginInfoRefs, len(w.types))
	b = appendPackedSint(b, v3Timestamps, w.timestamps)
	b = appendPackedSint(b, v3ValsSint64, w.sint64s)
	if len(w.float64s) > 0 {
		b = protowire.AppendTag(b, v3ValsFloat64, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(len(w.float64s)*v3PackedFixed64Size))
		for _, v := range w.float64s {
			b = protowire.AppendFixed64(b, math.Float64bits(v))
		}
	}
	return b
}

// appendZeros writes a packed varint field of n zeros.
func appendZeros(b []byte, num protowire.Number, n int) []byte {
	if n == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for range n {
		b = append(b, 0)
	}
	return b
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendPacked writes a packed repeated varint field: its length first,
// computed in a first pass, so nothing is buffered.
func appendPacked[T int64 | uint64](b []byte, num protowire.Number, vs []T, enc func(T) uint64) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += protowire.SizeVarint(enc(v))
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, v := range vs {
		b = protowire.AppendVarint(b, enc(v))
	}
	return b
}

func appendPackedSint(b []byte, num protowire.Number, vs []int64) []byte {
	return appendPacked(b, num, vs, protowire.EncodeZigZag)
}

func appendPackedInt(b []byte, num protowire.Number, vs []int64) []byte {
	return appendPacked(b, num, vs, func(v int64) uint64 { return uint64(v) })
}

func appendPackedUint(b []byte, num protowire.Number, vs []uint64) []byte {
	return appendPacked(b, num, vs, func(v uint64) uint64 { return v })
}
