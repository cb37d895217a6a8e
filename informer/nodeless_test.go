package informer

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestNodelessEndpoints: endpoints of a selectorless Service that name no
// node (as the API server's in default/kubernetes, or kubelets written by an
// Operator before #7019) are scraped by the agent whose node has their
// address, and every other agent lists them as dropped with the reason,
// instead of losing them before they are cached. EndpointSlice validation
// refuses loopback addresses, so the nodes here have 10.x addresses.
func TestNodelessEndpoints(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	_, err := cp.CreateNode(ctx, "cp-node", netip.MustParseAddr("10.9.9.1"), nil)
	must(t, err)
	_, err = cp.CreateNode(ctx, "worker", netip.MustParseAddr("10.9.9.2"), nil)
	must(t, err)
	must(t, cp.Create(ctx, selectorless("apiserver", "component", "https", 6443,
		discoveryv1.Endpoint{Addresses: []string{"10.9.9.1"}},
		discoveryv1.Endpoint{Addresses: []string{"10.20.0.1"}})...))
	sm := controlplane.ServiceMonitor("default", "apiserver", map[string]string{"component": "apiserver"}, monitoringv1.Endpoint{Port: "https", Scheme: ptr(monitoringv1.SchemeHTTPS)})
	must(t, cp.Create(ctx, sm))

	onCP := startAgent(t, cp, "cp-node")
	onWorker := startAgent(t, cp, "worker")
	// Each agent lists what it does not scrape, with the reason: the
	// worker both endpoints, the control-plane node's agent the one at no
	// node's address.
	onCP.waitDropped(t, "10.20.0.1:6443")
	onWorker.waitDropped(t, "10.20.0.1:6443", "10.9.9.1:6443")
	onCP.waitFor(t, "the control-plane node's agent", `serviceMonitor/default/apiserver/0 {endpoint="https", instance="10.9.9.1:6443", job="apiserver", namespace="default", service="apiserver"}`)
	onWorker.waitFor(t, "the worker's agent", ``)
	for _, a := range []*agent{onCP, onWorker} {
		for _, tg := range a.targets() {
			if tg.Drop.Reason == "" {
				continue
			}
			host := strings.TrimSuffix(tg.Discovered.Get("__address__"), ":6443")
			if tg.Drop.Reason != target.DroppedNotOnNode || !strings.Contains(tg.Drop.Detail, "endpoint "+host+" names no node and is not an address of this node") ||
				!strings.Contains(tg.Drop.Detail, "--cluster-lease") {
				t.Errorf("%s: %s dropped as %q (%s), want %q naming the address", a.k.cfg.NodeName, host, tg.Drop.Reason, tg.Drop.Detail, target.DroppedNotOnNode)
			}
		}
	}
}

// waitDropped waits until the addresses of a's dropped targets are want.
func (a *agent) waitDropped(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	for begin := time.Now(); time.Since(begin) < 20*time.Second; time.Sleep(20 * time.Millisecond) {
		got = got[:0]
		for _, tg := range a.targets() {
			if tg.Drop.Reason != "" {
				got = append(got, tg.Discovered.Get("__address__"))
			}
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("%s: dropped %v, want %v", a.k.cfg.NodeName, got, want)
}

// selectorless returns a selectorless Service default/name labeled
// label=name with one port, and its EndpointSlice (not the controller's)
// with eps, each ready.
func selectorless(name, label, portName string, port int32, eps ...discoveryv1.Endpoint) []runtime.Object {
	svc := controlplane.Service("default", name, nil, corev1.ServicePort{Name: portName, Port: port, Protocol: corev1.ProtocolTCP})
	svc.Labels = map[string]string{label: name}
	for i := range eps {
		eps[i].Conditions.Ready = ptr(true)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "test.example.com",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(portName), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	return []runtime.Object{svc, slice}
}
