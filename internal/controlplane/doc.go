// Package controlplane runs a real Kubernetes control plane on loopback for
// tests, the demo (cmd/kubedemo) and the apiscale benchmark
// (benchmarks/apiscale, in another module, which Go's internal rule lets
// import it by path): etcd, kube-apiserver (RBAC on, generated certificates)
// and, when asked, kube-controller-manager, with the Prometheus-Operator
// ServiceMonitor and PodMonitor CRDs installed. It also creates the objects the agent watches
// (Nodes, Pods bound to a node with a 127.0.0.x IP, Services, monitors,
// Secrets) and mints ServiceAccount credentials.
//
// StartNode adds a real node: a kubelet with its own containerd and runc
// (and kube-scheduler with the first node), running pods from image tarballs
// imported into it (BuildImage packages a main package of this module);
// pods use hostNetwork and get 127.0.0.1 as their IP.
//
// The binaries come from scripts/controlplane.sh ensure (etcd, containerd,
// runc and the CNI plugins from Debian, the Kubernetes binaries built by
// tools/kube); a test whose binaries are missing fails with that hint instead
// of being skipped.
package controlplane
