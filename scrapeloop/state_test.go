package scrapeloop

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

// counters writes one counter family per name=value pair.
func counters(kv ...any) string {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&b, "# TYPE %s counter\n%s %v\n", kv[i], kv[i], kv[i+1])
	}
	return b.String()
}

// TestReconfigureKeepsDeltaState: a target whose configuration changes but
// not its identity (URL and labels) gets a new loop and appender on the same
// delta table. The new loop classifies every series again under the new
// configuration, and its first scrape sends the increases since the old
// loop's last scrape, not baselines.
func TestReconfigureKeepsDeltaState(t *testing.T) {
	base := target.Target{URL: "http://app:8080/metrics", Labels: labels.FromStrings("instance", "app:8080", "job", "app")}
	series := func(c, d, gone, g int, extra string) string {
		return fmt.Sprintf("# TYPE c counter\nc{job=\"x\"} %d\n# TYPE d counter\nd %d\n", c, d) +
			map[bool]string{true: fmt.Sprintf("# TYPE gone counter\ngone %d\n", gone)}[gone > 0] + extra +
			fmt.Sprintf("# TYPE g gauge\ng %d\n", g)
	}
	cases := []struct {
		name   string
		change func(t *testing.T, tg *target.Target)
		same   bool   // same identity: the state carries over
		label  string // a label (name=value) of every series under the new configuration
	}{
		{"metric relabeling added", func(t *testing.T, tg *target.Target) {
			tg.MetricRelabel = mustRelabel(t, "- target_label: env\n  replacement: prod\n")
		}, true, "env=prod"},
		{"limits changed", func(_ *testing.T, tg *target.Target) { tg.Limits = target.Limits{Samples: 100, Labels: 10} }, true, ""},
		{"interval changed", func(_ *testing.T, tg *target.Target) { tg.Interval, tg.Timeout = 15*time.Second, 5*time.Second }, true, ""},
		{"honor_labels turned on", func(_ *testing.T, tg *target.Target) { tg.HonorLabels = true }, true, ""},
		{"discovered labels and source changed", func(_ *testing.T, tg *target.Target) {
			tg.Discovered, tg.Source = labels.FromStrings("__meta_kubernetes_namespace", "shop"), "ServiceMonitor shop/app"
		}, true, ""},
		{"target labels changed: a new target", func(_ *testing.T, tg *target.Target) {
			tg.Labels = labels.FromStrings("instance", "app:8080", "job", "app2")
		}, false, ""},
		{"URL changed: a new target", func(_ *testing.T, tg *target.Target) { tg.URL = "http://app:8081/metrics" }, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t, nil, t0, nil)
			old := e.loop(t, base)
			old.mustFeed(t, series(10, 100, 5, 1, ""), textCT)
			old.mustFeed(t, series(15, 110, 6, 2, ""), textCT)
			wantLines(t, "old loop", old.app.take(), `counter c{exported_job="x",instance="app:8080",job="app"} 5`,
				`counter d{instance="app:8080",job="app"} 10`, `counter gone{instance="app:8080",job="app"} 1`,
				`gauge g{instance="app:8080",job="app"} 1`, `gauge g{instance="app:8080",job="app"} 2`)
			old.app.Close() // as Manager.Sync does before the new loop starts

			tg := base
			c.change(t, &tg)
			if tg.Key() == base.Key() {
				t.Fatal("the change does not change the target's key")
			}
			if (tg.Seed() == base.Seed()) != c.same {
				t.Fatalf("same seed %v, want %v", tg.Seed() == base.Seed(), c.same)
			}
			nl := e.loop(t, tg)
			if (nl.table == old.table) != c.same {
				t.Fatalf("same table %v, want %v", nl.table == old.table, c.same)
			}
			// gone went away, fresh appeared while the loops changed hands.
			nl.mustFeed(t, series(18, 111, 0, 3, "# TYPE fresh counter\nfresh 4\n"), textCT)
			name, value, _ := strings.Cut(c.label, "=")
			var got []string
			for _, p := range nl.app.takePoints() {
				if name != "" && p.Labels.Get(name) != value {
					t.Errorf("point %s lacks %s", p, c.label)
				}
				got = append(got, p.Labels.Get("__name__")+" "+kindName(p.Kind)+" "+fmt.Sprint(p.Value))
			}
			want := []string{"g gauge 3"}
			if c.same {
				want = append(want, "c counter 3", "d counter 1", "fresh counter 4")
			}
			wantLines(t, "new loop's first scrape", slices.Sorted(slices.Values(got)), want...)
			added := nl.app.series()
			if len(added) != 4 {
				t.Fatalf("new appender got %d series, want 4 (c, d, fresh, g)", len(added))
			}
			for _, s := range added {
				if name != "" && s.Labels.Get(name) != value {
					t.Errorf("series %s was not classified under the new configuration", fmtLabels(s.Labels))
				}
				if tg.HonorLabels && s.Labels.Get("__name__") == "c" && s.Labels.Get("job") != "x" {
					t.Errorf("series %s was not classified under honor_labels", fmtLabels(s.Labels))
				}
			}
			if c.same {
				if n := nl.table.Len(); n != 5 {
					t.Errorf("table holds %d series, want 5: gone kept while absent, fresh added", n)
				}
				if n := len(nl.app.forgets); n != 0 {
					t.Errorf("new appender told to forget %d refs it never gave", n)
				}
			}
		})
	}
}

// TestSeriesBudget: with the node's series budget (deltastore MaxSeries)
// smaller than the targets' series, the series past it are refused, counted
// in the target's status and nodescraper_scrape_series_refused_total, and the
// series admitted, of that target and of others, keep exact counts. A
// refused series admitted later (the budget freed) was counting all along:
// its first value is a baseline, not an increase.
func TestSeriesBudget(t *testing.T) {
	store := deltastore.New(deltastore.Config{MaxSeries: 5, Logger: slog.New(slog.DiscardHandler)})
	e := newTestEnv(t, store, t0, nil)
	a := e.loop(t, target.Target{URL: "http://a:9100/metrics"})
	b := e.loop(t, target.Target{URL: "http://b:9100/metrics"})
	type round struct {
		a, b               string
		wantA, wantB       []string
		refusedB, refusedT int // B's status, and the manager's total so far
	}
	rounds := []round{
		{a: counters("a1", 10, "a2", 20, "a3", 30), b: counters("b1", 1, "b2", 2, "b3", 3, "b4", 4),
			refusedB: 2, refusedT: 2},
		{a: counters("a1", 11, "a2", 22, "a3", 33), b: counters("b1", 2, "b2", 4, "b3", 6, "b4", 8),
			wantA: []string{"counter a1 1", "counter a2 2", "counter a3 3"}, wantB: []string{"counter b1 1", "counter b2 2"},
			refusedB: 2, refusedT: 4},
		// a3 goes: its slot is free again, and b3 takes it.
		{a: counters("a1", 12, "a2", 24), b: counters("b1", 3, "b2", 6, "b3", 9, "b4", 12),
			wantA: []string{"counter a1 1", "counter a2 2"}, wantB: []string{"counter b1 1", "counter b2 2"},
			refusedB: 1, refusedT: 5},
		{a: counters("a1", 13, "a2", 26), b: counters("b1", 4, "b2", 8, "b3", 12, "b4", 16),
			wantA: []string{"counter a1 1", "counter a2 2"}, wantB: []string{"counter b1 1", "counter b2 2", "counter b3 3"},
			refusedB: 1, refusedT: 6},
	}
	for i, r := range rounds {
		sa := a.scrapeStatus(t, r.a)
		sb := b.scrapeStatus(t, r.b)
		what := fmt.Sprintf("round %d", i+1)
		if sa.Health != "up" || sb.Health != "up" {
			t.Fatalf("%s: health %s, %s (%s %s): a full budget is no scrape failure", what, sa.Health, sb.Health, sa.LastError, sb.LastError)
		}
		if sa.Refused != 0 || sb.Refused != r.refusedB || sb.Series != 4-r.refusedB {
			t.Errorf("%s: A refused %d, B refused %d of %d series, want 0 and %d", what, sa.Refused, sb.Refused, sb.Series, r.refusedB)
		}
		if got := metricValue(t, e.mgr.Metrics(), `nodescraper_scrape_series_refused_total{reason="node"}`); got != float64(r.refusedT) {
			t.Errorf("%s: nodescraper_scrape_series_refused_total %g, want %d", what, got, r.refusedT)
		}
		if got := metricValue(t, store.Metrics(), `nodescraper_delta_series_refused_total{reason="node"}`); got != float64(r.refusedT) {
			t.Errorf("%s: nodescraper_delta_series_refused_total %g, want %d", what, got, r.refusedT)
		}
		wantLines(t, what+": A", a.app.take(), r.wantA...)
		wantLines(t, what+": B", b.app.take(), r.wantB...)
		if n := store.Len(); n != 5 {
			t.Errorf("%s: store holds %d series, want the budget's 5", what, n)
		}
	}
	if n := len(b.app.series()); n != 3 {
		t.Errorf("B's appender got %d series, want 3: refused ones are not classified", n)
	}
}

// xxhash64 of an input under 32 bytes is a chain of invertible steps before
// its final mix, so two series with one hash can be built, not just hoped
// for: collidingSeries finds a second series, of a different length, whose
// hash is the first one's.
const (
	xxP1 uint64 = 11400714785074694791
	xxP2 uint64 = 14029467366897019727
	xxP3 uint64 = 1609587929392839161
	xxP4 uint64 = 9650029242287828579
	xxP5 uint64 = 2870177450012600261
)

// xxShortState is xxhash64's state before the final mix, for len(b) < 32
// (seed 0), as github.com/cespare/xxhash/v2 computes it.
func xxShortState(b []byte) uint64 {
	h := xxP5 + uint64(len(b))
	i := 0
	for ; i+8 <= len(b); i += 8 {
		h ^= bits.RotateLeft64(binary.LittleEndian.Uint64(b[i:])*xxP2, 31) * xxP1
		h = bits.RotateLeft64(h, 27)*xxP1 + xxP4
	}
	if i+4 <= len(b) {
		h ^= uint64(binary.LittleEndian.Uint32(b[i:])) * xxP1
		h = bits.RotateLeft64(h, 23)*xxP2 + xxP3
		i += 4
	}
	for ; i < len(b); i++ {
		h ^= uint64(b[i]) * xxP5
		h = bits.RotateLeft64(h, 11) * xxP1
	}
	return h
}

// inverse returns the multiplicative inverse of odd a modulo 2^64.
func inverse(a uint64) uint64 {
	x := a
	for range 5 {
		x *= 2 - a*x
	}
	return x
}

// collidingSeries returns two series of metric c, 13 and 18 bytes long,
// with one xxhash64: b is c{v="xxx<8 chosen bytes>"}, its chosen word
// solved for a's state, a's value tried until those bytes are printable.
func collidingSeries() (a, b string) {
	prefix := []byte(`c{v="xxx`) // b's first 8-byte word
	const suffix = `"}`          // b's last two bytes
	h1 := xxP5 + 18
	h1 ^= bits.RotateLeft64(binary.LittleEndian.Uint64(prefix)*xxP2, 31) * xxP1
	h1 = bits.RotateLeft64(h1, 27)*xxP1 + xxP4
	for n := 0; ; n++ {
		a = fmt.Sprintf(`c{v="%06d"}`, n)
		h := xxShortState([]byte(a))
		// Undo b's last two byte steps, then its chosen word's step.
		for i := len(suffix) - 1; i >= 0; i-- {
			h = bits.RotateLeft64(h*inverse(xxP1), -11) ^ uint64(suffix[i])*xxP5
		}
		k := bits.RotateLeft64((h-xxP4)*inverse(xxP1), -27) ^ h1
		w := bits.RotateLeft64(k*inverse(xxP1), -31) * inverse(xxP2)
		word := binary.LittleEndian.AppendUint64(nil, w)
		ok := true
		for _, c := range word {
			ok = ok && c >= ' ' && c <= '~' && c != '"' && c != '\\'
		}
		if ok {
			return a, string(prefix) + string(word) + suffix
		}
	}
}

// TestHashCollision: two series of one target with one 64-bit hash. The
// first seen keeps the slot and its exact counts, the other is not sent and
// is counted in nodescraper_scrape_series_hash_collisions_total.
func TestHashCollision(t *testing.T) {
	a, b := collidingSeries()
	if xxhash.Sum64String(a) != xxhash.Sum64String(b) || a == b || len(a) == len(b) {
		t.Fatalf("%q and %q: hashes %x, %x", a, b, xxhash.Sum64String(a), xxhash.Sum64String(b))
	}
	t.Logf("colliding series %s and %s (xxhash64 %x)", a, b, xxhash.Sum64String(a))
	// Both are series the parser reads as such.
	var p exposition.Parser
	p.Reset([]byte(a+" 1\n"+b+" 2\n"), exposition.FormatPrometheus)
	for _, want := range []string{a, b} {
		if !p.Next() || string(p.Series()) != want {
			t.Fatalf("parsed %q, want %q (%v)", p.Series(), want, p.Err())
		}
	}
	tl := newTestLoop(t, target.Target{})
	collisions := func() float64 {
		return metricValue(t, tl.env.mgr.Metrics(), "nodescraper_scrape_series_hash_collisions_total")
	}
	scrapes := []struct {
		body       string
		want       []string
		collisions float64
	}{
		{fmt.Sprintf("# TYPE c counter\n%s 10\n%s 1000\n", a, b), nil, 1},
		{fmt.Sprintf("# TYPE c counter\n%s 15\n%s 2000\n", a, b), []string{"counter " + a + " 5"}, 2},
		{fmt.Sprintf("# TYPE c counter\n%s 17\n%s 3000\n", a, b), []string{"counter " + a + " 2"}, 3},
		// a goes; b still meets a's slot, which is then swept.
		{fmt.Sprintf("# TYPE c counter\n%s 4000\n", b), nil, 4},
		// b takes the slot; it was there all along, so only a baseline.
		{fmt.Sprintf("# TYPE c counter\n%s 4100\n", b), nil, 4},
		{fmt.Sprintf("# TYPE c counter\n%s 4150\n", b), []string{"counter " + b + " 50"}, 4},
	}
	for i, s := range scrapes {
		tl.mustFeed(t, s.body, textCT)
		wantLines(t, fmt.Sprintf("scrape %d", i+1), tl.app.take(), s.want...)
		if got := collisions(); got != s.collisions {
			t.Errorf("scrape %d: %g collisions counted, want %g", i+1, got, s.collisions)
		}
	}
	if n := len(tl.app.series()); n != 2 || tl.app.series()[0].raw != a || tl.app.series()[1].raw != b {
		t.Errorf("series added: %+v", tl.app.series())
	}
}

// TestSyncOneLoopPerIdentity: two targets with one identity (URL and labels)
// but different configurations, e.g. two monitors selecting one endpoint,
// would share one delta table. Sync runs one of them, the same one whatever
// the order of the targets.
func TestSyncOneLoopPerIdentity(t *testing.T) {
	backend := &recBackend{}
	store := deltastore.New(deltastore.Config{})
	m := NewManager(Config{Store: store, Backend: backend, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x := target.Target{URL: "http://127.0.0.1:1/metrics", Labels: labels.FromStrings("job", "app"), Interval: time.Hour, Timeout: time.Second, Source: "ServiceMonitor a/x"}
	y := x
	y.Source, y.Interval = "ServiceMonitor a/y", 30*time.Minute
	keep := x
	if y.Key() < x.Key() {
		keep = y
	}
	m.Sync(ctx, []target.Target{x, y})
	ts := m.Targets()
	if len(ts) != 1 || ts[0].Source != keep.Source {
		t.Fatalf("targets %+v, want only %s", ts, keep.Source)
	}
	m.Sync(ctx, []target.Target{y, x})
	if ts := m.Targets(); len(ts) != 1 || ts[0].Source != keep.Source || len(backend.appenders()) != 1 {
		t.Fatalf("after the same targets in another order: %+v, %d appenders", ts, len(backend.appenders()))
	}
	cancel()
	m.Wait()
	for _, a := range backend.appenders() {
		a.check(t)
	}
}
