package exposition

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"unicode/utf8"
)

// Strict OpenMetrics validation. The rules are those of the OpenMetrics 1.0
// specification as its reference parser (prometheus_client's
// openmetrics/parser.py, which the conformance vectors come from) applies
// them. Prometheus' own parser skips every rule in this file; each is a
// difference between strict and lenient mode:
//
//   - metadata: at most one HELP, TYPE and UNIT per family, all before its
//     samples; UNIT not on info or stateset families;
//   - names: families do not interleave and no family (or its samples'
//     names) clashes with an earlier one; a counter's samples are _total and
//     _created only;
//   - labels: no duplicate names, no trailing comma;
//   - grouping: a family's samples with the same labels (le/quantile aside)
//     are contiguous; within such a group, timestamps are all present or all
//     absent and do not go backwards (except info);
//   - values: counter-like samples (_total, _sum, _count, _bucket, _gcount,
//     _gsum) are not NaN, and not negative except _gsum; bucket and count
//     values are integers; info is 1, stateset 0 or 1; quantile values are
//     not negative;
//   - histograms and gaugehistograms: buckets have a valid le (infinity
//     written +Inf), in increasing order with non-decreasing values, ending
//     at +Inf; _count equals the +Inf bucket; _sum/_gsum and _count/_gcount
//     come together; no _sum with negative buckets, no negative _gsum
//     without them; summaries need a quantile label in [0, 1] on bare samples,
//     statesets a label named after the family;
//   - exemplars: only on counter _total and (gauge)histogram _bucket samples,
//     with at most 128 UTF-8 characters of label names and values.
//
// Seen family names and label groups are kept as 64-bit hashes in maps that
// are cleared, not reallocated, so strict mode stays allocation-free in
// steady state too; a hash collision could only turn a valid payload into a
// false error, with probability about n²/2^64.
type strictState struct {
	seed   maphash.Seed
	seeded bool
	names  map[uint64]struct{} // names reserved by finished families
	groups map[uint64]struct{} // label groups seen in the current family

	famSamples bool
	implicit   bool // family opened by a sample without metadata

	hasGroup bool
	group    uint64
	groupTS  float64
	groupHas bool // group's samples carry timestamps

	hist histState
}

// histState follows one (gauge)histogram group with one timestamp.
type histState struct {
	active       bool
	group        uint64
	ts           float64
	hasTS        bool
	hasBucket    bool
	bucket       float64 // last le
	value        float64 // last bucket value
	hasCount     bool
	count        float64
	hasSum       bool
	hasGSum      bool
	negBuckets   bool
	negGSum      bool
	sampleOffset int // where the group started, for errors
}

func (s strictState) reset() strictState {
	clear(s.names)
	clear(s.groups)
	return strictState{seed: s.seed, seeded: s.seeded, names: s.names, groups: s.groups}
}

func (p *Parser) strictErr(pos int, msg string) error {
	return newParseError(p.data, pos, msg)
}

// checkMeta validates a metadata line before it is applied.
func (p *Parser) checkMeta(kind metaKind, lineStart, ns, ne int) error {
	d := p.data
	if p.famOpen && bytes.Equal(d[ns:ne], d[p.fam.start:p.fam.end]) {
		if p.check.famSamples {
			return p.strictErr(lineStart, "metadata after samples of its family")
		}
		if kind == metaHelp && p.fam.hasHelp || kind == metaType && p.fam.hasType || kind == metaUnit && p.fam.hasUnit {
			return p.strictErr(lineStart, "repeated metadata for family")
		}
		return nil
	}
	if err := p.endFamily(lineStart); err != nil {
		return err
	}
	p.check.implicit = false
	return nil
}

// familySuffixes lists the sample name suffixes a family of each type owns,
// for the name clash check.
var familySuffixes = [...][]string{
	TypeUnknown:        {""},
	TypeCounter:        {"", "_total", "_created"},
	TypeGauge:          {""},
	TypeHistogram:      {"", "_count", "_sum", "_bucket", "_created"},
	TypeSummary:        {"", "_count", "_sum", "_created"},
	TypeInfo:           {"", "_info"},
	TypeStateset:       {""},
	TypeGaugeHistogram: {"", "_gcount", "_gsum", "_bucket"},
}

// hashNames hashes the concatenation of a and b (a family name and a
// suffix); with split, a's length goes first so that the split between them
// (a label name and value) is part of the hash.
func (p *Parser) hashNames(a, b []byte, split bool) uint64 {
	var h maphash.Hash
	h.SetSeed(p.check.seed)
	if split {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(a)))
		h.Write(n[:])
	}
	h.Write(a)
	h.Write(b)
	return h.Sum64()
}

// endFamily closes the current family at offset pos: final histogram
// checks, unit rules and the name clash check.
func (p *Parser) endFamily(pos int) error {
	c := &p.check
	if !c.seeded {
		c.seed, c.seeded = maphash.MakeSeed(), true
		c.names = make(map[uint64]struct{})
		c.groups = make(map[uint64]struct{})
	}
	if !p.famOpen {
		return nil
	}
	if err := p.endHistGroup(); err != nil {
		return err
	}
	if p.fam.hasUnit && p.fam.unitEnd > p.fam.unitStart && (p.fam.typ == TypeInfo || p.fam.typ == TypeStateset) {
		return p.strictErr(p.fam.unitStart, "unit not allowed on "+p.fam.typ.String()+" families")
	}
	name := p.data[p.fam.start:p.fam.end]
	for _, sfx := range familySuffixes[p.fam.typ] {
		h := p.hashNames(name, []byte(sfx), false)
		if _, dup := c.names[h]; dup {
			return p.strictErr(pos, "family name "+string(name)+sfx+" clashes with an earlier family")
		}
		c.names[h] = struct{}{}
	}
	clear(c.groups)
	c.famSamples, c.hasGroup = false, false
	p.famOpen = false
	p.famGen++
	return nil
}

func (p *Parser) finishStrict() error {
	if !p.strict || p.format != FormatOpenMetrics {
		return nil
	}
	return p.endFamily(len(p.data))
}

// checkSample validates the current sample (strict OpenMetrics only).
func (p *Parser) checkSample() error {
	c := &p.check
	s := &p.cur
	d := p.data
	name := d[s.nameStart:s.nameEnd]
	if p.inFamily && p.fam.typ == TypeCounter && len(name) == p.fam.end-p.fam.start {
		p.inFamily = false // a bare counter name is not a counter sample
	}
	if !p.inFamily || (c.implicit && !bytes.Equal(name, d[p.fam.start:p.fam.end])) {
		if err := p.endFamily(s.lineStart); err != nil {
			return err
		}
		p.fam = family{start: s.nameStart, end: s.nameEnd}
		p.famGen++
		p.famOpen, p.inFamily, p.role = true, true, RoleValue
		c.implicit = true
	}
	c.famSamples = true
	if s.trailingComma {
		return p.strictErr(s.seriesEnd-2, "trailing comma in label set")
	}
	for i := 1; i < len(s.labels); i++ {
		for j := 0; j < i; j++ {
			if bytes.Equal(p.lname(s, s.labels[i]), p.lname(s, s.labels[j])) {
				return p.strictErr(s.seriesStart+int(s.labels[i].ns), "duplicate label name")
			}
		}
	}
	if err := p.checkValue(); err != nil {
		return err
	}
	if err := p.checkExemplar(); err != nil {
		return err
	}
	return p.checkGroup()
}

// checkValue applies the per-type value and label rules.
func (p *Parser) checkValue() error {
	s := &p.cur
	v := s.value
	at := s.seriesEnd + 1
	typ := p.fam.typ
	switch p.role {
	case RoleTotal, RoleSum, RoleCount, RoleBucket, RoleGCount, RoleGSum:
		if math.IsNaN(v) {
			return p.strictErr(at, "counter-like sample is NaN")
		}
		if v < 0 && p.role != RoleGSum {
			return p.strictErr(at, "counter-like sample is negative")
		}
	}
	switch p.role {
	case RoleBucket, RoleCount, RoleGCount:
		if math.IsInf(v, 0) || v != math.Trunc(v) {
			return p.strictErr(at, "bucket or count value is not an integer")
		}
	}
	switch {
	case p.role == RoleBucket:
		le, ok := p.labelValue(lblLe)
		if !ok {
			return p.strictErr(s.seriesStart, "bucket without le label")
		}
		f, ok := parseFloat(le)
		if !ok || math.IsNaN(f) || (math.IsInf(f, 0) && !bytes.Equal(le, []byte("+Inf")) && !bytes.Equal(le, []byte("-Inf"))) {
			return p.strictErr(s.seriesStart, "invalid le label value")
		}
	case typ == TypeSummary && (p.role == RoleQuantile || p.role == RoleValue):
		q, ok := p.labelValue(lblQuant)
		f, fok := parseFloat(q)
		if !ok || !fok || !(f >= 0 && f <= 1) {
			return p.strictErr(s.seriesStart, "summary sample needs a quantile label in [0, 1]")
		}
		if v < 0 {
			return p.strictErr(at, "quantile value is negative")
		}
	case typ == TypeInfo && v != 1:
		return p.strictErr(at, "info value is not 1")
	case typ == TypeStateset:
		if v != 0 && v != 1 {
			return p.strictErr(at, "stateset value is not 0 or 1")
		}
		if !p.hasLabel(s, p.data[p.fam.start:p.fam.end]) {
			return p.strictErr(s.seriesStart, "stateset sample lacks a label named after its family")
		}
	}
	return nil
}

// labelValue returns the raw value of the current sample's label name.
func (p *Parser) labelValue(name []byte) ([]byte, bool) {
	for _, l := range p.cur.labels {
		if bytes.Equal(p.lname(&p.cur, l), name) {
			return p.lvalue(&p.cur, l), true
		}
	}
	return nil, false
}

// maxExemplarRunes is OpenMetrics' limit on an exemplar's label names and
// values together.
const maxExemplarRunes = 128

func (p *Parser) checkExemplar() error {
	s := &p.cur
	if s.exEnd <= s.exStart {
		return nil
	}
	t := p.fam.typ
	if !(p.role == RoleTotal && t == TypeCounter || p.role == RoleBucket && (t == TypeHistogram || t == TypeGaugeHistogram)) {
		return p.strictErr(s.exStart, "exemplar not allowed on this sample")
	}
	n := 0
	for i, l := range s.exLabels {
		for j := 0; j < i; j++ {
			if bytes.Equal(p.lname(s, l), p.lname(s, s.exLabels[j])) {
				return p.strictErr(s.seriesStart+int(l.ns), "duplicate exemplar label name")
			}
		}
		n += unescapedRunes(p.lname(s, l)) + unescapedRunes(p.lvalue(s, l))
	}
	if n > maxExemplarRunes {
		return p.strictErr(s.exStart, "exemplar labels longer than 128 characters")
	}
	return nil
}

// unescapedRunes counts the characters of b once its escapes are resolved
// (every escape is a backslash and one more character).
func unescapedRunes(b []byte) int {
	n := utf8.RuneCount(b)
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' {
			n--
			i++
		}
	}
	return n
}

// groupHash hashes the current sample's label set without le (histograms)
// or quantile (summaries), independent of label order.
func (p *Parser) groupHash() uint64 {
	skip := pointLabel(p.fam.typ)
	var sum uint64
	for _, l := range p.cur.labels {
		if skip != nil && bytes.Equal(p.lname(&p.cur, l), skip) {
			continue
		}
		h := p.hashNames(p.lname(&p.cur, l), p.lvalue(&p.cur, l), true)
		sum += h * 0x9e3779b97f4a7c15
	}
	return sum
}

// checkGroup enforces contiguous label groups and their timestamps, and
// feeds (gauge)histogram groups to their checks.
func (p *Parser) checkGroup() error {
	c := &p.check
	s := &p.cur
	g := p.groupHash()
	if c.hasGroup && g == c.group {
		if s.hasTS != c.groupHas {
			return p.strictErr(s.lineStart, "timestamps present on only some samples of a group")
		}
		if s.hasTS && s.tsSec < c.groupTS && p.fam.typ != TypeInfo {
			return p.strictErr(s.lineStart, "timestamp goes backwards within a group")
		}
	} else {
		if _, seen := c.groups[g]; seen {
			return p.strictErr(s.lineStart, "samples of a label group are not contiguous")
		}
		c.groups[g] = struct{}{}
	}
	c.hasGroup, c.group, c.groupTS, c.groupHas = true, g, s.tsSec, s.hasTS

	if p.fam.typ != TypeHistogram && p.fam.typ != TypeGaugeHistogram || p.role == RoleValue {
		return nil
	}
	h := &c.hist
	if h.active && (h.group != g || h.hasTS != s.hasTS || h.ts != s.tsSec) {
		if err := p.endHistGroup(); err != nil {
			return err
		}
	}
	if !h.active {
		*h = histState{active: true, group: g, ts: s.tsSec, hasTS: s.hasTS, sampleOffset: s.lineStart}
	}
	switch p.role {
	case RoleBucket:
		le, _ := p.labelValue(lblLe)
		b, _ := parseFloat(le)
		if b < 0 {
			h.negBuckets = true
		}
		if h.hasBucket && b <= h.bucket {
			return p.strictErr(s.lineStart, "histogram buckets out of order")
		}
		if s.value < h.value {
			return p.strictErr(s.lineStart, "histogram bucket values decrease")
		}
		h.hasBucket, h.bucket, h.value = true, b, s.value
	case RoleCount, RoleGCount:
		h.hasCount, h.count = true, s.value
	case RoleSum:
		h.hasSum = true
	case RoleGSum:
		h.hasGSum = true
		if s.value < 0 {
			h.negGSum = true
		}
	}
	return nil
}

// endHistGroup runs the checks that need a whole histogram group.
func (p *Parser) endHistGroup() error {
	h := &p.check.hist
	if !h.active {
		return nil
	}
	h.active = false
	at := h.sampleOffset
	switch {
	case !h.hasBucket || !math.IsInf(h.bucket, 1):
		return p.strictErr(at, "histogram group lacks its +Inf bucket")
	case h.hasCount && h.count != h.value:
		return p.strictErr(at, "histogram count differs from its +Inf bucket")
	case (h.hasSum || h.hasGSum) && !h.hasCount:
		return p.strictErr(at, "histogram has a sum but no count")
	case !(h.hasSum || h.hasGSum) && h.hasCount:
		return p.strictErr(at, "histogram has a count but no sum")
	case h.negBuckets && h.hasSum:
		return p.strictErr(at, "histogram with negative buckets has a _sum")
	case !h.negBuckets && h.negGSum:
		return p.strictErr(at, "negative _gsum without negative buckets")
	}
	return nil
}
