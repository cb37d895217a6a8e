package controlplane

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	moninformers "github.com/prometheus-operator/prometheus-operator/pkg/client/informers/externalversions"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// klog starts its flush daemon in init; it lives as long as the binary.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
	)
}

// exporter serves a fixed exposition on ip at a free port, standing in for
// a pod's metrics endpoint (internal/exporter is the programmable one).
func exporter(t *testing.T, ip netip.Addr, body string) int32 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			io.WriteString(w, body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func get(t *testing.T, url string) string {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// result lets a test unwrap (value, error) in one line: try(f()).must(t).
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// nodePodInformer returns a started informer factory whose pod informer sees
// only pods bound to node, as the agent watches them.
func nodePodInformer(t *testing.T, client kubernetes.Interface, node string) cache.SharedIndexInformer {
	t.Helper()
	f := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}))
	inf := f.Core().V1().Pods().Informer()
	startFactory(t, f)
	return inf
}

// startFactory starts f and waits for its caches; cleanup stops it and
// waits for its goroutines (goleak checks that they are gone).
func startFactory[F interface {
	Start(<-chan struct{})
	Shutdown()
}](t *testing.T, f F) {
	t.Helper()
	stop := make(chan struct{})
	f.Start(stop)
	t.Cleanup(func() {
		close(stop)
		f.Shutdown()
	})
}

func podNames(inf cache.SharedIndexInformer) []string {
	var names []string
	for _, o := range inf.GetStore().List() {
		p := o.(*corev1.Pod)
		names = append(names, p.Namespace+"/"+p.Name)
	}
	slices.Sort(names)
	return names
}

func TestControlPlane(t *testing.T) {
	cp := ForTest(t, Config{})
	ctx := t.Context()

	nodeA, nodeB := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	try(cp.CreateNode(ctx, "node-a", nodeA, nil)).must(t)
	try(cp.CreateNode(ctx, "node-b", nodeB, map[string]string{"zone": "b"})).must(t)

	// Pods of one app on both nodes, each with a live exporter on its pod IP.
	app := map[string]string{"app": "demo"}
	pods := []struct {
		name, node string
		ip         netip.Addr
		hostNet    bool
	}{
		{"demo-a1", "node-a", netip.MustParseAddr("127.0.0.10"), false},
		{"demo-a2", "node-a", nodeA, true},
		{"demo-b1", "node-b", netip.MustParseAddr("127.0.0.20"), false},
	}
	for _, p := range pods {
		port := exporter(t, p.ip, "demo_requests_total{pod=\""+p.name+"\"} 7\n")
		pod := Pod("apps", p.name, p.node, app, corev1.ContainerPort{Name: "metrics", ContainerPort: port, Protocol: corev1.ProtocolTCP})
		st := PodStatus{IP: p.ip}
		if p.hostNet {
			pod.Spec.HostNetwork = true
			st = PodStatus{}
		}
		try(cp.CreatePod(ctx, pod, st)).must(t)
	}
	svc := Service("apps", "demo", app, ServicePort("metrics", 8080, "metrics"))
	svc.Labels = map[string]string{"team": "x"}
	ep := monitoringv1.Endpoint{Port: "metrics"}
	ep.Authorization = &monitoringv1.SafeAuthorization{Credentials: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "demo-token"},
		Key:                  "token",
	}}
	sm := ServiceMonitor("apps", "demo", map[string]string{"team": "x"}, ep)
	pm := PodMonitor("apps", "demo", app, monitoringv1.PodMetricsEndpoint{Port: ptr("metrics")})
	if err := cp.Create(ctx, svc, sm, pm, Secret("apps", "demo-token", map[string]string{"token": "s3cret"})); err != nil {
		t.Fatal(err)
	}

	t.Run("informers", func(t *testing.T) {
		podsA := nodePodInformer(t, cp.Kube, "node-a")
		podsB := nodePodInformer(t, cp.Kube, "node-b")
		kf := informers.NewSharedInformerFactoryWithOptions(cp.Kube, 0, informers.WithNamespace("apps"))
		services := kf.Core().V1().Services().Lister()
		secrets := kf.Core().V1().Secrets().Lister()
		nodes := kf.Core().V1().Nodes().Lister()
		mf := moninformers.NewSharedInformerFactory(cp.Monitoring, 0)
		sms := mf.Monitoring().V1().ServiceMonitors().Lister()
		pms := mf.Monitoring().V1().PodMonitors().Lister()
		startFactory(t, kf)
		startFactory(t, mf)
		for _, ok := range kf.WaitForCacheSync(ctx.Done()) {
			if !ok {
				t.Fatal("core caches did not sync")
			}
		}
		for _, ok := range mf.WaitForCacheSync(ctx.Done()) {
			if !ok {
				t.Fatal("monitoring caches did not sync")
			}
		}
		if !cache.WaitForCacheSync(ctx.Done(), podsA.HasSynced, podsB.HasSynced) {
			t.Fatal("pod caches did not sync")
		}

		if got, want := podNames(podsA), []string{"apps/demo-a1", "apps/demo-a2"}; !slices.Equal(got, want) {
			t.Errorf("node-a pod informer has %v, want %v", got, want)
		}
		if got, want := podNames(podsB), []string{"apps/demo-b1"}; !slices.Equal(got, want) {
			t.Errorf("node-b pod informer has %v, want %v", got, want)
		}
		// The pods' status is what the kubelet would write, and their IPs
		// reach the exporters.
		for _, p := range pods {
			inf := podsA
			if p.node == "node-b" {
				inf = podsB
			}
			obj, ok, err := inf.GetStore().GetByKey("apps/" + p.name)
			if err != nil || !ok {
				t.Fatalf("pod %s not in informer: %v", p.name, err)
			}
			pod := obj.(*corev1.Pod)
			if pod.Status.PodIP != p.ip.String() || pod.Status.Phase != corev1.PodRunning || !podReady(pod) {
				t.Errorf("pod %s: ip %s phase %s ready %v, want %s Running ready", p.name, pod.Status.PodIP, pod.Status.Phase, podReady(pod), p.ip)
			}
			port := pod.Spec.Containers[0].Ports[0].ContainerPort
			body := get(t, "http://"+net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port)))+"/metrics")
			if want := `pod="` + p.name + `"`; !strings.Contains(body, want) {
				t.Errorf("exporter of %s answered %q, want %s", p.name, body, want)
			}
		}

		gotSvc, err := services.Services("apps").Get("demo")
		if err != nil {
			t.Fatal(err)
		}
		if gotSvc.Spec.ClusterIP == "" || gotSvc.Spec.Ports[0].TargetPort.StrVal != "metrics" {
			t.Errorf("service: cluster IP %q target port %v", gotSvc.Spec.ClusterIP, gotSvc.Spec.Ports[0].TargetPort)
		}
		gotSM, err := sms.ServiceMonitors("apps").Get("demo")
		if err != nil {
			t.Fatal(err)
		}
		if len(gotSM.Spec.Endpoints) != 1 || gotSM.Spec.Endpoints[0].Authorization.Credentials.Name != "demo-token" {
			t.Errorf("service monitor endpoints: %+v", gotSM.Spec.Endpoints)
		}
		if _, err := pms.PodMonitors("apps").Get("demo"); err != nil {
			t.Error(err)
		}
		secret, err := secrets.Secrets("apps").Get("demo-token")
		if err != nil {
			t.Fatal(err)
		}
		if string(secret.Data["token"]) != "s3cret" {
			t.Errorf("secret token = %q", secret.Data["token"])
		}
		nb, err := nodes.Get("node-b")
		if err != nil {
			t.Fatal(err)
		}
		if nodeInternalIP(nb) != nodeB.String() || nb.Labels["zone"] != "b" {
			t.Errorf("node-b: addresses %v labels %v", nb.Status.Addresses, nb.Labels)
		}

		// Changes arrive as events: a new pod on node-a, a readiness flip,
		// and nothing of node-b's new pod on node-a's informer.
		events := make(chan string, 16)
		if _, err := podsA.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { events <- "add " + obj.(*corev1.Pod).Name },
			UpdateFunc: func(_, obj any) {
				events <- fmt.Sprintf("update %s ready=%v", obj.(*corev1.Pod).Name, podReady(obj.(*corev1.Pod)))
			},
		}); err != nil {
			t.Fatal(err)
		}
		drain(events, 2) // the adds of the existing pods
		try(cp.CreatePod(ctx, Pod("apps", "demo-b2", "node-b", app), PodStatus{IP: netip.MustParseAddr("127.0.0.21")})).must(t)
		try(cp.CreatePod(ctx, Pod("apps", "demo-a3", "node-a", app), PodStatus{IP: netip.MustParseAddr("127.0.0.11")})).must(t)
		try(cp.SetPodStatus(ctx, "apps", "demo-a1", PodStatus{IP: netip.MustParseAddr("127.0.0.10"), NotReady: true})).must(t)
		want := []string{"add demo-a3", "update demo-a3 ready=true", "update demo-a1 ready=false"}
		for _, w := range want {
			select {
			case got := <-events:
				if got != w {
					t.Errorf("event %q, want %q", got, w)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no event %q within 10s", w)
			}
		}
	})

	t.Run("rbac", func(t *testing.T) {
		saCfg := try(cp.ServiceAccountConfig(ctx, "monitoring", "agent")).must(t)
		sa := try(kubernetes.NewForConfig(saCfg)).must(t)
		_, err := sa.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("listing pods without a role: err %v, want Forbidden", err)
		}
		if !strings.Contains(err.Error(), "system:serviceaccount:monitoring:agent") {
			t.Errorf("forbidden error does not name the service account: %v", err)
		}
		err = cp.GrantClusterRole(ctx, "monitoring", "agent", []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		// RBAC changes reach the authorizer's cache within moments.
		var list *corev1.PodList
		eventually(t, 10*time.Second, "pod list allowed by the new role", func() bool {
			list, err = sa.CoreV1().Pods("").List(ctx, metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("spec.nodeName", "node-b").String(),
			})
			return err == nil
		})
		if len(list.Items) != 2 {
			t.Errorf("service account lists %d pods on node-b, want 2", len(list.Items))
		}
		if _, err := sa.CoreV1().Secrets("apps").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing secrets with a pods-only role: err %v, want Forbidden", err)
		}
	})

	t.Run("kubeconfig", func(t *testing.T) {
		cfg := try(clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)).must(t)
		client := try(kubernetes.NewForConfig(cfg)).must(t)
		nodes := try(client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{"zone": "b"}).String()})).must(t)
		if len(nodes.Items) != 1 || nodes.Items[0].Name != "node-b" {
			t.Errorf("nodes with zone=b through the kubeconfig: %v", nodes.Items)
		}
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func drain(c <-chan string, n int) {
	for range n {
		<-c
	}
}

func ptr[T any](v T) *T { return &v }

func TestMissingBinariesFail(t *testing.T) {
	_, err := Start(t.Context(), Config{BinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "scripts/controlplane.sh ensure") {
		t.Fatalf("Start with an empty bin dir: %v, want an error pointing at scripts/controlplane.sh ensure", err)
	}
}

// The Go helper and the script must agree on the version, i.e. on the cache
// directory: both read tools/kube/go.mod.
func TestVersionMatchesScript(t *testing.T) {
	out, err := exec.Command("../../scripts/controlplane.sh", "bin-dir").Output()
	if err != nil {
		t.Fatalf("scripts/controlplane.sh bin-dir: %v", err)
	}
	dir, err := cacheBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != dir {
		t.Errorf("script bin dir %s, helper bin dir %s", got, dir)
	}
	if !strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "v1.") {
		t.Errorf("bin dir %s is not keyed by a v1.x version", dir)
	}
}

func TestControllerEnabled(t *testing.T) {
	names := []string{"serviceaccount-controller", "serviceaccount"}
	for _, tc := range []struct {
		list []string
		want bool
	}{
		{defaultControllers, true},
		{[]string{"*", "-serviceaccount-controller"}, false},
		{[]string{"*", "-serviceaccount"}, false},
		{[]string{"endpointslice-controller"}, false},
		{[]string{"endpointslice-controller", "serviceaccount"}, true},
		{nil, false},
	} {
		if got := controllerEnabled(tc.list, names...); got != tc.want {
			t.Errorf("controllerEnabled(%q) = %v, want %v", tc.list, got, tc.want)
		}
	}
}
