package informer

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestRefusedReferenceRejectsAtOnce: a monitor naming a Secret the agent's
// RBAC does not grant is rejected as soon as the API server refuses the
// list, with the refusal as its reason, instead of holding the node's
// rebuild (and every node's) for the ref sync timeout; another monitor's
// targets come in the same first target set.
func TestRefusedReferenceRejectsAtOnce(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	_, err := cp.CreateNode(ctx, "node-a", netip.MustParseAddr("10.9.7.1"), nil)
	must(t, err)
	_, err = cp.CreatePod(ctx, webPod("web-1", "node-a"), controlplane.PodStatus{IP: netip.MustParseAddr("127.0.0.71")})
	must(t, err)
	svc := controlplane.Service("app", "web", map[string]string{"app": "web"}, controlplane.ServicePort("http-metrics", 80, "metrics"))
	svc.Labels = map[string]string{"team": "a"}
	plain := controlplane.ServiceMonitor("app", "plain", map[string]string{"team": "a"}, monitoringv1.Endpoint{Port: "http-metrics"})
	hidden := controlplane.ServiceMonitor("app", "hidden", map[string]string{"team": "a"}, monitoringv1.Endpoint{Port: "http-metrics"})
	hidden.Spec.Endpoints[0].BasicAuth = &monitoringv1.BasicAuth{
		Username: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "hidden"}, Key: "user"},
		Password: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "hidden"}, Key: "password"},
	}
	must(t, cp.Create(ctx, svc, plain, hidden))
	read := []string{"get", "list", "watch"}
	must(t, cp.GrantClusterRole(ctx, "agent", "refs", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "services", "nodes"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"monitoring.coreos.com"}, Resources: []string{"servicemonitors", "podmonitors"}, Verbs: read},
	}))
	saCfg, err := cp.ServiceAccountConfig(ctx, "agent", "refs")
	must(t, err)

	begin := time.Now()
	a := startAgentConfig(t, KubeConfig{Rest: saCfg, NodeName: "node-a", RefSyncTimeout: time.Minute})
	for !a.k.Synced() {
		if time.Since(begin) > 30*time.Second {
			t.Fatal("no first target set in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(begin)
	t.Logf("first target set after %v", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the first target set took %v: the refused Secret held the rebuild", took)
	}
	var reason string
	for _, r := range a.k.Rejected() {
		if r.Name == "hidden" {
			reason = r.Reason
		}
	}
	if !strings.Contains(reason, "may not read it") || !strings.Contains(reason, "forbidden") {
		t.Errorf("app/hidden rejected as %q, want the refusal", reason)
	}
	if got := render(a.targets()); !strings.Contains(got, "serviceMonitor/app/plain/0") {
		t.Errorf("the other monitor's targets are not in the first target set:\n%s", got)
	}
}
