package scrapeloop

import (
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
)

// Classifier hands the series of parsed samples to an appender exactly as a
// target's loop does when it first sees a series (its classify: the target's
// labels, metric relabeling, the Verbatim rules, then Appender.AddSeries),
// without the loop's limits, schedule or delta state. It lets a backend's
// tests drive their appender through the loop's own rules rather than a copy.
type Classifier struct{ l loop }

// NewClassifier returns a Classifier of t's samples into app.
func NewClassifier(t *target.Target, app Appender) *Classifier {
	return &Classifier{l: loop{target: *t, app: app}}
}

// Classify classifies p's current sample: the ref and kind AddSeries gave,
// or KindDrop (AddSeries not called) for a _created sample or a series
// metric relabeling dropped.
func (c *Classifier) Classify(p *exposition.Parser) (ref uint64, k Kind) {
	// Without limits classify returns no error.
	ref, k, _ = c.l.classify(p, p.Series())
	if k == kindRelabeled {
		k = KindDrop
	}
	return ref, k
}
