package informer

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testPod is running and ready on n1 with a container "app" (TCP 8080
// "metrics", UDP 53 "dns") and a restartable init container "sidecar"
// (TCP 9000 "sc").
func testPod(name, ip string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	yes := true
	always := corev1.ContainerRestartPolicyAlways
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: name, UID: types.UID("uid-" + name),
			Labels:          map[string]string{"app": "a"},
			Annotations:     map[string]string{"note": "x"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs-1", Controller: &yes}},
		},
		Spec: corev1.PodSpec{
			NodeName: "n1",
			Containers: []corev1.Container{{Name: "app", Image: "img:1", Ports: []corev1.ContainerPort{
				{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			}}},
			InitContainers: []corev1.Container{{Name: "sidecar", Image: "side:1", RestartPolicy: &always, Ports: []corev1.ContainerPort{
				{Name: "sc", ContainerPort: 9000, Protocol: corev1.ProtocolTCP},
			}}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, HostIP: "10.0.0.1",
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://abc"}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func testService(ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc", Labels: map[string]string{"team": "t"}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "a"}, Ports: ports},
	}
}

func svcPort(name string, port int32, target string, proto corev1.Protocol) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.Parse(target), Protocol: proto}
}

func describe(eps []endpoint) string {
	var out []string
	for _, ep := range eps {
		var ports []string
		for _, p := range ep.ports {
			ports = append(ports, fmt.Sprintf("%s/%d/%s", *p.Name, *p.Port, *p.Protocol))
		}
		s := fmt.Sprintf("%s ready=%v serving=%v terminating=%v ports=%s", ep.addr, *ep.ready, *ep.serving, *ep.terminating, strings.Join(ports, ","))
		if ep.hostname != nil {
			s += " hostname=" + *ep.hostname
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}

func TestServiceEndpoints(t *testing.T) {
	now := metav1.Now()
	web := svcPort("web", 80, "metrics", corev1.ProtocolTCP)
	publishing := func() *corev1.Service {
		s := testService(web)
		s.Spec.PublishNotReadyAddresses = true
		return s
	}
	families := func(fs ...corev1.IPFamily) *corev1.Service {
		s := testService(web)
		s.Spec.IPFamilies = fs
		return s
	}
	dualStack := func(p *corev1.Pod) {
		p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}, {IP: "fd00::5"}}
	}
	notReady := func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }
	deleting := func(p *corev1.Pod) { p.DeletionTimestamp = &now }
	// Conditions as k8s.io/endpointslice podToEndpoint sets them: serving
	// is the pod's readiness alone, only ready follows
	// publishNotReadyAddresses.
	cases := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want string
	}{
		{"named and numeric targetPorts, sidecar port, protocol must match", testService(web, svcPort("side", 90, "sc", corev1.ProtocolTCP), svcPort("num", 81, "7070", corev1.ProtocolTCP), svcPort("udp", 53, "metrics", corev1.ProtocolUDP)),
			[]*corev1.Pod{testPod("p1", "10.1.0.5")},
			"10.1.0.5 ready=true serving=true terminating=false ports=web/8080/TCP,side/9000/TCP,num/7070/TCP"},
		{"not ready", testService(web), []*corev1.Pod{testPod("p1", "10.1.0.5", func(p *corev1.Pod) {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
		})}, "10.1.0.5 ready=false serving=false terminating=false ports=web/8080/TCP"},
		{"terminating stays, not ready but serving", testService(web), []*corev1.Pod{testPod("p1", "10.1.0.5", func(p *corev1.Pod) {
			p.DeletionTimestamp = &now
		})}, "10.1.0.5 ready=false serving=true terminating=true ports=web/8080/TCP"},
		{"terminating and not ready", testService(web), []*corev1.Pod{testPod("p1", "10.1.0.5", notReady, deleting)},
			"10.1.0.5 ready=false serving=false terminating=true ports=web/8080/TCP"},
		{"publishNotReadyAddresses: ready, serving from readiness", publishing(), []*corev1.Pod{testPod("p1", "10.1.0.5", func(p *corev1.Pod) {
			p.Status.Conditions = nil
			p.DeletionTimestamp = &now
		})}, "10.1.0.5 ready=true serving=false terminating=true ports=web/8080/TCP"},
		{"publishNotReadyAddresses, not ready", publishing(), []*corev1.Pod{testPod("p1", "10.1.0.5", notReady)},
			"10.1.0.5 ready=true serving=false terminating=false ports=web/8080/TCP"},
		{"publishNotReadyAddresses, ready and terminating", publishing(), []*corev1.Pod{testPod("p1", "10.1.0.5", deleting)},
			"10.1.0.5 ready=true serving=true terminating=true ports=web/8080/TCP"},
		{"address of the Service's primary family", families(corev1.IPv6Protocol, corev1.IPv4Protocol), []*corev1.Pod{testPod("p1", "10.1.0.5", dualStack)},
			"fd00::5 ready=true serving=true terminating=false ports=web/8080/TCP"},
		{"IPv4-primary dual-stack Service", families(corev1.IPv4Protocol, corev1.IPv6Protocol), []*corev1.Pod{testPod("p1", "10.1.0.5", dualStack)},
			"10.1.0.5 ready=true serving=true terminating=false ports=web/8080/TCP"},
		{"no IP of the Service's family", families(corev1.IPv6Protocol), []*corev1.Pod{testPod("p1", "10.1.0.5")}, ""},
		{"no IPFamilies: the ClusterIP's family", func() *corev1.Service {
			s := testService(web)
			s.Spec.ClusterIP = "fd01::1"
			return s
		}(), []*corev1.Pod{testPod("p1", "10.1.0.5", dualStack)}, "fd00::5 ready=true serving=true terminating=false ports=web/8080/TCP"},
		{"terminal and IP-less pods left out", testService(web), []*corev1.Pod{
			testPod("done", "10.1.0.6", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
			testPod("failed", "10.1.0.7", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
			testPod("pending", ""),
		}, ""},
		{"selector does not match", testService(web), []*corev1.Pod{testPod("p1", "10.1.0.5", func(p *corev1.Pod) { p.Labels = nil })}, ""},
		{"no port resolves", testService(svcPort("x", 1, "nope", corev1.ProtocolTCP)), []*corev1.Pod{testPod("p1", "10.1.0.5")}, ""},
		{"hostname only under the Service's subdomain", testService(web), []*corev1.Pod{
			testPod("p1", "10.1.0.5", func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "h1", "svc" }),
			testPod("p2", "10.1.0.8", func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "h2", "other" }),
		}, "10.1.0.5 ready=true serving=true terminating=false ports=web/8080/TCP hostname=h1\n10.1.0.8 ready=true serving=true terminating=false ports=web/8080/TCP"},
		{"selectorless Service: no emulated endpoints", func() *corev1.Service {
			s := testService(web)
			s.Spec.Selector = nil
			return s
		}(), []*corev1.Pod{testPod("p1", "10.1.0.5")}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := describe(serviceEndpoints(c.svc, c.pods, "")); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

// TestEndpointNodeAndZone checks the rest of podToEndpoint: nodeName only
// for a bound pod, zone only from a non-empty node label.
func TestEndpointNodeAndZone(t *testing.T) {
	svc := testService(svcPort("web", 80, "metrics", corev1.ProtocolTCP))
	cases := []struct {
		name, podNode, nodeZone string
		wantNode, wantZone      *string
	}{
		{"bound, zoned node", "n1", "z1", ptr("n1"), ptr("z1")},
		{"node without zone label", "n1", "", ptr("n1"), nil},
		{"unbound pod", "", "z1", nil, ptr("z1")},
	}
	show := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := testPod("p1", "10.1.0.5", func(p *corev1.Pod) { p.Spec.NodeName = c.podNode })
			eps := serviceEndpoints(svc, []*corev1.Pod{pod}, c.nodeZone)
			if len(eps) != 1 {
				t.Fatalf("%d endpoints, want 1", len(eps))
			}
			if got, want := show(eps[0].nodeName), show(c.wantNode); got != want {
				t.Errorf("nodeName = %s, want %s", got, want)
			}
			if got, want := show(eps[0].zone), show(c.wantZone); got != want {
				t.Errorf("zone = %s, want %s", got, want)
			}
		})
	}
}

// flatten renders each target of g (common labels merged in) as sorted
// name=value lines, targets sorted by address.
func flatten(g group) []string {
	var out []string
	for _, tl := range g.targets {
		l := g.common.clone().merge(tl)
		var lines []string
		for k, v := range l {
			lines = append(lines, k+"="+v)
		}
		slices.Sort(lines)
		out = append(out, strings.Join(lines, "\n"))
	}
	slices.Sort(out)
	return out
}

func trim(s string) string {
	var lines []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// The pod labels every role attaches to a target of testPod("p1").
const podLabelsP1 = `
__meta_kubernetes_pod_annotation_note=x
__meta_kubernetes_pod_annotationpresent_note=true
__meta_kubernetes_pod_controller_kind=ReplicaSet
__meta_kubernetes_pod_controller_name=rs-1
__meta_kubernetes_pod_host_ip=10.0.0.1
__meta_kubernetes_pod_ip=10.1.0.5
__meta_kubernetes_pod_label_app=a
__meta_kubernetes_pod_labelpresent_app=true
__meta_kubernetes_pod_name=p1
__meta_kubernetes_pod_node_name=n1
__meta_kubernetes_pod_phase=Running
__meta_kubernetes_pod_ready=true
__meta_kubernetes_pod_uid=uid-p1`

const serviceLabelsSvc = `
__meta_kubernetes_namespace=ns
__meta_kubernetes_service_label_team=t
__meta_kubernetes_service_labelpresent_team=true
__meta_kubernetes_service_name=svc`

func TestRoleLabels(t *testing.T) {
	svc := testService(svcPort("web", 80, "metrics", corev1.ProtocolTCP), svcPort("side", 90, "sc", corev1.ProtocolTCP))
	pod := testPod("p1", "10.1.0.5")
	eps := serviceEndpoints(svc, []*corev1.Pod{pod}, "")

	sliceCommon := serviceLabelsSvc + `
__meta_kubernetes_endpointslice_address_type=IPv4
__meta_kubernetes_endpointslice_label_endpointslice_kubernetes_io_managed_by=endpointslice-controller.k8s.io
__meta_kubernetes_endpointslice_label_kubernetes_io_service_name=svc
__meta_kubernetes_endpointslice_label_team=t
__meta_kubernetes_endpointslice_labelpresent_endpointslice_kubernetes_io_managed_by=true
__meta_kubernetes_endpointslice_labelpresent_kubernetes_io_service_name=true
__meta_kubernetes_endpointslice_labelpresent_team=true
__meta_kubernetes_endpointslice_name=svc-n1`
	sliceEndpoint := `
__meta_kubernetes_endpointslice_address_target_kind=Pod
__meta_kubernetes_endpointslice_address_target_name=p1
__meta_kubernetes_endpointslice_endpoint_conditions_ready=true
__meta_kubernetes_endpointslice_endpoint_conditions_serving=true
__meta_kubernetes_endpointslice_endpoint_conditions_terminating=false
__meta_kubernetes_endpointslice_endpoint_node_name=n1`
	// The UDP port 53 no Service port covers: an extra target with the
	// pod's and the container port's labels only.
	extra := sliceCommon + podLabelsP1 + `
__address__=10.1.0.5:53
` + containerLabels("app", "img:1", false, "dns", 53, "UDP")
	want := []string{
		trim(extra),
		trim(sliceCommon + podLabelsP1 + sliceEndpoint + `
__address__=10.1.0.5:8080
__meta_kubernetes_endpointslice_port=8080
__meta_kubernetes_endpointslice_port_name=web
__meta_kubernetes_endpointslice_port_protocol=TCP
` + containerLabels("app", "img:1", false, "metrics", 8080, "TCP")),
		trim(sliceCommon + podLabelsP1 + sliceEndpoint + `
__address__=10.1.0.5:9000
__meta_kubernetes_endpointslice_port=9000
__meta_kubernetes_endpointslice_port_name=side
__meta_kubernetes_endpointslice_port_protocol=TCP
` + containerLabels("sidecar", "side:1", true, "sc", 9000, "TCP")),
	}
	slices.Sort(want)
	got := flatten(endpointSliceGroup("ns", "svc-n1", sliceLabels(svc), nil, "IPv4", svc, eps))
	compareSets(t, "endpointslice", got, want)

	epCommon := serviceLabelsSvc + `
__meta_kubernetes_endpoints_label_endpoints_kubernetes_io_managed_by=endpoint-controller
__meta_kubernetes_endpoints_label_team=t
__meta_kubernetes_endpoints_labelpresent_endpoints_kubernetes_io_managed_by=true
__meta_kubernetes_endpoints_labelpresent_team=true
__meta_kubernetes_endpoints_name=svc`
	epEndpoint := `
__meta_kubernetes_endpoint_address_target_kind=Pod
__meta_kubernetes_endpoint_address_target_name=p1
__meta_kubernetes_endpoint_node_name=n1
__meta_kubernetes_endpoint_ready=true`
	want = []string{
		trim(strings.Replace(extra, sliceCommon, epCommon, 1)),
		trim(epCommon + podLabelsP1 + epEndpoint + `
__address__=10.1.0.5:8080
__meta_kubernetes_endpoint_port_name=web
__meta_kubernetes_endpoint_port_protocol=TCP
` + containerLabels("app", "img:1", false, "metrics", 8080, "TCP")),
		trim(epCommon + podLabelsP1 + epEndpoint + `
__address__=10.1.0.5:9000
__meta_kubernetes_endpoint_port_name=side
__meta_kubernetes_endpoint_port_protocol=TCP
` + containerLabels("sidecar", "side:1", true, "sc", 9000, "TCP")),
	}
	slices.Sort(want)
	compareSets(t, "endpoints", flatten(endpointsGroup(svc, eps)), want)

	podCommon := podLabelsP1 + "\n__meta_kubernetes_namespace=ns"
	want = []string{
		trim(podCommon + `
__address__=10.1.0.5:53
__meta_kubernetes_pod_container_id=containerd://abc
` + containerLabels("app", "img:1", false, "dns", 53, "UDP")),
		trim(podCommon + `
__address__=10.1.0.5:8080
__meta_kubernetes_pod_container_id=containerd://abc
` + containerLabels("app", "img:1", false, "metrics", 8080, "TCP")),
		trim(podCommon + `
__address__=10.1.0.5:9000
__meta_kubernetes_pod_container_id=
` + containerLabels("sidecar", "side:1", true, "sc", 9000, "TCP")),
	}
	slices.Sort(want)
	compareSets(t, "pod", flatten(podGroup(pod)), want)
}

// containerLabels are the labels of one container port, as every role with
// a pod gives them.
func containerLabels(container, image string, init bool, portName string, port int, proto string) string {
	return fmt.Sprintf(`
__meta_kubernetes_pod_container_image=%s
__meta_kubernetes_pod_container_init=%v
__meta_kubernetes_pod_container_name=%s
__meta_kubernetes_pod_container_port_name=%s
__meta_kubernetes_pod_container_port_number=%d
__meta_kubernetes_pod_container_port_protocol=%s`, image, init, container, portName, port, proto)
}

func compareSets(t *testing.T, role string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("role %s: %d targets, want %d:\n%s", role, len(got), len(want), strings.Join(got, "\n\n"))
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("role %s target %d:\ngot\n%s\nwant\n%s", role, i, got[i], want[i])
		}
	}
}
