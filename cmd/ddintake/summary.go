package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// topN is how many metrics the summary names.
const topN = 5

// summarizer prints what arrived since its previous print.
type summarizer struct {
	out     io.Writer
	in      *fakeintake.Intake
	prev    fakeintake.Stats
	printed bool
	// seenRejects counts refusals already shown, so each is listed once.
	seenRejects int64
}

func (s *summarizer) print(now time.Time) {
	st := s.in.Stats()
	fmt.Fprint(s.out, formatSummary(now, s.prev, st, s.in.TopMetrics(topN), s.seenRejects, s.printed))
	s.prev, s.printed, s.seenRejects = st, true, st.RejectedTotal()
}

// formatSummary renders a summary of st; prev is the previous one (zero if
// none), seen how many refusals were already listed.
func formatSummary(now time.Time, prev, st fakeintake.Stats, top []fakeintake.MetricCount, seen int64, printedBefore bool) string {
	var b strings.Builder
	stamp := now.Format("15:04:05")
	rejected := st.RejectedTotal()
	if printedBefore && st.Accepted == prev.Accepted && rejected == prev.RejectedTotal() && st.Faults == prev.Faults {
		fmt.Fprintf(&b, "[%s] nothing new (payloads %d, rejected %d)\n", stamp, st.Accepted, rejected)
		return b.String()
	}
	fmt.Fprintf(&b, "[%s] payloads %d (+%d)  series %d (+%d)  points %d (+%d)  metrics %d  rejected %d (+%d)  faults %d\n",
		stamp, st.Accepted, st.Accepted-prev.Accepted, st.Series, st.Series-prev.Series,
		st.Points, st.Points-prev.Points, st.Metrics, rejected, rejected-prev.RejectedTotal(), st.Faults)
	if st.Accepted > 0 {
		encs := make([]string, 0, len(st.Encodings))
		for _, e := range slices.Sorted(maps.Keys(st.Encodings)) {
			encs = append(encs, fmt.Sprintf("%s %d", e, st.Encodings[e]))
		}
		fmt.Fprintf(&b, "  bytes %s sent, %s decoded (%s)", size(st.CompressedBytes), size(st.UncompressedBytes), strings.Join(encs, ", "))
		if st.DuplicatePoints > 0 {
			fmt.Fprintf(&b, "  DUPLICATE points %d (Datadog keeps one value per series and timestamp)", st.DuplicatePoints)
		}
		if st.EvictedSeries > 0 {
			fmt.Fprintf(&b, "  evicted series %d", st.EvictedSeries)
		}
		b.WriteByte('\n')
	}
	if len(top) > 0 {
		parts := make([]string, len(top))
		for i, m := range top {
			parts[i] = fmt.Sprintf("%s %d", m.Metric, m.Points)
		}
		fmt.Fprintf(&b, "  top metrics by points: %s\n", strings.Join(parts, ", "))
	}
	if len(st.Rejected) > 0 {
		reasons := make([]string, 0, len(st.Rejected))
		for _, r := range slices.Sorted(maps.Keys(st.Rejected)) {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, st.Rejected[r]))
		}
		fmt.Fprintf(&b, "  rejects by reason: %s\n", strings.Join(reasons, ", "))
	}
	// LastRejects holds the most recent ones; show those not shown before.
	fresh := min(int(rejected-seen), len(st.LastRejects))
	for _, r := range st.LastRejects[len(st.LastRejects)-fresh:] {
		fmt.Fprintf(&b, "  rejected %s %d %s: %s\n", r.Time.Format("15:04:05"), r.Status, r.Reason, r.Message)
	}
	return b.String()
}

// size spells a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
