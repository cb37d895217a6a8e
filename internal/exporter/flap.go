package exporter

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
)

// Flap is an exporter whose every answer is the next step of a scripted
// history, for tests of exact deltas: counters grow by random amounts, some
// series are missing from some answers (they flap), and every third answer
// is cut at a random line boundary and served as a whole body (its
// Content-Length matches the cut body), which no transport can catch. After
// the last step every answer is the same, whole. It keeps the truth: per
// series, the increase since the first answer, as an observer that never
// missed a sample would count it.
type Flap struct {
	mu     sync.Mutex
	r      *rand.Rand
	step   int
	steps  int
	served int
	cuts   int
	series []*flapSeries
	want   map[string]float64
}

// FlapSeries is one cumulative series of a Flap's script.
type FlapSeries struct {
	// Name is the sample's name, Labels its labels as written between the
	// braces, e.g. `code="200"`. A name ending in _bucket is a histogram
	// bucket, any other a counter (its family name is the name without
	// _total).
	Name, Labels string
	// Value is the series' value before the first step.
	Value float64
	// Absent says whether the series is missing from the answer of a step;
	// nil means never.
	Absent func(step int) bool
	// Born is the step the series appears at, with 3 counted (0: it is there
	// from the start); Reset is a step at which it restarts from zero, right
	// after an observation, so nothing counted is lost (0: never).
	Born, Reset int
}

// Key is how Flap.State names the series: `name{labels}`.
func (s *FlapSeries) Key() string { return s.Name + "{" + s.Labels + "}" }

type flapSeries struct {
	FlapSeries
	value float64
}

// FlapScript is the usual script: counters that always grow, one missing
// from every fourth answer, one missing from runs of two, one that restarts
// from zero while missing, one that appears once the target is watched, and
// one last in the body, which the cuts take most often.
func FlapScript() []FlapSeries {
	return []FlapSeries{
		{Name: "http_requests_total", Labels: `code="200"`, Value: 1000},
		{Name: "http_requests_total", Labels: `code="404"`, Value: 1000},
		{Name: "http_requests_total", Labels: `code="500"`, Value: 40},
		{Name: "jobs_total", Labels: `queue="a"`, Value: 500, Absent: func(s int) bool { return s%4 == 2 }},
		{Name: "jobs_total", Labels: `queue="b"`, Value: 700, Absent: func(s int) bool { return s%7 == 3 || s%7 == 4 }},
		{Name: "jobs_total", Labels: `queue="c"`, Value: 5000, Reset: 5, Absent: func(s int) bool { return s == 5 }},
		{Name: "late_total", Labels: `x="1"`, Born: 4},
		{Name: "tail_total", Labels: `t="1"`, Value: 300},
	}
}

// NewFlap returns a Flap of steps steps of script, its randomness seeded by
// seed.
func NewFlap(seed uint64, steps int, script []FlapSeries) *Flap {
	f := &Flap{r: rand.New(rand.NewPCG(seed, 1)), steps: steps, want: map[string]float64{}}
	for _, s := range script {
		if s.Absent == nil {
			s.Absent = func(int) bool { return false }
		}
		f.series = append(f.series, &flapSeries{FlapSeries: s, value: s.Value})
	}
	return f
}

// ServeHTTP answers with the next step in the Prometheus text format.
func (f *Flap) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	body := f.next()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(body))
}

// State returns the answers served, the true increase of each series (by
// FlapSeries.Key) since the first answer, and the answers cut.
func (f *Flap) State() (served int, want map[string]float64, cuts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	want = make(map[string]float64, len(f.want))
	for k, v := range f.want {
		want[k] = v
	}
	return f.served, want, f.cuts
}

// next advances the history by one step, if any are left, and renders it.
func (f *Flap) next() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served++
	if f.step < f.steps {
		f.step++
		for _, s := range f.series {
			if f.step < s.Born {
				continue
			}
			if f.step == s.Reset {
				s.value = 0
			}
			inc := float64(f.r.IntN(40)) / 4
			if f.step == s.Born {
				inc = 3
			}
			s.value += inc
			if f.step > 1 {
				f.want[s.Key()] += inc
			}
		}
	}
	var b strings.Builder
	last := ""
	for _, s := range f.series {
		if f.step < s.Born || (f.step < f.steps && s.Absent(f.step)) {
			continue
		}
		if fam := strings.TrimSuffix(s.Name, "_bucket"); fam != last {
			typ := "counter"
			if fam != s.Name {
				typ = "histogram"
			}
			fmt.Fprintf(&b, "# TYPE %s %s\n", strings.TrimSuffix(fam, "_total"), typ)
			last = fam
		}
		fmt.Fprintf(&b, "%s{%s} %g\n", s.Name, s.Labels, s.value)
	}
	body := b.String()
	if f.step%3 == 0 && f.step < f.steps {
		lines := strings.SplitAfter(body, "\n")
		body = strings.Join(lines[:1+f.r.IntN(len(lines)-2)], "") // at least one line less
		f.cuts++
	}
	return body
}
