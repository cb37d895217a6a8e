package informer

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The strip functions run as informer transforms: they keep what discovery
// reads and drop the rest (managed fields, volumes, env, statuses) before an
// object is cached, so a node with many pods holds little.

func stripObjectMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	m.Finalizers = nil
	if m.Annotations != nil {
		// Written by kubectl apply: large, and a copy of the object.
		delete(m.Annotations, corev1.LastAppliedConfigAnnotation)
	}
}

func stripMeta(o any) any {
	if m, ok := o.(metav1.Object); ok {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a != nil {
			delete(a, corev1.LastAppliedConfigAnnotation)
		}
	}
	return o
}

func stripPod(o any) any {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o
	}
	stripObjectMeta(&p.ObjectMeta)
	keep := func(cs []corev1.Container) []corev1.Container {
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Image: c.Image, Ports: c.Ports, RestartPolicy: c.RestartPolicy}
		}
		return out
	}
	p.Spec = corev1.PodSpec{
		NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork,
		Hostname: p.Spec.Hostname, Subdomain: p.Spec.Subdomain,
		Containers: keep(p.Spec.Containers), InitContainers: keep(p.Spec.InitContainers),
	}
	statuses := func(cs []corev1.ContainerStatus) []corev1.ContainerStatus {
		out := make([]corev1.ContainerStatus, len(cs))
		for i, c := range cs {
			out[i] = corev1.ContainerStatus{Name: c.Name, ContainerID: c.ContainerID}
		}
		return out
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
	return p
}

func stripService(o any) any {
	s, ok := o.(*corev1.Service)
	if !ok {
		return o
	}
	stripObjectMeta(&s.ObjectMeta)
	s.Spec = corev1.ServiceSpec{
		Selector: s.Spec.Selector, Ports: s.Spec.Ports, Type: s.Spec.Type, ClusterIP: s.Spec.ClusterIP,
		PublishNotReadyAddresses: s.Spec.PublishNotReadyAddresses,
	}
	s.Status = corev1.ServiceStatus{}
	return s
}

func stripNode(o any) any {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o
	}
	stripObjectMeta(&n.ObjectMeta)
	n.Status = corev1.NodeStatus{Addresses: n.Status.Addresses}
	n.Spec = corev1.NodeSpec{ProviderID: n.Spec.ProviderID}
	return n
}

// stripSlice keeps only the endpoints on node (all of them when other
// addresses are allowed).
func stripSlice(o any, node string, all bool) any {
	s, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return o
	}
	stripObjectMeta(&s.ObjectMeta)
	if !all {
		eps := s.Endpoints[:0]
		for _, ep := range s.Endpoints {
			if ep.NodeName != nil && *ep.NodeName == node {
				eps = append(eps, ep)
			}
		}
		s.Endpoints = eps
	}
	return s
}
