// Package deltastore turns cumulative Prometheus counters into deltas. It keeps,
// per series (keyed by an xxhash of the series identity), the last value and
// its timestamp and creation time, in shards so concurrent scrape loops do not
// contend. The state lives on the node that scrapes the series, which is what
// lets nodescraper neither lose nor double-count increments.
package deltastore
