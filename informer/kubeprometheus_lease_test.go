package informer

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKubePrometheusManaged: kube-prometheus with the API server on no node
// (EKS, GKE, AKS): its endpoints are scraped by exactly one agent, the one
// holding the Lease, marked as belonging to the cluster; the union of the
// fleet's targets equals Prometheus', each once.
func TestKubePrometheusManaged(t *testing.T) {
	cp, kp, stopKubelet := startKubePrometheus(t)
	t.Cleanup(stopKubelet)
	ctx := t.Context()
	must(t, setAPIServerEndpoints(ctx, cp, managedAPIServer...))
	oracle := startOracle(t, cp, kp)

	fleet := startFleetConfig(t, cp, withLease("nodescraper"))
	// --allow-other-addresses never makes two agents scrape one target.
	otherAddrs := startFleetConfig(t, cp, func(c *KubeConfig) {
		withLease("nodescraper-other")(c)
		c.AllowOtherAddresses = true
	})
	want := settleOracle(t, oracle, 2*len(managedAPIServer))
	waitElected(t, fleet)
	waitElected(t, otherAddrs)
	row := logRow(t, "API server on no node (EKS/GKE/AKS), one agent elected", want, fleet)
	row.mustEqual(t)
	checkDropped(t, want, fleet, "kubernetes")
	checkCluster(t, fleet)
	logRow(t, "the same with --allow-other-addresses", want, otherAddrs).mustEqual(t)
	checkCluster(t, otherAddrs)
}

// withLease has the agents elect one of them with the Lease kube-system/name,
// each named after its node, with short terms so the test needs no waiting.
func withLease(name string) func(*KubeConfig) {
	return func(c *KubeConfig) {
		c.Lease = &LeaseConfig{
			Namespace: "kube-system", Name: name, Identity: c.NodeName,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
		}
	}
}

// checkCluster: the API server's targets, and only they, are marked as the
// cluster's, and one agent has them all.
func checkCluster(t *testing.T, fleet []*agent) {
	t.Helper()
	holders := map[string]bool{}
	for _, a := range fleet {
		for _, tg := range a.targets() {
			if tg.Drop.Reason != "" {
				continue
			}
			apiserver := tg.Labels.Get("service") == "kubernetes"
			if tg.Cluster != apiserver {
				t.Errorf("%s: %s %s: Cluster %v", a.k.cfg.NodeName, tg.ScrapePool(), tg.Labels, tg.Cluster)
			}
			if apiserver {
				holders[a.k.cfg.NodeName] = true
			}
		}
	}
	if len(holders) != 1 {
		t.Errorf("the API server's targets are scraped by %d agents (%s), want one", len(holders), strings.Join(slices.Sorted(maps.Keys(holders)), ", "))
	}
}

// waitElected waits until one agent of fleet holds its Lease and knows the
// nodes' addresses (the term is set only then).
func waitElected(t *testing.T, fleet []*agent) {
	t.Helper()
	for begin := time.Now(); time.Since(begin) < 30*time.Second; time.Sleep(20 * time.Millisecond) {
		for _, a := range fleet {
			if a.k.lease.Term() != "" {
				return
			}
		}
	}
	t.Fatal("no agent of the fleet took its Lease in 30s")
}
