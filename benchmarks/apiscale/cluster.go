package apiscale

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Spec is the simulated cluster. Its app Services (one per PodsPerService
// pods) lie in blocks of consecutive Services per namespace, so that each
// namespace's pods sit on a run of consecutive nodes and a node has pods in
// a few namespaces only, as teams' namespaces are spread in a real cluster.
type Spec struct {
	Nodes, PodsPerNode int
	// PodsPerService is each Service's replica count (default 10); a
	// Service's pods lie on consecutive nodes.
	PodsPerService int
	// ServicesPerMonitor is how many app Services one ServiceMonitor
	// selects by label (default 10); a monitor selects in its own namespace.
	ServicesPerMonitor int
	// Namespaces the Services and pods are spread over (default 10).
	Namespaces int
	// AllServices is the cluster's Service count (0: the app Services
	// alone). Those beyond the app Services have no selector and no pods
	// (external or manually managed ones) and no monitor selects them; they
	// are spread over the app Services' namespaces.
	AllServices int
}

func (s *Spec) defaults() {
	if s.PodsPerService <= 0 {
		s.PodsPerService = 10
	}
	if s.ServicesPerMonitor <= 0 {
		s.ServicesPerMonitor = 10
	}
	if s.Namespaces <= 0 {
		s.Namespaces = 10
	}
}

// Pods, Services and Monitors are the object counts of the cluster.
func (s Spec) Pods() int        { return s.Nodes * s.PodsPerNode }
func (s Spec) AppServices() int { return ceilDiv(s.Pods(), s.PodsPerService) }
func (s Spec) Services() int    { return max(s.AllServices, s.AppServices()) }
func (s Spec) Monitors() int    { return len(s.monitors()) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// monitorRef is one ServiceMonitor: its namespace and the value of the
// monitor label it selects.
type monitorRef struct{ namespace, label string }

// monitors lists the ServiceMonitors: one per ServicesPerMonitor app
// Services and namespace (a group that straddles two namespaces has a
// monitor in each).
func (s Spec) monitors() []monitorRef {
	var out []monitorRef
	seen := map[monitorRef]bool{}
	for a := range s.AppServices() {
		m := monitorRef{s.namespace(a), s.monitorLabel(a)}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

func nodeName(n int) string { return fmt.Sprintf("node-%04d", n) }

// slot k of node n holds pod index k*Nodes+n: a Service's pods (consecutive
// indexes) sit on consecutive nodes, as a spread Deployment's do.
func (s Spec) service(n, k int) int { return (k*s.Nodes + n) / s.PodsPerService }

// monitorLabel is the monitor label of Service svc ("" for a Service beyond
// the app Services, which no monitor selects).
func (s Spec) monitorLabel(svc int) string {
	if svc >= s.AppServices() {
		return ""
	}
	return fmt.Sprintf("m-%d", svc/s.ServicesPerMonitor)
}

// namespace of Service svc: app Services in consecutive blocks, the others
// beside the app Service of the same index modulo their count.
func (s Spec) namespace(svc int) string {
	a := s.AppServices()
	return fmt.Sprintf("scale-%d", (svc%a)*s.Namespaces/a)
}

func podName(n, k, gen int) string { return fmt.Sprintf("p-%d-%d-%d", n, k, gen) }

func nodeIP(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{172, 16, byte((n + 1) >> 8), byte(n + 1)})
}

// podIP is in 10.0.0.0/8 (EndpointSlice validation rejects loopback), one
// /24 per node; a replacement pod gets the next address of its node.
func (s Spec) podIP(n, k, gen int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte((n + 1) >> 8), byte(n + 1), byte(1 + (k+gen*s.PodsPerNode)%250)})
}

// build writes the cluster through cp's admin client with workers parallel
// writers, then waits until kube-controller-manager published an
// EndpointSlice for every Service.
func build(ctx context.Context, cp *controlplane.ControlPlane, s Spec, workers int, logf func(string, ...any)) error {
	begin := time.Now()
	for i := range s.Namespaces {
		// Create makes the namespace and its default ServiceAccount.
		ns := fmt.Sprintf("scale-%d", i)
		if err := cp.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	run := func(what string, n int, f func(context.Context, int) error) error {
		step := time.Now()
		err := parallel(ctx, workers, n, f)
		logf("%s: %d in %v", what, n, time.Since(step).Round(time.Millisecond))
		return err
	}
	if err := run("nodes", s.Nodes, func(ctx context.Context, n int) error {
		_, err := cp.CreateNode(ctx, nodeName(n), nodeIP(n), nil)
		return err
	}); err != nil {
		return err
	}
	mons := s.monitors()
	if err := run("servicemonitors", len(mons), func(ctx context.Context, i int) error {
		m := mons[i]
		return cp.Create(ctx, controlplane.ServiceMonitor(m.namespace, m.label,
			map[string]string{"monitor": m.label}, monitoringv1.Endpoint{Port: "metrics"}))
	}); err != nil {
		return err
	}
	if err := run("services", s.Services(), func(ctx context.Context, a int) error {
		return cp.Create(ctx, s.serviceObject(a))
	}); err != nil {
		return err
	}
	if err := run("pods (created, status written Running/Ready)", s.Pods(), func(ctx context.Context, i int) error {
		n, k := i%s.Nodes, i/s.Nodes
		return createPod(ctx, cp, s, n, k, 0)
	}); err != nil {
		return err
	}
	step := time.Now()
	want := s.AppServices()
	var have int
	err := wait.PollUntilContextTimeout(ctx, time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := cp.Kube.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelManagedBy + "=endpointslice-controller.k8s.io", ResourceVersion: "0",
		})
		if err != nil {
			return false, nil
		}
		have = 0
		for _, sl := range l.Items {
			if len(sl.Endpoints) > 0 {
				have++
			}
		}
		return have >= want, nil
	})
	if err != nil {
		return fmt.Errorf("endpointslices: %d of %d Services have a non-empty slice after 10m: %w", have, want, err)
	}
	logf("endpointslices: %d published by kube-controller-manager in %v; cluster built in %v", have, time.Since(step).Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	return nil
}

// serviceObject is Service a: an app Service selects its pods and carries
// its monitor's label; the others have neither selector nor monitor.
func (s Spec) serviceObject(a int) *corev1.Service {
	var sel map[string]string
	labels := map[string]string{"tier": "unmonitored"}
	if m := s.monitorLabel(a); m != "" {
		sel, labels = map[string]string{"app": fmt.Sprintf("a-%d", a)}, map[string]string{"monitor": m}
	}
	svc := controlplane.Service(s.namespace(a), fmt.Sprintf("s-%d", a), sel, controlplane.ServicePort("metrics", 8080, "metrics"))
	svc.Labels = labels
	svc.Spec.ClusterIP = corev1.ClusterIPNone // the service IP range here is a /24
	return svc
}

// createPod creates pod slot k of node n, generation gen, and writes its
// status Running and Ready with its IP, as the kubelet would.
func createPod(ctx context.Context, cp *controlplane.ControlPlane, s Spec, n, k, gen int) error {
	return createPodThen(ctx, cp, s, n, k, gen, func() {})
}

// createPodThen calls beforeReady just before the Ready status is written.
func createPodThen(ctx context.Context, cp *controlplane.ControlPlane, s Spec, n, k, gen int, beforeReady func()) error {
	a := s.service(n, k)
	pod := controlplane.Pod(s.namespace(a), podName(n, k, gen), nodeName(n), map[string]string{"app": fmt.Sprintf("a-%d", a)},
		corev1.ContainerPort{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP})
	created, err := cp.Kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	host, ip := nodeIP(n).String(), s.podIP(n, k, gen).String()
	start := created.CreationTimestamp
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: start}
	}
	started := true
	created.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, HostIP: host, HostIPs: []corev1.HostIP{{IP: host}},
		PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, StartTime: &start,
		Conditions: []corev1.PodCondition{cond(corev1.PodScheduled), cond(corev1.PodInitialized), cond(corev1.ContainersReady), cond(corev1.PodReady)},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Image: pod.Spec.Containers[0].Image, Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}},
		}},
	}
	beforeReady()
	if _, err := cp.Kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error
// (the others stop taking work).
func parallel(ctx context.Context, workers, n int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
