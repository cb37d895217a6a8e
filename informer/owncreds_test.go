package informer

import (
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ownTokenEndpoint is how kube-prometheus' monitors authenticate: the
// scraper's own service-account token and CA, at their standard paths.
func ownTokenEndpoint(port string, relabelings ...monitoringv1.RelabelConfig) monitoringv1.Endpoint {
	ep := monitoringv1.Endpoint{Port: port, Scheme: ptr(monitoringv1.SchemeHTTPS), RelabelConfigs: relabelings}
	//lint:ignore SA1019 deprecated, but kube-prometheus' monitors use it
	ep.BearerTokenFile = relabel.ServiceAccountTokenPath
	ep.TLSConfig = &monitoringv1.TLSConfig{
		SafeTLSConfig:  monitoringv1.SafeTLSConfig{ServerName: ptr("kubernetes")},
		TLSFilesConfig: monitoringv1.TLSFilesConfig{CAFile: relabel.ServiceAccountCAPath},
	}
	return ep
}

// toAddress is a relabeling that aims a target at addr.
func toAddress(addr string) monitoringv1.RelabelConfig {
	return monitoringv1.RelabelConfig{TargetLabel: "__address__", Replacement: ptr(addr)}
}

// TestOwnCredentials: on the real API server, an agent that trusts the
// namespace monitoring (and allows other addresses) scrapes the trusted
// monitors' targets with its token from its configured directory, at a pod
// of its node, at the API server's endpoint and at the host it reaches the
// API server at; a trusted monitor's relabeling that aims the token at
// another host is dropped with the reason; a monitor elsewhere that names
// the token is rejected with a reason naming the flag.
func TestOwnCredentials(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	_, err := cp.CreateNode(ctx, "node-a", netip.MustParseAddr("10.9.8.1"), nil)
	must(t, err)
	ksm := controlplane.Pod("monitoring", "ksm-0", "node-a", map[string]string{"app": "ksm"}, port("https-main", 8443))
	_, err = cp.CreatePod(ctx, ksm, controlplane.PodStatus{IP: netip.MustParseAddr("127.0.0.21")})
	must(t, err)
	ksmSvc := controlplane.Service("monitoring", "ksm", map[string]string{"app": "ksm"}, controlplane.ServicePort("https-main", 8443, "https-main"))
	ksmSvc.Labels = map[string]string{"app": "ksm"}
	must(t, cp.Create(ctx, ksmSvc))
	ensureAPIServerEndpoints(t, cp, "10.9.8.100")

	restURL, err := url.Parse(cp.Admin.Host)
	must(t, err)
	apiserver := controlplane.ServiceMonitor("monitoring", "apiserver", map[string]string{"component": "apiserver", "provider": "kubernetes"}, ownTokenEndpoint("https"))
	apiserver.Spec.NamespaceSelector = monitoringv1.NamespaceSelector{MatchNames: []string{"default"}}
	untrusted := controlplane.ServiceMonitor("apps", "ksm", map[string]string{"app": "ksm"}, ownTokenEndpoint("https-main"))
	untrusted.Spec.NamespaceSelector = monitoringv1.NamespaceSelector{MatchNames: []string{"monitoring"}}
	must(t, cp.Create(ctx,
		controlplane.ServiceMonitor("monitoring", "ksm", map[string]string{"app": "ksm"}, ownTokenEndpoint("https-main")),
		controlplane.ServiceMonitor("monitoring", "ksm-away", map[string]string{"app": "ksm"}, ownTokenEndpoint("https-main", toAddress("169.254.169.254:80"))),
		controlplane.ServiceMonitor("monitoring", "ksm-to-api", map[string]string{"app": "ksm"}, ownTokenEndpoint("https-main", toAddress(restURL.Host))),
		apiserver, untrusted))

	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "token"), []byte("agent-token"), 0o600))
	// The API server's endpoint names no node and is no node's address:
	// the agent scrapes it as the holder of the cluster Lease.
	a := startAgentConfig(t, KubeConfig{Rest: cp.Admin, NodeName: "node-a", AllowOtherAddresses: true, Lease: &testLease, Settings: relabel.Settings{
		ServiceDiscoveryRole: monitoringv1.EndpointSliceRole, TrustedNamespaces: []string{"monitoring"}, ServiceAccountDir: dir,
	}})
	kept := []string{"https://10.9.8.100:6443/metrics", "https://127.0.0.21:8443/metrics", "https://" + restURL.Host + "/metrics"}
	ts := a.waitURLs(t, kept, []string{"https://169.254.169.254:80/metrics"})
	for _, tg := range ts {
		switch {
		case tg.Drop.Reason == "":
			if a := tg.HTTP.Authorization; !tg.OwnCredentials || a == nil || a.CredentialsFile != filepath.Join(dir, "token") || tg.HTTP.TLS.CAFile != filepath.Join(dir, "ca.crt") {
				t.Errorf("%s: own credentials %v, authorization %+v, CA file %q; want the token and CA of %s", tg.URL, tg.OwnCredentials, a, tg.HTTP.TLS.CAFile, dir)
			}
		case tg.Drop.Reason != target.DroppedRefused || !strings.Contains(tg.Drop.Detail, "own service-account token") || !strings.Contains(tg.Drop.Detail, "169.254.169.254 is none of them"):
			t.Errorf("%s (%s) dropped as %q: %s; want %q naming the token and the host", tg.URL, tg.Source, tg.Drop.Reason, tg.Drop.Detail, target.DroppedRefused)
		}
	}
	waitRejected(t, a.k, "--trusted-namespaces")
	for _, r := range a.k.Rejected() {
		if r.Namespace != "apps" || !strings.Contains(r.Reason, `namespace "apps" is not one`) || !strings.Contains(r.Reason, "monitors.trustedNamespaces") {
			t.Errorf("rejected %s/%s: %s; want only apps/ksm, naming the flag and the chart value", r.Namespace, r.Name, r.Reason)
		}
	}
}

// ensureAPIServerEndpoints writes default/kubernetes' slice as the API
// server does (no node name, no managed-by label): the test control plane
// runs without its endpoint reconciler.
func ensureAPIServerEndpoints(t *testing.T, cp *controlplane.ControlPlane, addr string) {
	t.Helper()
	ctx := t.Context()
	if _, err := cp.Kube.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		svc := controlplane.Service("default", "kubernetes", nil, corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP})
		svc.Labels = map[string]string{"component": "apiserver", "provider": "kubernetes"}
		must(t, cp.Create(ctx, svc))
	} else {
		must(t, err)
	}
	must(t, cp.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr[int32](6443), Protocol: ptr(corev1.ProtocolTCP)}},
	}))
}

// waitURLs waits until a's targets are kept and its dropped ones at
// dropped, by URL, and returns them.
func (a *agent) waitURLs(t *testing.T, kept, dropped []string) []target.Target {
	t.Helper()
	slices.Sort(kept)
	slices.Sort(dropped)
	var gotKept, gotDropped []string
	for begin := time.Now(); time.Since(begin) < 20*time.Second; time.Sleep(20 * time.Millisecond) {
		ts := a.targets()
		gotKept, gotDropped = gotKept[:0], gotDropped[:0]
		for _, tg := range ts {
			if tg.Drop.Reason == "" {
				gotKept = append(gotKept, tg.URL)
			} else {
				gotDropped = append(gotDropped, tg.URL)
			}
		}
		slices.Sort(gotKept)
		slices.Sort(gotDropped)
		if slices.Equal(gotKept, kept) && slices.Equal(gotDropped, dropped) {
			return ts
		}
	}
	t.Fatalf("%s: kept %v, dropped %v; want %v, %v", a.k.cfg.NodeName, gotKept, gotDropped, kept, dropped)
	return nil
}
