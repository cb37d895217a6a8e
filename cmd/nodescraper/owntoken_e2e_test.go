package main

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/relabel"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestKubeOwnToken runs the agent in Kubernetes mode with
// --trusted-namespaces=monitoring and --service-account-dir: a
// kube-prometheus style monitor in monitoring (bearerTokenFile at the
// standard path) scrapes a pod of the node with the token of that
// directory, the token rotated there is the one sent next, and the same
// monitor in another namespace is rejected with a reason naming the flag.
func TestKubeOwnToken(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	const node, podIP = "node-o", "127.0.0.111"
	if _, err := cp.CreateNode(ctx, node, netip.MustParseAddr("127.0.1.111"), nil); err != nil {
		t.Fatal(err)
	}
	// The pod answers only a bearer token and records the ones it saw.
	var mu sync.Mutex
	var seen []string
	ln, err := net.Listen("tcp", podIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		mu.Lock()
		if !slices.Contains(seen, auth) {
			seen = append(seen, auth)
		}
		mu.Unlock()
		if !strings.HasPrefix(auth, "Bearer tok-") {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("up_total 1\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	pod := controlplane.Pod("monitoring", "kubelet-0", node, map[string]string{"app": "kubelet"},
		corev1.ContainerPort{Name: "https-metrics", ContainerPort: int32(ln.Addr().(*net.TCPAddr).Port), Protocol: corev1.ProtocolTCP})
	if _, err := cp.CreatePod(ctx, pod, controlplane.PodStatus{IP: netip.MustParseAddr(podIP)}); err != nil {
		t.Fatal(err)
	}
	svc := controlplane.Service("monitoring", "kubelet", map[string]string{"app": "kubelet"}, controlplane.ServicePort("https-metrics", 10250, "https-metrics"))
	svc.Labels = map[string]string{"app": "kubelet"}
	ep := monitoringv1.Endpoint{Port: "https-metrics", Interval: "1s"}
	//lint:ignore SA1019 deprecated, but kube-prometheus' monitors use it
	ep.BearerTokenFile = relabel.ServiceAccountTokenPath
	elsewhere := controlplane.ServiceMonitor("apps", "kubelet", map[string]string{"app": "kubelet"}, ep)
	elsewhere.Spec.NamespaceSelector = monitoringv1.NamespaceSelector{MatchNames: []string{"monitoring"}}
	if err := cp.Create(ctx, svc, controlplane.ServiceMonitor("monitoring", "kubelet", map[string]string{"app": "kubelet"}, ep), elsewhere); err != nil {
		t.Fatal(err)
	}

	saDir := t.TempDir()
	rotate := func(tok string) {
		t.Helper()
		tmp := filepath.Join(saDir, ".token")
		if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(saDir, "token")); err != nil {
			t.Fatal(err)
		}
	}
	rotate("tok-1")
	addr, stop := runInProcess(t, nil,
		"--kubeconfig", cp.Kubeconfig, "--node-name", node, "--listen", "127.0.0.1:0", "--dry-run",
		"--trusted-namespaces", "monitoring", "--service-account-dir", saDir)
	defer stop()

	waitSeen := func(auth string) {
		t.Helper()
		for begin := time.Now(); time.Since(begin) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
			mu.Lock()
			ok := slices.Contains(seen, auth)
			mu.Unlock()
			if ok {
				return
			}
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the pod never saw %q; it saw %q", auth, seen)
	}
	waitSeen("Bearer tok-1")
	rotate("tok-2")
	waitSeen("Bearer tok-2")
	mu.Lock()
	if len(seen) != 2 {
		t.Errorf("the pod saw Authorization %q, want only the two tokens", seen)
	}
	mu.Unlock()

	_, rejected := agentTargets(t, &agentProc{addr: addr})
	if len(rejected) != 1 || rejected[0].Object != "ServiceMonitor apps/kubelet" || !strings.Contains(rejected[0].Reason, "--trusted-namespaces") {
		t.Errorf("rejected %+v, want ServiceMonitor apps/kubelet with a reason naming --trusted-namespaces", rejected)
	}
}
