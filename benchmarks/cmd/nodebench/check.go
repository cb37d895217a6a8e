package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// checkResult compares what the intake received per series with the truth.
type checkResult struct {
	Counters        int64    `json:"count_series"`               // count series expected
	CounterMismatch int64    `json:"count_mismatches"`           // whose received sum differs
	Expected        float64  `json:"expected_increase"`          // true increase, all count series
	Shortfall       float64  `json:"shortfall"`                  // sum of (expected - received) where received is less
	Excess          float64  `json:"excess"`                     // sum of (received - expected) where received is more
	Gauges          int64    `json:"gauge_series"`               // gauge series expected
	GaugeMismatch   int64    `json:"gauge_mismatches"`           // whose last value differs (or never arrived)
	Received        int64    `json:"received_series"`            // distinct series the intake saw
	Unmatched       int64    `json:"unmatched_series"`           // received series no exporter series maps to
	Report          int64    `json:"report_series"`              // per-target up/scrape_* gauges received (nodescraper --report-series)
	UnknownTagKeys  []string `json:"unknown_tag_keys,omitempty"` // tag keys the harness never produces
	Examples        []string `json:"examples,omitempty"`         // the first mismatches
}

// ok reports whether every count and gauge series matched exactly.
func (c checkResult) ok() bool {
	return c.CounterMismatch == 0 && c.GaugeMismatch == 0 && c.Unmatched == 0
}

// String is the table's one-cell summary.
func (c checkResult) String() string {
	if c.ok() {
		if c.Report > 0 {
			return fmt.Sprintf("exact (%d counts, %d gauges, %d report)", c.Counters, c.Gauges, c.Report)
		}
		return fmt.Sprintf("exact (%d counts, %d gauges)", c.Counters, c.Gauges)
	}
	var parts []string
	if c.CounterMismatch > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d counts off (short %.6g, excess %.6g of %.6g)", c.CounterMismatch, c.Counters, c.Shortfall, c.Excess, c.Expected))
	}
	if c.GaugeMismatch > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d gauges off", c.GaugeMismatch, c.Gauges))
	}
	if c.Unmatched > 0 {
		parts = append(parts, fmt.Sprintf("%d unmatched received", c.Unmatched))
	}
	return strings.Join(parts, "; ")
}

const maxExamples = 5

// reportSeries are the series Prometheus adds for every scrape.
var reportSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

// check walks every target's truth and compares it with the tally. The
// agent's first scrape of a target is the first response the exporter wrote
// completely; the last is the frozen one.
func check(targets []*exportTarget, tl *tally, keys *keyer) checkResult {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var c checkResult
	matched := make(map[uint64]struct{}, len(tl.series))
	var scratch []string
	example := func(format string, args ...any) {
		if len(c.Examples) < maxExamples {
			c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
		}
	}
	for _, t := range targets {
		k1 := int(t.firstOK.Load())
		t.mu.Lock()
		kf := t.frozenAt
		t.mu.Unlock()
		// Prometheus' report series, which nodescraper sends per target
		// (--report-series) and other agents may not: matched when
		// present, and up must read 1 (the frozen target still answers).
		for _, name := range reportSeries {
			metric, _, tags := predict("gauge", name, name, nil, t.targetLabels())
			var key uint64
			key, scratch = keys.key(metric, nodeName, tags, scratch, nil)
			got, ok := tl.series[key]
			if !ok {
				continue
			}
			matched[key] = struct{}{}
			c.Report++
			if name == "up" && got.last != 1 {
				c.GaugeMismatch++
				example("%s %v: last %v, want 1", metric, scratch, got.last)
			}
		}
		t.src.expect(t.targetLabels(), k1, kf, func(metric string, kd kind, tags []string, want float64) {
			var key uint64
			key, scratch = keys.key(metric, nodeName, tags, scratch, nil)
			got, ok := tl.series[key]
			if ok {
				matched[key] = struct{}{}
			}
			switch kd {
			case kindCount:
				c.Counters++
				c.Expected += want
				if got.sum == want {
					return
				}
				c.CounterMismatch++
				if got.sum < want {
					c.Shortfall += want - got.sum
				} else {
					c.Excess += got.sum - want
				}
				example("%s %v: received %v, want %v (%d points)", metric, scratch, got.sum, want, got.points)
			case kindGauge:
				c.Gauges++
				if ok && got.last == want {
					return
				}
				c.GaugeMismatch++
				example("gauge %s %v: last %v (received %t), want %v", metric, scratch, got.last, ok, want)
			}
		})
	}
	c.Received = int64(len(tl.series))
	c.Unmatched = c.Received - int64(len(matched))
	c.UnknownTagKeys = slices.Sorted(maps.Keys(tl.unknown))
	return c
}
