package informer

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/strutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// This file rebuilds, from this node's pods, what the endpointslice and
// endpoints controllers would publish for selector Services (the rules of
// k8s.io/endpointslice and pkg/controller/endpoint), and then the
// __meta_kubernetes_* label sets Prometheus' kubernetes SD gives for the
// roles endpointslice, endpoints and pod. The real EndpointSlices cannot be
// watched by node, so watching them would cost every agent the whole cluster.

const (
	meta              = "__meta_kubernetes_"
	endpointsManager  = "endpoint-controller"
	sliceManager      = "endpointslice-controller.k8s.io"
	endpointsManagedL = "endpoints.kubernetes.io/managed-by"
)

// endpoint is one address of a Service as a controller would publish it,
// with the ports that resolve for it.
type endpoint struct {
	addr        string
	pod         *corev1.Pod // nil for endpoints of mirrored or custom slices
	ports       []discoveryv1.EndpointPort
	ready       *bool
	serving     *bool
	terminating *bool
	hostname    *string
	nodeName    *string
	zone        *string
	targetKind  string
	targetName  string
	topology    map[string]string
}

// serviceEndpoints returns the endpoints the controllers would publish for
// svc from pods (this node's pods in svc's namespace). nodeZone is the
// topology.kubernetes.io/zone label of this node.
func serviceEndpoints(svc *corev1.Service, pods []*corev1.Pod, nodeZone string) []endpoint {
	if svc.Spec.Selector == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	sel := svc.Spec.Selector
	var out []endpoint
	for _, pod := range pods {
		if !matchesSelector(sel, pod.Labels) || !podInEndpointSlices(pod) {
			continue
		}
		var ports []discoveryv1.EndpointPort
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			num, ok := findPort(pod, sp)
			if !ok {
				continue // the controller leaves the pod out of this port's slices
			}
			name, proto, port := sp.Name, sp.Protocol, int32(num)
			ports = append(ports, discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port, AppProtocol: sp.AppProtocol})
		}
		if len(ports) == 0 {
			continue
		}
		addr, ok := endpointAddress(svc, pod)
		if !ok {
			continue // no IP of the Service's family: both controllers skip the pod
		}
		// As k8s.io/endpointslice utils.go podToEndpoint: serving is the
		// pod's Ready condition alone, terminating a set deletionTimestamp;
		// only ready follows publishNotReadyAddresses. It also fits role
		// endpoints: pkg/controller/endpoint addEndpointSubset lists an
		// address as ready iff publishing or Ready, and terminating pods are
		// left out unless publishing (inEndpoints).
		serving := podReady(pod)
		terminating := pod.DeletionTimestamp != nil
		ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
		ep := endpoint{
			addr: addr, pod: pod, ports: ports,
			ready: &ready, serving: &serving, terminating: &terminating,
			targetKind: "Pod", targetName: pod.Name,
		}
		// podToEndpoint: nodeName only when the pod is bound, zone only when
		// the node has a non-empty topology.kubernetes.io/zone label.
		if pod.Spec.NodeName != "" {
			node := pod.Spec.NodeName
			ep.nodeName = &node
		}
		if nodeZone != "" {
			ep.zone = &nodeZone
		}
		// k8s.io/endpointslice util/controller_utils.go ShouldSetHostname,
		// used by both controllers (pods here are in svc's namespace).
		if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace {
			h := pod.Spec.Hostname
			ep.hostname = &h
		}
		out = append(out, ep)
	}
	return out
}

// podInEndpointSlices is ShouldPodBeInEndpoints (k8s.io/endpointslice
// util/controller_utils.go) with terminating pods included, as the
// endpointslice controller calls it: terminal pods and pods without an IP
// are left out.
func podInEndpointSlices(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	return pod.Status.PodIP != "" || len(pod.Status.PodIPs) > 0
}

// endpointAddress is the pod IP both roles show for svc: the one of the
// Service's primary IP family. The endpoints controller picks it so
// (pkg/controller/endpoint podToEndpointAddressForService); the
// endpointslice controller writes a slice per family of svc.Spec.IPFamilies
// (k8s.io/endpointslice utils.go getEndpointAddresses), of which Prometheus
// reads only the primary one (discovery/kubernetes endpointslice.go
// nonPrimaryIPFamilySlice). Without IPFamilies (API servers before 1.20)
// this follows the endpoints controller: the ClusterIP's family, or for a
// headless Service the pod's own.
func endpointAddress(svc *corev1.Service, pod *corev1.Pod) (string, bool) {
	ips := make([]string, 0, len(pod.Status.PodIPs))
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = append(ips, pod.Status.PodIP) // the API server fills PodIPs; objects built by hand may not
	}
	var v6 bool
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		v6 = svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone:
		v6 = isIPv6(svc.Spec.ClusterIP)
	default:
		v6 = isIPv6(pod.Status.PodIP)
	}
	for _, ip := range ips {
		if isIPv6(ip) == v6 {
			return ip, true
		}
	}
	return "", false
}

func isIPv6(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && a.Is6() && !a.Is4In6()
}

// findPort resolves a Service port's targetPort for one pod: a name is looked
// up among the pod's container ports (and restartable init containers) with
// the same protocol.
func findPort(pod *corev1.Pod, sp *corev1.ServicePort) (int, bool) {
	tp := sp.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntValue() == 0 {
			return int(sp.Port), true // API defaulting makes targetPort = port
		}
		return tp.IntValue(), true
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == tp.StrVal && p.Protocol == sp.Protocol {
				return int(p.ContainerPort), true
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			continue
		}
		for _, p := range c.Ports {
			if p.Name == tp.StrVal && p.Protocol == sp.Protocol {
				return int(p.ContainerPort), true
			}
		}
	}
	return 0, false
}

func matchesSelector(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if got, ok := lbls[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// lset is a label set under construction.
type lset map[string]string

func (l lset) objectMeta(role, name string, labels, annotations map[string]string) {
	l[meta+role+"_name"] = name
	for k, v := range labels {
		n := strutil.SanitizeLabelName(k)
		l[meta+role+"_label_"+n] = v
		l[meta+role+"_labelpresent_"+n] = "true"
	}
	for k, v := range annotations {
		n := strutil.SanitizeLabelName(k)
		l[meta+role+"_annotation_"+n] = v
		l[meta+role+"_annotationpresent_"+n] = "true"
	}
}

func (l lset) merge(o lset) lset {
	for k, v := range o {
		l[k] = v
	}
	return l
}

func (l lset) clone() lset {
	return make(lset, len(l)).merge(l)
}

// podMeta are the pod labels every role with a pod reference gives.
func podMeta(pod *corev1.Pod) lset {
	ready := "unknown"
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = strings.ToLower(string(c.Status))
		}
	}
	l := lset{
		meta + "pod_ip":        pod.Status.PodIP,
		meta + "pod_ready":     ready,
		meta + "pod_phase":     string(pod.Status.Phase),
		meta + "pod_node_name": pod.Spec.NodeName,
		meta + "pod_host_ip":   pod.Status.HostIP,
		meta + "pod_uid":       string(pod.UID),
	}
	l.objectMeta("pod", pod.Name, pod.Labels, pod.Annotations)
	if c := controllerOf(pod); c != nil {
		if c.Kind != "" {
			l[meta+"pod_controller_kind"] = c.Kind
		}
		if c.Name != "" {
			l[meta+"pod_controller_name"] = c.Name
		}
	}
	return l
}

// containerPort labels a target with a pod container port.
func containerPort(l lset, c *corev1.Container, p *corev1.ContainerPort, init bool) {
	l[meta+"pod_container_name"] = c.Name
	l[meta+"pod_container_image"] = c.Image
	l[meta+"pod_container_port_name"] = p.Name
	l[meta+"pod_container_port_number"] = strconv.Itoa(int(p.ContainerPort))
	l[meta+"pod_container_port_protocol"] = string(p.Protocol)
	l[meta+"pod_container_init"] = strconv.FormatBool(init)
}

type containerRef struct {
	c    *corev1.Container
	init bool
}

func containers(pod *corev1.Pod) []containerRef {
	out := make([]containerRef, 0, len(pod.Spec.Containers)+len(pod.Spec.InitContainers))
	for i := range pod.Spec.Containers {
		out = append(out, containerRef{&pod.Spec.Containers[i], false})
	}
	for i := range pod.Spec.InitContainers {
		out = append(out, containerRef{&pod.Spec.InitContainers[i], true})
	}
	return out
}

func controllerOf(pod *corev1.Pod) *struct{ Kind, Name string } {
	for _, o := range pod.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			return &struct{ Kind, Name string }{o.Kind, o.Name}
		}
	}
	return nil
}

// serviceMeta are the labels of the Service an endpoint belongs to.
func serviceMeta(svc *corev1.Service) lset {
	l := lset{meta + "namespace": svc.Namespace}
	l.objectMeta("service", svc.Name, svc.Labels, svc.Annotations)
	return l
}

// sliceLabels are the labels the endpointslice controller gives the slices
// of svc: the Service's labels, the headless marker, the service name and
// the manager.
func sliceLabels(svc *corev1.Service) map[string]string {
	out := make(map[string]string, len(svc.Labels)+3)
	for k, v := range svc.Labels {
		if k != discoveryv1.LabelServiceName && k != discoveryv1.LabelManagedBy {
			out[k] = v
		}
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[corev1.IsHeadlessService] = ""
	}
	out[discoveryv1.LabelServiceName] = svc.Name
	out[discoveryv1.LabelManagedBy] = sliceManager
	return out
}

// endpointsLabels are the labels the endpoints controller gives the
// Endpoints object of svc.
func endpointsLabels(svc *corev1.Service) map[string]string {
	out := make(map[string]string, len(svc.Labels)+2)
	for k, v := range svc.Labels {
		out[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[corev1.IsHeadlessService] = ""
	} else {
		delete(out, corev1.IsHeadlessService)
	}
	out[endpointsManagedL] = endpointsManager
	return out
}

// addressType is the EndpointSlice address type of ip.
func addressType(ip string) string {
	if isIPv6(ip) {
		return string(discoveryv1.AddressTypeIPv6)
	}
	return string(discoveryv1.AddressTypeIPv4)
}

// group is what Prometheus emits for one discovered object: labels common to
// every target, and the targets.
type group struct {
	common  lset
	targets []lset
	// memo holds the targets' label sets once built, when the group is
	// shared by the jobs of one rebuild (nil: build them each time).
	memo *groupMemo
}

// groupMemo is a group's targets as label sets: all of them (relabeling's
// input) and without annotations (the discovered labels a target shows).
type groupMemo struct {
	full, shown []labels.Labels
}

// sets returns the label sets of target i of g.
func (g group) sets(i int) (full, shown labels.Labels) {
	if g.memo == nil {
		l := g.common.clone().merge(g.targets[i])
		return labels.FromMap(l), discovered(l)
	}
	if g.memo.full == nil {
		g.memo.full = make([]labels.Labels, len(g.targets))
		g.memo.shown = make([]labels.Labels, len(g.targets))
		for i, t := range g.targets {
			l := g.common.clone().merge(t)
			g.memo.full[i], g.memo.shown[i] = labels.FromMap(l), discovered(l)
		}
	}
	return g.memo.full[i], g.memo.shown[i]
}

// endpointSliceGroup labels the endpoints of one slice (emulated or real) as
// role endpointslice does. svc may be nil (a slice whose Service is gone).
func endpointSliceGroup(namespace, sliceName string, sliceLbls, sliceAnn map[string]string, addrType string, svc *corev1.Service, eps []endpoint) group {
	g := group{common: lset{meta + "namespace": namespace, meta + "endpointslice_address_type": addrType}}
	g.common.objectMeta("endpointslice", sliceName, sliceLbls, sliceAnn)
	if svc != nil {
		g.common.merge(serviceMeta(svc))
	}
	s := "endpointslice_"
	for _, ep := range eps {
		var seen []int32
		for _, port := range ep.ports {
			a := ep.addr
			t := lset{}
			if port.Port != nil {
				a = net.JoinHostPort(ep.addr, strconv.Itoa(int(*port.Port)))
				t[meta+s+"port"] = strconv.Itoa(int(*port.Port))
				seen = append(seen, *port.Port)
			}
			t["__address__"] = a
			if port.Name != nil {
				t[meta+s+"port_name"] = *port.Name
			}
			if port.Protocol != nil {
				t[meta+s+"port_protocol"] = string(*port.Protocol)
			}
			if port.AppProtocol != nil {
				t[meta+s+"port_app_protocol"] = *port.AppProtocol
			}
			setBool(t, meta+s+"endpoint_conditions_ready", ep.ready)
			setBool(t, meta+s+"endpoint_conditions_serving", ep.serving)
			setBool(t, meta+s+"endpoint_conditions_terminating", ep.terminating)
			if ep.hostname != nil {
				t[meta+s+"endpoint_hostname"] = *ep.hostname
			}
			if ep.targetKind != "" || ep.targetName != "" {
				t[meta+s+"address_target_kind"] = ep.targetKind
				t[meta+s+"address_target_name"] = ep.targetName
			}
			if ep.nodeName != nil {
				t[meta+s+"endpoint_node_name"] = *ep.nodeName
			}
			if ep.zone != nil {
				t[meta+s+"endpoint_zone"] = *ep.zone
			}
			for k, v := range ep.topology {
				n := strutil.SanitizeLabelName(k)
				t[meta+s+"endpoint_topology_"+n] = v
				t[meta+s+"endpoint_topology_present_"+n] = "true"
			}
			if ep.pod != nil {
				t.merge(podMeta(ep.pod))
				if port.Port != nil {
					matchContainerPort(t, ep.pod, *port.Port, nil)
				}
			}
			g.targets = append(g.targets, t)
		}
		if ep.pod != nil {
			g.targets = append(g.targets, uncoveredPorts(ep.pod, seen)...)
		}
	}
	return g
}

// endpointsGroup labels the endpoints of one Service as role endpoints does.
func endpointsGroup(svc *corev1.Service, eps []endpoint) group {
	g := group{common: serviceMeta(svc)}
	g.common.objectMeta("endpoints", svc.Name, endpointsLabels(svc), nil)
	for _, ep := range eps {
		var seen []int32
		for _, port := range ep.ports {
			t := lset{
				"__address__":                   net.JoinHostPort(ep.addr, strconv.Itoa(int(*port.Port))),
				meta + "endpoint_port_name":     *port.Name,
				meta + "endpoint_port_protocol": string(*port.Protocol),
				meta + "endpoint_ready":         strconv.FormatBool(*ep.ready),
			}
			if ep.targetKind != "" || ep.targetName != "" {
				t[meta+"endpoint_address_target_kind"] = ep.targetKind
				t[meta+"endpoint_address_target_name"] = ep.targetName
			}
			if ep.nodeName != nil {
				t[meta+"endpoint_node_name"] = *ep.nodeName
			}
			if ep.hostname != nil {
				t[meta+"endpoint_hostname"] = *ep.hostname
			}
			if ep.pod != nil {
				t.merge(podMeta(ep.pod))
				proto := *port.Protocol
				matchContainerPort(t, ep.pod, *port.Port, &proto)
			}
			seen = append(seen, *port.Port)
			g.targets = append(g.targets, t)
		}
		if ep.pod != nil {
			g.targets = append(g.targets, uncoveredPorts(ep.pod, seen)...)
		}
	}
	return g
}

// inEndpoints reports whether the endpoints controller lists the endpoint:
// it leaves terminating pods out unless the Service publishes not-ready
// addresses.
func inEndpoints(svc *corev1.Service, ep endpoint) bool {
	return svc.Spec.PublishNotReadyAddresses || ep.pod == nil || ep.pod.DeletionTimestamp == nil
}

// matchContainerPort adds the labels of the first container port with the
// endpoint's port number. Role endpoints reports the Service port's
// protocol (proto), role endpointslice the container's.
func matchContainerPort(t lset, pod *corev1.Pod, port int32, proto *corev1.Protocol) {
	for _, cr := range containers(pod) {
		for i := range cr.c.Ports {
			p := cr.c.Ports[i]
			if p.ContainerPort != port {
				continue
			}
			if proto != nil {
				p.Protocol = *proto
			}
			containerPort(t, cr.c, &p, cr.init)
			return
		}
	}
}

// uncoveredPorts are the extra targets Prometheus adds for a pod's container
// ports that no Service port reached.
func uncoveredPorts(pod *corev1.Pod, seen []int32) []lset {
	if pod.Status.PodIP == "" {
		return nil
	}
	var out []lset
	pm := podMeta(pod)
	for _, cr := range containers(pod) {
		for i := range cr.c.Ports {
			p := &cr.c.Ports[i]
			covered := false
			for _, s := range seen {
				covered = covered || s == p.ContainerPort
			}
			if covered {
				continue
			}
			t := lset{"__address__": net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(p.ContainerPort)))}
			containerPort(t, cr.c, p, cr.init)
			out = append(out, t.merge(pm))
		}
	}
	return out
}

// podGroup labels a pod as role pod does.
func podGroup(pod *corev1.Pod) group {
	if pod.Status.PodIP == "" {
		return group{}
	}
	g := group{common: podMeta(pod)}
	g.common[meta+"namespace"] = pod.Namespace
	for _, cr := range containers(pod) {
		statuses := pod.Status.ContainerStatuses
		if cr.init {
			statuses = pod.Status.InitContainerStatuses
		}
		id := ""
		for _, s := range statuses {
			if s.Name == cr.c.Name {
				id = s.ContainerID
				break
			}
		}
		if len(cr.c.Ports) == 0 {
			g.targets = append(g.targets, lset{
				"__address__":                pod.Status.PodIP,
				meta + "pod_container_name":  cr.c.Name,
				meta + "pod_container_id":    id,
				meta + "pod_container_image": cr.c.Image,
				meta + "pod_container_init":  strconv.FormatBool(cr.init),
			})
			continue
		}
		for i := range cr.c.Ports {
			p := &cr.c.Ports[i]
			t := lset{
				"__address__":             net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(p.ContainerPort))),
				meta + "pod_container_id": id,
			}
			containerPort(t, cr.c, p, cr.init)
			g.targets = append(g.targets, t)
		}
	}
	return g
}

func setBool(t lset, name string, b *bool) {
	if b != nil {
		t[name] = strconv.FormatBool(*b)
	}
}

// nodeMeta are the labels attach_metadata node adds.
func nodeMeta(node *corev1.Node) lset {
	l := lset{}
	l.objectMeta("node", node.Name, node.Labels, node.Annotations)
	return l
}
