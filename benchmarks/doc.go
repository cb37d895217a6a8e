// Package benchmarks measures the agent's hot paths against peer libraries.
// It is its own module so that VictoriaMetrics, prometheus/common's expfmt
// and other comparison targets never enter the agent's dependency graph.
//
// parse_test.go runs the exposition parser side by side with Prometheus'
// textparse, VictoriaMetrics' lib/protoparser/prometheus, expfmt and a plain
// newline scan; README.md has the numbers and the command.
//
// The module's other benchmarks are programs and packages of their own:
// cmd/nodebench (the agent end to end), cmd/genksm (its kube-state-metrics
// payload) and apiscale (what discovery costs the API server).
package benchmarks
