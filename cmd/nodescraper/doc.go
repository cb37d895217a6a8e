// Command nodescraper is the per-node agent: it wires discovery, the scrape
// loops, the delta store and the Datadog client together, serves the
// node-local endpoint (/metrics, /targets, /healthz, /readyz) and shuts down
// gracefully on SIGTERM.
package main
