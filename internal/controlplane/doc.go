// Package controlplane runs a real Kubernetes control plane on loopback for
// tests: etcd, kube-apiserver (RBAC on, generated certificates) and, when asked,
// kube-controller-manager, with the Prometheus-Operator ServiceMonitor and
// PodMonitor CRDs installed. It also creates the objects the agent watches
// (Nodes, Pods bound to a node with a 127.0.0.x IP, Services, monitors,
// Secrets) and mints ServiceAccount credentials.
//
// The binaries come from scripts/controlplane.sh ensure (etcd from Debian's
// etcd-server, the Kubernetes binaries built by tools/kube); a test whose
// binaries are missing fails with that hint instead of being skipped.
package controlplane
