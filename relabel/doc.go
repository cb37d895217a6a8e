// Package relabel turns discovered label sets into scrape targets the way
// Prometheus does: it applies a relabel chain (github.com/prometheus/prometheus
// model/relabel), then Prometheus' own target rules (job, instance, scheme,
// path, params, per-target interval and timeout; __meta_* and __tmp* dropped).
// The Prometheus-Operator chains for ServiceMonitors and PodMonitors are
// generated here too.
package relabel
