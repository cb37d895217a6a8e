package deltastore

import (
	"log/slog"
	"testing"
)

// TestBudgets: a new series is refused by its target's budget, then its
// namespace's, then the node's, each counted under its reason; a released
// table gives its namespace its series back, and a table moved to another
// namespace takes its series along.
func TestBudgets(t *testing.T) {
	s := New(Config{MaxSeries: 10, MaxSeriesPerTarget: 3, MaxSeriesPerNamespace: 5, Logger: slog.New(slog.DiscardHandler)})
	table := func(seed uint64, ns string) *Table {
		tab := s.Table(seed)
		tab.SetNamespace(ns)
		return tab
	}
	h := uint64(0)
	add := func(tab *Table, n int) (got []Refusal) {
		tab.Lock()
		defer tab.Unlock()
		for range n {
			h++
			_, why := tab.Admit(h)
			got = append(got, why)
		}
		return got
	}
	want := func(what string, got []Refusal, w ...Refusal) {
		t.Helper()
		if len(got) != len(w) {
			t.Fatalf("%s: %v, want %v", what, got, w)
		}
		for i := range w {
			if got[i] != w[i] {
				t.Errorf("%s: %v, want %v", what, got, w)
				return
			}
		}
	}
	a, b, c, d := table(1, "x"), table(2, "x"), table(3, "y"), table(4, "")
	want("a", add(a, 4), Admitted, Admitted, Admitted, RefusedTarget)
	want("b", add(b, 3), Admitted, Admitted, RefusedNamespace)
	want("c", add(c, 3), Admitted, Admitted, Admitted)
	want("d", add(d, 3), Admitted, Admitted, RefusedNode)
	for r, n := range map[Refusal]uint64{RefusedTarget: 1, RefusedNamespace: 1, RefusedNode: 1} {
		if got := s.m.refused[r].Get(); got != n {
			t.Errorf("refused %s: %d, want %d", r, got, n)
		}
	}
	a.Release()
	if n := s.namespaces["x"].series.Load(); n != 2 {
		t.Errorf("namespace x holds %d series after a's release, want b's 2", n)
	}
	want("b after a's release", add(b, 2), Admitted, RefusedTarget)
	b.SetNamespace("y")
	if _, ok := s.namespaces["x"]; ok || s.namespaces["y"].series.Load() != 6 {
		t.Errorf("after b moved: x %v, y %d series; want x gone and y 6", s.namespaces["x"], s.namespaces["y"].series.Load())
	}
}

// TestNoNamespaceNoBudget: file_sd targets (namespace "") are the
// operator's own and meet no namespace budget, only their own and the
// node's: three of them hold more together than a namespace may.
func TestNoNamespaceNoBudget(t *testing.T) {
	s := New(Config{MaxSeries: 100, MaxSeriesPerTarget: 4, MaxSeriesPerNamespace: 5, Logger: slog.New(slog.DiscardHandler)})
	h := uint64(0)
	for seed := range uint64(3) {
		tab := s.Table(seed + 1)
		tab.SetNamespace("")
		tab.Lock()
		for range 4 {
			h++
			if _, why := tab.Admit(h); why != Admitted {
				t.Errorf("table %d: %v, want every series admitted", seed, why)
			}
		}
		tab.Unlock()
	}
	if len(s.namespaces) != 0 {
		t.Errorf("namespaces %v, want none", s.namespaces)
	}
}
