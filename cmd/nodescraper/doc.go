// Command nodescraper is the per-node agent. Its one job is configuration
// and wiring; the work is done by the packages it wires: discovery (informer),
// the scrape loops (scrapeloop), the delta store (deltastore) and the Datadog
// client (ddclient).
//
//   - main.go: the process; the first SIGTERM or SIGINT shuts down
//     gracefully, a second exits at once.
//   - config.go: flags and environment are parsed, resolved (hostname,
//     defaults, key files) and validated (without I/O); every error names the
//     setting.
//   - run.go: builds the components, runs them and the node-local endpoint
//     (/metrics, /targets, /api/v1/targets, /healthz, /readyz) under one
//     group, and shuts them down in order: scraping stops, the delta state is
//     checkpointed, what is unsent is flushed or spooled.
//   - kube.go: the Kubernetes discovery built from the flags.
//   - memlimit.go: sizes such as 512MiB and the Go runtime's memory limit.
package main
