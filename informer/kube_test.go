package informer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// klog starts its flush daemon in init; it lives as long as the binary.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
	)
}

// byteCounter counts the response bytes of every API request and keeps the
// media types of the responses by API group.
type byteCounter struct {
	n     atomic.Int64
	types sync.Map // "core" or group -> map[string]bool of Content-Types (under mu)
	mu    sync.Mutex
}

func (c *byteCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if err == nil {
			resp.Body = &countingBody{resp.Body, &c.n}
			group := "core"
			if rest, ok := strings.CutPrefix(r.URL.Path, "/apis/"); ok {
				group, _, _ = strings.Cut(rest, "/")
			}
			ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
			v, _ := c.types.LoadOrStore(group, map[string]bool{})
			c.mu.Lock()
			v.(map[string]bool)[ct] = true
			c.mu.Unlock()
		}
		return resp, err
	})
}

// mediaTypes returns the response media types seen per API group.
func (c *byteCounter) mediaTypes() map[string][]string {
	out := map[string][]string{}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types.Range(func(k, v any) bool {
		for ct := range v.(map[string]bool) {
			out[k.(string)] = append(out[k.(string)], ct)
		}
		slices.Sort(out[k.(string)])
		return true
	})
	return out
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// agent runs the discovery for node and keeps its latest target set.
type agent struct {
	stop  func() // stops the agent and waits; again is a no-op
	k     *Kube
	bytes *byteCounter
	mu    sync.Mutex
	last  []target.Target
	seq   int
	// emitted are all target sets emitted, rendered.
	emitted []string
}

func startAgent(t *testing.T, cp *controlplane.ControlPlane, node string) *agent {
	t.Helper()
	return startAgentWith(t, cp.Admin, node)
}

func startAgentWith(t *testing.T, cfg *rest.Config, node string) *agent {
	t.Helper()
	return startAgentConfig(t, KubeConfig{
		Rest: cfg, NodeName: node,
		Settings: relabel.Settings{ServiceDiscoveryRole: monitoringv1.EndpointSliceRole},
	})
}

// startAgentConfig runs the discovery of cfg (its Rest wrapped to count the
// API bytes, its Logger discarding when unset).
func startAgentConfig(t *testing.T, cfg KubeConfig) *agent {
	t.Helper()
	a := &agent{bytes: &byteCounter{}}
	cfg.Rest = rest.CopyConfig(cfg.Rest)
	cfg.Rest.Wrap(a.bytes.wrap)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	k, err := NewKube(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.k = k
	out := make(chan []target.Target, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := k.Run(ctx, out); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ts := <-out:
				a.mu.Lock()
				a.last, a.seq = ts, a.seq+1
				a.emitted = append(a.emitted, render(ts))
				a.mu.Unlock()
			}
		}
	})
	a.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(a.stop)
	return a
}

// render prints the targets to scrape, one a line, sorted; dropped targets
// are left out (see hasDropped).
func render(ts []target.Target) string {
	var lines []string
	for _, t := range ts {
		if t.Drop.Reason != "" {
			continue
		}
		lines = append(lines, t.Source+" "+t.Labels.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// waitFor waits until the target set, rendered, equals want, and returns how
// long that took.
func (a *agent) waitFor(t *testing.T, what, want string) time.Duration {
	t.Helper()
	begin := time.Now()
	var got string
	for time.Since(begin) < 20*time.Second {
		a.mu.Lock()
		got = render(a.last)
		a.mu.Unlock()
		if got == want {
			d := time.Since(begin)
			t.Logf("%s: reached in %v", what, d.Round(time.Millisecond))
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: targets\n%s\nwant\n%s", what, got, want)
	return 0
}

func (a *agent) targets() []target.Target {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func port(name string, n int32) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: n, Protocol: corev1.ProtocolTCP}
}

func webPod(name, node string) *corev1.Pod {
	p := controlplane.Pod("app", name, node, map[string]string{
		"app": "web", "pod-template-hash": "5d8f9", "tags.datadoghq.com/env": "prod",
	}, port("metrics", 8080), port("admin", 9090))
	yes := true
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f9", UID: types.UID("rs-uid"), Controller: &yes}}
	return p
}

func TestKubeDiscovery(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	nodeA, nodeB := "node-a", "node-b"
	_, err := cp.CreateNode(ctx, nodeA, netip.MustParseAddr("127.0.1.1"), nil)
	must(t, err)
	_, err = cp.CreateNode(ctx, nodeB, netip.MustParseAddr("127.0.1.2"), nil)
	must(t, err)
	ip := netip.MustParseAddr

	// Node A: a ready pod, a not-ready pod, a terminating pod (a finalizer
	// holds it after delete), a hostNetwork pod. Node B: one of each kind
	// that must not show up.
	_, err = cp.CreatePod(ctx, webPod("web-1", nodeA), controlplane.PodStatus{IP: ip("127.0.0.11")})
	must(t, err)
	_, err = cp.CreatePod(ctx, webPod("web-2", nodeA), controlplane.PodStatus{IP: ip("127.0.0.12"), NotReady: true})
	must(t, err)
	term := webPod("web-4", nodeA)
	term.Finalizers = []string{"example.com/hold"}
	_, err = cp.CreatePod(ctx, term, controlplane.PodStatus{IP: ip("127.0.0.14")})
	must(t, err)
	must(t, cp.Kube.CoreV1().Pods("app").Delete(ctx, "web-4", metav1.DeleteOptions{}))
	_, err = cp.CreatePod(ctx, webPod("web-3", nodeB), controlplane.PodStatus{IP: ip("127.0.0.13")})
	must(t, err)
	for _, n := range []string{nodeA, nodeB} {
		hp := controlplane.Pod("app", "node-exp-"+n, n, map[string]string{"app": "node-exp"}, port("metrics", 9100))
		hp.Spec.HostNetwork = true
		_, err = cp.CreatePod(ctx, hp, controlplane.PodStatus{})
		must(t, err)
	}
	// A completed pod on node A: excluded from endpoints and dropped by the
	// PodMonitor chain.
	_, err = cp.CreatePod(ctx, webPod("web-done", nodeA), controlplane.PodStatus{IP: ip("127.0.0.19"), Phase: corev1.PodSucceeded})
	must(t, err)

	// A pod not started yet (no IP): in no target set.
	pending := webPod("web-pending", nodeA)
	_, err = cp.Kube.CoreV1().Pods("app").Create(ctx, pending, metav1.CreateOptions{})
	must(t, err)

	web := controlplane.Service("app", "web", map[string]string{"app": "web"}, controlplane.ServicePort("http-metrics", 80, "metrics"))
	web.Labels = map[string]string{"team": "a"}
	nodeExp := controlplane.Service("app", "node-exp", map[string]string{"app": "node-exp"}, controlplane.ServicePort("metrics", 9100, "9100"))
	nodeExp.Labels = map[string]string{"team": "b"}

	smWeb := controlplane.ServiceMonitor("app", "sm-web", map[string]string{"team": "a"},
		monitoringv1.Endpoint{Port: "http-metrics"},
		monitoringv1.Endpoint{TargetPort: ptr(intstr.FromInt32(9090)), RelabelConfigs: []monitoringv1.RelabelConfig{
			{Action: "drop", SourceLabels: []monitoringv1.LabelName{"__meta_kubernetes_pod_name"}, Regex: "web-2"},
			{SourceLabels: []monitoringv1.LabelName{"__meta_kubernetes_pod_label_app"}, TargetLabel: "application"},
		}})
	smWeb.Spec.JobLabel = "team"
	smWeb.Spec.TargetLabels = []string{"team"}
	smWeb.Spec.PodTargetLabels = []string{"app"}
	endpointsRole := monitoringv1.EndpointsRole
	smNode := controlplane.ServiceMonitor("app", "sm-node", map[string]string{"team": "b"}, monitoringv1.Endpoint{Port: "metrics"})
	smNode.Spec.ServiceDiscoveryRole = &endpointsRole
	// A relabeling that aims the agent elsewhere: dropped, counted.
	smEvil := controlplane.ServiceMonitor("app", "sm-evil", map[string]string{"team": "a"}, monitoringv1.Endpoint{Port: "http-metrics",
		RelabelConfigs: []monitoringv1.RelabelConfig{{TargetLabel: "__address__", Replacement: ptr("169.254.169.254:80")}}})
	pmWeb := controlplane.PodMonitor("app", "pm-web", map[string]string{"app": "web"}, monitoringv1.PodMetricsEndpoint{Port: ptr("metrics")})
	must(t, cp.Create(ctx, web, nodeExp, smWeb, smNode, smEvil, pmWeb))

	a := startAgent(t, cp, nodeA)
	b := startAgent(t, cp, nodeB)

	// Expected label sets, written from the Operator's chain and the SD
	// semantics: job from jobLabel (team), targetLabels team, podTargetLabels
	// app; the 9090 endpoint reaches the container port the Service does
	// not cover; not-ready and terminating pods stay; web-2 dropped by a
	// relabeling on endpoint 1; the completed pod nowhere.
	svcTarget := func(pod, addr, endpoint, extra string) string {
		return fmt.Sprintf(`serviceMonitor/app/sm-web/%s {app="web", %scontainer="app", endpoint="%s", instance="%s", job="a", namespace="app", pod="%s", service="web", team="a"}`,
			map[string]string{"http-metrics": "0", "9090": "1"}[endpoint], extra, endpoint, addr, pod)
	}
	pmTarget := func(pod, addr string) string {
		return fmt.Sprintf(`podMonitor/app/pm-web/0 {container="app", endpoint="metrics", instance="%s", job="app/pm-web", namespace="app", pod="%s"}`, addr, pod)
	}
	want := []string{
		pmTarget("web-1", "127.0.0.11:8080"),
		pmTarget("web-2", "127.0.0.12:8080"),
		pmTarget("web-4", "127.0.0.14:8080"),
		`serviceMonitor/app/sm-node/0 {container="app", endpoint="metrics", instance="127.0.1.1:9100", job="node-exp", namespace="app", pod="node-exp-node-a", service="node-exp"}`,
		svcTarget("web-1", "127.0.0.11:8080", "http-metrics", ""),
		svcTarget("web-1", "127.0.0.11:9090", "9090", `application="web", `),
		svcTarget("web-2", "127.0.0.12:8080", "http-metrics", ""),
		svcTarget("web-4", "127.0.0.14:8080", "http-metrics", ""),
		svcTarget("web-4", "127.0.0.14:9090", "9090", `application="web", `),
	}
	slices.Sort(want)
	a.waitFor(t, "node A initial", strings.Join(want, "\n"))
	wantB := []string{
		pmTarget("web-3", "127.0.0.13:8080"),
		`serviceMonitor/app/sm-node/0 {container="app", endpoint="metrics", instance="127.0.1.2:9100", job="node-exp", namespace="app", pod="node-exp-node-b", service="node-exp"}`,
		svcTarget("web-3", "127.0.0.13:8080", "http-metrics", ""),
		svcTarget("web-3", "127.0.0.13:9090", "9090", `application="web", `),
	}
	slices.Sort(wantB)
	b.waitFor(t, "node B initial", strings.Join(wantB, "\n"))
	if !a.k.Synced() {
		t.Error("Synced() false after the first emit")
	}
	if n := a.k.dropped.Get(); n == 0 {
		t.Error("the relabeling to 169.254.169.254 was not counted as dropped")
	}
	// Dropped targets come with the set, with their pool, reason and
	// discovered labels.
	for _, d := range []struct {
		pool   string
		reason target.DropReason
		pod    string
		detail string
	}{
		{"serviceMonitor/app/sm-evil/0", target.DroppedNotOnNode, "web-1", "address 169.254.169.254 is not an address of this node"},
		{"serviceMonitor/app/sm-web/1", target.DroppedByRelabeling, "web-2", ""},
		{"podMonitor/app/pm-web/0", target.DroppedByRelabeling, "web-done", ""},
	} {
		found := false
		for _, tg := range a.targets() {
			if tg.Pool == d.pool && tg.Drop.Reason == d.reason && tg.Discovered.Get("__meta_kubernetes_pod_name") == d.pod && strings.HasPrefix(tg.Drop.Detail, d.detail) {
				found = true
			}
		}
		if !found {
			t.Errorf("no dropped target of %s (%s) for pod %s", d.pool, d.reason, d.pod)
		}
	}
	for _, tg := range a.targets() {
		if tg.Drop.Reason != "" && tg.Labels.Len() > 0 {
			t.Errorf("dropped target %s carries target labels %s", tg.Source, tg.Labels)
		}
		if tg.Drop.Reason == "" && tg.Pool != tg.Source {
			t.Errorf("target %s: pool %q", tg.Source, tg.Pool)
		}
	}

	// Discovered labels (what ddclient derives the Kubernetes tags from) and
	// scrape options of one target.
	found := false
	for _, tg := range a.targets() {
		if tg.Source == "serviceMonitor/app/sm-web/0" && tg.Labels.Get("pod") == "web-1" {
			found = true
			for name, want := range map[string]string{
				"__meta_kubernetes_namespace":                               "app",
				"__meta_kubernetes_service_name":                            "web",
				"__meta_kubernetes_pod_name":                                "web-1",
				"__meta_kubernetes_pod_container_name":                      "app",
				"__meta_kubernetes_pod_controller_kind":                     "ReplicaSet",
				"__meta_kubernetes_pod_controller_name":                     "web-5d8f9",
				"__meta_kubernetes_pod_label_pod_template_hash":             "5d8f9",
				"__meta_kubernetes_pod_label_tags_datadoghq_com_env":        "prod",
				"__meta_kubernetes_pod_labelpresent_tags_datadoghq_com_env": "true",
			} {
				if got := tg.Discovered.Get(name); got != want {
					t.Errorf("discovered %s = %q, want %q (all: %s)", name, got, want, tg.Discovered)
				}
			}
			if got := tg.Discovered.Get("__address__"); got != "127.0.0.11:8080" {
				t.Errorf("discovered __address__ = %q, want the address before relabeling", got)
			}
			if tg.URL != "http://127.0.0.11:8080/metrics" || tg.Interval != 30*time.Second || tg.Timeout != 10*time.Second {
				t.Errorf("scrape options: %s %v %v", tg.URL, tg.Interval, tg.Timeout)
			}
		}
	}
	if !found {
		t.Error("no target of serviceMonitor/app/sm-web/0 for pod web-1")
	}

	current := slices.Clone(want)
	set := func(lines ...string) string {
		s := slices.Clone(lines)
		slices.Sort(s)
		return strings.Join(s, "\n")
	}
	without := func(prefix string) []string {
		return slices.DeleteFunc(slices.Clone(current), func(s string) bool { return strings.HasPrefix(s, prefix) })
	}
	var latencies []time.Duration

	// A pod added on node A.
	_, err = cp.CreatePod(ctx, webPod("web-5", nodeA), controlplane.PodStatus{IP: ip("127.0.0.15")})
	must(t, err)
	current = append(current, pmTarget("web-5", "127.0.0.15:8080"),
		svcTarget("web-5", "127.0.0.15:8080", "http-metrics", ""),
		svcTarget("web-5", "127.0.0.15:9090", "9090", `application="web", `))
	latencies = append(latencies, a.waitFor(t, "pod added", set(current...)))

	// The pod relabeled out of the Service and the PodMonitor.
	_, err = cp.Kube.CoreV1().Pods("app").Patch(ctx, "web-5", types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"other"}}}`), metav1.PatchOptions{})
	must(t, err)
	current = slices.DeleteFunc(current, func(s string) bool { return strings.Contains(s, `"web-5"`) })
	latencies = append(latencies, a.waitFor(t, "pod relabeled", set(current...)))

	// The finalizer released: the terminating pod goes.
	_, err = cp.Kube.CoreV1().Pods("app").Patch(ctx, "web-4", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	must(t, err)
	// Without a kubelet, nobody ends the grace period: delete it now.
	must(t, cp.Kube.CoreV1().Pods("app").Delete(ctx, "web-4", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}))
	current = slices.DeleteFunc(current, func(s string) bool { return strings.Contains(s, `"web-4"`) })
	latencies = append(latencies, a.waitFor(t, "pod removed", set(current...)))

	// The Service selects nothing any more.
	_, err = cp.Kube.CoreV1().Services("app").Patch(ctx, "node-exp", types.MergePatchType, []byte(`{"spec":{"selector":{"app":"none"}}}`), metav1.PatchOptions{})
	must(t, err)
	current = without("serviceMonitor/app/sm-node/")
	latencies = append(latencies, a.waitFor(t, "service selector changed", set(current...)))

	// Monitor edited (drop the 9090 endpoint), then the PodMonitor deleted.
	sm, err := cp.Monitoring.MonitoringV1().ServiceMonitors("app").Get(ctx, "sm-web", metav1.GetOptions{})
	must(t, err)
	sm.Spec.Endpoints = sm.Spec.Endpoints[:1]
	_, err = cp.Monitoring.MonitoringV1().ServiceMonitors("app").Update(ctx, sm, metav1.UpdateOptions{})
	must(t, err)
	current = without("serviceMonitor/app/sm-web/1")
	latencies = append(latencies, a.waitFor(t, "monitor edited", set(current...)))
	must(t, cp.Monitoring.MonitoringV1().PodMonitors("app").Delete(ctx, "pm-web", metav1.DeleteOptions{}))
	current = without("podMonitor/")
	latencies = append(latencies, a.waitFor(t, "monitor deleted", set(current...)))

	// A change no target label depends on: rebuilt, not emitted again.
	a.mu.Lock()
	seq := a.seq
	a.mu.Unlock()
	rebuilds := a.k.rebuilds.Get()
	_, err = cp.Kube.CoreV1().Pods("app").Patch(ctx, "web-1", types.MergePatchType, []byte(`{"metadata":{"annotations":{"note":"x"}}}`), metav1.PatchOptions{})
	must(t, err)
	for begin := time.Now(); a.k.rebuilds.Get() == rebuilds; time.Sleep(20 * time.Millisecond) {
		if time.Since(begin) > 10*time.Second {
			t.Fatal("an annotation change was not rebuilt within 10s")
		}
	}
	// The rebuild is counted after its emit, if any, went to the channel;
	// give the agent's reader time to take it.
	time.Sleep(200 * time.Millisecond)
	a.mu.Lock()
	if a.seq != seq {
		t.Errorf("an annotation change emitted a new target set (%d emits, want %d)", a.seq, seq)
	}
	a.mu.Unlock()

	// A monitor whose secret is missing is rejected, the others keep
	// working; the secret appearing brings it in.
	smAuth := controlplane.ServiceMonitor("app", "sm-auth", map[string]string{"team": "a"}, monitoringv1.Endpoint{Port: "http-metrics"})
	smAuth.Spec.Endpoints[0].BasicAuth = &monitoringv1.BasicAuth{
		Username: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "user"},
		Password: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"},
	}
	must(t, cp.Create(ctx, smAuth))
	waitRejected(t, a.k, "secret app/creds not found")
	if a.targets() == nil {
		t.Fatal("no targets while one monitor is rejected")
	}
	must(t, cp.Create(ctx, controlplane.Secret("app", "creds", map[string]string{"user": "u", "password": "p1"})))
	current = append(current,
		`serviceMonitor/app/sm-auth/0 {container="app", endpoint="http-metrics", instance="127.0.0.11:8080", job="web", namespace="app", pod="web-1", service="web"}`,
		`serviceMonitor/app/sm-auth/0 {container="app", endpoint="http-metrics", instance="127.0.0.12:8080", job="web", namespace="app", pod="web-2", service="web"}`)
	latencies = append(latencies, a.waitFor(t, "secret created", set(current...)))
	if r := a.k.Rejected(); len(r) != 0 {
		t.Fatalf("still rejected: %+v", r)
	}
	// A rotated password reaches the targets' HTTP settings, so their loops
	// restart with it (the password is part of the target key).
	password := func() string {
		for _, tg := range a.targets() {
			if strings.HasPrefix(tg.Source, "serviceMonitor/app/sm-auth/") && tg.HTTP != nil && tg.HTTP.BasicAuth != nil {
				return string(tg.HTTP.BasicAuth.Password)
			}
		}
		return ""
	}
	if p := password(); p != "p1" {
		t.Fatalf("sm-auth targets carry password %q, want p1", p)
	}
	_, err = cp.Kube.CoreV1().Secrets("app").Patch(ctx, "creds", types.MergePatchType, []byte(`{"data":{"password":"cDI="}}`), metav1.PatchOptions{})
	must(t, err)
	rotated := time.Now()
	for password() != "p2" {
		if time.Since(rotated) > 10*time.Second {
			t.Fatalf("rotated password not in the targets after 10s (have %q)", password())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("secret rotation reached the targets in %v", time.Since(rotated).Round(time.Millisecond))
	// The key removed: rejected again.
	_, err = cp.Kube.CoreV1().Secrets("app").Patch(ctx, "creds", types.MergePatchType, []byte(`{"data":{"password":null}}`), metav1.PatchOptions{})
	must(t, err)
	waitRejected(t, a.k, `key "password" in secret app/creds not found`)
	current = without("serviceMonitor/app/sm-auth/")
	a.waitFor(t, "secret key removed", set(current...))

	// kube-apiserver restart: the watches resume.
	must(t, cp.RestartAPIServer(ctx))
	_, err = cp.CreatePod(ctx, webPod("web-6", nodeA), controlplane.PodStatus{IP: ip("127.0.0.16")})
	must(t, err)
	current = append(current, svcTarget("web-6", "127.0.0.16:8080", "http-metrics", ""))
	a.waitFor(t, "pod added after apiserver restart", set(current...))
	// The same discovery with only the rights a DaemonSet's ClusterRole
	// grants: no Secret list beyond the names monitors reference.
	read := []string{"get", "list", "watch"}
	must(t, cp.GrantClusterRole(ctx, "agent", "nodescraper", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "services", "nodes"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"monitoring.coreos.com"}, Resources: []string{"servicemonitors", "podmonitors"}, Verbs: read},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"creds"}, Verbs: read},
	}))
	saCfg, err := cp.ServiceAccountConfig(ctx, "agent", "nodescraper")
	must(t, err)
	c := startAgentWith(t, saCfg, nodeA)
	c.waitFor(t, "agent with least rights", set(current...))
	waitRejected(t, c.k, `key "password" in secret app/creds not found`)

	slices.Sort(latencies)
	t.Logf("change latencies: %v (max %v)", latencies, latencies[len(latencies)-1])

	// API cost: 500 pods on node B; node A's agent must receive none.
	beforeA, beforeB := a.bytes.n.Load(), b.bytes.n.Load()
	perKindBefore, _ := a.k.Delivered()
	createPods(t, cp, nodeB, 500)
	b.waitForCount(t, 500)
	time.Sleep(time.Second) // let any stray event reach node A's agent
	perKind, foreign := a.k.Delivered()
	if foreign != 0 {
		t.Errorf("node A's agent received %d pods of other nodes", foreign)
	}
	if d := perKind["Pod"] - perKindBefore["Pod"]; d != 0 {
		t.Errorf("node A's agent received %d pod objects while pods were created on node B", d)
	}
	t.Logf("node A agent: objects delivered %v, foreign pods %d, API bytes total %d, during the 500 pods on node B %d",
		perKind, foreign, a.bytes.n.Load(), a.bytes.n.Load()-beforeA)
	// A node A agent starting now, beside a cluster-wide pod list for scale.
	d := startAgent(t, cp, nodeA)
	d.waitFor(t, "node A agent started after the 500 pods", set(current...))
	all := &byteCounter{}
	rc := rest.CopyConfig(cp.Admin)
	rc.Wrap(all.wrap)
	list, err := kubernetes.NewForConfigOrDie(rc).CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	must(t, err)
	t.Logf("node A agent start: %d API bytes; one cluster-wide pod list (%d pods): %d bytes", d.bytes.n.Load(), len(list.Items), all.n.Load())
	pb, _ := b.k.Delivered()
	t.Logf("node B agent (the 500 pods' node): objects delivered %v, API bytes during the 500 pods %d", pb, b.bytes.n.Load()-beforeB)

	// Built-in kinds come as protobuf (as kubelet and kube-controller-manager
	// read them: a third of JSON's bytes and decode time); the monitors,
	// custom resources, can only come as JSON.
	got := d.bytes.mediaTypes()
	wantTypes := map[string][]string{
		"core":                  {"application/vnd.kubernetes.protobuf"},
		"discovery.k8s.io":      {"application/vnd.kubernetes.protobuf"},
		"monitoring.coreos.com": {"application/json"},
	}
	if !reflect.DeepEqual(got, wantTypes) {
		t.Errorf("response media types by API group: %v, want %v", got, wantTypes)
	}
}

// waitForCount waits until the agent has at least n pods (by pod_name tag
// absence we count the PodMonitor-less pods via Delivered).
func (a *agent) waitForCount(t *testing.T, n int64) {
	t.Helper()
	begin := time.Now()
	for time.Since(begin) < 60*time.Second {
		if pk, _ := a.k.Delivered(); pk["Pod"] >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("agent did not see %d pods", n)
}

func createPods(t *testing.T, cp *controlplane.ControlPlane, node string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				p := controlplane.Pod("bulk", fmt.Sprintf("bulk-%d", i), node, map[string]string{"app": "bulk"}, port("metrics", 8080))
				if _, err := cp.Kube.CoreV1().Pods("bulk").Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		})
	}
	must(t, cp.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulk"}}))
	begin := time.Now()
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d pods on %s in %v", n, node, time.Since(begin).Round(time.Millisecond))
}

func waitRejected(t *testing.T, k *Kube, reason string) {
	t.Helper()
	begin := time.Now()
	for time.Since(begin) < 20*time.Second {
		for _, r := range k.Rejected() {
			if strings.Contains(r.Reason, reason) {
				t.Logf("rejected after %v: %s", time.Since(begin).Round(time.Millisecond), r.Reason)
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no rejection with %q; rejected: %+v", reason, k.Rejected())
}

func ptr[T any](v T) *T { return &v }
