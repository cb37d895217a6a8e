package main

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// handlerPod serves h at ip (a loopback address) and creates the pod ns/name
// on node with that pod IP, labeled app, its port "metrics" the server's.
func handlerPod(t *testing.T, cp *controlplane.ControlPlane, h http.Handler, ns, name, app, node string, ip netip.Addr) {
	t.Helper()
	ln, err := net.Listen("tcp", ip.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	pod := controlplane.Pod(ns, name, node, map[string]string{"app": app},
		corev1.ContainerPort{Name: "metrics", ContainerPort: int32(ln.Addr().(*net.TCPAddr).Port), Protocol: corev1.ProtocolTCP})
	if _, err := cp.CreatePod(t.Context(), pod, controlplane.PodStatus{IP: ip}); err != nil {
		t.Fatal(err)
	}
}

// TestMonitorCannotLeaveNode (issue 26), with the real binary's code on the
// real API server: a pod whose target redirects to another host, one that
// redirects to the cloud metadata address, one to the node's localhost by
// name (loopback stand-ins), a monitor
// naming a proxy and one naming a token endpoint the operator did not list,
// and a pod whose body carries a credential in a malformed line. The other
// hosts are never reached, the two monitors are rejected with the flag to
// allow them, what leaves for Datadog quotes nothing of the body, and the
// well-behaved pod beside them is scraped as before.
func TestMonitorCannotLeaveNode(t *testing.T) {
	const key = "e2e-key-0123456789abcdef0123456789"
	const secret = "SecretAccessKey=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY/0123456789abcdefghijklmnopqrstuvwxyz"
	in := startIntake(t, key)
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	if _, err := cp.CreateNode(ctx, "node-a", netip.MustParseAddr("127.0.4.1"), nil); err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32 // requests at the hosts outside the node
	outside := func(ip string) string {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			reached.Add(1)
			_, _ = w.Write([]byte("outside_secret_total 5\n"))
		}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return "http://" + ln.Addr().String()
	}
	// The node's own localhost (with hostNetwork, the agent's too), reached
	// by name, and the cloud metadata address: loopback stand-ins.
	otherHost, metadata, local := outside("127.0.4.99"), outside("127.0.4.254"), outside("127.0.0.1")
	local = strings.Replace(local, "127.0.0.1", "localhost", 1)
	redirect := func(to string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to+"/metrics", http.StatusFound) })
	}
	handlerPod(t, cp, redirect(otherHost), "shop", "hop", "hop", "node-a", netip.MustParseAddr("127.0.4.11"))
	handlerPod(t, cp, redirect(metadata), "shop", "meta", "meta", "node-a", netip.MustParseAddr("127.0.4.12"))
	handlerPod(t, cp, redirect(local), "shop", "local", "local", "node-a", netip.MustParseAddr("127.0.4.15"))
	handlerPod(t, cp, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok 1\n" + secret + " {{{\n"))
	}), "shop", "leak", "leak", "node-a", netip.MustParseAddr("127.0.4.13"))
	good := exporter.New()
	good.Family("orders_total", exporter.Counter, "").Set("", 7)
	exporterPod(t, cp, good, "shop", "good", "good", "node-a", netip.MustParseAddr("127.0.4.14"))
	for _, app := range []string{"hop", "meta", "local", "leak", "good", "proxied", "oauth"} {
		ep := monitoringv1.Endpoint{Port: "metrics", Interval: "1s"} // redirects followed, the default
		switch app {
		case "proxied":
			ep.ProxyURL = ptrTo("http://127.0.4.98:3128")
		case "oauth":
			ep.OAuth2 = &monitoringv1.OAuth2{TokenURL: "http://127.0.4.97/token",
				ClientID:     monitoringv1.SecretOrConfigMap{Secret: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "oauth"}, Key: "id"}},
				ClientSecret: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "oauth"}, Key: "secret"}}
		}
		sel := map[string]string{"app": app}
		if app == "proxied" || app == "oauth" {
			sel = map[string]string{"app": "good"} // the good pod, through them
		}
		svc := controlplane.Service("shop", app, sel, controlplane.ServicePort("metrics", 80, "metrics"))
		svc.Labels = map[string]string{"svc": app}
		if err := cp.Create(ctx, svc, controlplane.ServiceMonitor("shop", app, map[string]string{"svc": app}, ep)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cp.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "oauth"}, Data: map[string][]byte{"id": []byte("i"), "secret": []byte("s")}}); err != nil {
		t.Fatal(err)
	}
	addr, stop := runInProcess(t, map[string]string{"DD_API_KEY": key},
		"--kubeconfig", cp.Kubeconfig, "--node-name", "node-a",
		"--dd-url", in.URL, "--allow-insecure-datadog-url", "--listen", "127.0.0.1:0", "--state-dir", t.TempDir(), "--flush-interval", "300ms")
	defer stop()

	var api, page string
	for begin := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		api, page = httpGet(t, "http://"+addr+"/api/v1/targets?state=active"), httpGet(t, "http://"+addr+"/targets")
		_, ok := in.Last("orders.count")
		if ok && strings.Count(api, "refused: not an address of this node") == 3 && strings.Contains(api, "invalid value near") &&
			strings.Contains(page, "--allowed-proxy-urls") && strings.Contains(page, "--allowed-token-urls") &&
			len(in.ServiceChecks("openmetrics.health", "kube_service:leak")) > 0 {
			break
		}
		if time.Since(begin) > 30*time.Second {
			t.Fatalf("want the good pod at the intake, three redirects refused, the malformed body failed and the proxy and token monitors rejected:\n%s\n%s", api, page)
		}
	}
	stop()
	if n := reached.Load(); n != 0 {
		t.Errorf("hosts outside the node got %d requests", n)
	}
	for _, m := range in.Metrics() {
		if strings.Contains(m, "outside_secret") {
			t.Errorf("%s reached the intake", m)
		}
	}
	for _, s := range []string{api, page} {
		if strings.Contains(s, secret) || strings.Contains(s, "0123456789abcdef") {
			t.Errorf("the targets page or API quotes the body at length:\n%s", s)
		}
	}
	for _, c := range in.ServiceChecks("openmetrics.health") {
		if strings.Contains(c.Message, "wJalr") || strings.Contains(c.Message, "Secret") || strings.Contains(c.Message, "127.0.4.99") {
			t.Errorf("a service check carries the target's text to Datadog: %q", c.Message)
		}
	}
}
