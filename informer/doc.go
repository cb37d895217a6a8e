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
// pods and Services: Pods are watched by spec.nodeName, the Node by name,
// EndpointSlices only when not written by the endpointslice controller, and
// each Secret or ConfigMap a monitor references by name in the monitor's
// namespace. Services are watched only in the namespaces where this node has
// pods, one watch per namespace and label selector of the ServiceMonitors
// that discover there (an empty selector: the namespace's Services), plus by
// name those the watched EndpointSlices name (selectorless Services such as
// default/kubernetes); watches start and stop with the node's namespaces and
// the monitors, and a target set is emitted only once every new watch has
// listed (waited for at most RefSyncTimeout per watch; until then the last
// set stays). What the
// endpointslice and endpoints controllers would publish for selector
// Services is rebuilt from the local pods, and labeled as Prometheus'
// kubernetes SD does (roles endpointslice, endpoints, pod). Of the slices
// watched, the endpoints on this node are kept and those that name no node:
// one at an address of this node is this node's target; the others are the
// targets of no node (Target.Cluster), scraped by the one agent holding the
// cluster Lease (LeaseConfig), which watches every Node's addresses while
// it holds it, and listed as dropped by the others.
//
// Known differences from Prometheus: a Service that no monitor's selector
// selects is not discovered at all, so its endpoints are not listed as
// dropped by relabeling (Prometheus lists them under every monitor of the
// namespace); an emulated slice is named
// <service>-<node> (the controller's name is random) and carries no
// endpoints.kubernetes.io/last-change-trigger-time annotation; the Endpoints
// of role endpoints carry no annotations either.
package informer
