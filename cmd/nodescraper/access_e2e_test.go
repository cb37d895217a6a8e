package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// TestEndpointKubernetesAccess runs the agent with --endpoint-access
// kubernetes against a real kube-apiserver, itself with only what the chart
// grants in that mode (create tokenreviews and subjectaccessreviews): the
// private paths need a token the API server authenticates and authorizes
// for the path (/api/v1/targets as /targets: the default roles grant every
// authenticated user /api/*); health and readiness stay open for the
// kubelet's probes.
func TestEndpointKubernetesAccess(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	if err := cp.GrantClusterRole(ctx, "monitoring", "agent", []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := cp.GrantClusterRole(ctx, "team-a", "reader", []rbacv1.PolicyRule{
		{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := cp.GrantClusterRole(ctx, "team-c", "targets", []rbacv1.PolicyRule{
		{NonResourceURLs: []string{"/targets"}, Verbs: []string{"get"}},
	}); err != nil {
		t.Fatal(err)
	}
	token := func(ns, name string) string {
		cfg, err := cp.ServiceAccountConfig(ctx, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.BearerToken
	}
	agentCfg, err := cp.ServiceAccountConfig(ctx, "monitoring", "agent")
	if err != nil {
		t.Fatal(err)
	}
	reader, other, targets := token("team-a", "reader"), token("team-b", "other"), token("team-c", "targets")

	addr, stop := runInProcess(t, nil, "--static-targets", emptyTargets(t), "--node-name", "node-a", "--dry-run",
		"--kubeconfig", writeKubeconfig(t, agentCfg), "--listen", "127.0.0.1:0", "--endpoint-access", "kubernetes")
	defer stop()
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/targets", "", http.StatusUnauthorized},
		{"/api/v1/targets", "", http.StatusUnauthorized},
		{"/metrics", "not-a-token", http.StatusUnauthorized},
		{"/metrics", other, http.StatusForbidden},
		{"/api/v1/targets", other, http.StatusForbidden},
		{"/metrics", reader, http.StatusOK},
		{"/metrics", reader, http.StatusOK}, // from the cache
		{"/targets", reader, http.StatusForbidden},
		{"/api/v1/targets", reader, http.StatusForbidden},
		{"/targets", targets, http.StatusOK},
		{"/api/v1/targets", targets, http.StatusOK},
		{"/metrics", targets, http.StatusForbidden},
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusOK},
	} {
		got, body := getWithToken(t, "http://"+addr+c.path, c.token)
		if got != c.want {
			t.Errorf("GET %s (token of %s): %d, want %d: %s", c.path, who(c.token, reader, other, targets), got, c.want, body)
		}
		if c.want == http.StatusOK && c.path == "/metrics" && !strings.Contains(body, "nodescraper_") {
			t.Errorf("GET /metrics with the reader's token: no agent metrics:\n%s", body)
		}
	}
}

// TestEndpointLocalhostOnly: by default (--endpoint-access localhost) a
// connection to the agent's pod address (a loopback stand-in other than
// 127.0.0.1), as another pod's or host's would be, gets health and
// readiness and nothing else, while
// 127.0.0.1 serves the targets, their API and the metrics: with --listen on
// that address (a second listener on loopback, as with hostNetwork) and on
// the wildcard address (as in the pod's own network). With open, the pod
// address serves them too.
func TestEndpointLocalhostOnly(t *testing.T) {
	// The pod's address, as another pod reaches it: a loopback stand-in that
	// is not localhost (the agent serves private paths on 127.0.0.1 only).
	const ip = "127.0.5.2"
	port := func(addr string) string {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, listen := range []string{net.JoinHostPort(ip, "0"), "0.0.0.0:" + port(freeAddr(t))} {
		addr, stop := runInProcess(t, nil, "--static-targets", emptyTargets(t), "--node-name", "node-a", "--dry-run", "--listen", listen)
		pod, local := net.JoinHostPort(ip, port(addr)), "127.0.0.1:"+port(addr)
		for _, path := range []string{"/targets", "/api/v1/targets", "/metrics"} {
			if got, body := getWithToken(t, "http://"+pod+path, ""); got != http.StatusNotFound {
				t.Errorf("--listen %s: GET %s on the pod address %s: %d, want 404:\n%.300s", listen, path, pod, got, body)
			}
			if got, body := getWithToken(t, "http://"+local+path, ""); got != http.StatusOK {
				t.Errorf("--listen %s: GET %s on %s: %d, want 200:\n%.300s", listen, path, local, got, body)
			}
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if got, _ := getWithToken(t, "http://"+pod+path, ""); got != http.StatusOK {
				t.Errorf("--listen %s: GET %s on the pod address %s: %d, want 200", listen, path, pod, got)
			}
		}
		stop()
	}
	// --endpoint-access open: as before, to anyone.
	addr, stop := runInProcess(t, nil, "--static-targets", emptyTargets(t), "--node-name", "node-a", "--dry-run",
		"--listen", net.JoinHostPort(ip, "0"), "--endpoint-access", "open")
	defer stop()
	if got, body := getWithToken(t, "http://"+addr+"/targets", ""); got != http.StatusOK {
		t.Errorf("--endpoint-access open: GET /targets on %s: %d, want 200:\n%.300s", addr, got, body)
	}
}

func emptyTargets(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(p, []byte("[]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// getWithToken GETs url with the bearer token, if any.
func getWithToken(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func who(token, reader, other, targets string) string {
	switch token {
	case "":
		return "nobody"
	case reader:
		return "team-a/reader"
	case other:
		return "team-b/other"
	case targets:
		return "team-c/targets"
	}
	return "an invalid token"
}

// writeKubeconfig writes cfg (a server, its CA and a bearer token) as a
// kubeconfig file for the agent's --kubeconfig.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: cfg.CAFile, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	p := filepath.Join(t.TempDir(), "agent.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, p); err != nil {
		t.Fatal(err)
	}
	return p
}
