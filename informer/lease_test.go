package informer

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// testLease is short, so that a handover takes seconds.
var testLease = LeaseConfig{Namespace: "default", Name: "nodescraper-cluster", LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond}

// TestClusterTargetsOneHolder: of three agents, all with
// AllowOtherAddresses, an endpoint of no node at no node's address is
// scraped by exactly one, the Lease holder, marked Cluster; an endpoint
// naming no node at a node's address by that node's agent; an endpoint
// naming a node by that node's agent only. The others list them as dropped
// with the reason naming the holder. When the holder stops, another agent
// takes over within the Lease's duration and retry period, in a new term;
// an agent that comes back with the holder's identity before the Lease
// expires renews it in the same term.
func TestClusterTargetsOneHolder(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	nodes := []string{"n1", "n2", "n3"}
	for i, n := range nodes {
		_, err := cp.CreateNode(ctx, n, netip.MustParseAddr(fmt.Sprintf("10.9.9.%d", i+1)), nil)
		must(t, err)
	}
	must(t, cp.Create(ctx, selectorless("external", "app", "metrics", 9100,
		discoveryv1.Endpoint{Addresses: []string{"10.20.0.1"}},
		discoveryv1.Endpoint{Addresses: []string{"10.9.9.2"}},
		discoveryv1.Endpoint{Addresses: []string{"10.30.0.3"}, NodeName: ptr("n3")})...))
	sm := controlplane.ServiceMonitor("default", "external", map[string]string{"app": "external"}, monitoringv1.Endpoint{Port: "metrics"})
	must(t, cp.Create(ctx, sm))

	start := func(node string) *agent {
		return startAgentConfig(t, KubeConfig{Rest: cp.Admin, NodeName: node, AllowOtherAddresses: true, Lease: &testLease,
			Settings: relabel.Settings{ServiceDiscoveryRole: monitoringv1.EndpointSliceRole}})
	}
	agents := map[string]*agent{}
	for _, n := range nodes {
		agents[n] = start(n)
	}
	holder, term := waitHolder(t, agents, "", "")
	t.Logf("holder %s, term %s", holder, term)
	checkOwners(t, agents, holder)

	// The holder comes back before the Lease expires: same term, so its
	// persisted delta state goes on.
	agents[holder].stop()
	agents[holder] = start(holder)
	if h, again := waitHolder(t, agents, "", ""); h != holder || again != term {
		t.Fatalf("after the holder's restart: holder %s term %s, want %s %s", h, again, holder, term)
	}

	// The holder goes for good: another agent takes over in a new term.
	agents[holder].stop()
	gone := time.Now()
	delete(agents, holder)
	next, nextTerm := waitHolder(t, agents, holder, term)
	took := time.Since(gone)
	t.Logf("handover to %s (term %s) in %v", next, nextTerm, took.Round(time.Millisecond))
	if bound := testLease.LeaseDuration + testLease.RetryPeriod + time.Second; took > bound {
		t.Errorf("handover took %v, want at most the lease duration + retry period + 1s rebuild slack = %v", took, bound)
	}
	checkOwners(t, agents, next)
}

// waitHolder waits until exactly one of agents scrapes the endpoint of no
// node, as a Cluster target in a term other than notTerm, held by another
// than notHolder, and returns that agent's node and the term.
func waitHolder(t *testing.T, agents map[string]*agent, notHolder, notTerm string) (string, string) {
	t.Helper()
	var seen []string
	for begin := time.Now(); time.Since(begin) < 20*time.Second; time.Sleep(20 * time.Millisecond) {
		seen = seen[:0]
		var holder, term string
		for node, a := range agents {
			for _, tg := range a.targets() {
				if tg.Drop.Reason == "" && strings.Contains(tg.URL, "10.20.0.1:") {
					seen = append(seen, node+" cluster="+fmt.Sprint(tg.Cluster)+" term="+tg.Term)
					holder, term = node, tg.Term
				}
			}
		}
		if len(seen) == 1 && holder != notHolder && term != notTerm && term != "" {
			return holder, term
		}
		if len(seen) > 1 {
			t.Fatalf("the endpoint of no node is scraped by %v", seen)
		}
	}
	t.Fatalf("no single new holder; scraped by %v", seen)
	return "", ""
}

// checkOwners waits until each agent's targets are as they should be: the
// endpoint naming no node at n2's address is n2's agent's alone (the holder
// knows it is a node's address, even with n2's agent gone), the endpoint
// naming n3 n3's alone, the endpoint of no node the holder's alone (Cluster,
// Term set); the others list them as dropped, not on this node, the
// follower naming the holder. Another node's endpoints are not even listed:
// the caches never hold them.
func checkOwners(t *testing.T, agents map[string]*agent, holder string) {
	t.Helper()
	var problems []string
	for begin := time.Now(); time.Since(begin) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		problems = problems[:0]
		for node, a := range agents {
			problems = append(problems, ownerProblems(node, a.targets(), holder)...)
		}
		if len(problems) == 0 {
			return
		}
	}
	t.Errorf("targets, with the holder %s:\n%s", holder, strings.Join(problems, "\n"))
}

func ownerProblems(node string, ts []target.Target, holder string) []string {
	owner := map[string]string{"10.20.0.1": holder, "10.9.9.2": "n2", "10.30.0.3": "n3"}
	var out []string
	for _, tg := range ts {
		host := strings.TrimSuffix(tg.Discovered.Get("__address__"), ":9100")
		want, ok := owner[host]
		switch {
		case !ok:
			out = append(out, node+": unexpected target "+host)
		case host == "10.30.0.3" && node != "n3":
			out = append(out, node+" lists n3's endpoint: "+tg.Drop.Detail)
		case want == node && tg.Drop.Reason != "":
			out = append(out, fmt.Sprintf("%s: its target %s dropped: %s (%s)", node, host, tg.Drop.Reason, tg.Drop.Detail))
		case want == node && tg.Cluster != (host == "10.20.0.1"):
			out = append(out, fmt.Sprintf("%s: target %s Cluster=%v", node, host, tg.Cluster))
		case want != node && tg.Drop.Reason != target.DroppedNotOnNode:
			out = append(out, fmt.Sprintf("%s: %s, which is %s's: drop reason %q, want %q", node, host, want, tg.Drop.Reason, target.DroppedNotOnNode))
		case want != node && host == "10.20.0.1" && !strings.Contains(tg.Drop.Detail, "(holder: "+holder+")"):
			out = append(out, fmt.Sprintf("%s: %s dropped as %q, want the holder %s named", node, host, tg.Drop.Detail, holder))
		}
	}
	return out
}
