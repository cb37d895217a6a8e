package scrapeloop

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel/target"
)

// poolMetrics are the series of one scrape pool. Per pool, not per target:
// a node's pools are its monitors' endpoints (tens), its targets may be
// thousands, and a pod's restart would leave a series behind per target.
type poolMetrics struct {
	scrapes, failures *metrics.Counter
	duration          *metrics.PrometheusHistogram
}

// Names of the per-pool series.
const (
	poolScrapesName  = `nodescraper_scrape_pool_scrapes_total`
	poolFailuresName = `nodescraper_scrape_pool_scrape_failures_total`
	poolDurationName = `nodescraper_scrape_pool_duration_seconds`
	poolTargetsName  = `nodescraper_scrape_pool_targets`
	poolDroppedName  = `nodescraper_scrape_pool_dropped_targets`
)

// MetricsHelp returns the HELP text of the manager's metrics by family name.
// The metrics library writes empty HELP lines; the endpoint fills them in.
func (m *Manager) MetricsHelp() map[string]string {
	return map[string]string{
		`nodescraper_targets`:                               "Targets this node scrapes (running scrape loops).",
		`nodescraper_scrapes_total`:                         "Scrapes of all targets, failed ones included.",
		`nodescraper_scrapes_skipped_total`:                 "Scrapes not taken because their tick fired late, in the second of the target's previous scrape (Datadog keeps one point per series and second); their increase goes into the next scrape's deltas.",
		`nodescraper_scrape_errors_total`:                   "Scrapes that failed (HTTP error, timeout, limit, parse error).",
		`nodescraper_scrape_samples_total`:                  "Samples read from all scrapes.",
		`nodescraper_scrape_body_bytes_total`:               "Bytes of the scraped bodies, after decompression.",
		`nodescraper_scrape_series_refused_total`:           "New series refused because a series budget was exhausted, by reason: target (--max-series-per-target), namespace (--max-series-per-namespace), node (--max-series).",
		`nodescraper_scrape_bytes_in_flight`:                "Body bytes the node's scrapes hold now (read and not yet processed).",
		`nodescraper_scrape_bytes_in_flight_limit`:          "The bound on body bytes held by all scrapes at once (--max-bytes-in-flight).",
		`nodescraper_scrape_bytes_in_flight_waits_total`:    "Times a scrape waited for body bytes under --max-bytes-in-flight.",
		`nodescraper_scrape_bytes_in_flight_failures_total`: "Scrapes failed on --max-bytes-in-flight, by reason: timeout (no bytes free within the scrape timeout), oversize (the body alone is larger than the bound), stalled (every byte was held by scrapes waiting for more: the newest gave up).",
		`nodescraper_scrape_series_hash_collisions_total`:   "Series not admitted because another series of the target has the same hash.",
		`nodescraper_scrape_duration_seconds`:               "Duration of scrapes (fetch, parse, hand-over to the backend).",
		`nodescraper_scrape_incomplete_bodies_total`:        "Scrapes failed because the body was provably cut short, by reason.",
		poolScrapesName:                                     "Scrapes of the pool's targets.",
		poolFailuresName:                                    "Failed scrapes of the pool's targets.",
		poolDurationName:                                    "Duration of scrapes of the pool's targets.",
		poolTargetsName:                                     "Targets of the pool by health of their last scrape (up, down, unknown: not scraped yet).",
		poolDroppedName:                                     "Discovered targets of the pool that are not scraped, by reason.",
	}
}

// pool returns the metrics of the named pool, creating them.
func (c *env) pool(name string) *poolMetrics {
	c.poolMu.Lock()
	defer c.poolMu.Unlock()
	if p, ok := c.pools[name]; ok {
		return p
	}
	l := `{pool="` + labelValue(name) + `"}`
	p := &poolMetrics{
		scrapes:  c.m.set.GetOrCreateCounter(poolScrapesName + l),
		failures: c.m.set.GetOrCreateCounter(poolFailuresName + l),
		duration: c.m.set.GetOrCreatePrometheusHistogram(poolDurationName + l),
	}
	c.pools[name] = p
	return p
}

// prunePools unregisters the series of the pools no loop scrapes.
func (c *env) prunePools(live map[string]bool) {
	c.poolMu.Lock()
	defer c.poolMu.Unlock()
	for name := range c.pools {
		if live[name] {
			continue
		}
		l := `{pool="` + labelValue(name) + `"}`
		for _, n := range []string{poolScrapesName, poolFailuresName, poolDurationName} {
			c.m.set.UnregisterMetric(n + l)
		}
		delete(c.pools, name)
	}
}

// writePoolTargets writes the targets per pool and health, and the dropped
// targets per pool and reason, as they are now.
func (m *Manager) writePoolTargets(w io.Writer) {
	health := map[string]map[string]int{}
	m.mu.Lock()
	for _, l := range m.loops {
		st := l.getStatus()
		if health[l.pool] == nil {
			health[l.pool] = map[string]int{}
		}
		health[l.pool][st.Health]++
	}
	dropped := map[string]map[target.DropReason]int{}
	for pool, n := range m.dropped.reasons {
		dropped[pool] = n
	}
	m.mu.Unlock()
	if len(health) > 0 {
		metrics.WriteMetadataIfNeeded(w, poolTargetsName, "gauge")
		for _, pool := range slices.Sorted(maps.Keys(health)) {
			for _, h := range []string{"up", "down", "unknown"} {
				fmt.Fprintf(w, "%s{pool=\"%s\",health=\"%s\"} %d\n", poolTargetsName, labelValue(pool), h, health[pool][h])
			}
		}
	}
	if len(dropped) > 0 {
		metrics.WriteMetadataIfNeeded(w, poolDroppedName, "gauge")
		for _, pool := range slices.Sorted(maps.Keys(dropped)) {
			for _, r := range slices.Sorted(maps.Keys(dropped[pool])) {
				fmt.Fprintf(w, "%s{pool=\"%s\",reason=\"%s\"} %d\n", poolDroppedName, labelValue(pool), labelValue(string(r)), dropped[pool][r])
			}
		}
	}
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// labelValue escapes a label value for the text exposition format.
func labelValue(s string) string { return labelEscaper.Replace(s) }
