// Package selfmetrics writes the agent's own metrics with HELP text.
// github.com/VictoriaMetrics/metrics, which holds them, writes every HELP
// line empty; each component says what its metrics mean (a MetricsHelp map
// beside their declarations) and WriteWithHelp fills the lines in.
package selfmetrics
