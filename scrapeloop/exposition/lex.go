package exposition

import (
	"bytes"
	"encoding/binary"
	"math/bits"
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
	for i+8 <= len(d) {
		if m := notMetricBytes(binary.LittleEndian.Uint64(d[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(d) && charClass[d[i]]&cMetric != 0 {
		i++
	}
	return i
}

// scanLabelName returns the end of the label name whose rest starts at i.
func (p *Parser) scanLabelName(i int) int {
	d := p.data
	for i+8 <= len(d) {
		if m := notLabelBytes(binary.LittleEndian.Uint64(d[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(d) && charClass[d[i]]&cLabel != 0 {
		i++
	}
	return i
}

// The SWAR classifiers below mark bytes in their high bit, eight bytes of a
// little-endian word at a time. A range test (x+0x80-lo) &^ (x+0x7f-hi) is
// exact per byte for bytes below 0x80 (no carry crosses bytes), so the high
// bit is cleared first and non-ASCII bytes are marked separately.

// notLabelBytes marks the bytes that cannot continue a label name
// ([a-zA-Z0-9_]).
func notLabelBytes(x uint64) uint64 {
	x7 := x &^ swarHi
	y := x7 | swarLo*0x20 // folds A-Z onto a-z and nothing else onto a-z
	ok := (y + swarLo*(0x80-'a')) &^ (y + swarLo*(0x7f-'z'))
	ok |= (x7 + swarLo*(0x80-'0')) &^ (x7 + swarLo*(0x7f-'9'))
	ok |= (x7 + swarLo*(0x80-'_')) &^ (x7 + swarLo*(0x7f-'_'))
	return (^ok | x) & swarHi
}

// notMetricBytes marks the bytes that cannot continue a metric name
// ([a-zA-Z0-9_:]).
func notMetricBytes(x uint64) uint64 {
	x7 := x &^ swarHi
	y := x7 | swarLo*0x20
	ok := (y + swarLo*(0x80-'a')) &^ (y + swarLo*(0x7f-'z'))
	ok |= (x7 + swarLo*(0x80-'0')) &^ (x7 + swarLo*(0x7f-':'))
	ok |= (x7 + swarLo*(0x80-'_')) &^ (x7 + swarLo*(0x7f-'_'))
	return (^ok | x) & swarHi
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

// scanQuoted scans the quoted string opening at i and returns the index just
// past its closing quote and whether it holds escapes. A backslash escapes
// any byte but a newline; raw newlines are allowed only when newlineOK.
// checkUTF8 rejects invalid UTF-8 (label values).
//
// Plain ASCII runs are skipped eight bytes at a time (specialBytes); only
// quotes, backslashes, newlines and non-ASCII bytes are looked at one by one.
func (p *Parser) scanQuoted(i int, newlineOK, checkUTF8 bool) (end int, esc bool, ok bool) {
	d := p.data
	start := i
	i++
	ascii := true
	for {
		for i+8 <= len(d) {
			m := specialBytes(binary.LittleEndian.Uint64(d[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
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

// plainQuoted reports whether data[i:end] holds no backslash and no
// non-ASCII byte. It accumulates marks over whole words and tests once:
// the lowest mark of a word is exact and a spurious mark needs a true one
// below it, so the total is non-zero exactly when such a byte is there.
func plainQuoted(base unsafe.Pointer, i, end int) bool {
	var acc uint64
	for ; i+8 <= end; i += 8 {
		w := load64(base, i)
		b := w ^ swarLo*'\\'
		acc |= (b-swarLo)&^b | w
	}
	for ; i < end; i++ {
		c := byteAt(base, i)
		if c == '\\' {
			return false
		}
		acc |= uint64(c)
	}
	return acc&swarHi == 0
}

// quoteStop marks the bytes of x that end a plain run inside a text-format
// quoted string, where raw newlines are allowed: a quote, a backslash or a
// non-ASCII byte. As with specialBytes only the lowest mark is exact.
func quoteStop(x uint64) uint64 {
	q := x ^ (swarLo * '"')
	b := x ^ (swarLo * '\\')
	return ((q-swarLo)&^q | (b-swarLo)&^b | x) & swarHi
}

// notDigits marks the bytes of x that are not 0-9 (x holds digits with
// '0' xored out); every mark is exact.
func notDigits(x uint64) uint64 {
	return ((x &^ swarHi) + swarLo*(0x80-10) | x) & swarHi
}

// swarDigits returns the number written by the k (1 to 8) leading decimal
// digits of x, most significant first (x holds digits with '0' xored out):
// shifted to the top, the digits are combined pairwise, then in fours,
// then in eights, three multiplications in all.
func swarDigits(x uint64, k int) uint64 {
	x <<= 64 - 8*uint(k) // the bytes below become leading zeros
	x = (x & 0x0f0f0f0f0f0f0f0f) * (10<<8 + 1) >> 8
	x = (x & 0x00ff00ff00ff00ff) * (100<<16 + 1) >> 16
	return (x & 0x0000ffff0000ffff) * (10000<<32 + 1) >> 32
}

// SWAR constants: one in every byte, and every byte's high bit.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// specialBytes marks (in the byte's high bit) the bytes of x that are a
// quote, a backslash, a newline or non-ASCII. The lowest mark is exact;
// marks above a true one may be spurious, which is all scanQuoted needs.
func specialBytes(x uint64) uint64 {
	q := x ^ (swarLo * '"')
	b := x ^ (swarLo * '\\')
	n := x ^ (swarLo * '\n')
	zero := (q - swarLo) &^ q
	zero |= (b - swarLo) &^ b
	zero |= (n - swarLo) &^ n
	return (zero | x) & swarHi
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

// textSample parses one text-format sample line whose first non-blank byte
// is at i, and returns the start of the next line. It follows Prometheus'
// text lexer: blanks may separate every token, label pairs may omit the
// comma, and the value may follow the name without a blank.
func (p *Parser) textSample(s *sample, i int) (int, bool) {
	d := p.data
	var ok bool
	s.prevStart, s.prevCount = s.seriesStart, len(s.labels)
	if resume, reused := p.reusePrefix(s, i); reused {
		if i, ok = p.textLabels(s, resume); !ok {
			return 0, false
		}
		s.seriesEnd = i
		return p.textValue(s, i)
	}
	resetSample(s, i)
	switch {
	case charClass[d[i]]&cMetricStart != 0:
		j := p.metricName(s, i)
		s.seriesEnd = j
		i = j
		if i < len(d) && (d[i] == ' ' || d[i] == '\t') {
			i = p.skipWS(i)
		}
		if i < len(d) && d[i] == '{' {
			if i == j {
				s.labelsOpen = i + 1 - s.seriesStart
			}
			if i, ok = p.textLabels(s, i+1); !ok {
				return 0, false
			}
			s.seriesEnd = i
		}
	case d[i] == '{':
		if i, ok = p.textLabels(s, i+1); !ok {
			return 0, false
		}
		s.seriesEnd = i
		if s.nameStart < 0 {
			return 0, p.setErr(s.seriesStart, "metric name not set")
		}
	default:
		return 0, p.setErr(i, "expected metric name or '{'")
	}
	return p.textValue(s, i)
}

// textValue parses the value, optional timestamp and end of a text line
// from just after the series, and returns the start of the next line.
func (p *Parser) textValue(s *sample, i int) (int, bool) {
	d := p.data
	s.reusable = true // the series parsed; a failure below is in the value
	if i+9 <= len(d) && d[i] == ' ' {
		// " 42\n": a blank and an integer of one to seven digits ending
		// the line is the value of most samples (0 and 1 above all). One
		// word holds it; the digits are counted and converted without a
		// loop, so the next line's position is known after a few
		// instructions whatever the length.
		w := load64(unsafe.Pointer(unsafe.SliceData(d)), i+1)
		x := w ^ swarLo*'0' // digits become 0-9
		k := bits.TrailingZeros64(notDigits(x)) >> 3
		if k >= 1 && k <= 7 && byte(w>>(8*k)) == '\n' {
			s.value = float64(swarDigits(x, k))
			return i + k + 2, true
		}
	}
	if i < len(d) && d[i] == ' ' {
		i++
	}
	if i < len(d) && (d[i] == ' ' || d[i] == '\t') {
		i = p.skipWS(i)
	}
	v, j, ok := parseFloatFast(d, i)
	if ok && j < len(d) && d[j] != ' ' && d[j] != '\t' && d[j] != '\n' && d[j] != '{' {
		ok = false // the value token goes on: let the general parser judge it
	}
	if !ok {
		j = i
		for j < len(d) {
			c := d[j]
			if c == ' ' || c == '\t' || c == '\n' || c == '{' {
				break
			}
			j++
		}
		if j == i {
			return 0, p.setErr(i, "expected value after metric")
		}
		if v, ok = parseFloat(d[i:j]); !ok {
			return 0, p.setErr(i, "invalid value")
		}
	}
	s.value = v
	if j < len(d) && d[j] == '\n' {
		return j + 1, true
	}
	i = p.skipWS(j)
	if i >= len(d) {
		return i, true
	}
	if d[i] == '\n' {
		return i + 1, true
	}
	// Digits are scanned and converted in one loop; past 18 of them the
	// general conversion checks for overflow.
	var ts int64
	j = i
	for j < len(d) && j-i < 18 && d[j]-'0' <= 9 {
		ts = ts*10 + int64(d[j]-'0')
		j++
	}
	if j == i {
		return 0, p.setErr(i, "expected timestamp or end of line")
	}
	if j < len(d) && d[j]-'0' <= 9 {
		for j < len(d) && d[j]-'0' <= 9 {
			j++
		}
		if ts, ok = parseTextTimestamp(d[i:j]); !ok {
			return 0, p.setErr(i, "invalid timestamp")
		}
	}
	s.ts = ts
	s.hasTS = true
	i = p.skipWS(j)
	if i >= len(d) {
		return i, true
	}
	if d[i] != '\n' {
		return 0, p.setErr(i, "expected end of line after timestamp")
	}
	return i + 1, true
}

// textLabels parses a text-format label set from just after '{' and returns
// the index just past '}'. The common shape, name="value" pairs of plain
// ASCII separated by commas without blanks, takes this straight path, which
// reads the payload a word at a time without bounds checks (every load is
// checked against its length first); anything else, or the last bytes of
// the payload, hand over to textLabelsGeneral at the start of that pair.
func (p *Parser) textLabels(s *sample, i int) (int, bool) {
	d := p.data
	n := len(d)
	base := unsafe.Pointer(unsafe.SliceData(d))
	ss := s.seriesStart
	ls := s.labels
pairs:
	for i+8 <= n {
		if charClass[byteAt(base, i)]&cLabelStart == 0 {
			break
		}
		ns := i
		j := -1
		k := len(ls)
		if k < s.prevCount {
			// Label names repeat from line to line, pair by pair: the same
			// bytes as the previous line's name at this index (and '="'
			// after them) were validated then and need no scanning now.
			h := &ls[:k+1][k]
			if hn := int(h.ne - h.ns); i+hn+10 <= n && equalAt(base, i, s.prevStart+int(h.ns), hn+2) {
				j = i + hn
			}
		}
		if j < 0 {
			j = i + 1
			for {
				if j+8 > n {
					break pairs
				}
				if m := notLabelBytes(load64(base, j)); m != 0 {
					j += bits.TrailingZeros64(m) >> 3
					break
				}
				j += 8
			}
		}
		if j+2 > n || load16(base, j) != '"'<<8|'=' {
			break
		}
		vs := j + 2
		e := vs
		for {
			if e+8 > n {
				break pairs
			}
			if m := quoteStop(load64(base, e)); m != 0 {
				e += bits.TrailingZeros64(m) >> 3
				break
			}
			e += 8
			if e-vs == 32 {
				// A long value (ids, paths, images): find the closing
				// quote with IndexByte, which reads 16 or 32 bytes per
				// step, then check the bytes before it for a backslash or
				// a non-ASCII byte in one pass without early exits.
				q := bytes.IndexByte(d[e:], '"')
				if q < 0 || !plainQuoted(base, e, e+q) {
					break pairs
				}
				e += q
				break
			}
		}
		if byteAt(base, e) != '"' || e+1 >= n {
			break // an escape or a non-ASCII byte: the general path checks it
		}
		var end uint32
		switch byteAt(base, e+1) {
		case ',':
			end = labelEnd(e+2-ss, false)
		case '}':
			end = labelEnd(e+1-ss, true)
		default:
			break pairs
		}
		// Append in place: s.labels is written back only when it grows, so
		// the common case stores no slice header (and no pointer).
		if k == cap(ls) {
			ls = append(ls, span{})[:k]
			s.labels = ls
		}
		ls = ls[:k+1]
		l := &ls[k] // field by field: see appendSpan
		l.ns, l.ne, l.vs, l.ve, l.end = int32(ns-ss), int32(j-ss), int32(vs-ss), int32(e-ss), end
		i = e + 2
		if end&1 != 0 {
			s.labels = s.labels[:k+1]
			return i, true
		}
	}
	s.labels = s.labels[:len(ls)]
	return p.textLabelsGeneral(s, i)
}

// textLabelsGeneral parses the rest of a text-format label set from i, in
// every shape Prometheus' text lexer accepts: blanks between tokens, pairs
// without commas, quoted label names and the quoted metric name, escapes.
func (p *Parser) textLabelsGeneral(s *sample, i int) (int, bool) {
	d := p.data
	for {
		if i >= len(d) {
			return 0, p.setErr(i, "unexpected end of input in label set")
		}
		c := d[i]
		if charClass[c]&cLabelStart != 0 {
			ns := i
			i++
			for {
				if i+8 > len(d) {
					i = p.scanLabelName(i)
					break
				}
				if m := notLabelBytes(binary.LittleEndian.Uint64(d[i:])); m != 0 {
					i += bits.TrailingZeros64(m) >> 3
					break
				}
				i += 8
			}
			ne := i
			if i+1 < len(d) && d[i] == '=' && d[i+1] == '"' {
				i++
			} else {
				i = p.skipWS(i)
				if i >= len(d) || d[i] != '=' {
					return 0, p.setErr(i, "expected '=' after label name")
				}
				i = p.skipWS(i + 1)
				if i >= len(d) || d[i] != '"' {
					return 0, p.setErr(i, "expected quoted label value")
				}
			}
			// Plain ASCII values without escapes end at the first quote.
			end := i + 1
			for {
				if end+8 > len(d) {
					end = -1
					break
				}
				if m := quoteStop(binary.LittleEndian.Uint64(d[end:])); m != 0 {
					end += bits.TrailingZeros64(m) >> 3
					break
				}
				end += 8
			}
			if end >= 0 && d[end] == '"' {
				end++
			} else {
				var esc, ok bool
				if end, esc, ok = p.scanQuoted(i, true, true); !ok {
					return 0, false
				}
				s.labelEsc = s.labelEsc || esc
			}
			vs, ve := i+1, end-1
			i = end
			if i < len(d) {
				switch d[i] {
				case ',':
					i++
					s.labels = appendSpan(s.labels, s.seriesStart, ns, ne, vs, ve, labelEnd(i-s.seriesStart, false))
					continue
				case '}':
					s.labels = appendSpan(s.labels, s.seriesStart, ns, ne, vs, ve, labelEnd(i-s.seriesStart, true))
					return i + 1, true
				}
			}
			i = p.skipWS(i)
			peeked := i < len(d)
			if peeked && d[i] == ',' {
				i, peeked = i+1, false
			}
			s.labels = appendSpan(s.labels, s.seriesStart, ns, ne, vs, ve, labelEnd(i-s.seriesStart, peeked))
			continue
		}
		switch c {
		case '}':
			return i + 1, true
		case ' ', '\t':
			i = p.skipWS(i)
			continue
		case '"':
		default:
			return 0, p.setErr(i, "expected label name")
		}
		// A quoted label name, or alone the metric name (Prometheus 3).
		end, esc, ok := p.scanQuoted(i, true, false)
		if !ok {
			return 0, false
		}
		ns, ne, nameEsc := i+1, end-1, esc
		i = p.skipWS(end)
		if i < len(d) && (d[i] == ',' || d[i] == '}') {
			if s.nameStart >= 0 {
				return 0, p.setErr(ns-1, "metric name already set")
			}
			s.nameStart, s.nameEnd, s.nameEsc = ns, ne, nameEsc
			if d[i] == '}' {
				return i + 1, true
			}
			i++
			continue
		}
		if i >= len(d) || d[i] != '=' {
			return 0, p.setErr(i, "expected '=' after label name")
		}
		i = p.skipWS(i + 1)
		if i >= len(d) || d[i] != '"' {
			return 0, p.setErr(i, "expected quoted label value")
		}
		end, esc, ok = p.scanQuoted(i, true, true)
		if !ok {
			return 0, false
		}
		s.labelEsc = s.labelEsc || nameEsc || esc
		vs, ve := i+1, end-1
		i = p.skipWS(end)
		peeked := i < len(d)
		if peeked && d[i] == ',' {
			i, peeked = i+1, false
		}
		s.labels = appendSpan(s.labels, s.seriesStart, ns, ne, vs, ve, labelEnd(i-s.seriesStart, peeked))
	}
}

// omSample parses one OpenMetrics sample line starting at i and returns the
// start of the next line. Tokens are separated by exactly one space.
func (p *Parser) omSample(s *sample, i int) (int, bool) {
	d := p.data
	var ok bool
	if resume, reused := p.reusePrefix(s, i); reused {
		if i, ok = p.omLabels(s, resume, false); !ok {
			return 0, false
		}
		return p.omValue(s, i)
	}
	resetSample(s, i)
	switch {
	case charClass[d[i]]&cMetricStart != 0:
		i = p.metricName(s, i)
		if i < len(d) && d[i] == '{' {
			s.labelsOpen = i + 1 - s.seriesStart
			if i, ok = p.omLabels(s, i+1, false); !ok {
				return 0, false
			}
		}
	case d[i] == '{':
		if i, ok = p.omLabels(s, i+1, false); !ok {
			return 0, false
		}
		if s.nameStart < 0 {
			return 0, p.setErr(s.seriesStart, "metric name not set")
		}
	default:
		return 0, p.setErr(i, "expected metric name or '{'")
	}
	return p.omValue(s, i)
}

// omValue parses the value, optional timestamp and exemplar and end of an
// OpenMetrics line from just after the series (at i), and returns the start
// of the next line.
func (p *Parser) omValue(s *sample, i int) (int, bool) {
	d := p.data
	s.seriesEnd = i
	s.reusable = true // the series parsed; a failure below is in the rest
	j, ok := p.omToken(i)
	if !ok {
		return 0, p.setErr(i, "expected ' ' and value after metric")
	}
	if s.value, ok = parseFloat(d[i+1 : j]); !ok {
		return 0, p.setErr(i+1, "invalid value")
	}
	i = j
	if i >= len(d) {
		return 0, p.setErr(i, "data does not end with # EOF")
	}
	if d[i] == '\n' {
		return i + 1, true
	}
	if !p.isExemplarStart(i) {
		if j, ok = p.omToken(i); !ok {
			return 0, p.setErr(i, "expected timestamp, exemplar or end of line")
		}
		if s.ts, s.tsSec, ok = omSecondsToMillis(d[i+1 : j]); !ok {
			return 0, p.setErr(i+1, "invalid timestamp")
		}
		s.hasTS = true
		i = j
		if i >= len(d) {
			return 0, p.setErr(i, "data does not end with # EOF")
		}
		if d[i] == '\n' {
			return i + 1, true
		}
		if !p.isExemplarStart(i) {
			return 0, p.setErr(i, "expected exemplar or end of line after timestamp")
		}
	}
	return p.omExemplar(s, i)
}

// omToken expects " token" at i (token: one or more bytes other than space
// and newline) and returns the index past the token.
func (p *Parser) omToken(i int) (int, bool) {
	d := p.data
	if i >= len(d) || d[i] != ' ' {
		return 0, false
	}
	j := i + 1
	for j < len(d) && d[j] != ' ' && d[j] != '\n' {
		j++
	}
	return j, j > i+1
}

func (p *Parser) isExemplarStart(i int) bool {
	d := p.data
	return i+3 < len(d) && d[i] == ' ' && d[i+1] == '#' && d[i+2] == ' ' && d[i+3] == '{'
}

// omExemplar parses " # {labels} value [timestamp]\n" at i.
func (p *Parser) omExemplar(s *sample, i int) (int, bool) {
	d := p.data
	s.exStart = i + 3
	i, ok := p.omLabels(s, i+4, true)
	if !ok {
		return 0, false
	}
	j, ok := p.omToken(i)
	if !ok {
		return 0, p.setErr(i, "expected exemplar value")
	}
	if s.exValue, ok = parseFloat(d[i+1 : j]); !ok {
		return 0, p.setErr(i+1, "invalid exemplar value")
	}
	i = j
	s.exHasTS = false
	if i < len(d) && d[i] == ' ' {
		if j, ok = p.omToken(i); !ok {
			return 0, p.setErr(i, "expected exemplar timestamp")
		}
		if s.exTS, _, ok = omSecondsToMillis(d[i+1 : j]); !ok {
			return 0, p.setErr(i+1, "invalid exemplar timestamp")
		}
		s.exHasTS = true
		i = j
	}
	if i >= len(d) {
		return 0, p.setErr(i, "data does not end with # EOF")
	}
	if d[i] != '\n' {
		return 0, p.setErr(i, "expected end of line after exemplar")
	}
	s.exEnd = i
	return i + 1, true
}

// omLabels parses an OpenMetrics label set from just after '{' and returns
// the index just past '}'. Exemplar labels go to s.exLabels and may not carry
// a metric name.
func (p *Parser) omLabels(s *sample, i int, exemplar bool) (int, bool) {
	d := p.data
	for {
		if i >= len(d) {
			return 0, p.setErr(i, "unexpected end of input in label set")
		}
		var ns, ne int
		nameEsc, quoted := false, false
		switch c := d[i]; {
		case c == '}':
			if d[i-1] == ',' {
				s.trailingComma = true
			}
			return i + 1, true
		case charClass[c]&cLabelStart != 0:
			ns = i
			i = p.scanLabelName(i + 1)
			ne = i
		case c == '"':
			end, esc, ok := p.scanQuoted(i, true, false)
			if !ok {
				return 0, false
			}
			ns, ne, nameEsc = i+1, end-1, esc
			quoted = true
			i = end
		default:
			return 0, p.setErr(i, "expected label name")
		}
		if quoted && i < len(d) && (d[i] == ',' || d[i] == '}') {
			if exemplar {
				return 0, p.setErr(ns-1, "metric name in exemplar")
			}
			if s.nameStart >= 0 {
				return 0, p.setErr(ns-1, "metric name already set")
			}
			s.nameStart, s.nameEnd, s.nameEsc = ns, ne, nameEsc
			if d[i] == '}' {
				return i + 1, true
			}
			i++
			continue
		}
		if i >= len(d) || d[i] != '=' {
			return 0, p.setErr(i, "expected '=' after label name")
		}
		i++
		if i >= len(d) || d[i] != '"' {
			return 0, p.setErr(i, "expected quoted label value")
		}
		end, esc, ok := p.scanQuoted(i, false, true)
		if !ok {
			return 0, false
		}
		vs, ve := i+1, end-1
		i = end
		if i >= len(d) {
			return 0, p.setErr(i, "unexpected end of input in label set")
		}
		var le uint32
		closing := false
		switch d[i] {
		case ',':
			i++
			le = labelEnd(i-s.seriesStart, false)
		case '}':
			closing = true
			le = labelEnd(i-s.seriesStart, true)
		default:
			return 0, p.setErr(i, "expected ',' or '}' after label value")
		}
		if exemplar {
			s.exLabels = appendSpan(s.exLabels, s.seriesStart, ns, ne, vs, ve, le)
		} else {
			s.labelEsc = s.labelEsc || nameEsc || esc
			s.labels = appendSpan(s.labels, s.seriesStart, ns, ne, vs, ve, le)
		}
		if closing {
			return i + 1, true
		}
	}
}
