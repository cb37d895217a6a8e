// Package informer discovers what this node must scrape and emits the node's
// target set ([]target.Target) whenever it changes. Targets come from
// Prometheus-Operator ServiceMonitors and PodMonitors (turned into jobs by
// package relabel) resolved against this node's pods; in local mode,
// sub-package filesd reads them from a Prometheus file_sd file. The set also holds
// the discovered targets that are not scraped (Target.Drop: dropped by
// relabeling, not on this node, no valid target, over the monitor's
// targetLimit), for the targets page. A target that sends the agent's own
// service-account token (target.Target.OwnCredentials, from a monitor in a
// trusted namespace) is kept only at this node's addresses, its pods' and
// the API server's (default/kubernetes' endpoints, the agent's own API
// server host), also with AllowOtherAddresses; elsewhere it is dropped as a
// refused setting.
//
// In Kubernetes mode (Kube) the API load does not grow with the cluster's
// pods: Pods are watched by spec.nodeName, the Node by name, EndpointSlices
// only when not written by the endpointslice controller, and each Secret or
// ConfigMap a monitor references by name in the monitor's namespace. What the
// endpointslice and endpoints controllers would publish for selector
// Services is rebuilt from the local pods, and labeled as Prometheus'
// kubernetes SD does (roles endpointslice, endpoints, pod). Of the slices
// watched, the endpoints on this node are kept and those that name no node:
// one at an address of this node is this node's target; the others are the
// targets of no node (Target.Cluster), scraped by the one agent holding the
// cluster Lease (LeaseConfig), which watches every Node's addresses while
// it holds it, and listed as dropped by the others.
//
// Known differences from Prometheus: an emulated slice is named
// <service>-<node> (the controller's name is random) and carries no
// endpoints.kubernetes.io/last-change-trigger-time annotation; the Endpoints
// of role endpoints carry no annotations either.
package informer
