// Whose target an endpoint is: this node's agent's, another node's, or
// the cluster Lease holder's.

package informer

import (
	"net"
	"strings"

	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// ownership decides whether this agent scrapes tg, discovered with the
// labels shown, and marks a target of no node as such. Whose target it is
// follows from what was discovered (the endpoint's node, or for an endpoint
// that names none, its address), never from the relabeled address, so no
// setting makes two agents scrape one endpoint: this node's pods and
// endpoints are this agent's; an endpoint naming no node is the agent's
// whose node has its address, or else the cluster Lease holder's. Then the
// relabeled address must be this node's, or for a target of no node the
// endpoint's own, unless --allow-other-addresses.
func (k *Kube) ownership(s *snapshot, role relabel.Role, shown labels.Labels, tg *target.Target) target.Drop {
	host := urlHost(tg.URL)
	found := addrHost(shown.Get(model.AddressLabel))
	if !nodeless(role, shown) || s.allowed[found] {
		if !k.cfg.AllowOtherAddresses && !s.allowed[host] {
			return target.Drop{Reason: target.DroppedNotOnNode, Detail: "address " + host + " is not an address of this node or of its pods (--allow-other-addresses)"}
		}
		return target.Drop{}
	}
	elsewhere := "endpoint " + found + " names no node and is not an address of this node: the agent of the node with that address scrapes it, or if no node has it, "
	if k.lease == nil {
		return target.Drop{Reason: target.DroppedNotOnNode, Detail: elsewhere + "the holder of the cluster Lease, which is off (--cluster-lease)"}
	}
	term := k.lease.Term()
	if term == "" {
		holder := k.lease.Holder()
		if holder == "" {
			holder = "none yet"
		}
		return target.Drop{Reason: target.DroppedNotOnNode, Detail: elsewhere + "the holder of Lease " + k.lease.cfg.Namespace + "/" + k.lease.cfg.Name + " (holder: " + holder + ")"}
	}
	if node := k.lease.nodeOf(found); node != "" {
		return target.Drop{Reason: target.DroppedNotOnNode, Detail: "endpoint " + found + " names no node; its address is node " + node + "'s, whose agent scrapes it"}
	}
	if !k.cfg.AllowOtherAddresses && host != found {
		return target.Drop{Reason: target.DroppedNotOnNode, Detail: "address " + host + " is not the address of the endpoint " + found + " of no node (--allow-other-addresses)"}
	}
	tg.Cluster, tg.Term = true, term
	return target.Drop{}
}

// nodeless reports whether an endpoint role's label set names no node: an
// endpoint without a node name and not of a pod (whose node, this one, is
// known).
func nodeless(role relabel.Role, l labels.Labels) bool {
	switch role {
	case relabel.RoleEndpointSlice:
		return l.Get(meta+"endpointslice_endpoint_node_name") == "" && l.Get(meta+"pod_node_name") == ""
	case relabel.RoleEndpoints:
		return l.Get(meta+"endpoint_node_name") == "" && l.Get(meta+"pod_node_name") == ""
	}
	return false
}

// addrHost is the host of a discovered host:port address.
func addrHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// apiServerHosts are the API server's addresses: those of the endpoints of
// default/kubernetes (what kube-prometheus' apiserver monitor scrapes; the
// API server writes that slice without a managed-by label, so the slice
// watch has it) and the host the agent itself reaches it at.
func (k *Kube) apiServerHosts() map[string]bool {
	out := map[string]bool{}
	if rc := k.cfg.Rest; rc != nil && rc.Host != "" {
		h := rc.Host
		if !strings.Contains(h, "://") {
			h = "https://" + h // client-go's default scheme
		}
		if h = urlHost(h); h != "" {
			out[h] = true
		}
	}
	objs, _ := k.slices.GetIndexer().ByIndex(cache.NamespaceIndex, metav1.NamespaceDefault)
	for _, o := range objs {
		es := o.(*discoveryv1.EndpointSlice)
		if es.Labels[discoveryv1.LabelServiceName] != "kubernetes" {
			continue
		}
		for _, ep := range es.Endpoints {
			for _, a := range ep.Addresses {
				out[a] = true
			}
		}
	}
	return out
}
