package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// flapExporter answers every scrape with the next step of a scripted
// history: counters grow, some series are missing from some answers (they
// flap), one restarts from zero while missing, one appears late, and every
// third answer is cut at a random line boundary and served as a whole body
// (its Content-Length matches), which no transport can catch. want is the
// true increase since the first answer by "metric|tag", in Datadog's names.
type flapExporter struct {
	mu     sync.Mutex
	r      *rand.Rand
	step   int
	steps  int
	served int
	cuts   int
	series []*flapCounter
	want   map[string]float64
}

type flapCounter struct {
	family, label, value string // family without _total; one label
	v                    float64
	absent               func(step int) bool
	born, reset          int // the step it appears at, the step it restarts at (0: none)
}

func newFlapExporter(steps int) *flapExporter {
	never := func(int) bool { return false }
	e := &flapExporter{r: rand.New(rand.NewPCG(11, 12)), steps: steps, want: map[string]float64{}}
	e.series = []*flapCounter{
		{family: "http_requests", label: "code", value: "200", v: 1000, absent: never},
		{family: "http_requests", label: "code", value: "500", v: 40, absent: never},
		{family: "jobs", label: "queue", value: "a", v: 500, absent: func(s int) bool { return s%4 == 2 }},
		{family: "jobs", label: "queue", value: "b", v: 700, absent: func(s int) bool { return s%7 == 3 || s%7 == 4 }},
		{family: "jobs", label: "queue", value: "c", v: 5000, reset: 5, absent: func(s int) bool { return s == 5 }},
		{family: "late", label: "x", value: "1", born: 4, absent: never},
		{family: "tail", label: "t", value: "1", v: 300, absent: never}, // last: the cuts take it most often
	}
	return e
}

func (e *flapExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.served++
	if e.step < e.steps {
		e.step++
		for _, s := range e.series {
			if e.step < s.born {
				continue
			}
			if e.step == s.reset {
				s.v = 0 // right after an observation: nothing counted is lost
			}
			inc := float64(e.r.IntN(40)) / 4
			if e.step == s.born {
				inc = 3
			}
			s.v += inc
			if e.step > 1 {
				e.want[s.family+".count|"+s.label+":"+s.value] += inc
			}
		}
	}
	var b strings.Builder
	last := ""
	for _, s := range e.series {
		if e.step < s.born || (e.step < e.steps && s.absent(e.step)) {
			continue
		}
		if s.family != last {
			fmt.Fprintf(&b, "# TYPE %s counter\n", s.family)
			last = s.family
		}
		fmt.Fprintf(&b, "%s_total{%s=%q} %g\n", s.family, s.label, s.value, s.v)
	}
	body := b.String()
	if e.step%3 == 0 && e.step < e.steps {
		lines := strings.SplitAfter(body, "\n")
		body = strings.Join(lines[:1+e.r.IntN(len(lines)-2)], "")
		e.cuts++
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(body))
}

func (e *flapExporter) state() (served int, want map[string]float64, cuts int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	want = make(map[string]float64, len(e.want))
	for k, v := range e.want {
		want[k] = v
	}
	return e.served, want, e.cuts
}

// TestFlappingSeriesExact runs the real binary against a flapExporter and the
// stand-in intake: what the intake received adds up, per series, to the true
// increase exactly, with no point twice. A series missing from an answer keeps
// its delta state (--series-stale-after), so its return is a delta, not its
// whole value sent again as a new series'.
func TestFlappingSeriesExact(t *testing.T) {
	const key = "flap-key-0123456789abcdef0123456789"
	in := startIntake(t, key)
	const steps = 18
	e := newFlapExporter(steps)
	addr := serveHostile(t, e.ServeHTTP)

	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.yaml")
	if err := os.WriteFile(targets, []byte(fmt.Sprintf("- targets: [%q]\n", addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, "agent", []string{"DD_API_KEY=" + key},
		"--static-targets", targets, "--node-name", "node-f", "--dd-url", in.URL,
		"--state-dir", filepath.Join(dir, "state"), "--scrape-interval", "1s", "--flush-interval", "200ms")

	// Every step, then the last answer again, whole, and all of it sent.
	deadline := time.Now().Add(time.Duration(steps)*time.Second + 30*time.Second)
	for {
		if served, _, _ := e.state(); served > steps+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not scrape every step in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, want, cuts := e.state()
	common := []string{"instance:" + addr, "job:static", "host:node-f"}
	waitCounts(in, want, common)
	agent.stop(20 * time.Second)
	checkCounts(t, in, want, common, nil)
	for k, w := range want {
		metric, tags := seriesTags(k, common)
		t.Logf("%s %v: true increase %v, received %v", metric, tags[len(tags)-1], w, in.Sum(metric, tags...))
	}
	if cuts == 0 {
		t.Fatal("no answer was cut")
	}
	if st := in.Stats(); st.DuplicatePoints != 0 || st.RejectedTotal() != 0 {
		t.Errorf("intake: %d duplicate points, %d rejected requests (%v)", st.DuplicatePoints, st.RejectedTotal(), st.LastRejects)
	}
}
