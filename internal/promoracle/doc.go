// Package promoracle tells, for tests, what Prometheus-Operator v0.93 and
// Prometheus v0.315 would scrape in a cluster, with neither of them aware of
// nodescraper: the Operator's own config generator (pkg/prometheus) turns a
// Prometheus resource and its monitors into scrape configs, and Prometheus'
// own Kubernetes service discovery, run against the cluster's API server,
// and its target builder (scrape.TargetsFromGroup) give the active targets.
// It also runs the Operator's own kubelet controller (pkg/kubelet), which
// writes kube-system/kubelet as the Operator does.
//
// It is imported by tests only: the two modules bring a large dependency
// tree that the agent's binary must not link.
package promoracle
