package informer

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/promoracle"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// TestKubePrometheus is issue 25's acceptance test: kube-prometheus' own
// monitors (testdata/kube-prometheus), a kubeadm control-plane node and two
// workers, the Operator's own kubelet controller, one agent per node. The
// union of the agents' targets must equal what Prometheus-Operator v0.93 +
// Prometheus v0.315 scrape over all nodes (package promoracle: their own
// code, not ours), each target once. Each case logs its row of the issue's
// table.
func TestKubePrometheus(t *testing.T) {
	cp, kp, stopKubelet := startKubePrometheus(t)
	ctx := t.Context()
	defer func() { stopKubelet() }()
	// kubeadm advertises the API server at the control-plane node's address.
	must(t, setAPIServerEndpoints(ctx, cp, kpNodes[0].ip.String()))
	oracle := startOracle(t, cp, kp)

	fleet := startFleet(t, cp, kubePrometheusSettings())
	// The agent as released, for the table: file references refused.
	published := startFleet(t, cp, relabel.Settings{ServiceDiscoveryRole: monitoringv1.EndpointSliceRole})
	// --allow-other-addresses, for the table: it must not make two agents
	// scrape one target (asserted in TestKubePrometheusManaged, where one
	// agent is elected).
	otherAddrs := startFleetConfig(t, cp, func(c *KubeConfig) { c.AllowOtherAddresses = true })

	t.Run("API server on the control-plane node", func(t *testing.T) {
		want := settleOracle(t, oracle, 2)
		logRow(t, "kube-prometheus as published, agent as released", want, published)
		row := logRow(t, "kube-prometheus, its monitors' namespace trusted", want, fleet)
		logRow(t, "the same with --allow-other-addresses", want, otherAddrs)
		row.mustEqual(t)
		checkDropped(t, want, fleet, "kubernetes")
	})

	t.Run("kubelets without node names", func(t *testing.T) {
		stopKubelet()
		must(t, dropKubeletNodeNames(ctx, cp))
		// Each agent sees all three kubelets once their node names are gone.
		waitListed(t, fleet, "serviceMonitor/monitoring/kubelet/0", ":10250", len(kpNodes))
		want := settleOracle(t, oracle, 2)
		row := logRow(t, "kubelet endpoints without node names (Operator before #7019)", want, fleet)
		row.mustEqual(t)
		checkDropped(t, want, fleet, "kubernetes", "kubelet")
		// The Operator back: it writes the node names again.
		var err error
		stopKubelet, err = promoracle.RunKubeletController(cp.Kube, time.Second)
		must(t, err)
	})

	t.Run("API server on no node, no elected agent", func(t *testing.T) {
		must(t, setAPIServerEndpoints(ctx, cp, managedAPIServer...))
		waitListed(t, fleet, "serviceMonitor/monitoring/kube-apiserver/0", "", len(managedAPIServer))
		// Two endpoints of the monitor for each address.
		want := settleOracle(t, oracle, 2*len(managedAPIServer))
		row := logRow(t, "API server on no node (EKS/GKE/AKS), without leader election", want, fleet)
		logRow(t, "the same with --allow-other-addresses", want, otherAddrs)
		// Without an elected agent nobody scrapes them, and every agent
		// says why (TestKubePrometheusManaged is the case with one).
		for _, m := range row.missing {
			if !strings.HasPrefix(m, "serviceMonitor/monitoring/kube-apiserver/") {
				t.Errorf("missing %s, which is not the API server's", m)
			}
		}
		if len(row.twice) > 0 || len(row.extra) > 0 {
			t.Errorf("twice %v, not Prometheus' %v", row.twice, row.extra)
		}
		checkDropped(t, want, fleet, "kubernetes")
	})

	t.Run("untrusted namespace", func(t *testing.T) { checkUntrusted(t, cp, kp, oracle, fleet, published) })
}

// checkUntrusted: kube-prometheus' kubelet monitor copied into an untrusted
// namespace is rejected, naming the token file, and changes no target.
func checkUntrusted(t *testing.T, cp *controlplane.ControlPlane, kp kubePrometheus, oracle *promoracle.Oracle, fleet, published []*agent) {
	ctx := t.Context()
	// The API server back on the control-plane node, where the fleet scrapes
	// it without an elected agent.
	must(t, setAPIServerEndpoints(ctx, cp, kpNodes[0].ip.String()))
	waitListed(t, fleet, "serviceMonitor/monitoring/kube-apiserver/0", "", 1)
	// Prometheus would take it (kube-prometheus does not deny file
	// access to monitors); the agent must not, so the oracle, made from
	// kube-prometheus' own monitors only, stays the reference.
	must(t, cp.Create(ctx, tenantCopy(kp)))
	// The agent as released refuses every file reference.
	for _, a := range published {
		waitRejectedIn(t, a, "tenant", "bearerTokenFile")
	}
	for _, a := range fleet {
		waitRejectedIn(t, a, "tenant", "--trusted-namespaces")
		for _, r := range a.k.Rejected() {
			if r.Namespace != "tenant" {
				t.Errorf("%s: %s %s/%s rejected: %s", a.k.cfg.NodeName, r.Kind, r.Namespace, r.Name, r.Reason)
			}
		}
	}
	want := settleOracle(t, oracle, 2)
	logRow(t, "with the kubelet monitor copied into an untrusted namespace", want, fleet).mustEqual(t)
}

// startKubePrometheus starts a control plane with kube-prometheus' cluster
// and the Operator's kubelet controller, which stop ends.
func startKubePrometheus(t *testing.T) (cp *controlplane.ControlPlane, kp kubePrometheus, stop func()) {
	t.Helper()
	kp = loadKubePrometheus(t)
	// The endpointslice controller publishes the slices Prometheus reads.
	// No garbage collector: it would delete the pods, whose owners (the
	// ReplicaSets, StatefulSets, DaemonSet no controller runs here) do not
	// exist. No TTL controller: its write to a new Node races with
	// CreateNode's status update.
	cp = controlplane.ForTest(t, controlplane.Config{ControllerManager: true,
		Controllers: []string{"*", "-node-lifecycle-controller", "-garbage-collector-controller", "-ttl-controller"}})
	buildKubePrometheusCluster(t, cp, kp)
	stop, err := promoracle.RunKubeletController(cp.Kube, time.Second)
	must(t, err)
	waitSlicesPublished(t, cp)
	return cp, kp, stop
}

// managedAPIServer are the API server's addresses on a managed cluster: no
// node's.
var managedAPIServer = []string{"172.16.0.10", "172.16.0.11"}

// startOracle generates the Operator's configuration for kube-prometheus'
// Prometheus and monitors and runs Prometheus' discovery on it.
func startOracle(t *testing.T, cp *controlplane.ControlPlane, kp kubePrometheus) *promoracle.Oracle {
	t.Helper()
	// The defaults the Prometheus CRD declares (+kubebuilder:default), which
	// the API server writes before the Operator reads the resource.
	prom := kp.prometheus.DeepCopy()
	prom.Spec.Shards = ptr[int32](1)
	prom.Spec.ScrapeInterval = "30s"
	prom.Spec.EvaluationInterval = "30s"
	prom.Spec.PortName = "web"
	cfg, err := promoracle.Config(prom, kp.monitors, 0)
	must(t, err)
	o, err := promoracle.Start(cfg, cp.Kubeconfig)
	must(t, err)
	t.Cleanup(o.Stop)
	return o
}

// startFleet runs one agent per node with settings.
func startFleet(t *testing.T, cp *controlplane.ControlPlane, settings relabel.Settings) []*agent {
	t.Helper()
	var fleet []*agent
	for _, n := range kpNodes {
		fleet = append(fleet, startAgentConfig(t, KubeConfig{Rest: cp.Admin, NodeName: n.name, Settings: settings}))
	}
	return fleet
}

// startFleetConfig runs one agent per node with kubePrometheusSettings and
// what set changes in each agent's configuration.
func startFleetConfig(t *testing.T, cp *controlplane.ControlPlane, set func(*KubeConfig)) []*agent {
	t.Helper()
	var fleet []*agent
	for _, n := range kpNodes {
		cfg := KubeConfig{Rest: cp.Admin, NodeName: n.name, Settings: kubePrometheusSettings()}
		set(&cfg)
		fleet = append(fleet, startAgentConfig(t, cfg))
	}
	return fleet
}

// settle waits until state returns the same, and ready, for a second and
// returns it.
func settle(t *testing.T, what string, state func() (string, bool)) string {
	t.Helper()
	last, since := "", time.Now()
	for begin := time.Now(); time.Since(begin) < 60*time.Second; time.Sleep(50 * time.Millisecond) {
		s, ready := state()
		if s != last || !ready {
			last, since = s, time.Now()
			continue
		}
		if time.Since(since) >= time.Second {
			return s
		}
	}
	t.Fatalf("%s did not settle in 60s; last:\n%s", what, last)
	return ""
}

// settleOracle returns Prometheus' active targets once they stopped
// changing, with apiservers of the API server's.
func settleOracle(t *testing.T, o *promoracle.Oracle, apiservers int) oracleTargets {
	t.Helper()
	var ts []promoracle.Target
	settle(t, "Prometheus' discovery", func() (string, bool) {
		ts, _ = o.Targets()
		n := 0
		jobs := map[string]bool{}
		for _, tg := range ts {
			if tg.Labels.Get("service") == "kubernetes" {
				n++
			}
			jobs[tg.Job] = true
		}
		// Every job of kube-prometheus has targets in every case: until
		// each has some, a job's discovery has not reported yet (a loaded
		// machine can keep one quiet for more than the second settle waits).
		return fmt.Sprint(ts), n == apiservers && len(jobs) == len(o.Jobs())
	})
	return oracleTargets(ts)
}

// oracleTargets are Prometheus' active targets.
type oracleTargets []promoracle.Target

// lines returns them one a line, as agent.scraped does.
func (ts oracleTargets) lines() []string {
	out := make([]string, len(ts))
	for i, tg := range ts {
		out[i] = tg.String()
	}
	return out
}

// waitRejectedIn waits until a rejects a monitor of namespace ns with a
// reason that says what.
func waitRejectedIn(t *testing.T, a *agent, ns, what string) {
	t.Helper()
	for begin := time.Now(); time.Since(begin) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		for _, r := range a.k.Rejected() {
			if r.Namespace == ns && strings.Contains(r.Reason, what) {
				return
			}
		}
	}
	t.Fatalf("%s's agent rejects no monitor of %s for %q: %+v", a.k.cfg.NodeName, ns, what, a.k.Rejected())
}

// waitListed waits until each agent lists n targets of pool whose
// discovered address ends in port, scraped or dropped: the change the test
// made reached the fleet.
func waitListed(t *testing.T, fleet []*agent, pool, port string, n int) {
	t.Helper()
	for _, a := range fleet {
		got := 0
		for begin := time.Now(); time.Since(begin) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
			got = 0
			for _, tg := range a.targets() {
				if tg.ScrapePool() == pool && strings.HasSuffix(tg.Discovered.Get("__address__"), port) {
					got++
				}
			}
			if got == n {
				break
			}
		}
		if got != n {
			t.Fatalf("%s's agent lists %d targets of %s at port %q, want %d", a.k.cfg.NodeName, got, pool, port, n)
		}
	}
}

// scraped returns what a scrapes, one a line as settleOracle's.
func (a *agent) scraped() []string {
	var lines []string
	for _, tg := range a.targets() {
		if tg.Drop.Reason == "" {
			lines = append(lines, tg.ScrapePool()+" "+tg.Labels.String())
		}
	}
	slices.Sort(lines)
	return lines
}

// fleetRow compares the union of the fleet's targets with Prometheus'.
type fleetRow struct {
	what                  string
	oracle, scraped       int
	missing, twice, extra []string
}

// logRow waits for the fleet's target sets to settle, compares them with
// want and logs the row.
func logRow(t *testing.T, what string, oracle oracleTargets, fleet []*agent) fleetRow {
	t.Helper()
	want := oracle.lines()
	count := map[string]int{}
	for _, a := range fleet {
		settle(t, a.k.cfg.NodeName+"'s agent", func() (string, bool) { return fmt.Sprint(a.scraped()), a.k.Synced() })
		for _, l := range a.scraped() {
			count[l]++
		}
	}
	row := fleetRow{what: what, oracle: len(want), scraped: len(count)}
	for _, l := range want {
		if count[l] == 0 {
			row.missing = append(row.missing, l)
		}
	}
	for _, l := range slices.Sorted(maps.Keys(count)) {
		if count[l] > 1 {
			row.twice = append(row.twice, l)
		}
		if !slices.Contains(want, l) {
			row.extra = append(row.extra, l)
		}
	}
	t.Logf("| %s | Prometheus %d | scraped by the fleet %d | missing %d | twice %d | not Prometheus' %d |",
		what, row.oracle, row.scraped, len(row.missing), len(row.twice), len(row.extra))
	for _, l := range row.missing {
		t.Logf("  missing: %s", l)
	}
	return row
}

func (r fleetRow) mustEqual(t *testing.T) {
	t.Helper()
	if len(r.missing)+len(r.twice)+len(r.extra) == 0 {
		return
	}
	t.Errorf("%s: the fleet's targets differ from Prometheus':\nmissing:\n  %s\ntwice:\n  %s\nnot Prometheus':\n  %s", r.what,
		strings.Join(r.missing, "\n  "), strings.Join(r.twice, "\n  "), strings.Join(r.extra, "\n  "))
}

// checkDropped: every agent lists each of Prometheus' targets whose
// endpoint names no node (of the Services in services), found by its job and
// discovered address: the one whose node has the address as a target, the
// others as dropped with the reason. (An endpoint that names another node
// an agent never sees: it rebuilds those of pods from its own pods, and
// strips those of other nodes from the slices it watches.)
func checkDropped(t *testing.T, oracle oracleTargets, fleet []*agent, services ...string) {
	t.Helper()
	for _, a := range fleet {
		listed := map[string]bool{}
		for _, tg := range a.targets() {
			// A relabeling drop is its own reason; a target of another
			// node must say which address is not this node's.
			if tg.Drop.Reason == target.DroppedNotOnNode && tg.Drop.Detail == "" {
				t.Errorf("%s: %s %s dropped as %s without a detail", a.k.cfg.NodeName, tg.ScrapePool(), tg.Discovered.Get("__address__"), tg.Drop.Reason)
			}
			listed[tg.ScrapePool()+" "+tg.Discovered.Get("__address__")] = true
		}
		for _, o := range oracle {
			if !slices.Contains(services, o.Labels.Get("service")) {
				continue
			}
			if !listed[o.Job+" "+o.Discovered] {
				t.Errorf("%s's agent does not list %s %s, neither scraped nor dropped", a.k.cfg.NodeName, o.Job, o.Discovered)
			}
		}
	}
}
