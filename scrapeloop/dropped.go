package scrapeloop

import (
	"slices"

	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

// DroppedTarget is a discovered target the agent does not scrape.
type DroppedTarget struct {
	// Discovered are the target's labels before relabeling.
	Discovered labels.Labels
	Pool       string
	Source     string
	// URL is the scrape URL when relabeling made one (a target refused or
	// not on this node); empty otherwise.
	URL string
	target.Drop
}

// DefaultKeepDroppedTargets is how many dropped targets of a pool the
// manager keeps for the targets page and API when Config.KeepDroppedTargets
// is 0. Every dropped target is counted all the same. Prometheus keeps them
// all unless keep_dropped_targets says otherwise; on a node, one monitor
// that selects few services drops every other endpoint of the node.
const DefaultKeepDroppedTargets = 100

// droppedSet is the manager's view of its dropped targets: per pool the
// count and the first keep of them.
type droppedSet struct {
	byPool  map[string][]DroppedTarget
	counts  map[string]int
	reasons map[string]map[target.DropReason]int
}

func newDroppedSet(ds []DroppedTarget, keep int) droppedSet {
	s := droppedSet{byPool: map[string][]DroppedTarget{}, counts: map[string]int{}, reasons: map[string]map[target.DropReason]int{}}
	for _, d := range ds {
		s.counts[d.Pool]++
		if s.reasons[d.Pool] == nil {
			s.reasons[d.Pool] = map[target.DropReason]int{}
		}
		s.reasons[d.Pool][d.Reason]++
		if keep < 0 || len(s.byPool[d.Pool]) < keep {
			s.byPool[d.Pool] = append(s.byPool[d.Pool], d)
		}
	}
	return s
}

func droppedOf(t *target.Target, d target.Drop) DroppedTarget {
	return DroppedTarget{Discovered: t.Discovered, Pool: t.ScrapePool(), Source: t.Source, URL: t.URL, Drop: d}
}

// Dropped returns the dropped targets the manager keeps, sorted by pool in
// the order discovery gave them, and how many each pool dropped in all.
func (m *Manager) Dropped() (targets []DroppedTarget, counts map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pools := make([]string, 0, len(m.dropped.byPool))
	for p := range m.dropped.byPool {
		pools = append(pools, p)
	}
	slices.Sort(pools)
	for _, p := range pools {
		targets = append(targets, m.dropped.byPool[p]...)
	}
	counts = make(map[string]int, len(m.dropped.counts))
	for p, n := range m.dropped.counts {
		counts[p] = n
	}
	return targets, counts
}
