// Command nodebench measures the nodescraper agent end to end, as a user runs
// it in local mode: it serves synthetic Kubernetes-shaped exporters on
// 127.0.x.y loopback addresses, lists them in a Prometheus file_sd file,
// runs the agent binary against a strict stand-in Datadog intake in this
// process (ddclient/fakeintake's Sink), and reports the agent's CPU time and RSS
// (from /proc), the bytes and latency of what it sends, its drops, and
// whether the per-series sums of the received count deltas equal the true
// increase of every counter.
//
// Files, one concept each:
//
//	main.go      flags, the run loop over scenarios and agents
//	scenario.go  the scenarios (idle, typical, dense, churn, ksm, scaling)
//	synth.go     synthetic targets: families, label values, values per scrape
//	filetarget.go targets served from an exposition file (genksm's payload)
//	exporter.go  the HTTP side: one listener per target, scrape counting, freeze
//	naming.go    the Datadog name and tags the agent should send for a series
//	tally.go     what the intake received: sums and last values per series
//	agent.go     starting, sampling (/proc) and stopping the agent
//	run.go       one scenario run: timeline and measurements
//	check.go     expected vs received per series
//	report.go    Markdown and JSON output
//	plot.go      the scaling-curve PNG
//
// See ../../README.md ("End-to-end node benchmark") for the commands.
package main
