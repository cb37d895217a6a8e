// Package informer discovers what this node must scrape and emits the node's
// target set whenever it changes. Targets come from Prometheus-Operator
// ServiceMonitors and PodMonitors resolved against this node's pods, or, in
// local mode, from a file in Prometheus' file_sd format.
package informer
