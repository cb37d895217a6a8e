// Package apiscale measures what many agents' discovery costs the API server
// on the real control plane (internal/controlplane): it writes a simulated
// cluster of many Node objects and pods (statuses written as a kubelet
// would; EndpointSlices published by the real kube-controller-manager), runs
// many node-local discovery instances (the real informer.Kube) or, for
// comparison, cluster-wide pod + EndpointSlice informers, each with its own
// connection whose bytes are counted, drives churn, and reports per-agent
// bytes and objects, watches, kube-apiserver CPU and memory, etcd size and
// the pod-change-to-target-set latency. cmd/apiscale runs it at scale; the
// package test (TestTiny, in make test) runs a tiny configuration. It lives
// in the benchmarks module and imports the main module's internal/controlplane,
// which Go's internal rule allows by import path.
package apiscale
