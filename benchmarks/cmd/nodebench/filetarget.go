package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
)

// fileTarget serves a Prometheus text exposition read from a file (such as
// genksm's kube-state-metrics payload) with its counters moving: every
// sample of a `counter` family whose value is an integer grows by a fixed
// per-series increment (1 to 3) per scrape; everything else is served as in
// the file. Rendering copies the file's bytes between the moving values, so
// a 50 MB payload costs little more than a memcpy per scrape.
type fileTarget struct {
	data    []byte
	fams    []fileFamily
	lines   []fileLine // sample lines, in order
	samples int
}

type fileFamily struct{ name, typ string }

// fileLine is one sample line: data[start:valStart] is the series and the
// space before the value, data[valStart:valEnd] the value.
type fileLine struct {
	start, valStart, valEnd int
	fam                     int   // index in fams, -1 before any # TYPE
	base, inc               int64 // inc > 0: the value moves, base + inc*k
}

// loadFileTarget reads and indexes an exposition file.
func loadFileTarget(path string) (*fileTarget, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("file target: %w", err)
	}
	t := &fileTarget{data: data}
	fam := -1
	for off, n := 0, 0; off < len(data); n++ {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			return nil, fmt.Errorf("file target %s: line %d has no final newline", path, n+1)
		}
		end += off
		ln := data[off:end]
		switch {
		case bytes.HasPrefix(ln, []byte("# TYPE ")):
			f := bytes.Fields(ln[len("# TYPE "):])
			if len(f) != 2 {
				return nil, fmt.Errorf("file target %s: line %d: malformed # TYPE", path, n+1)
			}
			t.fams = append(t.fams, fileFamily{string(f[0]), string(f[1])})
			fam = len(t.fams) - 1
		case len(ln) == 0 || ln[0] == '#':
		default:
			sp := bytes.LastIndexByte(ln, ' ')
			if sp < 0 {
				return nil, fmt.Errorf("file target %s: line %d: no value", path, n+1)
			}
			fl := fileLine{start: off, valStart: off + sp + 1, valEnd: end, fam: fam}
			name, _, err := parseSeries(ln[:sp])
			if err != nil {
				return nil, fmt.Errorf("file target %s: line %d: %w", path, n+1, err)
			}
			if fam >= 0 && t.fams[fam].typ == "counter" && name == t.fams[fam].name {
				if v, err := strconv.ParseInt(string(ln[sp+1:]), 10, 64); err == nil && v >= 0 && v < 1<<40 {
					fl.base, fl.inc = v, 1+int64(len(t.lines)%3)
				}
			}
			t.lines = append(t.lines, fl)
		}
		off = end + 1
	}
	t.samples = len(t.lines)
	if t.samples == 0 {
		return nil, fmt.Errorf("file target %s: no samples", path)
	}
	return t, nil
}

// render appends the exposition of scrape k and returns the sample count.
func (t *fileTarget) render(b []byte, k int) ([]byte, int) {
	prev := 0
	for i := range t.lines {
		l := &t.lines[i]
		if l.inc == 0 {
			continue
		}
		b = append(b, t.data[prev:l.valStart]...)
		b = strconv.AppendInt(b, l.base+l.inc*int64(k), 10)
		prev = l.valEnd
	}
	return append(b, t.data[prev:]...), t.samples
}

// series returns the family type, family name, sample name and labels of line l.
func (t *fileTarget) series(l *fileLine) (typ, fam, name string, ls []label) {
	name, ls, _ = parseSeries(t.data[l.start : l.valStart-1]) // parsed once at load
	if l.fam >= 0 {
		typ, fam = t.fams[l.fam].typ, t.fams[l.fam].name
	}
	return typ, fam, name, ls
}

// learn tells k every label name the file's series carry.
func (t *fileTarget) learn(k *keyer, target []label) {
	seen := map[string]bool{}
	var ls []label
	for i := range t.lines {
		_, _, _, sl := t.series(&t.lines[i])
		for _, l := range sl {
			if !seen[l.name] {
				seen[l.name] = true
				ls = append(ls, l)
			}
		}
	}
	k.learn(ls, target)
}

// expect calls fn with the truth for every series between scrapes k1 and kf
// (see synthTarget.expect).
func (t *fileTarget) expect(target []label, k1, kf int, fn func(metric string, kd kind, tags []string, want float64)) {
	for i := range t.lines {
		l := &t.lines[i]
		typ, fam, name, ls := t.series(l)
		metric, kd, tags := predict(typ, fam, name, ls, target)
		switch kd {
		case kindCount:
			fn(metric, kd, tags, float64(l.inc*int64(kf-k1)))
		case kindGauge:
			v, err := strconv.ParseFloat(string(t.data[l.valStart:l.valEnd]), 64)
			if err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) { // the agent sends no NaN or Inf
				fn(metric, kd, tags, v)
			}
		}
	}
}

// parseSeries splits `name{a="b",...}` into the name and unescaped labels.
func parseSeries(s []byte) (string, []label, error) {
	open := bytes.IndexByte(s, '{')
	if open < 0 {
		return string(s), nil, nil
	}
	name := string(s[:open])
	var ls []label
	i := open + 1
	for i < len(s) && s[i] != '}' {
		eq := bytes.IndexByte(s[i:], '=')
		if eq < 0 || i+eq+1 >= len(s) || s[i+eq+1] != '"' {
			return "", nil, errors.New("malformed label in " + string(s))
		}
		ln := string(s[i : i+eq])
		i += eq + 2
		var val []byte
		for ; i < len(s) && s[i] != '"'; i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					c = '\n'
				default:
					c = s[i]
				}
			}
			val = append(val, c)
		}
		if i >= len(s) {
			return "", nil, errors.New("unterminated label value in " + string(s))
		}
		ls = append(ls, label{ln, string(val)})
		i++ // closing quote
		if i < len(s) && s[i] == ',' {
			i++
		}
	}
	return name, ls, nil
}
