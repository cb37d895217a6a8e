package deltastore

import "sync/atomic"

// Refusal says why Table.Admit refused a new series, or that it did not.
type Refusal uint8

// The budgets a new series must fit, checked in this order: its target's,
// its namespace's, the node's. A monitor is a tenant's word: without the
// first two, one target could take the whole node's budget and push every
// other target's new series out.
const (
	Admitted         Refusal = iota
	RefusedTarget            // Config.MaxSeriesPerTarget
	RefusedNamespace         // Config.MaxSeriesPerNamespace
	RefusedNode              // Config.MaxSeries
	numRefusals
)

// String is the reason's label value in the refused counters.
func (r Refusal) String() string {
	switch r {
	case RefusedTarget:
		return "target"
	case RefusedNamespace:
		return "namespace"
	case RefusedNode:
		return "node"
	}
	return "admitted"
}

// Refusals lists the reasons a series is refused, for counters by reason.
var Refusals = []Refusal{RefusedTarget, RefusedNamespace, RefusedNode}

// nsCount is the series of one namespace's tables.
type nsCount struct {
	name   string
	series atomic.Int64
	tables int // tables in the namespace; guarded by Store.mu
}

// SetNamespace puts the table's series under namespace ns's budget, moving
// them from the one it was in. ns "" is no namespace and no namespace
// budget: a file_sd target is the operator's own configuration, not a
// tenant's monitor, and the per-target and node budgets still hold it.
// Call before the table's loop runs, without the table's lock.
func (t *Table) SetNamespace(ns string) {
	s := t.store
	s.mu.Lock()
	defer s.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ns != nil && t.ns.name == ns {
		return
	}
	s.leaveNamespace(t)
	if ns == "" {
		return
	}
	c := s.namespaces[ns]
	if c == nil {
		c = &nsCount{name: ns}
		s.namespaces[ns] = c
	}
	c.tables++
	c.series.Add(int64(t.live))
	t.ns = c
}

// leaveNamespace takes t's series out of its namespace's count. Call with
// s.mu and t.mu held.
func (s *Store) leaveNamespace(t *Table) {
	c := t.ns
	if c == nil {
		return
	}
	c.series.Add(-int64(t.live))
	if c.tables--; c.tables == 0 {
		delete(s.namespaces, c.name)
	}
	t.ns = nil
}

// admit reserves one new series under the table's, its namespace's and the
// node's budgets, counting a refusal under its reason. Call with t's lock held.
func (t *Table) admit() Refusal {
	s := t.store
	why := Admitted
	if limit := s.cfg.MaxSeriesPerTarget; limit > 0 && t.live >= limit {
		why = RefusedTarget
	} else {
		if t.ns != nil {
			if n := t.ns.series.Add(1); s.cfg.MaxSeriesPerNamespace > 0 && n > int64(s.cfg.MaxSeriesPerNamespace) {
				why = RefusedNamespace
			}
		}
		if why == Admitted && s.series.Add(1) > int64(s.cfg.MaxSeries) {
			s.series.Add(-1)
			why = RefusedNode
		}
		if why != Admitted && t.ns != nil {
			t.ns.series.Add(-1)
		}
	}
	if why != Admitted {
		s.m.refused[why].Inc()
	}
	return why
}

// unadmit gives back n series of t. Call with t's lock held.
func (t *Table) unadmit(n int) {
	t.store.unreserve(int64(n))
	if t.ns != nil {
		t.ns.series.Add(-int64(n))
	}
}

// overBudget reports whether the table, or its namespace, is at its budget:
// its series absent from the last scrape then go, as under the node's.
func (t *Table) overBudget() bool {
	cfg := &t.store.cfg
	return (cfg.MaxSeriesPerTarget > 0 && t.live >= cfg.MaxSeriesPerTarget) ||
		(t.ns != nil && cfg.MaxSeriesPerNamespace > 0 && t.ns.series.Load() >= int64(cfg.MaxSeriesPerNamespace))
}
