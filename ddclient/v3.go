// Datadog's v3 columnar series payload (agent-payload
// proto/metrics/intake_v3.proto): what the Datadog Agent sends to
// /api/intake/metrics/v3/series since 7.81.

package ddclient

import (
	"hash/maphash"
	"math"
	"unsafe"

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
// reused after reset without allocating once its buffers have grown: the
// dictionaries are open-addressing tables over the bytes they write, not
// maps of strings.
type v3Writer struct {
	names, tags, resStr dict
	// tagsets finds a tag set by the hash of its tag indexes; tagsetCol is
	// the dictTagsets column (each set: its length, then its tag indexes
	// delta encoded), tagsetOff where each set starts in it.
	tagsets   table
	tagsetCol []int64
	tagsetOff []int32
	// hosts are the host resources, hosts[i] being resource i+1; each is
	// one set of one resource ("host", name).
	hosts            []string
	resLen           []int64
	resType, resName []int64 // delta encoded within each set

	types, numPoints                                 []uint64
	nameRefs, tagsetRefs, resourceRefs, intervals    []int64 // delta encoded
	lastName, lastTagset, lastResource, lastInterval int64
	lastTS                                           int64
	timestamps                                       []int64 // delta encoded over the whole column
	sint64s                                          []int64
	float64s                                         []float64

	// size is what the payload would take, within a few bytes per series:
	// what sealing and the memory bound count.
	size    int
	npoints int

	idx []int64 // scratch: add's tag indexes
}

// hashSeed seeds the dictionaries' hash: maphash is the runtime's (AES
// where the CPU has it, several times xxhash's speed on tags), and a seed
// no target knows keeps a target from choosing colliding tags.
var hashSeed = maphash.MakeSeed()

// table is an open-addressing hash table of base-1 entry indexes, 0 being an
// empty slot; the entries and their hashes live with its owner.
type table struct {
	slots []uint32
	hash  []uint32 // hash[i-1] is entry i's
}

// Lookups probe from slot h&mask() on, one slot further at a time, until
// the entry or an empty slot; (their loops are in dict.ref and
// v3Writer.tagset, not behind a callback, so that nothing escapes).
func (t *table) mask() int { return len(t.slots) - 1 }

// insert makes the entry of hash h the next index at slot, growing the
// table past half full (entries then move to their new slots).
func (t *table) insert(slot int, h uint32) uint32 {
	t.hash = append(t.hash, h)
	i := uint32(len(t.hash))
	t.slots[slot] = i
	if 2*len(t.hash) > len(t.slots) {
		t.slots = make([]uint32, 2*len(t.slots))
		mask := len(t.slots) - 1
		for e, h := range t.hash {
			s := int(h) & mask
			for t.slots[s] != 0 {
				s = (s + 1) & mask
			}
			t.slots[s] = uint32(e + 1)
		}
	}
	return i
}

func (t *table) reset() {
	if t.slots == nil {
		t.slots = make([]uint32, 64)
	}
	clear(t.slots)
	t.hash = t.hash[:0]
}

// dict is a dictionary of strings, written as the payload wants it: varint
// length + bytes each, in index order.
type dict struct {
	t          table
	b          []byte
	start, end []uint32 // where entry i+1's bytes start and end in b
}

func (d *dict) entry(i uint32) []byte { return d.b[d.start[i-1]:d.end[i-1]] }

// ref returns the index of s, added if new. The dictionary keeps a copy of
// the bytes, never s.
func (d *dict) ref(s []byte) int64 {
	if len(s) == 0 {
		return 0
	}
	if d.t.slots == nil {
		d.t.reset()
	}
	h := uint32(maphash.Bytes(hashSeed, s))
	mask := d.t.mask()
	slot := int(h) & mask
	for ; d.t.slots[slot] != 0; slot = (slot + 1) & mask {
		if i := d.t.slots[slot]; d.t.hash[i-1] == h && string(d.entry(i)) == string(s) {
			return int64(i)
		}
	}
	d.b = protowire.AppendVarint(d.b, uint64(len(s)))
	d.start = append(d.start, uint32(len(d.b)))
	d.b = append(d.b, s...)
	d.end = append(d.end, uint32(len(d.b)))
	return int64(d.t.insert(slot, h))
}

// bytesOf is s's bytes, not copied: what dictionaries look up and copy.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (d *dict) reset() {
	d.t.reset()
	d.b = d.b[:0]
	d.start, d.end = d.start[:0], d.end[:0]
}

func (w *v3Writer) reset() {
	w.names.reset()
	w.tags.reset()
	w.resStr.reset()
	w.tagsets.reset()
	clear(w.hosts)
	w.tagsetCol, w.tagsetOff, w.hosts, w.resLen, w.resType, w.resName = w.tagsetCol[:0], w.tagsetOff[:0], w.hosts[:0], w.resLen[:0], w.resType[:0], w.resName[:0]
	w.types, w.intervals, w.numPoints = w.types[:0], w.intervals[:0], w.numPoints[:0]
	w.nameRefs, w.tagsetRefs, w.resourceRefs = w.nameRefs[:0], w.tagsetRefs[:0], w.resourceRefs[:0]
	w.lastName, w.lastTagset, w.lastResource, w.lastTS, w.lastInterval = 0, 0, 0, 0, 0
	w.timestamps, w.sint64s, w.float64s = w.timestamps[:0], w.sint64s[:0], w.float64s[:0]
	w.size, w.npoints = 0, 0
}

// name and tag return the index of a metric name and of a tag.
func (w *v3Writer) name(s []byte) int64 { return w.dictRef(&w.names, s) }
func (w *v3Writer) tag(s []byte) int64  { return w.dictRef(&w.tags, s) }

func (w *v3Writer) dictRef(d *dict, s []byte) int64 {
	n := len(d.start)
	i := d.ref(s)
	if len(d.start) > n {
		w.size += len(s) + 2
	}
	return i
}

// tagset returns the index of the set of tag indexes idx, in their order
// (the same tags in another order make another set, which no series of
// the appender's gives: its tags come in one order).
func (w *v3Writer) tagset(idx []int64) int64 {
	if len(idx) == 0 {
		return 0
	}
	if w.tagsets.slots == nil {
		w.tagsets.reset()
	}
	h := uint32(maphash.Bytes(hashSeed, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(idx))), 8*len(idx))))
	t := &w.tagsets
	mask := t.mask()
	slot := int(h) & mask
	for ; t.slots[slot] != 0; slot = (slot + 1) & mask {
		if i := t.slots[slot]; t.hash[i-1] == h && w.sameSet(w.tagsetOff[i-1], idx) {
			return int64(i)
		}
	}
	w.tagsetOff = append(w.tagsetOff, int32(len(w.tagsetCol)))
	w.tagsetCol = append(w.tagsetCol, int64(len(idx)))
	var prev int64
	for _, i := range idx {
		w.tagsetCol = append(w.tagsetCol, i-prev)
		w.size += protowire.SizeVarint(protowire.EncodeZigZag(i - prev))
		prev = i
	}
	w.size++
	return int64(w.tagsets.insert(slot, h))
}

// sameSet reports whether the set at off in tagsetCol is idx.
func (w *v3Writer) sameSet(off int32, idx []int64) bool {
	c := w.tagsetCol[off:]
	if c[0] != int64(len(idx)) {
		return false
	}
	var prev int64
	for k, i := range idx {
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
	for i, h := range w.hosts {
		if h == host {
			return int64(i + 1)
		}
	}
	typ, name := w.resStr.ref(bytesOf("host")), w.resStr.ref(bytesOf(host))
	w.hosts = append(w.hosts, host)
	w.resLen = append(w.resLen, 1)
	// Delta encoded within each set, from 0 (as agent-payload's writer.rs
	// and the Agent write it): a set of one is its indexes.
	w.resType = append(w.resType, typ)
	w.resName = append(w.resName, name)
	w.size += len(host) + 8
	return int64(len(w.hosts))
}

// series starts a series: its type (MetricType), name, tag set and
// resource indexes, interval (seconds, counts) and number of points, which
// point then adds. vt is the value type of all its points (v3ValueType).
func (w *v3Writer) series(typ MetricType, vt uint64, name, set, res, interval int64, points int) {
	t := uint64(v3Gauge)
	switch typ {
	case Count:
		t = v3Count
	case Rate:
		t = v3Rate
	}
	w.types = append(w.types, t|vt)
	w.nameRefs = append(w.nameRefs, name-w.lastName)
	w.tagsetRefs = append(w.tagsetRefs, set-w.lastTagset)
	w.resourceRefs = append(w.resourceRefs, res-w.lastResource)
	w.intervals = append(w.intervals, interval-w.lastInterval)
	w.lastName, w.lastTagset, w.lastResource, w.lastInterval = name, set, res, interval
	w.numPoints = append(w.numPoints, uint64(points))
	w.size += 12 // the per-series columns, about a byte each
}

// point adds a point of the current series; v must be of its value type.
func (w *v3Writer) point(vt uint64, ts int64, v float64) {
	w.timestamps = append(w.timestamps, ts-w.lastTS)
	w.lastTS = ts
	w.npoints++
	switch vt {
	case v3ValueSint64:
		w.sint64s = append(w.sint64s, int64(v))
		w.size += 4
	case v3ValueFloat64:
		w.float64s = append(w.float64s, v)
		w.size += 8
	}
	w.size += 2
}

// v3ValueType is the narrowest value type that holds v exactly: zero,
// integers (most counts) as sint64, others float64.
func v3ValueType(v float64) uint64 {
	switch {
	case v == 0 && !math.Signbit(v):
		return v3ValueZero
	case v == math.Trunc(v) && math.Abs(v) < 1<<53 && v != 0: // -0 is no integer
		return v3ValueSint64
	}
	return v3ValueFloat64
}

// add adds a series of d with points (timestamps in Unix seconds), all of
// the value type that holds every value. Tests and splits use it; the
// appender adds its one-point series through series and point.
func (w *v3Writer) add(d *Desc, ts []int64, vals []float64) {
	vt := uint64(v3ValueZero)
	for _, v := range vals {
		vt = max(vt, v3ValueType(v))
	}
	w.idx = w.idx[:0]
	for _, t := range d.Tags {
		w.idx = append(w.idx, w.tag(bytesOf(t)))
	}
	set := w.tagset(w.idx)
	w.series(d.Type, vt, w.name(bytesOf(d.Metric)), set, w.resource(d.Host), max(d.Interval, 0), len(ts))
	for i, t := range ts {
		w.point(vt, t, vals[i])
	}
}

// copyRange adds series [from, to) of w to dst, by their strings: what
// splitting a payload too large for the intake needs. Rare; it allocates.
func (w *v3Writer) copyRange(dst *v3Writer, from, to int) {
	var name, set, res, iv, t int64
	var pt, si, fi int
	var d Desc
	var ts []int64
	var vals []float64
	for i := range to {
		name += w.nameRefs[i]
		set += w.tagsetRefs[i]
		res += w.resourceRefs[i]
		iv += w.intervals[i]
		np := int(w.numPoints[i])
		vt := w.types[i] & 0xf0
		ts, vals = ts[:0], vals[:0]
		for range np {
			var v float64
			switch vt {
			case v3ValueSint64:
				v = float64(w.sint64s[si])
				si++
			case v3ValueFloat64:
				v = w.float64s[fi]
				fi++
			}
			t += w.timestamps[pt]
			ts, vals = append(ts, t), append(vals, v)
			pt++
		}
		if i < from {
			continue
		}
		d = Desc{Metric: string(w.names.entry(uint32(name))), Type: MetricType(w.types[i] & 0x0f), Interval: iv, Tags: w.setTags(set)}
		if res > 0 {
			d.Host = w.hosts[res-1]
		}
		dst.add(&d, ts, vals)
	}
}

// setTags returns the tags of tag set i.
func (w *v3Writer) setTags(i int64) []string {
	if i == 0 {
		return nil
	}
	c := w.tagsetCol[w.tagsetOff[i-1]:]
	tags := make([]string, c[0])
	var idx int64
	for k := range tags {
		idx += c[1+k]
		tags[k] = string(w.tags.entry(uint32(idx)))
	}
	return tags
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
