package main

import (
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// TestKubeMode runs the agent of node-a in-process against a real
// kube-apiserver: a ServiceMonitor selects a Service whose pods run on both
// nodes; only node-a's pod is scraped, and its series reach the intake with
// the target labels and the Kubernetes tags.
func TestKubeMode(t *testing.T) {
	const key = "e2e-key-0123456789abcdef0123456789"
	in := startIntake(t, key)
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()

	exporters := map[string]*exporter.Exporter{}
	for i, node := range []string{"node-a", "node-b"} {
		if _, err := cp.CreateNode(ctx, node, netip.MustParseAddr("127.0.1."+strconv.Itoa(i+1)), nil); err != nil {
			t.Fatal(err)
		}
		e := exporter.New()
		e.Family("jobs_total", exporter.Counter, "Jobs.").Set("", 1)
		exporterPod(t, cp, e, "shop", "api-"+node, "api", node, netip.MustParseAddr("127.0.0."+strconv.Itoa(31+i)))
		exporters[node] = e
	}
	svc := controlplane.Service("shop", "api", map[string]string{"app": "api"}, controlplane.ServicePort("metrics", 80, "metrics"))
	svc.Labels = map[string]string{"app": "api"}
	sm := controlplane.ServiceMonitor("shop", "api", map[string]string{"app": "api"}, monitoringv1.Endpoint{Port: "metrics", Interval: "1s"})
	if err := cp.Create(ctx, svc, sm); err != nil {
		t.Fatal(err)
	}

	addr, stop := runInProcess(t, map[string]string{"DD_API_KEY": key},
		"--kubeconfig", cp.Kubeconfig, "--node-name", "node-a",
		"--dd-url", in.URL, "--allow-insecure-datadog-url", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir(),
		"--flush-interval", "300ms")

	waitScrapes(t, exporters["node-a"], 3)
	deadline := time.Now().Add(10 * time.Second)
	// At the default, low tag cardinality: the Operator's namespace, service
	// and pod labels repeat kube_namespace, kube_service and pod_name, which
	// is not sent (ddclient's tag rules).
	tags := []string{"job:api", "endpoint:metrics",
		"kube_namespace:shop", "kube_service:api", "kube_container_name:app"}
	for {
		if _, ok := in.Last("jobs.count", tags...); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no jobs.count with tags %v reached the intake", tags)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := exporters["node-b"].Scrapes(); n != 0 {
		t.Errorf("node-b's pod was scraped %d times by node-a's agent", n)
	}
	if got := httpGet(t, "http://"+addr+"/readyz"); strings.TrimSpace(got) != "ok" {
		t.Errorf("/readyz = %q", got)
	}
	self := httpGet(t, "http://"+addr+"/metrics")
	for _, m := range []string{"nodescraper_monitors_rejected 0", "nodescraper_discovery_synced 1"} {
		if !strings.Contains(self, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	stop()
}

func TestKubeModeNeedsNodeName(t *testing.T) {
	_, err := parseConfig([]string{"--dry-run"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--node-name (NODE_NAME) is required in Kubernetes mode") {
		t.Fatalf("err = %v", err)
	}
}
