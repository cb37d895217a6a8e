package main

import (
	"flag"
	"fmt"
	"math"
)

// scrapeBudgets bound what the targets may take of the node's agent: the
// body bytes all scrapes hold at once, and the series of one target and of
// one namespace's targets under the node's --max-series. A monitor is a
// tenant's word: without them one target could hold the memory, or the
// series budget, every other target needs.
type scrapeBudgets struct {
	bytesInFlight           string // "auto" (or "") or a size
	perTarget, perNamespace int    // 0: a fraction of --max-series
}

// Defaults of the budgets left to "auto" or 0.
const (
	// 1/inFlightShare of the Go memory limit goes to bodies in flight: the
	// rest is the series state, the send queue (--queue-max-bytes), pooled
	// buffers, the copy of a body that outgrew its buffer and the agent
	// itself. Under the chart's 512Mi: 92 MiB, one body at the default
	// 64 MiB limit and more small ones beside it.
	inFlightShare = 5
	// inFlightNoLimit is the bound without a memory limit: four bodies at
	// the default body size limit.
	inFlightNoLimit = 256 << 20
	minInFlight     = 16 << 20
	// One target gets an eighth of --max-series (250k series, about 60 MiB,
	// of the default 2M), one namespace half.
	perTargetShare, perNamespaceShare = 8, 2
)

func (b *scrapeBudgets) flags(fs *flag.FlagSet, e *envDefaults) {
	fs.StringVar(&b.bytesInFlight, "max-bytes-in-flight", e.str("NODESCRAPER_MAX_BYTES_IN_FLIGHT", "auto"),
		"most response body bytes all scrapes hold at once (read and not yet processed): a scrape waits for bytes within its timeout, then fails; a body larger than it fails at once; "+
			"auto = a fifth of the Go memory limit (--memory-limit) when there is one, else 256MiB; or a size such as 128MiB (env NODESCRAPER_MAX_BYTES_IN_FLIGHT)")
	fs.IntVar(&b.perTarget, "max-series-per-target", e.int("NODESCRAPER_MAX_SERIES_PER_TARGET", 0),
		"most series one target holds, within --max-series; its new series beyond it are refused and counted, its others keep flowing; 0 = an eighth of --max-series (env NODESCRAPER_MAX_SERIES_PER_TARGET)")
	fs.IntVar(&b.perNamespace, "max-series-per-namespace", e.int("NODESCRAPER_MAX_SERIES_PER_NAMESPACE", 0),
		"most series the targets of one namespace hold together (file_sd targets, the operator's own, have no namespace and no such budget), within --max-series; 0 = half of --max-series (env NODESCRAPER_MAX_SERIES_PER_NAMESPACE)")
}

func (b *scrapeBudgets) validate(maxSeries int) error {
	if b.bytesInFlight != "auto" && b.bytesInFlight != "" {
		if _, err := parseSize(b.bytesInFlight); err != nil {
			return fmt.Errorf("--max-bytes-in-flight %q: want auto or a size such as 128MiB: %v", b.bytesInFlight, err)
		}
	}
	for _, l := range []struct {
		flag string
		v    int
	}{{"--max-series-per-target", b.perTarget}, {"--max-series-per-namespace", b.perNamespace}} {
		if l.v < 0 || l.v > maxSeries {
			return fmt.Errorf("%s %d: want at most --max-series %d, or 0 for a share of it", l.flag, l.v, maxSeries)
		}
	}
	return nil
}

// inFlight is the bound on body bytes in flight, given the Go runtime's
// memory limit (math.MaxInt64: none).
func (b *scrapeBudgets) inFlight(memLimit int64) int64 {
	if n, err := parseSize(b.bytesInFlight); err == nil {
		return n
	}
	if memLimit <= 0 || memLimit == math.MaxInt64 {
		return inFlightNoLimit
	}
	return max(memLimit/inFlightShare, minInFlight)
}

// seriesPerTarget and seriesPerNamespace are the series budgets, given
// --max-series.
func (b *scrapeBudgets) seriesPerTarget(maxSeries int) int {
	if b.perTarget > 0 {
		return b.perTarget
	}
	return max(maxSeries/perTargetShare, 1)
}

func (b *scrapeBudgets) seriesPerNamespace(maxSeries int) int {
	if b.perNamespace > 0 {
		return b.perNamespace
	}
	return max(maxSeries/perNamespaceShare, 1)
}
