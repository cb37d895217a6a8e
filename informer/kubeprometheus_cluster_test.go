//lint:file-ignore SA1019 kube-apiserver and the Operator's kubelet controller still write v1 Endpoints, so this file does too.

package informer

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kubePrometheus is what the test reads of testdata/kube-prometheus.
type kubePrometheus struct {
	monitors     []*monitoringv1.ServiceMonitor
	services     []*corev1.Service
	deployments  []*appsv1.Deployment
	daemonSets   []*appsv1.DaemonSet
	prometheus   *monitoringv1.Prometheus
	alertmanager *monitoringv1.Alertmanager
}

// loadKubePrometheus decodes every YAML document of the testdata by kind.
func loadKubePrometheus(t *testing.T) kubePrometheus {
	t.Helper()
	files, err := filepath.Glob("testdata/kube-prometheus/*.yaml")
	must(t, err)
	var kp kubePrometheus
	for _, f := range files {
		data, err := os.ReadFile(f)
		must(t, err)
		for doc := range bytes.SplitSeq(data, []byte("\n---\n")) {
			if err := kp.add(doc); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
	}
	if len(kp.monitors) != 13 || kp.prometheus == nil || kp.alertmanager == nil {
		t.Fatalf("testdata: %d ServiceMonitors (want kube-prometheus' 13), Prometheus %v, Alertmanager %v",
			len(kp.monitors), kp.prometheus != nil, kp.alertmanager != nil)
	}
	return kp
}

func (kp *kubePrometheus) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var err error
	switch tm.Kind {
	case "ServiceMonitor":
		kp.monitors = append(kp.monitors, decode[monitoringv1.ServiceMonitor](doc, &err))
	case "Service":
		kp.services = append(kp.services, decode[corev1.Service](doc, &err))
	case "Deployment":
		kp.deployments = append(kp.deployments, decode[appsv1.Deployment](doc, &err))
	case "DaemonSet":
		kp.daemonSets = append(kp.daemonSets, decode[appsv1.DaemonSet](doc, &err))
	case "Prometheus":
		kp.prometheus = decode[monitoringv1.Prometheus](doc, &err)
	case "Alertmanager":
		kp.alertmanager = decode[monitoringv1.Alertmanager](doc, &err)
	default:
		return fmt.Errorf("unexpected kind %q", tm.Kind)
	}
	return err
}

func decode[T any](doc []byte, err *error) *T {
	v := new(T)
	if e := yaml.UnmarshalStrict(doc, v); e != nil && *err == nil {
		*err = e
	}
	return v
}

// The cluster: a kubeadm control-plane node and two workers, with 10.x
// addresses (EndpointSlice validation refuses loopback ones, and the real
// endpointslice controller must publish slices for Prometheus' SD).
var kpNodes = []struct {
	name string
	ip   netip.Addr
	cp   bool
}{
	{"cp", netip.MustParseAddr("10.10.0.1"), true},
	{"w1", netip.MustParseAddr("10.10.0.2"), false},
	{"w2", netip.MustParseAddr("10.10.0.3"), false},
}

// podIPs hands out pod IPs from each node's pod CIDR, as a CNI would.
type podIPs map[string]int

func (p podIPs) next(node string) netip.Addr {
	p[node]++
	i := slices.IndexFunc(kpNodes, func(n struct {
		name string
		ip   netip.Addr
		cp   bool
	}) bool {
		return n.name == node
	})
	return netip.AddrFrom4([4]byte{10, 244, byte(i), byte(p[node])})
}

// buildKubePrometheusCluster creates the nodes, kube-prometheus' monitors and
// Services, and
// the pods its workloads would run, spread over the nodes, and kubeadm's
// control-plane static pods and CoreDNS.
func buildKubePrometheusCluster(t *testing.T, cp *controlplane.ControlPlane, kp kubePrometheus) {
	t.Helper()
	ctx := t.Context()
	for _, n := range kpNodes {
		labels := map[string]string{}
		if n.cp {
			labels["node-role.kubernetes.io/control-plane"] = ""
		}
		_, err := cp.CreateNode(ctx, n.name, n.ip, labels)
		must(t, err)
	}
	for _, s := range kp.services {
		must(t, cp.Create(ctx, s))
	}
	for _, sm := range kp.monitors {
		must(t, cp.Create(ctx, sm))
	}
	var pods []*corev1.Pod
	for _, d := range kp.deployments {
		pods = append(pods, deploymentPods(d, "w1", "w2")...)
	}
	for _, ds := range kp.daemonSets {
		pods = append(pods, daemonSetPods(ds, "cp", "w1", "w2")...)
	}
	pods = append(pods, operatorStatefulSetPods(kp)...)
	pods = append(pods, kubeadmPods("cp", "w1")...)
	createWorkloadPods(t, cp, pods)
}

// waitSlicesPublished waits until the endpointslice controller published
// an endpoint for every pod of every selector Service, and the Operator's
// kubelet controller one for every node: before, Prometheus' discovery
// would settle on a cluster half written.
func waitSlicesPublished(t *testing.T, cp *controlplane.ControlPlane) {
	t.Helper()
	ctx := t.Context()
	want := map[string]int{"kube-system/kubelet": len(kpNodes)}
	svcs, err := cp.Kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	must(t, err)
	for _, svc := range svcs.Items {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		pods, err := cp.Kube.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
		must(t, err)
		want[svc.Namespace+"/"+svc.Name] = len(pods.Items)
	}
	got := map[string]int{}
	for begin := time.Now(); time.Since(begin) < 60*time.Second; time.Sleep(100 * time.Millisecond) {
		list, err := cp.Kube.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
		must(t, err)
		clear(got)
		for _, es := range list.Items {
			key := es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]
			if _, ok := want[key]; ok {
				got[key] += len(es.Endpoints)
			}
		}
		if maps.Equal(got, want) {
			return
		}
	}
	t.Fatalf("endpoints published by Service: %v, want %v", got, want)
}

// createWorkloadPods creates each pod's service account, then the pod with the
// status the kubelet would write.
func createWorkloadPods(t *testing.T, cp *controlplane.ControlPlane, pods []*corev1.Pod) {
	t.Helper()
	ctx := t.Context()
	ips := podIPs{}
	accounts := map[string]bool{}
	for _, p := range pods {
		if sa := p.Spec.ServiceAccountName; sa != "" && sa != "default" && !accounts[p.Namespace+"/"+sa] {
			accounts[p.Namespace+"/"+sa] = true
			must(t, cp.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: sa}}))
		}
		var st controlplane.PodStatus
		if !p.Spec.HostNetwork {
			st.IP = ips.next(p.Spec.NodeName)
		}
		_, err := cp.CreatePod(ctx, p, st)
		must(t, err)
	}
}

// podOf makes a pod of a workload's template, bound to node.
func podOf(ns, name, node string, tmpl corev1.PodTemplateSpec, owner metav1.OwnerReference, extra map[string]string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: *tmpl.Spec.DeepCopy()}
	p.Namespace, p.Name = ns, name
	p.Labels = map[string]string{}
	for k, v := range tmpl.Labels {
		p.Labels[k] = v
	}
	for k, v := range extra {
		p.Labels[k] = v
	}
	yes, no := true, false
	owner.Controller = &yes
	p.OwnerReferences = []metav1.OwnerReference{owner}
	p.Spec.NodeName = node
	// No token is mounted: nothing runs in these pods.
	p.Spec.AutomountServiceAccountToken = &no
	return p
}

// deploymentPods spreads a Deployment's replicas over nodes, in turn.
func deploymentPods(d *appsv1.Deployment, nodes ...string) []*corev1.Pod {
	const hash = "5d8f9c7b6"
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: d.Name + "-" + hash, UID: types.UID(d.Name + "-rs")}
	n := 1
	if d.Spec.Replicas != nil {
		n = int(*d.Spec.Replicas)
	}
	var out []*corev1.Pod
	for i := range n {
		out = append(out, podOf(d.Namespace, fmt.Sprintf("%s-%s-%c%c", d.Name, hash, 'a'+i, 'x'), nodes[i%len(nodes)], d.Spec.Template, owner,
			map[string]string{"pod-template-hash": hash}))
	}
	return out
}

// daemonSetPods makes a DaemonSet's pod on every node.
func daemonSetPods(ds *appsv1.DaemonSet, nodes ...string) []*corev1.Pod {
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: types.UID(ds.Name + "-ds")}
	var out []*corev1.Pod
	for _, n := range nodes {
		out = append(out, podOf(ds.Namespace, ds.Name+"-"+n, n, ds.Spec.Template, owner, map[string]string{"controller-revision-hash": "7f6d9"}))
	}
	return out
}

// operatorStatefulSetPods makes the pods of the StatefulSets the Operator
// writes for the Alertmanager and Prometheus resources: their podMetadata
// labels, the Operator's own, and the containers' named ports the Services
// target (web, reloader-web).
func operatorStatefulSetPods(kp kubePrometheus) []*corev1.Pod {
	am, prom := kp.alertmanager, kp.prometheus
	amPods := statefulPods(am.Namespace, "alertmanager-"+am.Name, int(*am.Spec.Replicas), am.Spec.PodMetadata.Labels,
		map[string]string{"alertmanager": am.Name, "app.kubernetes.io/managed-by": "prometheus-operator"},
		container("alertmanager", port("web", 9093), port("mesh-tcp", 9094)), container("config-reloader", port("reloader-web", 8080)))
	promPods := statefulPods(prom.Namespace, "prometheus-"+prom.Name, int(*prom.Spec.Replicas), prom.Spec.PodMetadata.Labels,
		map[string]string{"prometheus": prom.Name, "operator.prometheus.io/name": prom.Name, "operator.prometheus.io/shard": "0", "app.kubernetes.io/managed-by": "prometheus-operator"},
		container("prometheus", port("web", 9090)), container("config-reloader", port("reloader-web", 8080)))
	return append(amPods, promPods...)
}

func statefulPods(ns, sts string, replicas int, labels, operatorLabels map[string]string, containers ...corev1.Container) []*corev1.Pod {
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts, UID: types.UID(sts + "-sts")}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: containers}}
	nodes := []string{"w1", "w2"}
	var out []*corev1.Pod
	for i := range replicas {
		name := fmt.Sprintf("%s-%d", sts, i)
		extra := map[string]string{"statefulset.kubernetes.io/pod-name": name, "apps.kubernetes.io/pod-index": fmt.Sprint(i)}
		for k, v := range operatorLabels {
			extra[k] = v
		}
		out = append(out, podOf(ns, name, nodes[i%len(nodes)], tmpl, owner, extra))
	}
	return out
}

func container(name string, ports ...corev1.ContainerPort) corev1.Container {
	return corev1.Container{Name: name, Image: "registry.invalid/" + name + ":test", Ports: ports}
}

// kubeadmPods are kubeadm's static control-plane pods on the control-plane
// node (hostNetwork, labels component and tier, no container ports; the
// kubelet names them <component>-<node> and makes the Node their owner) and
// its two CoreDNS replicas.
func kubeadmPods(cpNode, worker string) []*corev1.Pod {
	var out []*corev1.Pod
	nodeOwner := metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: cpNode, UID: types.UID(cpNode)}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		tmpl := corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"component": c, "tier": "control-plane"}},
			Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{container(c)}},
		}
		out = append(out, podOf("kube-system", c+"-"+cpNode, cpNode, tmpl, nodeOwner, nil))
	}
	dns := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{container("coredns",
			corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			port("dns-tcp", 53), port("metrics", 9153))}},
	}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"}, Spec: appsv1.DeploymentSpec{Replicas: ptr[int32](2), Template: dns}}
	return append(out, deploymentPods(dep, cpNode, worker)...)
}

// setAPIServerEndpoints writes default/kubernetes as kube-apiserver's
// endpoint reconciler does (the test's API server runs with
// --endpoint-reconciler-type=none, its advertise address being loopback):
// Endpoints labeled not to be mirrored and an EndpointSlice of the same name
// without a managed-by label, naming no node, at addrs and the Service's
// target port.
func setAPIServerEndpoints(ctx context.Context, cp *controlplane.ControlPlane, addrs ...string) error {
	svc, err := cp.Kube.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("service default/kubernetes: %w", err)
	}
	p := svc.Spec.Ports[0]
	target := p.TargetPort.IntVal
	if p.TargetPort.Type != intstr.Int || target == 0 {
		target = p.Port
	}
	eps := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
		Subsets:    []corev1.EndpointSubset{{Ports: []corev1.EndpointPort{{Name: p.Name, Port: target, Protocol: corev1.ProtocolTCP}}}},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(p.Name), Port: ptr(target), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for _, a := range addrs {
		eps.Subsets[0].Addresses = append(eps.Subsets[0].Addresses, corev1.EndpointAddress{IP: a})
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}})
	}
	if err := upsert(ctx, eps, cp.Kube.CoreV1().Endpoints("default")); err != nil {
		return err
	}
	return upsert(ctx, slice, cp.Kube.DiscoveryV1().EndpointSlices("default"))
}

// client is the part of a typed client upsert uses.
type client[T any] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Update(context.Context, T, metav1.UpdateOptions) (T, error)
	Get(context.Context, string, metav1.GetOptions) (T, error)
}

// upsert creates obj, or replaces the existing object of its name.
func upsert[T metav1.Object](ctx context.Context, obj T, c client[T]) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := c.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	_, err = c.Update(ctx, obj, metav1.UpdateOptions{})
	return err
}

// dropKubeletNodeNames rewrites kube-system/kubelet's Endpoints and
// EndpointSlices as an Operator before #7019 wrote them: without the
// endpoints' node names (the Node stays their targetRef).
func dropKubeletNodeNames(ctx context.Context, cp *controlplane.ControlPlane) error {
	eps, err := cp.Kube.CoreV1().Endpoints("kube-system").Get(ctx, "kubelet", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for i := range eps.Subsets {
		for j := range eps.Subsets[i].Addresses {
			eps.Subsets[i].Addresses[j].NodeName = nil
		}
	}
	if _, err := cp.Kube.CoreV1().Endpoints("kube-system").Update(ctx, eps, metav1.UpdateOptions{}); err != nil {
		return err
	}
	slices, err := cp.Kube.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubelet"})
	if err != nil {
		return err
	}
	for _, s := range slices.Items {
		for i := range s.Endpoints {
			s.Endpoints[i].NodeName = nil
		}
		if _, err := cp.Kube.DiscoveryV1().EndpointSlices("kube-system").Update(ctx, &s, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// tenantCopy is kube-prometheus' kubelet monitor copied into an untrusted
// namespace: it would send the agent's token to every kubelet.
func tenantCopy(kp kubePrometheus) *monitoringv1.ServiceMonitor {
	i := slices.IndexFunc(kp.monitors, func(m *monitoringv1.ServiceMonitor) bool { return m.Name == "kubelet" })
	sm := kp.monitors[i].DeepCopy()
	sm.Namespace = "tenant"
	return sm
}
