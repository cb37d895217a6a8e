// Package exporter is a programmable Prometheus exporter for tests and the
// demo: families of counters, gauges, histograms and summaries whose values a
// test sets exactly, served over real HTTP in the Prometheus text format or
// OpenMetrics. A test can simulate a target restart (counters back to zero,
// a new process_start_time_seconds) and inject failing or slow scrapes.
// Flap is the one scripted simulation of series that vanish and return and
// answers cut short, with its true increases, shared by the scraper's and
// the agent's tests; demo.go is the demo's simulated application.
package exporter
