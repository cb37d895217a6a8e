package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/nodescraper/nodescraper/internal/exporter"
)

// TestReservedTagsEndToEnd runs the real binary in local mode against a
// target that tries to set tags the agent owns: its series names eight of
// them (host, env, service, version, kube_deployment, kube_cluster_name,
// device, source; none of which the agent gives this target), and its
// file's labels a ninth (kube_namespace). The intake must see each only as
// exported_<name>, no series with a reserved tag or another host than the
// agent's node, and the agent's nodescraper_dd_reserved_tags_renamed_total
// must say 9, once for the series however often it is scraped.
func TestReservedTagsEndToEnd(t *testing.T) {
	const key = "reserved-key-0123456789abcdef012345"
	in := startIntake(t, key)
	e := exporter.New()
	e.Family("m", exporter.Gauge, "A tenant's series.").
		Set(`host="spoofed",env="prod",kube_deployment="payments",kube_cluster_name="x",device="d",source="s",service="a",version="1"`, 1)
	addr := serveExporter(t, e)

	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.yaml")
	file := fmt.Sprintf("- targets: [%q]\n  labels: {job: tenant, kube_namespace: payments}\n", addr)
	if err := os.WriteFile(targets, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, "agent", []string{"DD_API_KEY=" + key},
		"--static-targets", targets, "--node-name", "node-r", "--dd-url", in.URL, "--allow-insecure-datadog-url",
		"--state-dir", filepath.Join(dir, "state"), "--scrape-interval", "1s", "--flush-interval", "200ms")

	// Three scrapes, and their points at the intake.
	waitScrapes(t, e, 3)
	for deadline := time.Now().Add(15 * time.Second); len(in.Points("m")) < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d points of m at the intake after 15s", len(in.Points("m")))
		}
	}
	metrics := httpGet(t, "http://"+agent.addr+"/metrics")
	agent.stop(20 * time.Second)

	want := []string{
		"exported_device:d", "exported_env:prod", "exported_host:spoofed", "exported_kube_cluster_name:x",
		"exported_kube_deployment:payments", "exported_kube_namespace:payments", "exported_service:a",
		"exported_source:s", "exported_version:1", "instance:" + addr, "job:tenant",
	}
	series := in.Series()
	if len(series) == 0 {
		t.Fatal("no series at the intake")
	}
	seen := map[string]bool{}
	for _, s := range series {
		what := s.Metric + " " + strings.Join(s.Tags, " ")
		key := what
		for _, r := range s.Resources {
			key += " " + r.GetType() + "=" + r.GetName()
		}
		if seen[key] {
			continue // another point of a series checked
		}
		seen[key] = true
		if len(s.Resources) != 1 || s.Resources[0].GetType() != "host" || s.Resources[0].GetName() != "node-r" {
			t.Errorf("%s: resources %+v, want only the host node-r", what, s.Resources)
		}
		for _, tag := range s.Tags {
			if k, _, _ := strings.Cut(tag, ":"); ddclient.ReservedTag(k) {
				t.Errorf("%s: the target set %s", what, tag)
			}
		}
		if s.Metric == "m" {
			if got := slices.Sorted(slices.Values(s.Tags)); !slices.Equal(got, want) {
				t.Errorf("m tags\n\t%s\nwant\n\t%s", strings.Join(got, " "), strings.Join(want, " "))
			}
		} else if !slices.Contains(s.Tags, "exported_kube_namespace:payments") {
			t.Errorf("%s: the report series lacks the target's exported_kube_namespace", what)
		}
	}
	renamed := metricSample(t, metrics, "nodescraper_dd_reserved_tags_renamed_total")
	dropped := metricSample(t, metrics, "nodescraper_dd_reserved_tags_dropped_total")
	if renamed != 9 || dropped != 0 {
		t.Errorf("nodescraper_dd_reserved_tags_renamed_total %v, dropped %v: want 9 (one series, nine labels) and 0", renamed, dropped)
	}
}
