package apiscale

import (
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
)

// TestTiny runs the harness on 5 nodes x 3 pods with 5 agents of each mode:
// node-local agents get only their node's pods and see every pod change of
// their node; cluster-wide ones get every pod.
func TestTiny(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{ControllerManager: true})
	spec := Spec{Nodes: 5, PodsPerNode: 3, PodsPerService: 1, ServicesPerMonitor: 5, Namespaces: 2, AllServices: 25}
	res, err := Run(t.Context(), cp, Config{
		Spec: spec,
		// The baseline first: its churn must not leave the next phase's
		// Service updates no-ops.
		Phases: []Phase{{Agents: 0}, {Mode: NodeLocal, Agents: 5}, {Mode: ClusterWide, Agents: 5}, {Mode: ClusterWideWire, Agents: 5}},
		Churn:  4 * time.Second, PodChurnRate: 5, ServiceChurnRate: 5,
		Settle: time.Second,
		Logf:   t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	local, wide, wire := res[1], res[2], res[3]
	t.Logf("\n%s\n%s\n%s\n%s\n%s", Header, res[0].Row(), local.Row(), wide.Row(), wire.Row())
	// Node-local agents hold the 15 Services their monitors select in
	// their pods' namespaces, not the 10 no monitor selects.
	if local.StartServices != float64(spec.AppServices()) {
		t.Errorf("node-local agents got %.1f Services each at start, want the %d monitored ones", local.StartServices, spec.AppServices())
	}
	if local.Churn.ServiceUpdates == 0 {
		t.Error("no Service updates in the churn")
	}

	if local.ForeignPods != 0 {
		t.Errorf("node-local agents got %.1f pods of other nodes each, want 0", local.ForeignPods)
	}
	if local.Pods < float64(spec.PodsPerNode) {
		t.Errorf("node-local agents got %.1f pods each, want at least their node's %d", local.Pods, spec.PodsPerNode)
	}
	if min := float64(spec.Pods() - spec.PodsPerNode); wide.ForeignPods < min {
		t.Errorf("cluster-wide agents got %.1f pods of other nodes each, want at least %v", wide.ForeignPods, min)
	}
	for _, r := range res[1:] {
		if r.Phase.Mode != ClusterWideWire && (r.Quiet.N+r.Stream.N == 0 || r.Missed != 0) {
			t.Errorf("%s: %d+%d pod changes seen, %d missed; want all seen", r.Phase.Mode, r.Quiet.N, r.Stream.N, r.Missed)
		}
		if r.StartBytes <= 0 || r.ChurnBytesPerHour <= 0 {
			t.Errorf("%s: no bytes counted (start %d, churn %.0f/h)", r.Phase.Mode, r.StartBytes, r.ChurnBytesPerHour)
		}
		if r.Watches.LongRunning < float64(r.Phase.Agents) {
			t.Errorf("%s: %.0f WATCH requests open for %d agents", r.Phase.Mode, r.Watches.LongRunning, r.Phase.Agents)
		}
	}
	// The wire-level agents make a reflector's requests: same objects at
	// start (the cluster is the same size after each churn), about the same
	// bytes (both protobuf; HTTP/2 and TLS framing differ a little).
	if wire.StartObjects != wide.StartObjects {
		t.Errorf("wire agents got %.1f objects at start, informer agents %.1f", wire.StartObjects, wide.StartObjects)
	}
	if ratio := float64(wire.StartBytes) / float64(wide.StartBytes); ratio < 0.8 || ratio > 1.25 {
		t.Errorf("wire agents got %d bytes at start, informer agents %d (ratio %.2f)", wire.StartBytes, wide.StartBytes, ratio)
	}
	if wire.ChurnObjectsPerHour <= 0 || wire.Pods < float64(spec.Pods()) {
		t.Errorf("wire agents: %.0f churn objects/h, %.1f pods delivered; want some, at least %d", wire.ChurnObjectsPerHour, wire.Pods, spec.Pods())
	}
	if wide.StartBytes <= local.StartBytes/2 {
		t.Logf("note: at this size a cluster-wide agent's start (%d B) is not larger than a node-local one's (%d B)", wide.StartBytes, local.StartBytes)
	}

	// A configuration that does not fit is recorded, not lost: over the
	// kube-apiserver RSS limit (here any RSS at all) the phase ends with
	// what it measured and a row that says why.
	cfg := Config{Spec: spec, APIServerRSSLimit: 1, StartRate: 1, Settle: time.Second, Logf: t.Logf}
	cfg.defaults()
	over, err := runPhase(t.Context(), cp, cfg, newChurner(cp, cfg.Spec), Phase{Mode: NodeLocal, Agents: 5})
	if err == nil || !strings.Contains(err.Error(), "RSS over the limit") {
		t.Fatalf("phase over the RSS limit: err %v, want the limit named", err)
	}
	over.Failed = err.Error()
	if over.APIRSSMax <= 1 || over.SyncedAgents >= 5 {
		t.Errorf("phase over the RSS limit: RSS max %d, %d of 5 synced; want the RSS seen and the start cut short", over.APIRSSMax, over.SyncedAgents)
	}
	if row := over.Row(); !strings.Contains(row, "did not complete") || strings.Count(row, "|") != strings.Count(Header[:strings.Index(Header, "\n")], "|") {
		t.Errorf("failed phase row %q: want 'did not complete' and the header's columns", row)
	}
}
