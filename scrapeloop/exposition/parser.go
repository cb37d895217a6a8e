package exposition

import (
	"bytes"
	"math"
	"unsafe"
)

// Label is one label pair of a sample, unescaped.
type Label struct{ Name, Value []byte }

// span locates one label pair of a sample: the name (without quotes if
// quoted) and the value (without quotes), escapes unresolved, as offsets
// from the sample's seriesStart. Offsets, not slices: they hold no
// pointers, so storing them is cheap; relative, so that pairs carried over
// to the next line (reuse.go) stay valid as they are. end is where parsing
// stood after the pair, for prefix reuse (labelEnd).
//
// Spans are written field by field (appendSpan), never as a literal: Go
// builds a five-field literal on the stack and copies it with 16-byte
// loads, which store forwarding cannot serve from the 4-byte stores that
// built it; that stall cost about a fifth of the parse time.
type span struct {
	ns, ne, vs, ve int32
	end            uint32
}

// appendSpan appends to ls, field by field, the span of the pair at payload
// offsets ns, ne, vs, ve of a sample whose series starts at base.
func appendSpan(ls []span, base, ns, ne, vs, ve int, end uint32) []span {
	ls = append(ls, span{})
	l := &ls[len(ls)-1]
	l.ns, l.ne, l.vs, l.ve, l.end = int32(ns-base), int32(ne-base), int32(vs-base), int32(ve-base), end
	return ls
}

// lname and lvalue return the raw name and value of a pair of sample s.
func (p *Parser) lname(s *sample, l span) []byte {
	return p.data[s.seriesStart+int(l.ns) : s.seriesStart+int(l.ne)]
}

func (p *Parser) lvalue(s *sample, l span) []byte {
	return p.data[s.seriesStart+int(l.vs) : s.seriesStart+int(l.ve)]
}

// maxPayload is the largest payload span offsets can address.
const maxPayload = math.MaxInt32

// sample is one parsed sample line, as offsets into the payload.
type sample struct {
	lineStart          int
	seriesStart        int
	seriesEnd          int
	nameStart, nameEnd int
	nameEsc            bool
	labels             []span
	value              float64
	ts                 int64
	tsSec              float64 // OpenMetrics timestamp as written, in seconds
	hasTS              bool
	trailingComma      bool // OpenMetrics label set ends in ",}"
	labelEsc           bool // some label name or value has escapes
	// reuse of the previous line parsed into this sample (reuse.go)
	reusable bool // the series parsed completely
	// where the previous line parsed into this sample started and how many
	// pairs it had: its spans stay in labels' backing array past the
	// current ones, as hints for the label names (textLabels)
	prevStart, prevCount int
	labelsOpen           int  // offset after '{' directly following the name, or 0
	sameName             bool // unquoted name equal to the previous sample's
	// exemplar (OpenMetrics): span after "# ", labels, value, timestamp
	exStart, exEnd int
	exLabels       []span
	exValue        float64
	exTS           int64
	exHasTS        bool
}

// family is the metadata (# TYPE, # HELP, # UNIT) of the current family.
type family struct {
	start, end   int // family name in the payload (inside quotes if quoted)
	typ          MetricType
	hasType      bool
	hasHelp      bool
	hasUnit      bool
	helpStart    int
	helpEnd      int
	unitStart    int
	unitEnd      int
	helpFromText bool // text format help escapes (\\ and \n only)
}

// Parser is a streaming parser of one exposition payload. It is reusable:
// Reset it with the next payload and its internal buffers are kept. The zero
// value is ready for Reset.
type Parser struct {
	data   []byte
	pos    int
	format Format
	strict bool
	err    error
	done   bool
	sawEOF bool

	cur      sample
	peek     sample
	fam      family
	famOpen  bool
	inFamily bool
	role     Role

	// name of the previous sample (unquoted names only; offsets, not a
	// slice, to spare a pointer store per sample) and the family generation
	// it was resolved in, for the repeated-name fast path
	prevNameStart, prevNameEnd int
	prevFamGen                 uint32
	famGen                     uint32

	nameBuf  []byte // the current sample's name when escaped
	labelBuf []byte
	// unescaped pairs of the current sample when it has escapes (Label)
	escLabels []Label
	helpBuf   []byte

	created createdCache
	check   strictState

	// where and why the last sample line failed to parse; Next turns it
	// into p.err, the Created look-ahead just stops
	errPos int
	errMsg string
}

// Reset starts parsing data in format f. data must not change until the next
// Reset; the parser keeps references into it.
func (p *Parser) Reset(data []byte, f Format) {
	cur, peek := p.cur, p.peek
	// The unescaped pairs point into the old payload: drop them so a kept
	// Parser does not pin it.
	clear(p.escLabels[:cap(p.escLabels)])
	*p = Parser{
		data:      data,
		format:    f,
		strict:    p.strict,
		nameBuf:   p.nameBuf[:0],
		labelBuf:  p.labelBuf[:0],
		escLabels: p.escLabels[:0],
		helpBuf:   p.helpBuf[:0],
		check:     p.check.reset(),
	}
	p.cur.labels, p.cur.exLabels = cur.labels[:0], cur.exLabels[:0]
	p.peek.labels, p.peek.exLabels = peek.labels[:0], peek.exLabels[:0]
	if len(data) > maxPayload {
		p.err = &ParseError{Line: 1, Col: 1, Near: `""`, Msg: "payload larger than 2 GiB"}
	}
}

// SetStrict selects strict OpenMetrics validation (true) or the leniency of
// Prometheus' scraper (false, the default). It has no effect on the text
// format, which Prometheus parses leniently. Call it before Next.
func (p *Parser) SetStrict(strict bool) { p.strict = strict }

// Err returns nil after a clean end of input, else a *ParseError.
func (p *Parser) Err() error { return p.err }

// Next advances to the next sample. It returns false at the end of the input
// or on an error; Err tells which.
// One function: its steps run per sample and none inlines split out (after
// the sample cost 330, the text line start 95, budget 80: -gcflags=-m=2).
func (p *Parser) Next() bool {
	if p.err != nil || p.done {
		return false
	}
	om := p.format == FormatOpenMetrics
	for {
		if p.pos >= len(p.data) {
			p.end(om)
			return false
		}
		if om {
			switch p.data[p.pos] {
			case '#':
				if !p.omComment() {
					return false
				}
				if p.done {
					return false
				}
				continue
			case '\n':
				p.fail(p.pos, "unexpected blank line")
				return false
			}
			next, ok := p.omSample(&p.cur, p.pos)
			if !ok {
				p.fail(p.errPos, p.errMsg)
				return false
			}
			p.pos = next
		} else {
			// Whitespace may lead a line; blank lines are skipped and a NUL at
			// the start of a line ends the payload, as in Prometheus' lexer.
			i := p.pos
			if c := p.data[i]; c == ' ' || c == '\t' {
				i = p.skipWS(i)
			}
			if i >= len(p.data) {
				p.pos = i
				continue
			}
			switch p.data[i] {
			case '\n':
				p.pos = i + 1
				continue
			case 0:
				p.pos = len(p.data)
				continue
			case '#':
				if !p.textComment(i) {
					return false
				}
				continue
			}
			next, ok := p.textSample(&p.cur, i)
			if !ok {
				p.fail(p.errPos, p.errMsg)
				return false
			}
			p.pos = next
		}
		if !p.cur.sameName || p.prevFamGen != p.famGen || p.fam.typ == TypeSummary {
			p.resolveFamily()
		}
		if p.cur.nameStart != p.cur.seriesStart {
			p.prevNameStart, p.prevNameEnd = 0, 0 // quoted names do not take the fast path
		} else {
			p.prevNameStart, p.prevNameEnd = p.cur.nameStart, p.cur.nameEnd
		}
		p.prevFamGen = p.famGen
		// The rare escaped names and labels are resolved here, so that the
		// accessors stay small enough to inline.
		if p.cur.nameEsc {
			p.nameBuf = appendUnescaped(p.nameBuf[:0], p.data[p.cur.nameStart:p.cur.nameEnd], false)
		}
		if p.cur.labelEsc {
			p.unescapeLabels()
		}
		if p.strict && om {
			if err := p.checkSample(); err != nil {
				p.err = err
				return false
			}
		}
		return true
	}
}

// end finishes a payload parsed to its last byte: an OpenMetrics one must
// have ended with # EOF, and strict mode checks its last family.
func (p *Parser) end(om bool) {
	if om && !p.sawEOF {
		p.fail(p.pos, "data does not end with # EOF")
		return
	}
	if err := p.finishStrict(); err != nil {
		p.err = err
		return
	}
	p.done = true
}

// fail records a parse error at byte offset pos.
func (p *Parser) fail(pos int, msg string) {
	if p.err == nil {
		p.err = newParseError(p.data, pos, msg)
	}
}

// Series returns the raw bytes of the metric name and label set exactly as
// they appear in the input, without value or timestamp: the cache key.
func (p *Parser) Series() []byte { return p.data[p.cur.seriesStart:p.cur.seriesEnd] }

// Name returns the metric name, unquoted and unescaped.
func (p *Parser) Name() []byte {
	if p.cur.nameEsc {
		return p.nameBuf // unescaped by Next
	}
	return p.data[p.cur.nameStart:p.cur.nameEnd]
}

// Family returns the family name from # TYPE/HELP/UNIT when the sample
// belongs to that family, else the metric name.
func (p *Parser) Family() []byte {
	if p.inFamily {
		return p.data[p.fam.start:p.fam.end]
	}
	return p.Name()
}

// Type returns the family type, TypeUnknown when the sample has none.
func (p *Parser) Type() MetricType {
	if p.inFamily {
		return p.fam.typ
	}
	return TypeUnknown
}

// Role returns what the sample is within its family.
func (p *Parser) Role() Role { return p.role }

// Unit returns the family's # UNIT (OpenMetrics), or nil.
func (p *Parser) Unit() []byte {
	if p.inFamily && p.fam.hasUnit {
		return p.data[p.fam.unitStart:p.fam.unitEnd]
	}
	return nil
}

// Help returns the family's # HELP text, unescaped, or nil. The bytes are
// valid until the next family starts or Reset.
func (p *Parser) Help() []byte {
	if !p.inFamily || !p.fam.hasHelp {
		return nil
	}
	raw := p.data[p.fam.helpStart:p.fam.helpEnd]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	p.helpBuf = appendUnescaped(p.helpBuf[:0], raw, p.fam.helpFromText)
	return p.helpBuf
}

// Labels appends the sample's label pairs (the metric name excluded) to dst,
// unescaped, in input order. Escaped bytes live in a buffer that stays valid
// until the next Next or Reset; unescaped ones point into the payload, with
// capacity equal to length so that appending to them copies.
func (p *Parser) Labels(dst []Label) []Label {
	for k := range len(p.cur.labels) {
		name, value := p.Label(k)
		dst = append(dst, Label{Name: name, Value: value})
	}
	return dst
}

// Label returns the k-th label pair of the sample (0 <= k < NumLabels),
// unescaped, with the lifetime rules of Labels. It is inlined and stores
// nothing: the two slices come back in registers (a Label struct, six
// words, would go through memory), which is what a caller that walks the
// pairs once (hashing, relabeling, building a label set) wants.
func (p *Parser) Label(k int) (name, value []byte) {
	if p.cur.labelEsc {
		e := &p.escLabels[k]
		return e.Name, e.Value
	}
	// The span was checked against the payload when parsed: slice it
	// without bounds checks, capped at its length.
	l := &p.cur.labels[k]
	base := unsafe.Add(unsafe.Pointer(unsafe.SliceData(p.data)), p.cur.seriesStart)
	return unsafe.Slice((*byte)(unsafe.Add(base, l.ns)), uint32(l.ne-l.ns)),
		unsafe.Slice((*byte)(unsafe.Add(base, l.vs)), uint32(l.ve-l.vs))
}

// LabelText returns the sample's label pairs as the payload writes them,
// `a="1",b="2"`, when they are compact: unquoted names, no escapes, no
// blanks, one comma between pairs (a trailing one is not part of the
// text). Otherwise, and for a sample without labels, it returns nil. A caller that copies every
// pair can then copy them with one move (pair k starts where pair k-1
// ended, plus a comma).
func (p *Parser) LabelText() []byte {
	s := &p.cur
	if len(s.labels) == 0 || s.labelEsc {
		return nil
	}
	prev := int32(0)
	for k := range s.labels {
		l := &s.labels[k]
		if l.vs != l.ne+2 || (k > 0 && l.ns != prev+2) {
			return nil
		}
		prev = l.ve
	}
	return p.data[s.seriesStart+int(s.labels[0].ns) : s.seriesStart+int(prev)+1]
}

// unescapeLabels resolves the escapes of the current sample's label pairs
// into labelBuf (sized up front, so no slice moves) and escLabels. Next
// calls it for the few samples with escapes, which keeps Label inlinable.
func (p *Parser) unescapeLabels() {
	s := &p.cur
	d := p.data[s.seriesStart:]
	need := 0
	for _, l := range s.labels {
		need += int(l.ne-l.ns) + int(l.ve-l.vs)
	}
	if cap(p.labelBuf) < need {
		p.labelBuf = make([]byte, 0, 2*need)
	}
	buf := p.labelBuf[:0]
	out := p.escLabels[:0]
	for _, l := range s.labels {
		e := Label{Name: d[l.ns:l.ne:l.ne], Value: d[l.vs:l.ve:l.ve]}
		if bytes.IndexByte(e.Name, '\\') >= 0 {
			m := len(buf)
			buf = appendUnescaped(buf, e.Name, false)
			e.Name = buf[m:len(buf):len(buf)]
		}
		if bytes.IndexByte(e.Value, '\\') >= 0 {
			m := len(buf)
			buf = appendUnescaped(buf, e.Value, false)
			e.Value = buf[m:len(buf):len(buf)]
		}
		out = append(out, e)
	}
	p.labelBuf, p.escLabels = buf, out
}

// NumLabels returns how many label pairs the sample has, without unescaping.
func (p *Parser) NumLabels() int { return len(p.cur.labels) }

// Value returns the sample value. NaNs are Prometheus' canonical NaN.
func (p *Parser) Value() float64 { return p.cur.value }

// Timestamp returns the sample timestamp in milliseconds, if present.
// OpenMetrics timestamps (seconds) are converted as Prometheus does.
func (p *Parser) Timestamp() (ms int64, ok bool) { return p.cur.ts, p.cur.hasTS }

// Exemplar returns the raw exemplar of the sample (OpenMetrics, after "# "),
// or nil. It is validated but not decoded.
func (p *Parser) Exemplar() []byte {
	if p.cur.exEnd > p.cur.exStart {
		return p.data[p.cur.exStart:p.cur.exEnd]
	}
	return nil
}

// appendUnescaped appends s with its escapes resolved: \\ and \n, plus \"
// unless helpText (the text format's HELP has no \" escape). Any other
// backslash is kept, as Prometheus does.
func appendUnescaped(dst, s []byte, helpText bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			dst = append(dst, c)
			continue
		}
		switch s[i+1] {
		case '\\':
			dst = append(dst, '\\')
			i++
		case 'n':
			dst = append(dst, '\n')
			i++
		case '"':
			if helpText {
				dst = append(dst, '\\')
				continue
			}
			dst = append(dst, '"')
			i++
		default:
			dst = append(dst, '\\')
		}
	}
	return dst
}
