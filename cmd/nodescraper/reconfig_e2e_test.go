package main

import (
	"maps"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// bearerGate answers 401 unless a request carries one of the accepted
// bearer tokens, and counts the requests per token, so the test knows
// which credential the agent scrapes with.
type bearerGate struct {
	next http.Handler

	mu       sync.Mutex
	accepted map[string]bool
	used     map[string]int // authorized requests by token
	refused  int
}

func (g *bearerGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g.mu.Lock()
	if !ok || !g.accepted[tok] {
		g.refused++
		g.mu.Unlock()
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	g.used[tok]++
	g.mu.Unlock()
	g.next.ServeHTTP(w, r)
}

func (g *bearerGate) accept(tokens ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.accepted)
	for _, t := range tokens {
		g.accepted[t] = true
	}
}

func (g *bearerGate) counts() (used map[string]int, refused int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.used), g.refused
}

// TestKubeSecretRotationAndTagChangeExact runs the real binary in Kubernetes
// mode against a real control plane (etcd, kube-apiserver,
// kube-controller-manager). A ServiceMonitor scrapes a pod whose exporter
// checks a bearer token read from a Secret. While the agent runs and the
// counters grow, the Secret is rotated (the exporter accepts both tokens
// until the agent uses the new one, then only the new one), then the pod's
// tags.datadoghq.com/version label changes. Each change restarts the
// target's loop under a new configuration, but its identity (URL and target
// labels) stays: what the intake received, summed over the old and new
// version tags, must equal each series' true increase since the agent's
// first scrape exactly, with no point twice, and once the new tag is in use
// no point carries the old one.
func TestKubeSecretRotationAndTagChangeExact(t *testing.T) {
	begin := time.Now()
	const key = "reconf-key-0123456789abcdef01234567"
	const ns, node = "reconf", "node-r"
	in := startIntake(t, key)
	cp := controlplane.ForTest(t, controlplane.Config{ControllerManager: true})
	ctx := t.Context()

	// The exporter poses as the pod at a loopback "pod IP".
	podIP := netip.MustParseAddr("127.0.0.91")
	if _, err := cp.CreateNode(ctx, node, netip.MustParseAddr("127.0.1.91"), nil); err != nil {
		t.Fatal(err)
	}
	e := exporter.New()
	orders := e.Family("orders_total", exporter.Counter, "Orders.")
	lat := e.Family("latency_seconds", exporter.Histogram, "Latency.", 0.5)
	orders.Set(`kind="a"`, 1000)
	orders.Set(`kind="b"`, 50)
	lat.Observe("", 0.25)
	gate := &bearerGate{next: e, accepted: map[string]bool{"s1": true}, used: map[string]int{}}
	ln, err := net.Listen("tcp", podIP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gate, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	podLabels := map[string]string{"app": "api", "tags.datadoghq.com/version": "v1"}
	pod := controlplane.Pod(ns, "api-0", node, podLabels,
		corev1.ContainerPort{Name: "metrics", ContainerPort: int32(port), Protocol: corev1.ProtocolTCP})
	if _, err := cp.CreatePod(ctx, pod, controlplane.PodStatus{IP: podIP}); err != nil {
		t.Fatal(err)
	}
	svc := controlplane.Service(ns, "api", map[string]string{"app": "api"}, controlplane.ServicePort("metrics", 80, "metrics"))
	svc.Labels = map[string]string{"app": "api"}
	ep := monitoringv1.Endpoint{Port: "metrics", Interval: "1s"}
	ep.Authorization = &monitoringv1.SafeAuthorization{Credentials: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "scrape-token"}, Key: "token"}}
	sm := controlplane.ServiceMonitor(ns, "api", map[string]string{"app": "api"}, ep)
	if err := cp.Create(ctx, controlplane.Secret(ns, "scrape-token", map[string]string{"token": "s1"}), svc, sm); err != nil {
		t.Fatal(err)
	}

	// want is the true increase by "metric|tag" since the agent's first
	// scrape (the baseline: nothing grows before it).
	want := map[string]float64{}
	step := func(i int) {
		orders.Add(`kind="a"`, float64(7*i))
		want["orders.count|kind:a"] += float64(7 * i)
		if i%3 != 0 {
			orders.Add(`kind="b"`, 1)
			want["orders.count|kind:b"]++
		}
		v := 0.25
		if i%2 == 0 {
			v = 0.75
		}
		lat.Observe("", v)
		want["latency_seconds.count|"]++
		want["latency_seconds.sum|"] += v
		if v <= 0.5 {
			want["latency_seconds.bucket|upper_bound:0.5"]++
		}
	}
	i := 0
	// grow grows the counters, then waits for a scrape that sees it.
	grow := func() {
		t.Helper()
		i++
		step(i)
		waitScrapes(t, e, e.Scrapes()+1)
	}
	// growUntil grows the counters, one step per scrape, until cond holds.
	growUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20s", what)
			}
			grow()
		}
	}

	agent := startAgent(t, "agent", []string{"DD_API_KEY=" + key},
		"--kubeconfig", cp.Kubeconfig, "--node-name", node, "--dd-url", in.URL, "--allow-insecure-datadog-url",
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--flush-interval", "200ms")

	common := []string{"job:api", "endpoint:metrics", "kube_service:api",
		"instance:" + ln.Addr().String(), "kube_namespace:" + ns, "host:" + node}
	waitScrapes(t, e, 1) // the baseline
	for range 3 {
		grow()
	}

	// Rotate the Secret. The exporter takes both tokens until the agent has
	// scraped with the new one; from then on a scrape with the old one would
	// mean a loop of the old configuration still runs.
	gate.accept("s1", "s2")
	sec, err := cp.Kube.CoreV1().Secrets(ns).Get(ctx, "scrape-token", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"token": []byte("s2")}
	if _, err := cp.Kube.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()
	growUntil("agent scrapes with the rotated token", func() bool { u, _ := gate.counts(); return u["s2"] > 0 })
	t.Logf("rotated token in use after %v", time.Since(rotated).Round(time.Millisecond))
	gate.accept("s2")
	for range 3 {
		grow()
	}

	// Change the pod label that becomes the Datadog tag version.
	patch := []byte(`{"metadata":{"labels":{"tags.datadoghq.com/version":"v2"}}}`)
	if _, err := cp.Kube.CoreV1().Pods(ns).Patch(ctx, "api-0", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	relabeled := time.Now()
	growUntil("a point tagged version:v2 at the intake", func() bool {
		_, ok := in.Last("orders.count", append(slices.Clone(common), "kind:a", "version:v2")...)
		return ok
	})
	t.Logf("new version tag at the intake after %v", time.Since(relabeled).Round(time.Millisecond))
	for range 3 {
		grow()
	}

	// Stop growing; the scrape after the last step sees the final values.
	// Stop the agent once all of it is in (checkCounts reports a shortfall).
	waitScrapes(t, e, e.Scrapes()+1)
	waitCounts(in, want, common)
	agent.stop(20 * time.Second)

	// Sum over both version tags: the series identity did not change.
	checkCounts(t, in, want, common, nil)
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		metric, tags := seriesTags(k, common)
		var sum [2]float64
		var n [2]int
		var lastV1, firstV2 int64 = 0, 1 << 62
		var last fakeintake.Point
		for j, p := range in.Points(metric, tags...) {
			v1, v2 := slices.Contains(p.Tags, "version:v1"), slices.Contains(p.Tags, "version:v2")
			switch {
			case v1 && !v2:
				sum[0] += p.Value
				n[0]++
				lastV1 = max(lastV1, p.Timestamp)
			case v2 && !v1:
				sum[1] += p.Value
				n[1]++
				firstV2 = min(firstV2, p.Timestamp)
			default:
				t.Errorf("%s: a point without exactly one version tag: %v", k, p.Tags)
			}
			if j == 0 || p.Timestamp >= last.Timestamp {
				last = p
			}
		}
		t.Logf("%-40s true increase %6g  received %6g (version:v1 %g in %d points, version:v2 %g in %d points)",
			k, want[k], sum[0]+sum[1], sum[0], n[0], sum[1], n[1])
		if n[0] == 0 || n[1] == 0 {
			t.Errorf("%s: %d points tagged version:v1, %d version:v2; want both", k, n[0], n[1])
		}
		// Loops of one target never overlap: the old tag ends where the
		// new one begins.
		if n[1] > 0 && lastV1 > firstV2 {
			t.Errorf("%s: a version:v1 point at %d, after the first version:v2 point at %d", k, lastV1, firstV2)
		}
		if !slices.Contains(last.Tags, "version:v2") {
			t.Errorf("%s: the last point carries %v, not version:v2", k, last.Tags)
		}
	}
	st := in.Stats()
	used, refused := gate.counts()
	t.Logf("scrapes: %d with token s1, %d with s2, %d refused; intake: %d points, %d duplicate, %d refused requests; took %v",
		used["s1"], used["s2"], refused, st.Points, st.DuplicatePoints, st.RejectedTotal(), time.Since(begin).Round(time.Millisecond))
	if st.DuplicatePoints != 0 || st.RejectedTotal() != 0 {
		t.Errorf("intake: %d duplicate points, %d refused requests (%v)", st.DuplicatePoints, st.RejectedTotal(), st.LastRejects)
	}
	if refused != 0 {
		t.Errorf("the exporter refused %d scrapes: a loop used a token it no longer accepted", refused)
	}
	if used["s1"] == 0 || used["s2"] == 0 {
		t.Errorf("scrapes by token: %v; want both tokens used", used)
	}
}
