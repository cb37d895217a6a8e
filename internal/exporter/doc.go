// Package exporter is a programmable Prometheus exporter for tests and the
// demo: families of counters, gauges, histograms and summaries whose values a
// test sets exactly, served over real HTTP in the Prometheus text format or
// OpenMetrics. A test can simulate a target restart (counters back to zero,
// a new process_start_time_seconds) and inject failing or slow scrapes.
package exporter
