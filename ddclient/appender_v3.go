package ddclient

import (
	"encoding/json"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"
)

// v3State is what an appender keeps to add its points to v3 payloads: its
// target's tags as text, and their indexes in the dictionaries of the
// payload being filled (buffer generation gen). A point then costs a
// dictionary lookup per label of its own, one for its tag set, and none
// for the name or the target's tags after the first point of the payload.
type v3State struct {
	host       string   // the host resource; "" for none (a cluster target)
	targetTags [][]byte // per target label, in Target.Labels order; nil when dropped
	extra      [][]byte // the Kubernetes tags

	gen       uint64
	targetIdx []int64 // per target label; 0 when dropped
	extraIdx  []int64
	tailIdx   []int64 // the target's and Kubernetes tags sent
	res       int64
	tailSet   int64 // the tag set of tailIdx; -1 until made in gen
	report    [len(reportNames)]int64

	// pos predicts, per label position, the tag of a plain series' label
	// (posTag); run is the shape of the run of series it follows.
	pos []posTag
	run *shape
	// stored is, per position, the last tag of a stored series there.
	stored []posTag

	idx []int64 // scratch: a point's tag indexes
	tag []byte  // scratch: a tag
}

// posTag predicts the tag of the label at one position of a target's
// series, so that most labels cost a comparison with a dictionary entry
// instead of a hash and a lookup. Exporters write a family's series in one
// order of their objects (containers, pods), the same for every family: a
// label either keeps its value from one series to the next (idx), or takes
// the next value it took in the previous family (prev, in the order of its
// changes there; cur collects this family's). Every prediction is checked
// against the dictionary entry, so a wrong one costs only the comparison.
type posTag struct {
	gen       uint64 // the payload the indexes are of
	idx       int64
	prev, cur []int32
	// moving: the label changed at the series before, so the prediction
	// from the previous family is tried first.
	moving bool
}

// A target's labels are its own to choose: predictions are kept for its
// first maxPredicted label positions, each recording at most maxChanges
// changes per family, so what an appender holds for them is bounded
// (32 × 2 × 4096 × 4 bytes, 1 MiB) whatever a target sends; past them a
// label is looked up.
const (
	maxPredicted = 32
	maxChanges   = 4096
)

// posAt returns the cache entry of position k, grown as needed.
func posAt(cs *[]posTag, k int) *posTag {
	for len(*cs) <= k {
		*cs = append(*cs, posTag{})
	}
	return &(*cs)[k]
}

// isTag reports whether dictionary tag i is prefix+name+":"+value.
func isTag(w *v3Writer, i int64, prefix string, name, value []byte) bool {
	e := w.tags.entry(uint32(i))
	n := len(prefix) + len(name)
	return len(e) == n+1+len(value) && string(e[n+1:]) == string(value) && e[n] == ':' &&
		string(e[len(prefix):n]) == string(name) && string(e[:len(prefix)]) == prefix
}

// plainTag returns the index of a plain label's tag (one whose text is
// prefix+name+":"+value, unchanged by the tag rules' escapes and limits),
// predicted by c where it can be.
func (a *appender) plainTag(w *v3Writer, c *posTag, prefix string, name, value []byte) int64 {
	v := a.v3
	if c.gen != v.gen {
		c.gen, c.idx, c.prev, c.cur = v.gen, 0, c.prev[:0], c.cur[:0]
	}
	m := len(c.cur)
	i := int64(0)
	switch {
	case c.moving && m < len(c.prev) && isTag(w, int64(c.prev[m]), prefix, name, value):
		i = int64(c.prev[m])
	case c.idx != 0 && isTag(w, c.idx, prefix, name, value):
		c.moving = false
		return c.idx
	case !c.moving && m < len(c.prev) && isTag(w, int64(c.prev[m]), prefix, name, value):
		i = int64(c.prev[m])
	default:
		v.tag = append(append(append(append(v.tag[:0], prefix...), name...), ':'), value...)
		i = w.tag(v.tag)
	}
	c.moving, c.idx = true, i
	if len(c.cur) < maxChanges {
		c.cur = append(c.cur, int32(i))
	}
	return i
}

// initV3 takes the target's tags from their JSON (newAppender made it):
// the same text the v2 payload carries, shortened and made valid UTF-8.
func (a *appender) initV3(t *target.Target) {
	v := &v3State{}
	if a.mp.Host != "" && !t.Cluster {
		v.host = a.mp.Host
	}
	for _, tag := range a.targetTags {
		var raw []byte
		if tag != nil {
			raw = unquoteTag(tag)
		}
		v.targetTags = append(v.targetTags, raw)
	}
	if len(a.extra) > 0 {
		var extra []string
		_ = json.Unmarshal(append(append([]byte{'['}, a.extra[1:]...), ']'), &extra)
		for _, e := range extra {
			v.extra = append(v.extra, []byte(e))
		}
	}
	a.v3 = v
}

func unquoteTag(j []byte) []byte {
	var s string
	_ = json.Unmarshal(j, &s)
	return []byte(s)
}

// bindV3 finds the target's tags and host in the dictionaries of bf's
// payload.
func (a *appender) bindV3(bf *buffer) {
	v, w := a.v3, bf.w
	v.gen = bf.gen
	v.targetIdx, v.extraIdx, v.tailIdx = v.targetIdx[:0], v.extraIdx[:0], v.tailIdx[:0]
	for _, t := range v.targetTags {
		var i int64
		if t != nil {
			i = w.tag(t)
			v.tailIdx = append(v.tailIdx, i)
		}
		v.targetIdx = append(v.targetIdx, i)
	}
	for _, t := range v.extra {
		v.extraIdx = append(v.extraIdx, w.tag(t))
	}
	v.tailIdx = append(v.tailIdx, v.extraIdx...)
	v.tailSet = -1
	v.res = w.resource(v.host)
	v.report = [len(reportNames)]int64{}
}

// targetSet returns the tag set of the target's tags alone.
func (a *appender) targetSet(w *v3Writer) int64 {
	v := a.v3
	if v.tailSet < 0 {
		v.tailSet = w.tagset(v.tailIdx) // which sorts a copy
	}
	return v.tailSet
}

// appendV3 adds one point as a one-point series of the v3 payload: the
// v3 counterpart of Append's JSON entry, with the same tags.
func (a *appender) appendV3(ref uint64, p *exposition.Parser, sec int64, val float64) {
	bf := a.buf
	w, v := bf.w, a.v3
	if v.gen != bf.gen {
		a.bindV3(bf)
	}
	sh, st := a.series(ref)
	if sh.gen != bf.gen {
		sh.gen, sh.name = bf.gen, w.name(bytesOf(sh.key.name))
	}
	var set int64
	nl := 0
	if st == nil {
		nl = p.NumLabels()
	}
	switch {
	case st != nil:
		set = a.storedSetV3(w, st)
	case nl == 0 && sh.omitted == 0:
		set = a.targetSet(w)
	default:
		set = a.labelSetV3(w, p, sh, ref&plainBit != 0, nl)
	}
	iv := int64(0)
	if sh.key.typ == Count {
		iv = a.interval
	}
	vt := v3ValueType(val)
	w.series(sh.key.typ, vt, sh.name, set, v.res, iv, 1)
	w.point(vt, sec, val)
	a.finishV3(bf, sec)
}

// labelSetV3 returns the tag set of a verbatim series: the tags of its
// labels but those not sent (shape.dropped), then the target's but those its
// own labels shadow (shape.omitted). The target's tags are its set, the
// prefix of the series' own.
func (a *appender) labelSetV3(w *v3Writer, p *exposition.Parser, sh *shape, plain bool, nl int) int64 {
	v := a.v3
	idx := v.idx[:0]
	if sh != v.run {
		// A new run: the changes of the one that ends predict its own.
		v.run = sh
		for k := range v.pos {
			c := &v.pos[k]
			c.prev, c.cur = c.cur, c.prev[:0]
		}
	}
	for k := range nl {
		if sh.dropped&(1<<k) != 0 {
			continue
		}
		name, value := p.Label(k)
		prefix := ""
		if sh.exported&(1<<k) != 0 {
			prefix = model.ExportedLabelPrefix
		}
		if sh.bucket && len(name) == 2 && name[0] == 'l' && name[1] == 'e' {
			name = upperBound
		}
		if plain && k < maxPredicted {
			idx = append(idx, a.plainTag(w, posAt(&v.pos, k), prefix, name, value))
			continue
		}
		v.tag = v3TagText(a, v.tag[:0], prefix, name, value)
		idx = append(idx, w.tag(v.tag))
	}
	v.idx = idx
	if sh.omitted == 0 {
		return w.prefixedSet(a.targetSet(w), idx)
	}
	for i, t := range v.targetIdx {
		if sh.omitted&(1<<i) != 0 || t == 0 {
			continue
		}
		idx = append(idx, t)
	}
	v.idx = append(idx, v.extraIdx...)
	return w.tagset(v.idx)
}

// storedSetV3 returns the tag set of a stored series: its tags (the
// target's among them) and the Kubernetes tags.
func (a *appender) storedSetV3(w *v3Writer, st *stored) int64 {
	v := a.v3
	idx := v.idx[:0]
	k := 0
	for b := bytesOf(st.tags); len(b) > 0; k++ {
		tag, n := protowire.ConsumeBytes(b)
		b = b[n:]
		c := posAt(&v.stored, k)
		if c.gen != v.gen || c.idx == 0 || string(w.tags.entry(uint32(c.idx))) != string(tag) {
			c.gen, c.idx = v.gen, w.tag(tag)
		}
		idx = append(idx, c.idx)
	}
	v.idx = append(idx, v.extraIdx...)
	return w.tagset(v.idx)
}

// appendReportV3 adds report point i (reportNames) with the target's tags.
func (a *appender) appendReportV3(i int, sec int64, val float64) {
	bf := a.buf
	w, v := bf.w, a.v3
	if v.gen != bf.gen {
		a.bindV3(bf)
	}
	if v.report[i] == 0 {
		v.report[i] = w.name(bytesOf(a.report.names[i]))
	}
	vt := v3ValueType(val)
	w.series(Gauge, vt, v.report[i], a.targetSet(w), v.res, 0, 1)
	w.point(vt, sec, val)
	a.finishV3(bf, sec)
}

// finishV3 notes the point's time and hands bf on when it is full.
func (a *appender) finishV3(bf *buffer, sec int64) {
	if sec < bf.minTS || bf.minTS == 0 {
		bf.minTS = sec
	}
	if bf.sealed() {
		a.buf = a.out.full(bf)
	}
}
