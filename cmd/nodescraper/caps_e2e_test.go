package main

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// TestEnforcedCapsReachMonitors: the operator's caps (--enforced-*) bound
// what a monitor asks for, on the real API server: a monitor that asks for
// a 4 GiB body and a million samples gets --enforced-body-size-limit, so
// its target's scrape of a body over the cap fails with the reason (as does
// the target of a monitor that asks for nothing, whose default would be 1
// MiB), and --enforced-namespace-label sets the label to the monitor's
// namespace (the Operator's enforcedNamespaceLabel), whatever its
// relabeling says.
func TestEnforcedCapsReachMonitors(t *testing.T) {
	const key = "e2e-key-0123456789abcdef0123456789"
	in := startIntake(t, key)
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	if _, err := cp.CreateNode(ctx, "node-a", netip.MustParseAddr("127.0.1.1"), nil); err != nil {
		t.Fatal(err)
	}
	pods := map[string]*exporter.Exporter{}
	for i, app := range []string{"big", "small"} {
		e := exporter.New()
		f := e.Family("jobs_total", exporter.Counter, strings.Repeat("help ", 1000)) // a 5 KB HELP line
		f.Set("", 1)
		exporterPod(t, cp, e, "shop", app, app, "node-a", netip.MustParseAddr("127.0.0."+strconv.Itoa(41+i)))
		svc := controlplane.Service("shop", app, map[string]string{"app": app}, controlplane.ServicePort("metrics", 80, "metrics"))
		svc.Labels = map[string]string{"app": app}
		huge := monitoringv1.ByteSize("4GiB")
		samples := int64(1_000_000)
		ep := monitoringv1.Endpoint{Port: "metrics", Interval: "1s"}
		sm := controlplane.ServiceMonitor("shop", app, map[string]string{"app": app}, ep)
		if app == "big" {
			sm.Spec.BodySizeLimit, sm.Spec.SampleLimit = &huge, &samples
		}
		// A relabeling that tries to set the enforced label itself.
		sm.Spec.Endpoints[0].RelabelConfigs = []monitoringv1.RelabelConfig{{TargetLabel: "tenant", Replacement: ptrTo("someone-else")}}
		if err := cp.Create(ctx, svc, sm); err != nil {
			t.Fatal(err)
		}
		pods[app] = e
	}
	addr, stop := runInProcess(t, map[string]string{"DD_API_KEY": key},
		"--kubeconfig", cp.Kubeconfig, "--node-name", "node-a",
		"--dd-url", in.URL, "--allow-insecure-datadog-url", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir(), "--flush-interval", "300ms",
		"--body-size-limit", "1048576", "--enforced-body-size-limit", "4096", "--enforced-namespace-label", "tenant")
	defer stop()

	// Both monitors' targets get the 4 KiB cap: "big" asked for 4 GiB,
	// "small" for nothing (the agent's own default would be 1 MiB).
	for begin := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		api := httpGet(t, "http://"+addr+"/api/v1/targets?state=active")
		if strings.Count(api, "body larger than 4096 bytes") == 2 {
			// The relabeling's tenant="someone-else" is overridden.
			if n := strings.Count(api, `"tenant":"shop"`); n != 2 {
				t.Fatalf("%d targets labeled tenant=shop, want 2:\n%s", n, api)
			}
			break
		}
		if time.Since(begin) > 20*time.Second {
			t.Fatalf("the targets' scrapes did not fail on the enforced 4096-byte body cap:\n%s", api)
		}
	}
	if n := pods["big"].Scrapes() + pods["small"].Scrapes(); n == 0 {
		t.Fatal("no scrape reached the exporters")
	}
	if _, ok := in.Last("jobs.count"); ok {
		t.Error("a body over the enforced cap reached the intake")
	}
}

func ptrTo[T any](v T) *T { return &v }
