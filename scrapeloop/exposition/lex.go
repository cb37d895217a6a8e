package exposition

// Tokens both formats share: character classes, blanks, names, quoted
// strings, and the per-line reset of a sample.

import (
	"unicode/utf8"
	"unsafe"
)

// Character classes of the exposition grammars.
const (
	cMetricStart = 1 << iota // [a-zA-Z_:]
	cMetric                  // [a-zA-Z0-9_:]
	cLabelStart              // [a-zA-Z_]
	cLabel                   // [a-zA-Z0-9_]
	cValueStop               // bytes that need a closer look inside a quoted string
)

var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		digit := c >= '0' && c <= '9'
		if letter || c == ':' {
			t[c] |= cMetricStart | cMetric
		}
		if digit {
			t[c] |= cMetric | cLabel
		}
		if letter {
			t[c] |= cLabelStart | cLabel
		}
		if c == '"' || c == '\\' || c == '\n' || c >= 0x80 {
			t[c] |= cValueStop
		}
	}
	return t
}()

// setErr records why a sample line failed; it always returns false so
// callers can write `return 0, p.setErr(...)`.
func (p *Parser) setErr(pos int, msg string) bool {
	p.errPos, p.errMsg = pos, msg
	return false
}

// skipWS skips spaces and tabs (text format only).
func (p *Parser) skipWS(i int) int {
	for i < len(p.data) && (p.data[i] == ' ' || p.data[i] == '\t') {
		i++
	}
	return i
}

// scanMetricName returns the end of the metric name whose rest starts at i.
func (p *Parser) scanMetricName(i int) int {
	d := p.data
	i, found := firstMarked(unsafe.Pointer(unsafe.SliceData(d)), i, len(d), notMetricBytes)
	if found {
		return i
	}
	for i < len(d) && charClass[d[i]]&cMetric != 0 {
		i++
	}
	return i
}

// scanLabelName returns the end of the label name whose rest starts at i.
func (p *Parser) scanLabelName(i int) int {
	d := p.data
	i, found := firstMarked(unsafe.Pointer(unsafe.SliceData(d)), i, len(d), notLabelBytes)
	if found {
		return i
	}
	for i < len(d) && charClass[d[i]]&cLabel != 0 {
		i++
	}
	return i
}

// metricName sets the unquoted metric name starting at i and returns its
// end. Samples of one family come in runs with the same name: when the name
// repeats the previous sample's, one memory comparison replaces validation
// and s.sameName lets family resolution be skipped too.
func (p *Parser) metricName(s *sample, i int) int {
	d := p.data
	ps := p.prevNameStart
	if n := p.prevNameEnd - ps; n > 0 && i+n < len(d) && charClass[d[i+n]]&cMetric == 0 && string(d[i:i+n]) == string(d[ps:ps+n]) {
		s.nameStart, s.nameEnd, s.sameName = i, i+n, true
		return i + n
	}
	// The first sample of a family usually repeats the name of its # TYPE.
	j := p.famNameAt(i)
	s.nameStart, s.nameEnd = i, j
	return j
}

// setQuotedName makes the quoted name at ns:ne, standing alone in the
// braces, the sample's metric name; a sample has only one.
func (p *Parser) setQuotedName(s *sample, ns, ne int, esc bool) bool {
	if s.nameStart >= 0 {
		return p.setErr(ns-1, "metric name already set")
	}
	s.nameStart, s.nameEnd, s.nameEsc = ns, ne, esc
	return true
}

// scanQuoted scans the quoted string opening at i and returns the index just
// past its closing quote and whether it holds escapes. A backslash escapes
// any byte but a newline; raw newlines are allowed only when newlineOK.
// checkUTF8 rejects invalid UTF-8 (label values).
//
// Plain ASCII runs are skipped eight bytes at a time (specialBytes); only
// quotes, backslashes, newlines and non-ASCII bytes are looked at one by one.
func (p *Parser) scanQuoted(i int, newlineOK, checkUTF8 bool) (end int, esc bool, ok bool) {
	d := p.data
	base := unsafe.Pointer(unsafe.SliceData(d))
	start := i
	i++
	ascii := true
	for {
		i, _ = firstMarked(base, i, len(d), specialBytes)
		if i >= len(d) {
			break
		}
		c := d[i]
		if charClass[c]&cValueStop == 0 {
			i++
			continue
		}
		switch {
		case c == '"':
			if checkUTF8 && !ascii && !utf8.Valid(d[start+1:i]) {
				return 0, false, p.setErr(start, "invalid UTF-8 in label value")
			}
			return i + 1, esc, true
		case c == '\\':
			if i+1 >= len(d) || d[i+1] == '\n' {
				return 0, false, p.setErr(i, "invalid escape in quoted string")
			}
			esc = true
			if d[i+1] >= 0x80 {
				ascii = false // the escaped byte still needs UTF-8 checking
			}
			i += 2
		case c == '\n':
			if !newlineOK {
				return 0, false, p.setErr(i, "newline in quoted string")
			}
			i++
		default: // >= 0x80
			ascii = false
			i++
		}
	}
	return 0, false, p.setErr(start, "unterminated quoted string")
}

// resetSample clears the per-line fields of s.
func resetSample(s *sample, i int) {
	s.labels = s.labels[:0]
	resetLine(s, i)
}

// resetLine clears the per-line fields of s except its labels.
func resetLine(s *sample, i int) {
	s.lineStart = i
	s.seriesStart = i
	s.nameStart, s.nameEnd = -1, -1
	s.nameEsc = false
	s.sameName = false
	s.reusable = false
	s.labelsOpen = 0
	s.exLabels = s.exLabels[:0]
	s.hasTS = false
	s.ts = 0
	s.trailingComma = false
	s.labelEsc = false
	s.exStart, s.exEnd = 0, 0
}
