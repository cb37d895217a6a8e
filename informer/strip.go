package informer

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The strip functions run as informer transforms: they keep what discovery
// reads and drop the rest (managed fields, volumes, env, statuses) before an
// object is cached, so a node with many pods holds little.

// stripMeta drops the managed fields and kubectl's last-applied copy of the
// object; the rest of the metadata feeds __meta_* labels.
func stripMeta(o any) any {
	if m, ok := o.(metav1.Object); ok {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a != nil {
			delete(a, corev1.LastAppliedConfigAnnotation)
		}
	}
	return o
}

// strip returns a transform that strips objects of type T with stripMeta and
// f, and passes anything else (a DeletedFinalStateUnknown) through.
func strip[T metav1.Object](f func(T)) func(any) any {
	return func(o any) any {
		if x, ok := o.(T); ok {
			stripMeta(x)
			f(x)
		}
		return o
	}
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, x := range in {
		out[i] = f(x)
	}
	return out
}

var stripPod = strip(func(p *corev1.Pod) {
	keep := func(cs []corev1.Container) []corev1.Container {
		return mapSlice(cs, func(c corev1.Container) corev1.Container {
			return corev1.Container{Name: c.Name, Image: c.Image, Ports: c.Ports, RestartPolicy: c.RestartPolicy}
		})
	}
	p.Spec = corev1.PodSpec{
		NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork,
		Hostname: p.Spec.Hostname, Subdomain: p.Spec.Subdomain,
		Containers: keep(p.Spec.Containers), InitContainers: keep(p.Spec.InitContainers),
	}
	statuses := func(cs []corev1.ContainerStatus) []corev1.ContainerStatus {
		return mapSlice(cs, func(c corev1.ContainerStatus) corev1.ContainerStatus {
			return corev1.ContainerStatus{Name: c.Name, ContainerID: c.ContainerID}
		})
	}
	var conds []corev1.PodCondition
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			conds = append(conds, corev1.PodCondition{Type: c.Type, Status: c.Status})
		}
	}
	p.Status = corev1.PodStatus{
		Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs, HostIP: p.Status.HostIP,
		Conditions:            conds,
		ContainerStatuses:     statuses(p.Status.ContainerStatuses),
		InitContainerStatuses: statuses(p.Status.InitContainerStatuses),
	}
})

var stripService = strip(func(s *corev1.Service) {
	s.Spec = corev1.ServiceSpec{
		Selector: s.Spec.Selector, Ports: s.Spec.Ports, Type: s.Spec.Type, ClusterIP: s.Spec.ClusterIP,
		PublishNotReadyAddresses: s.Spec.PublishNotReadyAddresses,
	}
	s.Status = corev1.ServiceStatus{}
})

var stripNode = strip(func(n *corev1.Node) {
	n.Status = corev1.NodeStatus{Addresses: n.Status.Addresses}
	n.Spec = corev1.NodeSpec{ProviderID: n.Spec.ProviderID}
})

// stripSlice keeps only the endpoints on node and those that name no node.
// An endpoint without a node name is this node's when its address is (the
// API server's on a control-plane node, kubelets the Operator wrote without
// node names), the cluster Lease holder's otherwise; the other nodes'
// endpoints are never this agent's, whatever the settings.
func stripSlice(o any, node string) any {
	return strip(func(s *discoveryv1.EndpointSlice) {
		s.Endpoints = slices.DeleteFunc(s.Endpoints, func(ep discoveryv1.Endpoint) bool {
			return ep.NodeName != nil && *ep.NodeName != node
		})
	})(o)
}
