package exposition

// OpenMetrics 1.0 sample lines.

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
// One function: OpenMetrics label sets have no fast path, so this loop, the
// grammar of a pair in order, is the one every pair goes through.
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
			if !p.setQuotedName(s, ns, ne, nameEsc) {
				return 0, false
			}
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
