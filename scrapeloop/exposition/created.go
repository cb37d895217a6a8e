package exposition

import "bytes"

// maxCreatedLookahead bounds how many lines Created reads ahead, so a
// pathological family cannot make each sample cost a full scan.
const maxCreatedLookahead = 1024

// createdCache remembers the last look-ahead: every line before until
// belongs to the same metric point, so they share its answer.
type createdCache struct {
	valid bool
	until int
	ms    int64
	ok    bool
}

// Created returns, for a counter, histogram or summary sample in
// OpenMetrics, the value of the family's _created sample with the same label
// set (le and quantile aside) in milliseconds. It reads ahead within the
// metric point (OpenMetrics keeps a metric point's samples together), at
// most maxCreatedLookahead lines, without allocating; the answer is cached
// for the rest of the metric point. The text format has no _created samples
// (Prometheus treats them as separate series), so it always returns false.
func (p *Parser) Created() (ms int64, ok bool) {
	if p.format != FormatOpenMetrics || !p.inFamily || p.role == RoleCreated {
		return 0, false
	}
	switch p.fam.typ {
	case TypeCounter, TypeHistogram, TypeSummary:
	default:
		return 0, false
	}
	if p.created.valid && p.cur.lineStart < p.created.until {
		return p.created.ms, p.created.ok
	}
	d := p.data
	fam := d[p.fam.start:p.fam.end]
	i := p.pos
	p.created = createdCache{valid: true, until: i}
	for n := 0; n < maxCreatedLookahead && i < len(d); n++ {
		if d[i] == '#' || d[i] == '\n' {
			break
		}
		next, ok := p.omSample(&p.peek, i)
		if !ok {
			break
		}
		name := d[p.peek.nameStart:p.peek.nameEnd]
		if p.peek.nameEsc || !bytes.HasPrefix(name, fam) {
			break
		}
		role, ok := roleFor(p.fam.typ, name[len(fam):], true)
		if !ok || !p.sameMetricPoint(&p.cur, &p.peek) {
			break
		}
		if role == RoleCreated {
			p.created = createdCache{valid: true, until: i, ms: int64(p.peek.value * 1000), ok: true}
			return p.created.ms, true
		}
		i = next
		p.created.until = i
	}
	return 0, false
}

// pointLabel is the label that tells apart the samples of one metric point
// of a family of type t (le of buckets, quantile of summaries), or nil.
func pointLabel(t MetricType) []byte {
	switch t {
	case TypeHistogram, TypeGaugeHistogram:
		return lblLe
	case TypeSummary:
		return lblQuant
	}
	return nil
}

// sameMetricPoint reports whether a and b have the same labels, ignoring le
// (histograms) and quantile (summaries). Labels are compared as written,
// escapes included: one exporter writes one label set the same way.
func (p *Parser) sameMetricPoint(a, b *sample) bool {
	skip := pointLabel(p.fam.typ)
	na, nb := 0, 0
	for _, l := range a.labels {
		if !bytes.Equal(p.lname(a, l), skip) {
			na++
		}
	}
	for _, l := range b.labels {
		if !bytes.Equal(p.lname(b, l), skip) {
			nb++
		}
	}
	if na != nb {
		return false
	}
	for _, la := range a.labels {
		if bytes.Equal(p.lname(a, la), skip) {
			continue
		}
		found := false
		for _, lb := range b.labels {
			if bytes.Equal(p.lname(b, lb), p.lname(a, la)) {
				found = bytes.Equal(p.lvalue(a, la), p.lvalue(b, lb))
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
