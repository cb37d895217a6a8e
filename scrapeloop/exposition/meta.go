package exposition

import (
	"bytes"
	"unicode/utf8"
	"unsafe"
)

type metaKind uint8

const (
	metaHelp metaKind = iota
	metaType
	metaUnit
)

var (
	kwHelp = []byte("HELP")
	kwType = []byte("TYPE")
	kwUnit = []byte("UNIT")
	kwEOF  = []byte("EOF")
)

// lineEnd returns the index of the newline ending the line at i, or
// len(data) when the last line has none.
func (p *Parser) lineEnd(i int) int {
	if j := bytes.IndexByte(p.data[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(p.data)
}

// textComment handles a text-format line starting with '#' at i: # HELP and
// # TYPE set metadata, anything else is a comment. As in Prometheus, a
// malformed HELP or TYPE line is an error, not a comment.
func (p *Parser) textComment(i int) bool {
	if p.textMetaFast(i) {
		return true
	}
	d := p.data
	end := p.lineEnd(i)
	p.pos = min(end+1, len(d))
	j := p.skipWS(i + 1)
	if j == i+1 {
		return p.plainComment(i, end) // "#text"
	}
	var kind metaKind
	switch {
	case bytes.HasPrefix(d[j:], kwHelp):
		kind = metaHelp
	case bytes.HasPrefix(d[j:], kwType):
		kind = metaType
	default:
		return p.plainComment(i, end)
	}
	k := p.skipWS(j + 4)
	if k == j+4 {
		return p.plainComment(i, end) // "# HELPER"
	}
	var ns, ne, after int
	switch {
	case k < len(d) && d[k] == '"':
		qend, _, ok := p.scanQuoted(k, true, false)
		if !ok {
			p.fail(p.errPos, p.errMsg)
			return false
		}
		ns, ne, after = k+1, qend-1, qend
		if after > end { // the quoted name spanned lines
			end = p.lineEnd(after)
			p.pos = min(end+1, len(d))
		}
	case k < len(d) && charClass[d[k]]&cMetricStart != 0:
		ns, ne = k, p.famNameAt(k)
		after = ne
	default:
		p.fail(k, "expected metric name after "+string(d[j:j+4]))
		return false
	}
	// The text is the rest of the line minus its first byte (the separator);
	// a rest of blanks only is empty text, as Prometheus' lexer has it.
	ts, te := after, end
	if p.skipWS(ts) >= te {
		ts = te
	} else {
		ts++
	}
	text := d[ts:te]
	if kind == metaType {
		typ, ok := textTypes(text)
		if !ok {
			p.fail(ts, "invalid metric type")
			return false
		}
		p.setMeta(kind, ns, ne, ts, te, typ)
		return true
	}
	if !utf8.Valid(text) {
		p.fail(ts, "help text is not valid UTF-8")
		return false
	}
	p.setMeta(kind, ns, ne, ts, te, TypeUnknown)
	return true
}

// Little-endian words of "# HELP " and "# TYPE " (seven bytes).
const (
	wordHelp = 0x20504c45482023
	wordType = 0x20455059542023
)

// textMetaFast takes the shape nearly every exporter writes, "# HELP name
// text" or "# TYPE name type" with single blanks, an unquoted name and a
// text that starts with a non-blank, in one pass over the line that finds
// its end and checks for non-ASCII bytes at once. It returns false, having
// changed nothing, for any other line, which textComment then parses.
func (p *Parser) textMetaFast(i int) bool {
	d := p.data
	base := unsafe.Pointer(unsafe.SliceData(d))
	if i+8 > len(d) {
		return false
	}
	var kind metaKind
	switch load64(base, i) & (1<<56 - 1) {
	case wordHelp:
		kind = metaHelp
	case wordType:
		kind = metaType
	default:
		return false
	}
	k := i + 7
	if charClass[byteAt(base, k)]&cMetricStart == 0 {
		return false
	}
	ne := p.famNameAt(k)
	ts := ne + 1
	if ts >= len(d) || d[ne] != ' ' || d[ts] == ' ' || d[ts] == '\t' || d[ts] == '\n' {
		return false
	}
	te, ascii := p.lineEndASCII(ts)
	text := d[ts:te]
	typ := TypeUnknown
	if kind == metaType {
		var ok bool
		if typ, ok = textTypes(text); !ok {
			return false // the general path reports it
		}
	} else if !ascii && !utf8.Valid(text) {
		return false
	}
	p.pos = min(te+1, len(d))
	p.setMeta(kind, k, ne, ts, te, typ)
	return true
}

// lineEndASCII returns the end of the line whose rest starts at i (the
// index of its newline, or len(data)) and whether the bytes up to it are
// all ASCII, scanning eight bytes at a time for a newline or a high bit.
func (p *Parser) lineEndASCII(i int) (int, bool) {
	d := p.data
	base := unsafe.Pointer(unsafe.SliceData(d))
	i, found := firstMarked(base, i, len(d), newlineOrHigh)
	if found && byteAt(base, i) == '\n' {
		return i, true
	}
	return p.lineEnd(i), false
}

// famNameAt returns the end of the unquoted metric name starting at k (a
// valid first byte). # TYPE usually follows # HELP of the same family: when
// the name repeats the current family's, one comparison replaces the scan.
func (p *Parser) famNameAt(k int) int {
	d := p.data
	// A quoted family name (the byte before it is the quote) may hold bytes
	// an unquoted name cannot, so it is never taken for one.
	if fs := p.fam.start; p.famOpen && (fs == 0 || d[fs-1] != '"') {
		n := p.fam.end - p.fam.start
		if e := k + n; e < len(d) && charClass[d[e]]&cMetric == 0 && string(d[k:e]) == string(d[p.fam.start:p.fam.end]) {
			return e
		}
	}
	return p.scanMetricName(k + 1)
}

// plainComment skips a text-format comment line. (Prometheus' generated
// lexer sometimes takes a NUL inside a comment for the end of the payload,
// depending on where it falls; this parser just skips the comment.)
func (p *Parser) plainComment(_, _ int) bool { return true }

func textTypes(b []byte) (MetricType, bool) {
	switch string(b) {
	case "counter":
		return TypeCounter, true
	case "gauge":
		return TypeGauge, true
	case "histogram":
		return TypeHistogram, true
	case "summary":
		return TypeSummary, true
	case "untyped":
		return TypeUnknown, true
	}
	return 0, false
}

func omTypes(b []byte) (MetricType, bool) {
	switch string(b) {
	case "counter":
		return TypeCounter, true
	case "gauge":
		return TypeGauge, true
	case "histogram":
		return TypeHistogram, true
	case "gaugehistogram":
		return TypeGaugeHistogram, true
	case "summary":
		return TypeSummary, true
	case "info":
		return TypeInfo, true
	case "stateset":
		return TypeStateset, true
	case "unknown":
		return TypeUnknown, true
	}
	return 0, false
}

// omComment handles an OpenMetrics line starting with '#' at p.pos: "# HELP",
// "# TYPE", "# UNIT" or "# EOF". OpenMetrics has no other comments.
func (p *Parser) omComment() bool {
	d := p.data
	i := p.pos
	if i+1 >= len(d) || d[i+1] != ' ' {
		p.fail(i, "expected '# HELP', '# TYPE', '# UNIT' or '# EOF'")
		return false
	}
	j := i + 2
	var kind metaKind
	switch {
	case bytes.HasPrefix(d[j:], kwHelp):
		kind = metaHelp
	case bytes.HasPrefix(d[j:], kwType):
		kind = metaType
	case bytes.HasPrefix(d[j:], kwUnit):
		kind = metaUnit
	case bytes.HasPrefix(d[j:], kwEOF):
		return p.omEOF(j + 3)
	default:
		p.fail(j, "expected HELP, TYPE, UNIT or EOF after '# '")
		return false
	}
	k := j + 4
	if k >= len(d) || d[k] != ' ' {
		p.fail(k, "expected ' ' after "+string(d[j:j+4]))
		return false
	}
	k++
	var ns, ne, after int
	switch {
	case k < len(d) && d[k] == '"':
		qend, _, ok := p.scanQuoted(k, true, false)
		if !ok {
			p.fail(p.errPos, p.errMsg)
			return false
		}
		ns, ne, after = k+1, qend-1, qend
	case k < len(d) && charClass[d[k]]&cMetricStart != 0:
		ns, ne = k, p.scanMetricName(k+1)
		after = ne
	default:
		p.fail(k, "expected metric name after "+string(d[j:j+4]))
		return false
	}
	if after >= len(d) || d[after] != ' ' {
		p.fail(after, "expected ' ' and text after metric name")
		return false
	}
	end := p.lineEnd(after)
	if end >= len(d) {
		p.fail(end, "data does not end with # EOF")
		return false
	}
	p.pos = end + 1
	ts, te := after+1, end
	typ, ok := p.omMetaText(kind, d[ns:ne], ts, te)
	if !ok {
		return false
	}
	if p.strict {
		if err := p.checkMeta(kind, i, ns, ne); err != nil {
			p.err = err
			return false
		}
	}
	p.setMeta(kind, ns, ne, ts, te, typ)
	return true
}

// omEOF checks that "# EOF" ending at k ends the payload, with or without a
// newline, and ends parsing.
func (p *Parser) omEOF(k int) bool {
	d := p.data
	if k < len(d) && d[k] == '\n' {
		k++
	}
	if k != len(d) {
		p.fail(k, "unexpected data after # EOF")
		return false
	}
	p.sawEOF = true
	p.pos = len(d)
	return true
}

// omMetaText checks the text d[ts:te] of an OpenMetrics metadata line of
// the given kind for the family name, and returns the type a TYPE line
// declares (TypeUnknown for the other kinds).
func (p *Parser) omMetaText(kind metaKind, name []byte, ts, te int) (MetricType, bool) {
	text := p.data[ts:te]
	switch kind {
	case metaType:
		typ, ok := omTypes(text)
		if !ok {
			p.fail(ts, "invalid metric type")
		}
		return typ, ok
	case metaHelp:
		if !utf8.Valid(text) {
			p.fail(ts, "help text is not valid UTF-8")
			return TypeUnknown, false
		}
	case metaUnit:
		if len(text) > 0 && (!bytes.HasSuffix(name, text) || len(name) < len(text)+1 || name[len(name)-len(text)-1] != '_') {
			p.fail(ts, "unit is not a suffix of the metric name")
			return TypeUnknown, false
		}
	}
	return TypeUnknown, true
}

// setMeta applies a metadata line: a name other than the current family's
// starts a new family.
func (p *Parser) setMeta(kind metaKind, ns, ne, ts, te int, typ MetricType) {
	d := p.data
	p.famGen++
	if !p.famOpen || !bytes.Equal(d[ns:ne], d[p.fam.start:p.fam.end]) {
		// Zeroed, then set: a literal with fields would be built on the
		// stack and copied (see span).
		p.fam = family{}
		p.fam.start, p.fam.end = ns, ne
		p.famOpen = true
		p.created = createdCache{}
	}
	switch kind {
	case metaType:
		p.fam.typ, p.fam.hasType = typ, true
	case metaHelp:
		p.fam.hasHelp = true
		p.fam.helpStart, p.fam.helpEnd = ts, te
		p.fam.helpFromText = p.format == FormatPrometheus
	case metaUnit:
		p.fam.hasUnit = true
		p.fam.unitStart, p.fam.unitEnd = ts, te
	}
}

var (
	sfxTotal   = []byte("_total")
	sfxCreated = []byte("_created")
	sfxBucket  = []byte("_bucket")
	sfxSum     = []byte("_sum")
	sfxCount   = []byte("_count")
	sfxGSum    = []byte("_gsum")
	sfxGCount  = []byte("_gcount")
	sfxInfo    = []byte("_info")
	lblQuant   = []byte("quantile")
	lblLe      = []byte("le")
)

// resolveFamily decides whether the current sample belongs to the current
// metadata family and with which role.
func (p *Parser) resolveFamily() {
	p.inFamily, p.role = false, RoleValue
	if !p.famOpen {
		return
	}
	name := p.Name()
	fam := p.data[p.fam.start:p.fam.end]
	if !bytes.HasPrefix(name, fam) {
		return
	}
	role, ok := roleFor(p.fam.typ, name[len(fam):], p.format == FormatOpenMetrics)
	if !ok {
		return
	}
	if role == RoleValue && p.fam.typ == TypeSummary && p.hasLabel(&p.cur, lblQuant) {
		role = RoleQuantile
	}
	p.inFamily, p.role = true, role
}

// roleFor maps a sample name's suffix (after the family name) to its role in
// a family of type t. _created belongs to a family only in OpenMetrics: in
// the text format it is a series of its own, as in Prometheus.
func roleFor(t MetricType, sfx []byte, om bool) (Role, bool) {
	if len(sfx) == 0 {
		switch t {
		case TypeCounter:
			return RoleTotal, true
		case TypeUnknown, TypeGauge, TypeSummary, TypeStateset:
			return RoleValue, true
		}
		return 0, false
	}
	if om && bytes.Equal(sfx, sfxCreated) {
		switch t {
		case TypeCounter, TypeHistogram, TypeSummary:
			return RoleCreated, true
		}
		return 0, false
	}
	switch t {
	case TypeCounter:
		if bytes.Equal(sfx, sfxTotal) {
			return RoleTotal, true
		}
	case TypeHistogram, TypeSummary:
		switch {
		case t == TypeHistogram && bytes.Equal(sfx, sfxBucket):
			return RoleBucket, true
		case bytes.Equal(sfx, sfxSum):
			return RoleSum, true
		case bytes.Equal(sfx, sfxCount):
			return RoleCount, true
		}
	case TypeGaugeHistogram:
		switch {
		case bytes.Equal(sfx, sfxBucket):
			return RoleBucket, true
		case bytes.Equal(sfx, sfxGSum):
			return RoleGSum, true
		case bytes.Equal(sfx, sfxGCount):
			return RoleGCount, true
		}
	case TypeInfo:
		if bytes.Equal(sfx, sfxInfo) {
			return RoleValue, true
		}
	}
	return 0, false
}

// hasLabel reports whether s has a label with the given (unquoted) name.
func (p *Parser) hasLabel(s *sample, name []byte) bool {
	for _, l := range s.labels {
		if bytes.Equal(p.lname(s, l), name) {
			return true
		}
	}
	return false
}
