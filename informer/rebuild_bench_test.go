package informer

import (
	"context"
	"fmt"
	"testing"

	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// clusterKube returns a Kube for node-0000 whose caches hold what an agent
// of a cluster of nodes x 30 pods caches (as benchmarks/apiscale builds it:
// 10 pods per Service, 10 Services per ServiceMonitor, 10 namespaces): all
// monitors, its own node's 30 pods, and the Services its Service watches
// select (served from all of the cluster's by staticServices). The caches
// are filled directly; nothing is contacted.
func clusterKube(tb testing.TB, nodes int) *Kube {
	tb.Helper()
	const podsPerNode, podsPerSvc, svcsPerMon, namespaces = 30, 10, 10, 10
	k, err := NewKube(KubeConfig{Rest: &rest.Config{Host: "127.0.0.1:1"}, NodeName: "node-0000",
		Settings: relabel.Settings{ServiceDiscoveryRole: monitoringv1.EndpointSliceRole}})
	if err != nil {
		tb.Fatal(err)
	}
	services := nodes * podsPerNode / podsPerSvc
	ns := func(svc int) string { return fmt.Sprintf("scale-%d", svc/svcsPerMon%namespaces) }
	add := func(store interface{ Add(any) error }, o any) {
		if err := store.Add(o); err != nil {
			tb.Fatal(err)
		}
	}
	add(k.nodes.GetStore(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-0000"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.16.0.1"}}}})
	for m := range services / svcsPerMon {
		add(k.sms.GetStore(), &monitoringv1.ServiceMonitor{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns(m * svcsPerMon), Name: fmt.Sprintf("m-%d", m), UID: types.UID(fmt.Sprintf("sm-%d", m)), ResourceVersion: "1"},
			Spec: monitoringv1.ServiceMonitorSpec{
				Selector:  metav1.LabelSelector{MatchLabels: map[string]string{"monitor": fmt.Sprintf("m-%d", m)}},
				Endpoints: []monitoringv1.Endpoint{{Port: "metrics"}},
			},
		})
	}
	var svcs []*corev1.Service
	for a := range services {
		svcs = append(svcs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns(a), Name: fmt.Sprintf("s-%d", a), ResourceVersion: "1",
				Labels: map[string]string{"monitor": fmt.Sprintf("m-%d", a/svcsPerMon)}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": fmt.Sprintf("a-%d", a)}, ClusterIP: corev1.ClusterIPNone,
				Ports: []corev1.ServicePort{{Name: "metrics", Port: 8080, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("metrics")}}},
		})
	}
	staticServices(k, svcs)
	// Slot j of node 0 holds pod index j*nodes: its Service is j*nodes/10.
	for j := range podsPerNode {
		a := j * nodes / podsPerSvc
		add(k.pods.GetStore(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns(a), Name: fmt.Sprintf("p-0-%d", j), ResourceVersion: "1", Labels: map[string]string{"app": fmt.Sprintf("a-%d", a)}},
			Spec: corev1.PodSpec{NodeName: "node-0000", Containers: []corev1.Container{{Name: "app",
				Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.0.1.%d", j+1),
				PodIPs:     []corev1.PodIP{{IP: fmt.Sprintf("10.0.1.%d", j+1)}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
	}
	return k
}

// staticServices makes k's Service watches serve, without an API server,
// those of objs each watch's namespace, selector and name select, listed.
func staticServices(k *Kube, objs []*corev1.Service) {
	k.svcs.start = func(key svcKey) *svcWatch {
		store := cache.NewStore(cache.MetaNamespaceKeyFunc)
		sel, err := k8slabels.Parse(key.selector)
		for _, svc := range objs {
			if err == nil && svc.Namespace == key.namespace && (key.name == "" || key.name == svc.Name) && sel.Matches(k8slabels.Set(svc.Labels)) {
				_ = store.Add(svc)
			}
		}
		done := make(chan struct{})
		close(done)
		return &svcWatch{store: store, synced: func() bool { return true }, cancel: func() {}, done: done}
	}
}

// TestRebuildClusterScale: on a node of a large cluster the rebuild finds
// exactly the node's pods, one target each, whatever the cluster size. The
// other monitors of a pod's namespace see its endpoint too and drop it by
// relabeling (their Service selector is a keep rule, as the Operator
// writes it): Prometheus lists those as dropped targets.
func TestRebuildClusterScale(t *testing.T) {
	for _, nodes := range []int{10, 1000} {
		k := clusterKube(t, nodes)
		ts, ok := k.rebuild(context.Background())
		if !ok {
			t.Fatalf("%d nodes: rebuild not ready", nodes)
		}
		active := map[string]bool{}
		dropped, other := 0, 0
		for _, tg := range ts {
			switch tg.Drop.Reason {
			case "":
				active[tg.Labels.Get("pod")] = true
			case target.DroppedByRelabeling:
				dropped++
			default:
				other++
			}
		}
		// Every monitor of a pod's namespace sees the pod's endpoint.
		want := 0
		for j := range 30 {
			svcNS := (j * nodes / 10) / 10 % 10
			for m := range nodes * 30 / 10 / 10 {
				if m%10 == svcNS {
					want++
				}
			}
		}
		if len(active) != 30 || len(ts) != want || dropped != want-30 || other != 0 {
			t.Errorf("%d nodes: %d targets: %d active pods, %d dropped by relabeling, %d otherwise; want %d: 30, %d, 0", nodes, len(ts), len(active), dropped, other, want, want-30)
		}
		// Rebuilt again from the same caches: the same set.
		if again, _ := k.rebuild(context.Background()); !sameTargets(ts, again) {
			t.Errorf("%d nodes: second rebuild differs", nodes)
		}
	}
}

// BenchmarkRebuild is one rebuild of a node's target set (what every watch
// event anywhere in the cluster costs each agent, at most once a second
// under a steady stream) as the cluster grows around the node.
func BenchmarkRebuild(b *testing.B) {
	for _, nodes := range []int{250, 1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			k := clusterKube(b, nodes)
			b.ReportAllocs()
			for b.Loop() {
				if ts, _ := k.rebuild(context.Background()); len(ts) < 30 {
					b.Fatalf("%d targets", len(ts))
				}
			}
		})
	}
}

// TestServiceMatters: only Services that can count in the node's target set
// trigger a rebuild.
func TestServiceMatters(t *testing.T) {
	k := clusterKube(t, 1000)
	svc := func(ns, name, app string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app},
				Ports: []corev1.ServicePort{{Name: "metrics", Port: 8080, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("metrics")}}}}
	}
	// Pod p-0-1 (app a-100) is in scale-0; a-101 has no pod on this node.
	if err := k.slices.GetStore().Add(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "scale-3", Name: "custom",
		Labels: map[string]string{discoveryv1.LabelServiceName: "external"}}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		obj  any
		want bool
	}{
		{"selects a pod of this node", svc("scale-0", "s-100", "a-100"), true},
		{"selects only pods of other nodes", svc("scale-0", "s-101", "a-101"), false},
		{"same selector, namespace without this node's pods of it", svc("scale-9", "x", "a-100"), false},
		{"named by a custom EndpointSlice", svc("scale-3", "external", "none"), true},
		{"selectorless", &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "scale-0", Name: "bare"}}, false},
		{"tombstone", cache.DeletedFinalStateUnknown{Key: "scale-0/s-101"}, true},
	}
	for _, c := range cases {
		if got := k.serviceMatters(c.obj); got != c.want {
			t.Errorf("%s: serviceMatters = %v, want %v", c.name, got, c.want)
		}
	}
}
