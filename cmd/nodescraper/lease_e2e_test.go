package main

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestClusterTargetHandover runs three agent processes on three nodes of a
// real API server with a target of no node (a selectorless Service whose
// endpoint names no node, at no node's address: a managed cluster's API
// server). Exactly one agent, the Lease holder, scrapes it; when the holder's
// pod is deleted (SIGTERM) and then when the next holder is SIGKILLed,
// another agent scrapes it again within one interval; a holder restarted on
// its node before the Lease expires keeps it and its delta state.
//
// Counts: the exporter adds exactly 1 to its counter before every scrape, so
// the true increase from the first scrape to the last is scrapes-1. Each
// holder's first scrape is the baseline of its term's deltas (it cannot know
// what the holder before it last sent), so each handover loses the one
// increment between the old holder's last scrape and the new one's first:
// the intake must hold exactly scrapes-1-handovers, never more (no two agents
// scraping, nothing counted twice), and a restart in place loses nothing. In time, a handover loses at most the
// increase of one interval plus the Lease's duration and retry period.
func TestClusterTargetHandover(t *testing.T) {
	const (
		key      = "e2e-key-0123456789abcdef0123456789"
		interval = 10 * time.Second
	)
	in := startIntake(t, key)
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	nodes := []string{"n1", "n2", "n3"}
	for i, n := range nodes {
		if _, err := cp.CreateNode(ctx, n, netip.MustParseAddr(fmt.Sprintf("10.9.9.%d", i+1)), nil); err != nil {
			t.Fatal(err)
		}
	}
	e := exporter.New()
	jobs := e.Family("jobs_total", exporter.Counter, "Jobs.")
	jobs.Set("", 100)
	e.AddPerScrape(1)
	addr := serveExporter(t, e)
	must(t, cp.Create(ctx, apiServerOfNoNode(addr, interval)...))

	dirs := map[string]string{}
	start := func(n string) *agentProc {
		if dirs[n] == "" {
			dirs[n] = t.TempDir()
		}
		return startAgent(t, n, []string{"DD_API_KEY=" + key},
			"--kubeconfig", cp.Kubeconfig, "--node-name", n, "--dd-url", in.URL, "--allow-insecure-datadog-url",
			"--state-dir", dirs[n], "--flush-interval", "300ms", "--cluster-name", "e2e",
			"--cluster-lease", "default/nodescraper-cluster", "--cluster-lease-duration", "6s",
			"--cluster-lease-renew-deadline", "4s", "--cluster-lease-retry-period", "500ms",
			"--allow-other-addresses", "--log-level", "info")
	}
	agents := map[string]*agentProc{}
	for _, n := range nodes {
		agents[n] = start(n)
	}
	tags := []string{"job:kubernetes", "cluster_name:e2e", "kube_cluster_name:e2e"}
	terms := 1
	// delivered waits until the intake holds every increment of the
	// current scrapes but the handovers' (see above).
	delivered := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			want := float64(e.Scrapes() - terms)
			if got := in.Sum("jobs.count", tags...); near(got, want) {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("intake sum %v after %d scrapes in %d terms, want %v", got, e.Scrapes(), terms, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	holder := waitOneHolder(t, agents, "")
	waitScrapes(t, e, 2)
	delivered()

	// The holder restarts on its node (a rollout, an OOM kill's restart)
	// before the Lease expires: it renews it in the same term and goes on
	// from its persisted delta state, so nothing is lost.
	agents[holder].stop(10 * time.Second)
	agents[holder] = start(holder)
	if again := waitOneHolder(t, agents, ""); again != holder {
		t.Fatalf("the holder %s restarted before the Lease expired, but %s holds it", holder, again)
	}
	waitScrapes(t, e, e.Scrapes()+1)
	delivered()

	for _, how := range []string{"SIGTERM (pod deleted)", "SIGKILL"} {
		before := e.Scrapes()
		gone := time.Now()
		if how == "SIGKILL" {
			agents[holder].kill()
		} else {
			agents[holder].stop(10 * time.Second)
		}
		delete(agents, holder)
		for e.Scrapes() == before {
			if time.Since(gone) > interval {
				t.Fatalf("after the holder %s went by %s, no agent scraped within the interval %s", holder, how, interval)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("holder %s went by %s: scraped again after %v", holder, how, time.Since(gone).Round(time.Millisecond))
		terms++
		holder = waitOneHolder(t, agents, holder)
		waitScrapes(t, e, e.Scrapes()+1)
		delivered()
	}
	for _, p := range in.Points("jobs.count", tags...) {
		if h := p.Host(); h != "" {
			t.Fatalf("a point of the target of no node has host %q", h)
		}
	}
	t.Logf("%d scrapes in %d terms; the intake holds %v", e.Scrapes(), terms, in.Sum("jobs.count", tags...))
}

// apiServerOfNoNode is a selectorless Service default/kubernetes-like whose
// EndpointSlice names no node, at an address no node has, and its monitor.
// EndpointSlice validation refuses loopback addresses, so the monitor's
// relabeling points the target at the loopback exporter at addr, which
// --allow-other-addresses permits (it never makes two agents scrape one
// endpoint).
func apiServerOfNoNode(addr string, interval time.Duration) []runtime.Object {
	svc := controlplane.Service("default", "apiserver", nil, corev1.ServicePort{Name: "https", Port: 6443, Protocol: corev1.ProtocolTCP})
	svc.Labels = map[string]string{"component": "apiserver"}
	ready := true
	name, port, proto := "https", int32(6443), corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "apiserver", Labels: map[string]string{
			discoveryv1.LabelServiceName: "apiserver", discoveryv1.LabelManagedBy: "test.example.com",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.20.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	job := "kubernetes"
	sm := controlplane.ServiceMonitor("default", "apiserver", map[string]string{"component": "apiserver"}, monitoringv1.Endpoint{
		Port: "https", Interval: monitoringv1.Duration(interval.String()),
		RelabelConfigs: []monitoringv1.RelabelConfig{
			{TargetLabel: "__address__", Replacement: &addr},
			{TargetLabel: "job", Replacement: &job},
		},
	})
	return []runtime.Object{svc, slice, sm}
}

// waitOneHolder waits until exactly one of agents holds the cluster Lease,
// other than not, and returns its node.
func waitOneHolder(t *testing.T, agents map[string]*agentProc, not string) string {
	t.Helper()
	var held []string
	for begin := time.Now(); time.Since(begin) < 15*time.Second; time.Sleep(50 * time.Millisecond) {
		held = held[:0]
		for n, a := range agents {
			if holds(a) {
				held = append(held, n)
			}
		}
		if len(held) == 1 && held[0] != not {
			return held[0]
		}
	}
	t.Fatalf("Lease held by %v, want one agent other than %q", held, not)
	return ""
}

// holds reports whether a's /metrics says it holds the cluster Lease; an
// agent not yet listening does not.
func holds(a *agentProc) bool {
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(body), "\nnodescraper_cluster_lease_held 1\n")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
