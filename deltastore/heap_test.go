package deltastore

import (
	"runtime"
	"testing"
)

// Heap per series at the node's scale: 100 targets of 10,000 series.
const (
	nodeTargets = 100
	nodeSeries  = 10_000
)

// scrapeAll is one scrape of series [0, n) of tab as a scrape loop makes
// it: each series found by its hash or admitted, its generation marked and
// its counter observed, then the absent ones swept.
func scrapeAll(tab *Table, n int, round int64) {
	tab.Lock()
	defer tab.Unlock()
	gen := tab.NextGen()
	for k := range uint64(n) {
		h := benchKey(k)
		i := tab.Find(h)
		if i < 0 {
			var ok bool
			if i, ok = tab.Add(h); !ok {
				panic("series refused")
			}
		}
		sl := &tab.Slots()[i]
		sl.Gen = gen
		tab.Update(sl, Obs{Value: float64(k) + float64(round), TS: sec(round), Created: sec(-3600)})
	}
	tab.SweepAbsent(gen, sec(round), func(*Slot) {})
}

// nodeHeap builds the tables of nodeTargets targets through the API a
// scrape loop uses and returns the live heap per series after their first
// scrape (every series admitted) and after their second (every series found
// again: the steady state).
func nodeHeap() (first, steady float64) {
	before := heapInUse()
	s := New(Config{})
	tables := make([]*Table, nodeTargets)
	for i := range tables {
		tables[i] = s.Table(uint64(i))
		scrapeAll(tables[i], nodeSeries, 0)
	}
	first = float64(heapInUse()-before) / (nodeTargets * nodeSeries)
	for _, tab := range tables {
		scrapeAll(tab, nodeSeries, 1)
	}
	steady = float64(heapInUse()-before) / (nodeTargets * nodeSeries)
	runtime.KeepAlive(s)
	return first, steady
}

// BenchmarkNodeHeap reports the live heap the delta tables of 100 targets of
// 10,000 series hold per series, after the first scrape and in steady state.
// Run it with -benchtime=1x: one node is a million series.
func BenchmarkNodeHeap(b *testing.B) {
	var first, steady float64
	for b.Loop() {
		first, steady = nodeHeap()
	}
	b.ReportMetric(first, "B/series-first")
	b.ReportMetric(steady, "B/series-steady")
}

// TestNodeHeap keeps the tables within their share of the agent's memory
// per series: 48 bytes a series in steady state (BenchmarkNodeHeap reports
// the figures), here bounded a little above so that another test's garbage
// does not fail it; a Go map index and append's slack took 75.
func TestNodeHeap(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a million series")
	}
	first, steady := nodeHeap()
	t.Logf("%.2f bytes a series after the first scrape, %.2f in steady state", first, steady)
	if first > 56 || steady > 50 {
		t.Errorf("%.2f bytes a series after the first scrape, %.2f in steady state; want at most 56 and 50", first, steady)
	}
}

// TestTrim: a table gives back its room for growth at the second scrape
// that adds no series, and keeps every series and its state.
func TestTrim(t *testing.T) {
	const n = 5000
	s := New(Config{})
	tab := s.Table(1)
	capOf := func() int {
		tab.Lock()
		defer tab.Unlock()
		return cap(tab.Slots())
	}
	scrapeAll(tab, n, 0)
	if c := capOf(); c <= n+n/32 {
		t.Fatalf("capacity %d after growing to %d: the test needs more room than trim keeps", c, n)
	}
	scrapeAll(tab, n, 1) // steady since its first scrape ended: trimmed
	if c := capOf(); c > n+n/64 {
		t.Fatalf("capacity %d for %d series after a scrape without new ones", c, n)
	}
	scrapeAll(tab, n+1, 2) // one more: grows again
	tab.Lock()
	defer tab.Unlock()
	for k := range uint64(n + 1) {
		i := tab.Find(benchKey(k))
		if i < 0 || !tab.Slots()[i].HasState() || tab.Slots()[i].last != float64(k)+2 {
			t.Fatalf("series %d lost its slot or state: slot %d", k, i)
		}
	}
}
