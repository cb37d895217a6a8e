package controlplane

import (
	"net/netip"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	moninformers "github.com/prometheus-operator/prometheus-operator/pkg/client/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// TestAPIServerRestart restarts kube-apiserver under running informers and
// checks that objects created afterwards still arrive, for the agent's kinds
// (own-node pods, ServiceMonitors) and for kube-controller-manager, which
// must keep working across the restart too.
func TestAPIServerRestart(t *testing.T) {
	cp := ForTest(t, Config{ControllerManager: true})
	ctx := t.Context()
	try(cp.CreateNode(ctx, "node-a", netip.MustParseAddr("127.0.0.2"), nil)).must(t)

	// kube-controller-manager runs: a new namespace gets its default
	// ServiceAccount and root CA ConfigMap from its controllers.
	waitForControllers := func(ns string) {
		t.Helper()
		defer func(b time.Time) {
			t.Logf("controllers populated namespace %s in %v", ns, time.Since(b).Round(time.Millisecond))
		}(time.Now())
		try(cp.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})).must(t)
		eventually(t, 30*time.Second, "controllers to populate namespace "+ns, func() bool {
			_, errSA := cp.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			_, errCM := cp.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return errSA == nil && errCM == nil
		})
	}
	waitForControllers("before")

	pods := nodePodInformer(t, cp.Kube, "node-a")
	mf := moninformers.NewSharedInformerFactory(cp.Monitoring, 0)
	sms := mf.Monitoring().V1().ServiceMonitors().Informer()
	startFactory(t, mf)
	if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, sms.HasSynced) {
		t.Fatal("caches did not sync")
	}
	app := map[string]string{"app": "demo"}
	try(cp.CreatePod(ctx, Pod("apps", "before", "node-a", app), PodStatus{IP: netip.MustParseAddr("127.0.0.10")})).must(t)
	eventually(t, 10*time.Second, "pod before restart in informer", func() bool {
		_, ok, _ := pods.GetStore().GetByKey("apps/before")
		return ok
	})

	begin := time.Now()
	if err := cp.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver restarted in %v", time.Since(begin).Round(time.Millisecond))

	// The old process is gone and the new one serves the same data.
	if _, err := cp.Kube.CoreV1().Pods("apps").Get(ctx, "before", metav1.GetOptions{}); err != nil {
		t.Fatalf("pod created before the restart: %v", err)
	}
	begin = time.Now()
	try(cp.CreatePod(ctx, Pod("apps", "after", "node-a", app), PodStatus{IP: netip.MustParseAddr("127.0.0.11")})).must(t)
	if err := cp.Create(ctx, ServiceMonitor("apps", "after", app, monitoringv1.Endpoint{Port: "metrics"})); err != nil {
		t.Fatal(err)
	}
	// client-go's reflectors retry with backoff (0.8 s doubling); well
	// within 30 s they relist or rewatch and deliver the new objects.
	eventually(t, 30*time.Second, "pod and ServiceMonitor created after the restart in informers", func() bool {
		_, podOK, _ := pods.GetStore().GetByKey("apps/after")
		_, smOK, _ := sms.GetStore().GetByKey("apps/after")
		return podOK && smOK
	})
	t.Logf("informers delivered objects created after the restart within %v", time.Since(begin).Round(time.Millisecond))
	waitForControllers("after")

	if _, err := cp.Kube.CoreV1().Pods("apps").Get(ctx, "missing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get missing pod: %v, want NotFound", err)
	}
}
