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
// Each column is kept as the payload carries it (varints, delta encoded
// where the format says so), written once as a series or point is added:
// sealing a payload then only copies the columns behind their headers. A
// writer is reused after reset without allocating once its buffers have
// grown: the dictionaries are open-addressing tables over the bytes they
// write, not maps of strings.
type v3Writer struct {
	names, tags, resStr dict
	// tagsets finds a tag set by the hash of its encoding; tagsetCol is the
	// dictTagsets column (each set: its length, then its indexes sorted and
	// delta encoded, a prefix set first as its negated index), tagsetEnd
	// where each set ends in it.
	tagsets   table
	tagsetCol []byte
	tagsetEnd []int32
	// hosts are the host resources, hosts[i] being resource i+1; each is
	// one set of one resource ("host", name).
	hosts            []string
	resLen           []int64
	resType, resName []int64 // delta encoded within each set

	// The per-series and per-point columns, encoded (v3Col*).
	cols                                             [v3NumCols][]byte
	nseries                                          int
	lastName, lastTagset, lastResource, lastInterval int64
	lastTS                                           int64

	npoints int

	idx    []int64 // scratch: add's tag indexes
	sorted []int64 // scratch: a tag set sorted
	set    []byte  // scratch: a tag set encoded
}

// The columns v3Writer encodes as series and points are added, in the
// order the payload carries them.
const (
	v3ColTypes = iota
	v3ColNameRefs
	v3ColTagsetRefs
	v3ColResourceRefs
	v3ColIntervals
	v3ColNumPoints
	v3ColTimestamps
	v3ColSint64
	v3ColFloat64
	v3NumCols
)

// hashSeed seeds the dictionaries' hash: maphash is the runtime's (AES
// where the CPU has it, several times xxhash's speed on tags), and a seed
// no target knows keeps a target from choosing colliding tags.
var hashSeed = maphash.MakeSeed()

// table is an open-addressing hash table of base-1 entry indexes, each slot
// holding an entry's hash beside its index (0: empty), so a probe reads one
// word; the entries live with its owner.
type table struct {
	slots []uint64 // hash<<32 | index
	n     int
}

// Lookups probe from slot h&mask() on, one slot further at a time, until
// the entry or an empty slot; (their loops are in dict.ref and
// v3Writer.prefixedSet, not behind a callback, so that nothing escapes).
func (t *table) mask() int { return len(t.slots) - 1 }

// insert makes the entry of hash h the next index at slot, growing the
// table past half full (entries then move to their new slots).
func (t *table) insert(slot int, h uint32) uint32 {
	t.n++
	i := uint32(t.n)
	t.slots[slot] = uint64(h)<<32 | uint64(i)
	if 2*t.n > len(t.slots) {
		old := t.slots
		t.slots = make([]uint64, 2*len(old))
		mask := len(t.slots) - 1
		for _, e := range old {
			if e == 0 {
				continue
			}
			s := int(e>>32) & mask
			for t.slots[s] != 0 {
				s = (s + 1) & mask
			}
			t.slots[s] = e
		}
	}
	return i
}

func (t *table) reset() {
	if t.slots == nil {
		t.slots = make([]uint64, 64)
	}
	clear(t.slots)
	t.n = 0
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
	for e := d.t.slots[slot]; e != 0; e = d.t.slots[slot] {
		if uint32(e>>32) == h && string(d.entry(uint32(e))) == string(s) {
			return int64(uint32(e))
		}
		slot = (slot + 1) & mask
	}
	d.b = appendUvarint(d.b, uint64(len(s)))
	d.start = append(d.start, uint32(len(d.b)))
	d.b = append(d.b, s...)
	d.end = append(d.end, uint32(len(d.b)))
	return int64(d.t.insert(slot, h))
}

// bytesOf is s's bytes, not copied: what dictionaries look up and copy.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// stringOf is b as a string, not copied: valid only while b is unchanged
// (the tag rules look labels of the parser up with it).
func stringOf(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

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
	w.tagsetCol, w.tagsetEnd, w.hosts, w.resLen, w.resType, w.resName = w.tagsetCol[:0], w.tagsetEnd[:0], w.hosts[:0], w.resLen[:0], w.resType[:0], w.resName[:0]
	for i := range w.cols {
		w.cols[i] = w.cols[i][:0]
	}
	w.nseries, w.npoints = 0, 0
	w.lastName, w.lastTagset, w.lastResource, w.lastTS, w.lastInterval = 0, 0, 0, 0, 0
}

// size is the payload's uncompressed size, within a few bytes: what
// sealing and the memory bound count.
func (w *v3Writer) size() int {
	n := len(w.names.b) + len(w.tags.b) + len(w.tagsetCol) + len(w.resStr.b) + 8*len(w.resLen)
	for _, c := range w.cols {
		n += len(c)
	}
	// The source type and origin columns (a byte per series) and the
	// fields' headers.
	return n + 2*w.nseries + 16*6
}

// name and tag return the index of a metric name and of a tag.
func (w *v3Writer) name(s []byte) int64 { return w.names.ref(s) }
func (w *v3Writer) tag(s []byte) int64  { return w.tags.ref(s) }

// tagset returns the index of the set of tag indexes idx, added if new. A
// set is sorted before it is encoded, as the Agent writes it, so the same
// tags in any order are one set; idx is left as it is.
func (w *v3Writer) tagset(idx []int64) int64 { return w.prefixedSet(0, idx) }

// prefixedSet returns the index of the set made of the tags of the earlier
// set prefix (0: none) and the tags idx: the Agent's way of writing a series'
// tags as the tags its check shares (here the target's) plus its own, so the
// shared ones are written once per payload, not once per series.
func (w *v3Writer) prefixedSet(prefix int64, idx []int64) int64 {
	if len(idx) == 0 {
		return prefix
	}
	if w.tagsets.slots == nil {
		w.tagsets.reset()
	}
	s := append(w.sorted[:0], idx...)
	for i := 1; i < len(s); i++ { // insertion sort: a few tags
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	w.sorted = s
	n := len(s)
	if prefix > 0 {
		n++
	}
	set := appendSint(w.set[:0], int64(n))
	prev := int64(0)
	if prefix > 0 {
		prev = -prefix
		set = appendSint(set, prev)
	}
	for _, i := range s {
		set = appendSint(set, i-prev)
		prev = i
	}
	w.set = set
	h := uint32(maphash.Bytes(hashSeed, set))
	t := &w.tagsets
	mask := t.mask()
	slot := int(h) & mask
	for e := t.slots[slot]; e != 0; e = t.slots[slot] {
		if uint32(e>>32) == h && string(w.setBytes(uint32(e))) == string(set) {
			return int64(uint32(e))
		}
		slot = (slot + 1) & mask
	}
	w.tagsetCol = append(w.tagsetCol, set...)
	w.tagsetEnd = append(w.tagsetEnd, int32(len(w.tagsetCol)))
	return int64(t.insert(slot, h))
}

// setBytes is the encoding of tag set i in tagsetCol.
func (w *v3Writer) setBytes(i uint32) []byte {
	start := int32(0)
	if i > 1 {
		start = w.tagsetEnd[i-2]
	}
	return w.tagsetCol[start:w.tagsetEnd[i-1]]
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
	return int64(len(w.hosts))
}

func appendSint(b []byte, v int64) []byte { return appendUvarint(b, protowire.EncodeZigZag(v)) }

// appendUvarint is protowire.AppendVarint with the one-byte case inlined:
// most of the columns' values (deltas of indexes and timestamps, types,
// counts of points) are under 128.
func appendUvarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
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
	c := &w.cols
	c[v3ColTypes] = appendUvarint(c[v3ColTypes], t|vt)
	c[v3ColNameRefs] = appendSint(c[v3ColNameRefs], name-w.lastName)
	c[v3ColTagsetRefs] = appendSint(c[v3ColTagsetRefs], set-w.lastTagset)
	c[v3ColResourceRefs] = appendSint(c[v3ColResourceRefs], res-w.lastResource)
	// Delta + zigzag although the proto says uint64: as the Agent's
	// payloadsBuilderV3 writes them (txn.Sint64 of deltaInterval).
	c[v3ColIntervals] = appendSint(c[v3ColIntervals], interval-w.lastInterval)
	c[v3ColNumPoints] = appendUvarint(c[v3ColNumPoints], uint64(points))
	w.lastName, w.lastTagset, w.lastResource, w.lastInterval = name, set, res, interval
	w.nseries++
}

// point adds a point of the current series; v must be of its value type.
func (w *v3Writer) point(vt uint64, ts int64, v float64) {
	c := &w.cols
	c[v3ColTimestamps] = appendSint(c[v3ColTimestamps], ts-w.lastTS)
	w.lastTS = ts
	w.npoints++
	switch vt {
	case v3ValueSint64:
		c[v3ColSint64] = appendSint(c[v3ColSint64], int64(v))
	case v3ValueFloat64:
		c[v3ColFloat64] = protowire.AppendFixed64(c[v3ColFloat64], math.Float64bits(v))
	}
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

// v3Reader reads a column back, value by value: what splitting needs.
type v3Reader []byte

func (r *v3Reader) uint() uint64 {
	v, n := protowire.ConsumeVarint(*r)
	*r = (*r)[max(n, 0):]
	return v
}

func (r *v3Reader) sint() int64 { return protowire.DecodeZigZag(r.uint()) }

func (r *v3Reader) fixed() float64 {
	v, n := protowire.ConsumeFixed64(*r)
	*r = (*r)[max(n, 0):]
	return math.Float64frombits(v)
}

// copyRange adds series [from, to) of w to dst, by their strings: what
// splitting a payload too large for the intake needs. Rare; it allocates.
func (w *v3Writer) copyRange(dst *v3Writer, from, to int) {
	var name, set, res, iv, t int64
	var r [v3NumCols]v3Reader
	for i, c := range w.cols {
		r[i] = v3Reader(c)
	}
	var d Desc
	var ts []int64
	var vals []float64
	for i := range to {
		typ := r[v3ColTypes].uint()
		name += r[v3ColNameRefs].sint()
		set += r[v3ColTagsetRefs].sint()
		res += r[v3ColResourceRefs].sint()
		iv += r[v3ColIntervals].sint()
		np := int(r[v3ColNumPoints].uint())
		ts, vals = ts[:0], vals[:0]
		for range np {
			var v float64
			switch typ & 0xf0 {
			case v3ValueSint64:
				v = float64(r[v3ColSint64].sint())
			case v3ValueFloat64:
				v = r[v3ColFloat64].fixed()
			}
			t += r[v3ColTimestamps].sint()
			ts, vals = append(ts, t), append(vals, v)
		}
		if i < from {
			continue
		}
		d = Desc{Metric: string(w.names.entry(uint32(name))), Type: MetricType(typ & 0x0f), Interval: iv, Tags: w.setTags(set, nil)}
		if res > 0 {
			d.Host = w.hosts[res-1]
		}
		dst.add(&d, ts, vals)
	}
}

// setTags appends the tags of tag set i to tags, those of its prefix set
// first.
func (w *v3Writer) setTags(i int64, tags []string) []string {
	if i == 0 {
		return tags
	}
	r := v3Reader(w.setBytes(uint32(i)))
	var idx int64
	for range r.sint() {
		idx += r.sint()
		if idx < 0 {
			tags = w.setTags(-idx, tags)
			continue
		}
		tags = append(tags, string(w.tags.entry(uint32(idx))))
	}
	return tags
}

// Field numbers of intake_v3.proto.
const (
	v3PayloadMetricData = 3

	v3DictNameStr      = 1
	v3DictTagStr       = 2
	v3DictTagsets      = 3
	v3DictResourceStr  = 4
	v3DictResourceLen  = 5
	v3DictResourceType = 6
	v3DictResourceName = 7
	v3Types            = 10
	v3NameRefs         = 11
	v3TagsetRefs       = 12
	v3ResourcesRefs    = 13
	v3Intervals        = 14
	v3NumPoints        = 15
	v3Timestamps       = 16
	v3SourceTypeRefs   = 23
	v3OriginInfoRefs   = 24
	v3ValsSint64       = 17
	v3ValsFloat64      = 19
	v3MaxVarintLen     = 10
)

// v3ColField is the field number of each encoded column.
var v3ColField = [v3NumCols]protowire.Number{
	v3ColTypes: v3Types, v3ColNameRefs: v3NameRefs, v3ColTagsetRefs: v3TagsetRefs,
	v3ColResourceRefs: v3ResourcesRefs, v3ColIntervals: v3Intervals, v3ColNumPoints: v3NumPoints,
	v3ColTimestamps: v3Timestamps, v3ColSint64: v3ValsSint64, v3ColFloat64: v3ValsFloat64,
}

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
	b = appendBytesField(b, v3DictTagsets, w.tagsetCol)
	b = appendBytesField(b, v3DictResourceStr, w.resStr.b)
	b = appendPackedInt(b, v3DictResourceLen, w.resLen)
	b = appendPackedSint(b, v3DictResourceType, w.resType)
	b = appendPackedSint(b, v3DictResourceName, w.resName)
	for i, c := range w.cols[:v3ColTimestamps] {
		b = appendBytesField(b, v3ColField[i], c)
	}
	// No source type and no origin, but the columns, one 0 per series, as
	// the Agent writes them (its reader requires them).
	b = appendZeros(b, v3SourceTypeRefs, w.nseries)
	b = appendZeros(b, v3OriginInfoRefs, w.nseries)
	for i, c := range w.cols[v3ColTimestamps:] {
		b = appendBytesField(b, v3ColField[v3ColTimestamps+i], c)
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

// appendBytesField writes a bytes field, or a packed column already
// encoded; nothing when v is empty.
func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendPacked writes a packed repeated varint field: its length first,
// computed in a first pass, so nothing is buffered. For the resource
// columns, a few entries each.
func appendPacked(b []byte, num protowire.Number, vs []int64, enc func(int64) uint64) []byte {
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
