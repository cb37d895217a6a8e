package main

import (
	"io"
	"math"
	"strings"
	"testing"
)

// TestBudgetFlags: the budgets' flags and variables, their defaults (shares
// of --max-series; a fifth of the memory limit, else 256MiB) and their
// bounds (at most --max-series).
func TestBudgetFlags(t *testing.T) {
	base := []string{"--static-targets", "/dev/null", "--node-name", "n1", "--dry-run", "--max-series", "1000"}
	parse := func(env map[string]string, args ...string) (*config, error) {
		return parseConfig(append(base, args...), func(k string) string { return env[k] }, io.Discard)
	}
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := c.budgets
	if b.seriesPerTarget(1000) != 125 || b.seriesPerNamespace(1000) != 500 {
		t.Errorf("default budgets %d per target, %d per namespace; want 125 and 500", b.seriesPerTarget(1000), b.seriesPerNamespace(1000))
	}
	for _, c := range []struct{ limit, want int64 }{{math.MaxInt64, 256 << 20}, {460 << 20, 92 << 20}, {32 << 20, 16 << 20}} {
		if got := b.inFlight(c.limit); got != c.want {
			t.Errorf("bytes in flight under a memory limit of %d: %d, want %d", c.limit, got, c.want)
		}
	}
	c, err = parse(map[string]string{"NODESCRAPER_MAX_BYTES_IN_FLIGHT": "96MiB", "NODESCRAPER_MAX_SERIES_PER_NAMESPACE": "700"}, "--max-series-per-target", "100")
	if err != nil {
		t.Fatal(err)
	}
	if b := c.budgets; b.inFlight(460<<20) != 96<<20 || b.seriesPerTarget(1000) != 100 || b.seriesPerNamespace(1000) != 700 {
		t.Errorf("set budgets: %d bytes, %d per target, %d per namespace", b.inFlight(460<<20), b.seriesPerTarget(1000), b.seriesPerNamespace(1000))
	}
	for _, bad := range [][]string{
		{"--max-series-per-target", "1001"}, {"--max-series-per-namespace", "-1"}, {"--max-bytes-in-flight", "lots"},
	} {
		if _, err := parse(nil, bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want an error naming %s", bad, err, bad[0])
		}
	}
}
