package exposition

// Text format (0.0.4) sample lines.

import (
	"bytes"
	"math/bits"
	"unsafe"
)

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
		if v, j, ok = p.textValueToken(i); !ok {
			return 0, false
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

// textValueToken parses the value token at i that parseFloatFast leaves to
// the general parser (Inf, NaN, long mantissas, a token that goes on), and
// returns it with the index past the token: up to a blank, newline or '{'.
func (p *Parser) textValueToken(i int) (float64, int, bool) {
	d := p.data
	j := i
	for j < len(d) {
		c := d[j]
		if c == ' ' || c == '\t' || c == '\n' || c == '{' {
			break
		}
		j++
	}
	if j == i {
		return 0, 0, p.setErr(i, "expected value after metric")
	}
	v, ok := parseFloat(d[i:j])
	if !ok {
		return 0, 0, p.setErr(i, "invalid value")
	}
	return v, j, true
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
			var found bool
			if j, found = firstMarked(base, i+1, n, notLabelBytes); !found {
				break pairs
			}
		}
		if j+2 > n || load16(base, j) != '"'<<8|'=' {
			break
		}
		vs := j + 2
		// Four words at most: a longer value (ids, paths, images) finds its
		// closing quote with IndexByte, which reads 16 or 32 bytes per step,
		// then checks the bytes before it for a backslash or a non-ASCII
		// byte in one pass without early exits.
		e, found := firstMarked(base, vs, min(n, vs+32), quoteStop)
		if !found {
			if e != vs+32 {
				break pairs // fewer than eight bytes left
			}
			q := bytes.IndexByte(d[e:], '"')
			if q < 0 || !plainQuoted(base, e, e+q) {
				break pairs
			}
			e += q
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
	base := unsafe.Pointer(unsafe.SliceData(d))
	for {
		if i >= len(d) {
			return 0, p.setErr(i, "unexpected end of input in label set")
		}
		c := d[i]
		if charClass[c]&cLabelStart != 0 {
			ns := i
			var found bool
			if i, found = firstMarked(base, i+1, len(d), notLabelBytes); !found {
				i = p.scanLabelName(i) // the last bytes, one at a time
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
			end, found := firstMarked(base, i+1, len(d), quoteStop)
			if found && d[end] == '"' {
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
		case '"':
			var closed, ok bool
			if i, closed, ok = p.textQuotedPair(s, i); !ok {
				return 0, false
			}
			if closed {
				return i, true
			}
		default:
			return 0, p.setErr(i, "expected label name")
		}
	}
}

// textQuotedPair parses, from the quote at i, a pair whose label name is
// quoted, or a quoted metric name standing alone (Prometheus 3). It returns
// where the label set goes on, or the index just past '}' and closed.
func (p *Parser) textQuotedPair(s *sample, i int) (next int, closed, ok bool) {
	d := p.data
	end, esc, ok := p.scanQuoted(i, true, false)
	if !ok {
		return 0, false, false
	}
	ns, ne, nameEsc := i+1, end-1, esc
	i = p.skipWS(end)
	if i < len(d) && (d[i] == ',' || d[i] == '}') {
		return i + 1, d[i] == '}', p.setQuotedName(s, ns, ne, nameEsc)
	}
	if i >= len(d) || d[i] != '=' {
		return 0, false, p.setErr(i, "expected '=' after label name")
	}
	i = p.skipWS(i + 1)
	if i >= len(d) || d[i] != '"' {
		return 0, false, p.setErr(i, "expected quoted label value")
	}
	if end, esc, ok = p.scanQuoted(i, true, true); !ok {
		return 0, false, false
	}
	s.labelEsc = s.labelEsc || nameEsc || esc
	vs, ve := i+1, end-1
	i = p.skipWS(end)
	peeked := i < len(d)
	if peeked && d[i] == ',' {
		i, peeked = i+1, false
	}
	s.labels = appendSpan(s.labels, s.seriesStart, ns, ne, vs, ve, labelEnd(i-s.seriesStart, peeked))
	return i, false, true
}
