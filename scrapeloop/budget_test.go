package scrapeloop

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

// countBackend counts, per target (job label), the series added and the
// points appended, keeping nothing else: a million series stay cheap.
type countBackend struct {
	mu     sync.Mutex
	series map[string]int
	points map[string]int
}

type countAppender struct {
	b   *countBackend
	job string
}

func (b *countBackend) NewAppender(t *target.Target) (Appender, error) {
	return &countAppender{b: b, job: t.Labels.Get("job")}, nil
}

func (a *countAppender) AddSeries(s *Series) (uint64, Kind) {
	a.b.mu.Lock()
	a.b.series[a.job]++
	a.b.mu.Unlock()
	return 1, KindCounter
}

func (a *countAppender) Append(uint64, *exposition.Parser, int64, float64) {
	a.b.mu.Lock()
	a.b.points[a.job]++
	a.b.mu.Unlock()
}
func (a *countAppender) Forget(uint64) {}
func (a *countAppender) Commit()       {}
func (a *countAppender) Close()        {}

// manyCounters is a text body of n counters name{id="i"} at value v.
func manyCounters(name string, n int, v int) string {
	var b strings.Builder
	b.WriteString("# TYPE " + name + " counter\n")
	for i := range n {
		fmt.Fprintf(&b, "%s{id=\"%d\"} %d\n", name, i, v)
	}
	return b.String()
}

// countLoop is e.loop for a countBackend.
func countLoop(t *testing.T, e *testEnv, job string) *testLoop {
	t.Helper()
	tg := target.Target{URL: "http://" + job + ":9100/metrics", Labels: labels.FromStrings("job", job), Interval: 30 * time.Second, Timeout: 10 * time.Second}
	l, err := newLoop(e.mgr.cfg, tg)
	if err != nil {
		t.Fatal(err)
	}
	l.resume()
	return &testLoop{loop: l, env: e}
}

// TestSeriesBudgetPerTarget: a target exposing a million series under a node
// budget of a million cannot push another target's new series out: it gets
// its own budget (a quarter), its series past it are refused under the
// reason "target", shown in its status and counted, its admitted series keep
// flowing, and every series of the second target, new after the first one
// filled its share, reaches the backend with its increase.
func TestSeriesBudgetPerTarget(t *testing.T) {
	store := deltastore.New(deltastore.Config{MaxSeries: 1_000_000, MaxSeriesPerTarget: 250_000, Logger: slog.New(slog.DiscardHandler)})
	be := &countBackend{series: map[string]int{}, points: map[string]int{}}
	e := newTestEnv(t, store, t0, func(c *Config) { c.Backend = be; c.DefaultLimits.Samples = -1 })
	big := countLoop(t, e, "big")
	other := countLoop(t, e, "other")
	other.mustFeed(t, manyCounters("other_total", 10, 1), textCT)
	for v := 1; v <= 2; v++ {
		st := big.scrapeStatus(t, manyCounters("big_total", 1_000_000, v))
		if st.Health != "up" || st.Series != 250_000 || st.Refused != 750_000 || !strings.Contains(st.RefusedReason, "--max-series-per-target") {
			t.Fatalf("big, scrape %d: %s %q, %d series, %d refused (%q); want up, 250000 and 750000 for the target's budget",
				v, st.Health, st.LastError, st.Series, st.Refused, st.RefusedReason)
		}
	}
	// other's 1,000 new series come after big filled its share.
	other.mustFeed(t, manyCounters("other_total", 1000, 1), textCT)
	if st := other.scrapeStatus(t, manyCounters("other_total", 1000, 2)); st.Refused != 0 || st.Series != 1000 {
		t.Errorf("other: %d series, %d refused; want all 1000 admitted", st.Series, st.Refused)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	// The 990 new ones are fresh (the target's previous scrape admitted all
	// it saw): their first value is sent, then each one's increase.
	if be.points["other"] != 10+990+1000 {
		t.Errorf("other: %d points, want 2000 for its two scrapes after the first (and 10 for its first's fresh series)", be.points["other"])
	}
	if be.points["big"] != 250_000 {
		t.Errorf("big: %d points, want its 250000 admitted series' increase", be.points["big"])
	}
	if got := metricValue(t, e.mgr.Metrics(), `nodescraper_scrape_series_refused_total{reason="target"}`); got != 1_500_000 {
		t.Errorf(`refused{reason="target"} %g, want 1500000`, got)
	}
	if got := metricValue(t, store.Metrics(), `nodescraper_delta_series_refused_total{reason="node"}`); got != 0 {
		t.Errorf(`delta refused{reason="node"} %g, want 0`, got)
	}
}

// TestSeriesBudgetPerNamespace: the targets of one namespace share its
// budget; another namespace's targets, and file_sd targets (namespace ""),
// are not held back by it. A series the namespace's budget refused is
// admitted once a target of the namespace lost series: under the budget's
// pressure, absent series give their slots back at once.
func TestSeriesBudgetPerNamespace(t *testing.T) {
	store := deltastore.New(deltastore.Config{MaxSeries: 100, MaxSeriesPerNamespace: 40, Logger: slog.New(slog.DiscardHandler)})
	e := newTestEnv(t, store, t0, nil)
	in := func(name, ns string) *testLoop {
		tg := target.Target{URL: "http://" + name + ":9100/metrics", Labels: labels.FromStrings("job", name)}
		if ns != "" {
			tg.Discovered = labels.FromStrings("__meta_kubernetes_namespace", ns)
		}
		return e.loop(t, tg)
	}
	a1, a2, b1, f1 := in("a1", "a"), in("a2", "a"), in("b1", "b"), in("f1", "")
	want := func(what string, l *testLoop, body string, series, refused int) {
		t.Helper()
		st := l.scrapeStatus(t, body)
		if st.Series != series || st.Refused != refused || (refused > 0) != strings.Contains(st.RefusedReason, "--max-series-per-namespace") {
			t.Errorf("%s: %d series, %d refused (%q); want %d and %d", what, st.Series, st.Refused, st.RefusedReason, series, refused)
		}
	}
	want("a1", a1, manyCounters("a1", 30, 1), 30, 0)
	want("a2", a2, manyCounters("a2", 30, 1), 10, 20)
	want("b1", b1, manyCounters("b1", 30, 1), 30, 0)
	want("f1", f1, manyCounters("f1", 30, 1), 30, 0)
	want("a1 loses 20", a1, manyCounters("a1", 10, 2), 10, 0)
	want("a2 again", a2, manyCounters("a2", 30, 2), 30, 0)
	if got := metricValue(t, e.mgr.Metrics(), `nodescraper_scrape_series_refused_total{reason="namespace"}`); got != 20 {
		t.Errorf(`refused{reason="namespace"} %g, want 20`, got)
	}
}
