package informer

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// cachedServices lists the Services the agent holds, as namespace/name.
func (a *agent) cachedServices() []string {
	return slices.Sorted(func(yield func(string) bool) {
		a.k.svcs.mu.Lock()
		running := map[svcKey]bool{}
		for key := range a.k.svcs.watches {
			running[key] = true
		}
		a.k.svcs.mu.Unlock()
		for key := range a.k.svcs.byKey(running) {
			if !yield(key) {
				return
			}
		}
	})
}

// waitServices waits until the agent holds exactly the Services want.
func (a *agent) waitServices(t *testing.T, what string, want ...string) {
	t.Helper()
	slices.Sort(want)
	begin := time.Now()
	for !slices.Equal(a.cachedServices(), want) {
		if time.Since(begin) > 20*time.Second {
			t.Fatalf("%s: Services cached %v, want %v", what, a.cachedServices(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServiceWatchScope: an agent holds only the Services its node's pods'
// namespaces have and its monitors select, and receives no other Service's
// updates; a Service is found when the node's first pod of its namespace
// appears, and let go with the last; a monitor's new selector brings its
// newly selected Services in, and a watch switch loses no target on the way.
// Watching all Services of the cluster, as the agent did, fails each step.
func TestServiceWatchScope(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	for i, n := range []string{"node-a", "node-b"} {
		_, err := cp.CreateNode(ctx, n, netip.MustParseAddr(fmt.Sprintf("127.0.2.%d", i+1)), nil)
		must(t, err)
	}
	monitored := map[string]string{"monitored": "yes"}
	svc := func(ns, name string, labels map[string]string) *corev1.Service {
		s := controlplane.Service(ns, name, map[string]string{"app": "web"}, controlplane.ServicePort("metrics", 80, "metrics"))
		s.Labels = labels
		return s
	}
	pod := func(ns, name, node, ip string) {
		t.Helper()
		p := controlplane.Pod(ns, name, node, map[string]string{"app": "web"}, port("metrics", 8080))
		_, err := cp.CreatePod(ctx, p, controlplane.PodStatus{IP: netip.MustParseAddr(ip)})
		must(t, err)
	}
	// team-a has a pod on node-a, team-b only on node-b; team-c has none
	// yet. In each a monitored Service and, in team-a, one no monitor
	// selects (but which selects the same pods).
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		must(t, cp.Create(ctx, svc(ns, "web", monitored),
			controlplane.ServiceMonitor(ns, "sm", monitored, monitoringv1.Endpoint{Port: "metrics"})))
	}
	must(t, cp.Create(ctx, svc("team-a", "canary", map[string]string{"track": "canary"})))
	pod("team-a", "web-a", "node-a", "127.0.0.21")
	pod("team-b", "web-b", "node-b", "127.0.0.22")

	a := startAgent(t, cp, "node-a")
	target := func(ns, svc, pod, ip string) string {
		return fmt.Sprintf(`serviceMonitor/%s/sm/0 {container="app", endpoint="metrics", instance="%s:8080", job="%s", namespace="%s", pod="%s", service="%s"}`, ns, ip, svc, ns, pod, svc)
	}
	webA := target("team-a", "web", "web-a", "127.0.0.21")
	a.waitFor(t, "initial", webA)
	a.waitServices(t, "initial", "team-a/web")

	// Updates of Services the agent does not hold do not reach it.
	delivered := func() int64 { pk, _ := a.k.Delivered(); return pk["Service"] }
	before := delivered()
	for _, s := range []struct{ ns, name string }{{"team-b", "web"}, {"team-c", "web"}, {"team-a", "canary"}, {"default", "kubernetes"}} {
		_, err := cp.Kube.CoreV1().Services(s.ns).Patch(ctx, s.name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"1"}}}`), metav1.PatchOptions{})
		must(t, err)
	}
	_, err := cp.Kube.CoreV1().Services("team-a").Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"annotations":{"touched":"1"}}}`), metav1.PatchOptions{})
	must(t, err)
	for begin := time.Now(); delivered() == before; time.Sleep(20 * time.Millisecond) {
		if time.Since(begin) > 10*time.Second {
			t.Fatal("the update of team-a/web did not reach the agent")
		}
	}
	time.Sleep(500 * time.Millisecond) // any stray update's way to the agent
	if d := delivered() - before; d != 1 {
		t.Errorf("agent received %d Service objects for one update of its own and four of others, want 1", d)
	}

	// The node's first pod in team-c: its Service is watched and found.
	pod("team-c", "web-c", "node-a", "127.0.0.23")
	webC := target("team-c", "web", "web-c", "127.0.0.23")
	a.waitFor(t, "first pod in team-c", strings.Join([]string{webA, webC}, "\n"))
	a.waitServices(t, "first pod in team-c", "team-a/web", "team-c/web")
	// Its last pod there gone: the watch goes.
	must(t, cp.Kube.CoreV1().Pods("team-c").Delete(ctx, "web-c", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}))
	a.waitFor(t, "last pod in team-c gone", webA)
	a.waitServices(t, "last pod in team-c gone", "team-a/web")

	// The monitor now selects every Service of team-a: the watch switches
	// from its selector to the whole namespace, canary comes in, and no
	// target set emitted on the way lacks web's target.
	a.mu.Lock()
	from := len(a.emitted)
	a.mu.Unlock()
	setSelector(t, cp, "team-a", "sm", metav1.LabelSelector{})
	canary := target("team-a", "canary", "web-a", "127.0.0.21")
	a.waitFor(t, "selector emptied", strings.Join([]string{canary, webA}, "\n"))
	a.waitServices(t, "selector emptied", "team-a/canary", "team-a/web")
	// Then only canary's track: web goes, canary stays through the switch.
	setSelector(t, cp, "team-a", "sm", metav1.LabelSelector{MatchLabels: map[string]string{"track": "canary"}})
	a.waitFor(t, "selector on track", canary)
	a.waitServices(t, "selector on track", "team-a/canary")
	a.mu.Lock()
	sets := slices.Clone(a.emitted[from:])
	a.mu.Unlock()
	for i, set := range sets {
		if !strings.Contains(set, canary) && !strings.Contains(set, webA) {
			t.Errorf("target set %d emitted during the selector changes has neither web's nor canary's target:\n%s", i, set)
		}
		if i < len(sets)-1 && !strings.Contains(set, webA) {
			t.Errorf("target set %d emitted before the last selector change lacks web's target:\n%s", i, set)
		}
	}
	if n := a.k.svcs.timeouts.Get(); n != 0 {
		t.Errorf("%d Service watches timed out", n)
	}
}

func setSelector(t *testing.T, cp *controlplane.ControlPlane, ns, name string, sel metav1.LabelSelector) {
	t.Helper()
	sm, err := cp.Monitoring.MonitoringV1().ServiceMonitors(ns).Get(t.Context(), name, metav1.GetOptions{})
	must(t, err)
	sm.Spec.Selector = sel
	_, err = cp.Monitoring.MonitoringV1().ServiceMonitors(ns).Update(t.Context(), sm, metav1.UpdateOptions{})
	must(t, err)
}

// TestServiceWatchKeys: one watch per namespace of the node's pods and
// selector of the monitors discovering there, an empty selector covering
// the namespace's others, and by name the Services of the custom slices
// with endpoints kept, where a monitor discovers.
func TestServiceWatchKeys(t *testing.T) {
	k, err := NewKube(KubeConfig{Rest: &rest.Config{Host: "127.0.0.1:1"}, NodeName: "n"})
	must(t, err)
	slice := func(ns, svc string, endpoints int) *discoveryv1.EndpointSlice {
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-x",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
		for range endpoints {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}})
		}
		return es
	}
	for _, es := range []*discoveryv1.EndpointSlice{slice("default", "kubernetes", 1), slice("kube-system", "kubelet", 1), slice("b", "gone", 0), slice("elsewhere", "x", 1)} {
		must(t, k.slices.GetStore().Add(es))
	}
	s := &snapshot{pods: map[string][]*corev1.Pod{"a": nil, "b": nil, "c": nil}}
	mons := []monitorServices{
		{selector: "app=x", namespaces: []string{"a"}},
		{selector: "app=y", namespaces: []string{"a"}},
		{selector: "app=x", namespaces: []string{"a", "b"}}, // the same watch in a
		{selector: "", namespaces: []string{"b"}},           // all of b
		{selector: "tier=web"},                              // every namespace
		{selector: "k8s-app=kubelet", namespaces: []string{"kube-system", "default"}},
	}
	var got []string
	for key := range k.serviceWatchKeys(s, mons) {
		got = append(got, key.String())
	}
	slices.Sort(got)
	want := []string{"a {app=x}", "a {app=y}", "a {tier=web}", "b {}", "c {tier=web}", "default/kubernetes", "elsewhere/x", "kube-system/kubelet"}
	if !slices.Equal(got, want) {
		t.Errorf("watches\n%v\nwant\n%v", got, want)
	}
}

// TestServiceWatchLate: a rebuild that needs a Service watch not listed
// within the timeout is not to be emitted (ok false), the watch is counted
// once however many rebuilds wait for it, nothing triggers meanwhile, and
// once it listed the rebuild is ok. (In an agent the watch's own first list
// then triggers the rebuild: startServiceWatch.)
func TestServiceWatchLate(t *testing.T) {
	k, err := NewKube(KubeConfig{Rest: &rest.Config{Host: "127.0.0.1:1"}, NodeName: "n", RefSyncTimeout: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(t, err)
	var listed atomic.Bool
	k.svcs.start = func(svcKey) *svcWatch {
		done := make(chan struct{})
		close(done)
		return &svcWatch{store: cache.NewStore(cache.MetaNamespaceKeyFunc), synced: listed.Load, cancel: func() {}, done: done, started: time.Now()}
	}
	must(t, k.pods.GetStore().Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"}, Spec: corev1.PodSpec{NodeName: "n"}}))
	must(t, k.sms.GetStore().Add(controlplane.ServiceMonitor("a", "sm", map[string]string{"app": "x"}, monitoringv1.Endpoint{Port: "metrics"})))
	for i := range 2 {
		if _, ok := k.rebuild(t.Context()); ok {
			t.Fatalf("rebuild %d: ok with a watch not listed", i)
		}
	}
	if n := k.svcs.timeouts.Get(); n != 1 {
		t.Errorf("%d timeouts counted for one late watch, want 1", n)
	}
	select {
	case <-k.kick:
		t.Fatal("a rebuild was triggered before the watch listed")
	default:
	}
	listed.Store(true)
	if _, ok := k.rebuild(t.Context()); !ok {
		t.Fatal("rebuild not ok once the watch listed")
	}
}
