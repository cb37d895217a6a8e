package scrapeloop

import (
	"math"

	"github.com/nodescraper/nodescraper/relabel/target"
)

// Package defaults: generous for real exporters (a large cluster's
// kube-state-metrics serves about 50 MB), tight enough that one hostile
// target cannot take the node's memory: a body past the limit is cut off
// while it is read. vmagent's default is 16 MiB (-promscrape.maxScrapeSize).
const (
	DefaultBodySize         = 64 << 20
	DefaultSamples          = 2_000_000
	DefaultLabels           = 64
	DefaultLabelNameLength  = 256
	DefaultLabelValueLength = 4096
	// DefaultMaxBytesInFlight bounds the body bytes of all scrapes at once
	// when the agent is told no bound (Config.MaxBytesInFlight): four bodies
	// at the default body size limit.
	DefaultMaxBytesInFlight = 4 * DefaultBodySize
)

// scrapeLimits are a target's limits as one scrape applies them: every
// field resolved, 0 meaning no limit (BodySize: the largest int64 instead).
type scrapeLimits struct {
	BodySize         int64
	Samples          int
	Labels           int
	LabelNameLength  int
	LabelValueLength int
}

// resolveLimits fills the unset limits of l from d (Config.DefaultLimits),
// then from the package defaults, and turns "no limit" into 0.
func resolveLimits(l, d target.Limits) scrapeLimits {
	pick := func(v, dv, pkg int64) int64 {
		switch {
		case v < 0:
			return 0
		case v > 0:
			return v
		case dv < 0:
			return 0
		case dv > 0:
			return dv
		}
		return pkg
	}
	out := scrapeLimits{
		BodySize:         pick(l.BodySize, d.BodySize, DefaultBodySize),
		Samples:          int(pick(l.Samples, d.Samples, DefaultSamples)),
		Labels:           int(pick(l.Labels, d.Labels, DefaultLabels)),
		LabelNameLength:  int(pick(l.LabelNameLength, d.LabelNameLength, DefaultLabelNameLength)),
		LabelValueLength: int(pick(l.LabelValueLength, d.LabelValueLength, DefaultLabelValueLength)),
	}
	if out.BodySize == 0 {
		out.BodySize = math.MaxInt64 - 1
	}
	return out
}
