package scrapeloop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/internal/exporter"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

// TestFlappingSeriesAndCutBodiesAreExact scrapes an exporter.Flap (its
// script with a histogram's buckets added) over loopback HTTP through the
// loop's whole scrape path: the deltas handed to the appender add up, per
// series, to the true increase exactly. Taken as released, a missing series
// would come back as a new one and send its whole value again.
func TestFlappingSeriesAndCutBodiesAreExact(t *testing.T) {
	script := exporter.FlapScript()
	for _, le := range []string{"0.1", "1", "+Inf"} {
		script = append(script, exporter.FlapSeries{Name: "latency_seconds_bucket", Labels: `le="` + le + `"`, Value: 100})
	}
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			const steps = 40
			f := exporter.NewFlap(seed, steps, script)
			srv := httptest.NewServer(f)
			defer srv.Close()
			env := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.Transport = nil })
			tl := env.loop(t, target.Target{URL: srv.URL + "/metrics", Labels: labels.FromStrings("job", "flap"),
				Interval: 10 * time.Second, Timeout: 5 * time.Second})
			for range steps + 1 { // the last answer again, whole
				env.now = env.now.Add(10 * time.Second)
				tl.scrapeOnce(context.Background())
				if st := tl.getStatus(); st.Health != "up" {
					t.Fatalf("scrape failed: %s", st.LastError)
				}
			}
			_, want, cuts := f.State()
			got := map[string]float64{}
			for _, p := range tl.app.takePoints() {
				if p.Kind != KindCounter {
					t.Fatalf("point %s: not a counter", p)
				}
				name := p.Labels.Get("__name__")
				lbls := p.Labels.Map()
				delete(lbls, "__name__")
				delete(lbls, "job")
				var kv []string
				for k, v := range lbls {
					kv = append(kv, fmt.Sprintf("%s=%q", k, v))
				}
				slices.Sort(kv)
				got[name+"{"+strings.Join(kv, ",")+"}"] += p.Value
			}
			for k, inc := range want {
				if got[k] != inc {
					t.Errorf("%s: deltas add up to %v, true increase %v", k, got[k], inc)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: deltas sent for a series that never grew", k)
				}
			}
			if cuts == 0 {
				t.Fatal("no body was cut")
			}
			if n := metricValue(t, env.store.Metrics(), "nodescraper_delta_resets_total"); n < 1 {
				t.Errorf("%g resets counted, want at least the scripted one", n)
			}
			t.Logf("%d scrapes, %d cut, %d series", steps+1, cuts, len(want))
		})
	}
}

// TestAbsentSeries: a series missing from scrapes keeps its counter state
// until its last observation is StaleAfter old; its return within that is a
// delta against the kept value, a reset still a reset. Its backend handle
// is released (Forget) at the first scrape that lacks it, and a return is
// classified anew. After StaleAfter the state is released too, and its
// return is a new series, whose whole value the late-series rule sends.
func TestAbsentSeries(t *testing.T) {
	type scrape struct {
		after time.Duration // since the previous scrape; 0: the interval
		body  string        // the value of c, or "" when c is missing
		want  []string
		held  int // series the table holds after the scrape
	}
	const g = "# TYPE g gauge\ng 1\n"
	cases := []struct {
		name    string
		scrapes []scrape
	}{
		{"missing once", []scrape{
			{body: counters("c", 10) + g, want: []string{"gauge g 1"}, held: 2},
			{body: g, want: []string{"gauge g 1"}, held: 2},
			{body: counters("c", 15) + g, want: []string{"counter c 5", "gauge g 1"}, held: 2},
		}},
		{"missing for many scrapes within StaleAfter", []scrape{
			{body: counters("c", 10), held: 1},
			{body: g, want: []string{"gauge g 1"}, held: 2},
			{after: 20 * time.Minute, body: g, want: []string{"gauge g 1"}, held: 2},
			{after: 39 * time.Minute, body: g, want: []string{"gauge g 1"}, held: 2},
			{body: counters("c", 19), want: []string{"counter c 9"}, held: 1},
		}},
		{"returns lower: a reset", []scrape{
			{body: counters("c", 100), held: 1},
			{body: g, want: []string{"gauge g 1"}, held: 2},
			{body: counters("c", 4), want: []string{"counter c 4"}, held: 1},
		}},
		{"missing for longer than StaleAfter: released, then new", []scrape{
			{body: counters("c", 10), held: 1},
			{body: g, want: []string{"gauge g 1"}, held: 2},
			{after: 61 * time.Minute, body: g, want: []string{"gauge g 1"}, held: 1}, // c released
			{body: counters("c", 30) + g, want: []string{"counter c 30", "gauge g 1"}, held: 2},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tl := newTestLoop(t, target.Target{})
			var ref uint64
			wantForgot := false
			for i, s := range c.scrapes {
				if s.after > 0 {
					tl.env.now = tl.env.now.Add(s.after - tl.target.Interval)
				}
				tl.mustFeed(t, s.body, textCT)
				what := fmt.Sprintf("scrape %d", i+1)
				wantLines(t, what, tl.app.take(), s.want...)
				if n := tl.table.Len(); n != s.held {
					t.Errorf("%s: table holds %d series, want %d", what, n, s.held)
				}
				if ref == 0 {
					for _, rs := range tl.app.series() {
						if rs.Labels.Get("__name__") == "c" {
							ref = rs.ref
						}
					}
				}
				wantForgot = wantForgot || !strings.Contains(s.body, "\nc ")
				if forgot := slices.Contains(tl.app.forgets, ref); forgot != wantForgot {
					t.Errorf("%s: c forgotten %v, want %v", what, forgot, wantForgot)
				}
			}
		})
	}
}

// TestAbsentSeriesUnderBudget: while the node's series budget is exhausted,
// a series missing from a scrape is released at once, so that the series
// present, of any target, get the room.
func TestAbsentSeriesUnderBudget(t *testing.T) {
	store := deltastore.New(deltastore.Config{MaxSeries: 3, Logger: slog.New(slog.DiscardHandler)})
	e := newTestEnv(t, store, t0, nil)
	a := e.loop(t, target.Target{URL: "http://a:9100/metrics"})
	b := e.loop(t, target.Target{URL: "http://b:9100/metrics"})
	a.mustFeed(t, counters("a1", 1, "a2", 2), textCT)
	b.mustFeed(t, counters("b1", 1, "b2", 2), textCT) // b2 refused: the budget is full
	a.mustFeed(t, counters("a1", 2), textCT)          // a2 missing: released, the budget being full
	if n := a.table.Len(); n != 1 {
		t.Fatalf("a holds %d series, want 1", n)
	}
	b.mustFeed(t, counters("b1", 2, "b2", 4), textCT) // b2 admitted now, from a baseline
	b.mustFeed(t, counters("b1", 3, "b2", 7), textCT)
	wantLines(t, "b", b.app.take(), "counter b1 1", "counter b1 1", "counter b2 3")
	if got := metricValue(t, store.Metrics(), `nodescraper_delta_absent_released_total{reason="budget"}`); got != 1 {
		t.Errorf("absent series released for the budget: %g, want 1", got)
	}
}
