package relabel

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// testStore holds the Secrets and ConfigMaps of namespace ns1 for these
// tests, with real PEM material from testdata/tls.
func testStore(t *testing.T) MapStore {
	t.Helper()
	read := func(f string) []byte {
		b, err := os.ReadFile("testdata/tls/" + f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return MapStore{
		Secrets: map[string]map[string][]byte{
			"ns1/auth": {"user": []byte("alice"), "pass": []byte("pw"), "token": []byte("t0k"),
				"ca.crt": read("ca.pem"), "tls.crt": read("client.pem"), "tls.key": read("client.key"),
				"other.key": read("client.key")[:40], "not-pem": []byte("hello")},
		},
		ConfigMaps: map[string]map[string]string{"ns1/cm": {"client-id": "id-1", "ca.crt": string(read("ca.pem"))}},
	}
}

// sm decodes a ServiceMonitor in namespace ns1 named sm from YAML.
func sm(t *testing.T, spec string) *monitoringv1.ServiceMonitor {
	t.Helper()
	m := &monitoringv1.ServiceMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "sm"}}
	if err := yaml.UnmarshalStrict([]byte(spec), &m.Spec); err != nil {
		t.Fatalf("spec: %v", err)
	}
	return m
}

func TestServiceMonitorRejected(t *testing.T) {
	classes := Settings{ScrapeClasses: []monitoringv1.ScrapeClass{
		{Name: "authz", Authorization: &monitoringv1.Authorization{CredentialsFile: "/var/run/token"}},
	}}
	cases := []struct {
		name     string
		settings Settings
		spec     string
		endpoint int
		field    string
		err      string
	}{
		{name: "bad selector", spec: "selector: {matchExpressions: [{key: a, operator: Foo}]}\nendpoints: [{port: web}]",
			endpoint: -1, field: "selector", err: `"Foo" is not a valid label selector operator`},
		{name: "selector mechanism", spec: "selector: {}\nselectorMechanism: Magic\nendpoints: [{port: web}]",
			endpoint: -1, field: "selectorMechanism", err: `"Magic": want RelabelConfig or RoleSelector`},
		{name: "unknown scrape class", spec: "selector: {}\nscrapeClass: gold\nendpoints: [{port: web}]",
			endpoint: -1, field: "scrapeClass", err: `scrapeClass "gold" not found`},
		{name: "missing secret", spec: "selector: {}\nendpoints: [{port: web}, {port: b, basicAuth: {username: {name: nope, key: user}, password: {name: auth, key: pass}}}]",
			endpoint: 1, field: "basicAuth.username", err: "secret ns1/nope not found"},
		{name: "missing key", spec: "selector: {}\nendpoints: [{port: web, authorization: {credentials: {name: auth, key: nope}}}]",
			endpoint: 0, field: "authorization.credentials", err: `key "nope" in secret ns1/auth not found`},
		{name: "missing configmap key", spec: "selector: {}\nendpoints: [{port: web, oauth2: {clientId: {configMap: {name: cm, key: x}}, clientSecret: {name: auth, key: token}, tokenUrl: 'https://idp/token'}}]",
			endpoint: 0, field: "oauth2.clientId", err: `key "x" in configmap ns1/cm not found`},
		{name: "oauth2 without token url", spec: "selector: {}\nendpoints: [{port: web, oauth2: {clientId: {configMap: {name: cm, key: client-id}}, clientSecret: {name: auth, key: token}}}]",
			endpoint: 0, field: "", err: "OAuth2 tokenURL must be specified"},
		{name: "timeout over interval", spec: "selector: {}\nendpoints: [{port: web, interval: 10s, scrapeTimeout: 20s}]",
			endpoint: 0, field: "scrapeTimeout", err: `scrapeTimeout "20s" greater than scrapeInterval "10s"`},
		{name: "timeout over the default interval", spec: "selector: {}\nendpoints: [{port: web, scrapeTimeout: 31s}]",
			endpoint: 0, field: "scrapeTimeout", err: `scrapeTimeout "31s" greater than scrapeInterval "30s"`},
		{name: "bad interval", spec: "selector: {}\nendpoints: [{port: web, interval: soon}]",
			endpoint: 0, field: "interval", err: `not a valid duration string: "soon"`},
		{name: "invalid regex", spec: "selector: {}\nendpoints: [{port: web, relabelings: [{sourceLabels: [a], regex: '(', targetLabel: b}]}]",
			endpoint: 0, field: "relabelings", err: "[0]: invalid regex ( for relabel configuration"},
		{name: "replace without target", spec: "selector: {}\nendpoints: [{port: web, metricRelabelings: [{action: drop, sourceLabels: [a]}, {sourceLabels: [a]}]}]",
			endpoint: 0, field: "metricRelabelings", err: "[1]: relabel configuration for replace action requires 'target_label' value"},
		{name: "unknown action", spec: "selector: {}\nendpoints: [{port: web, relabelings: [{action: explode}]}]",
			endpoint: 0, field: "relabelings", err: `[0]: unknown relabel action "explode"`},
		{name: "labeldrop with a target", spec: "selector: {}\nendpoints: [{port: web, relabelings: [{action: labeldrop, regex: x, targetLabel: y}]}]",
			endpoint: 0, field: "relabelings", err: "[0]: labeldrop action requires only 'regex', and no other fields"},
		{name: "bearer token file refused", spec: "selector: {}\nendpoints: [{port: web, bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}]",
			endpoint: 0, field: "bearerTokenFile", err: `namespace "ns1" is not one: add it to --trusted-namespaces (chart value monitors.trustedNamespaces)`},
		{name: "other token file refused", spec: "selector: {}\nendpoints: [{port: web, bearerTokenFile: /etc/token}]",
			endpoint: 0, field: "bearerTokenFile", err: "file references are refused"},
		{name: "ca file refused", spec: "selector: {}\nendpoints: [{port: web, tlsConfig: {caFile: /etc/ssl/ca.pem}}]",
			endpoint: 0, field: "tlsConfig.caFile", err: "file references are refused"},
		{name: "CA not PEM", spec: "selector: {}\nendpoints: [{port: web, tlsConfig: {ca: {secret: {name: auth, key: not-pem}}}}]",
			endpoint: 0, field: "tlsConfig.ca", err: "failed to decode PEM block"},
		{name: "cert without key", spec: "selector: {}\nendpoints: [{port: web, tlsConfig: {cert: {secret: {name: auth, key: tls.crt}}}}]",
			endpoint: 0, field: "", err: "tlsConfig: cannot specify client cert without client key"},
		{name: "cert and key do not match", spec: "selector: {}\nendpoints: [{port: web, tlsConfig: {cert: {secret: {name: auth, key: tls.crt}}, keySecret: {name: auth, key: other.key}}}]",
			endpoint: 0, field: "tlsConfig.cert", err: "tls: failed to find any PEM data in key input"},
		{name: "authorization and basic auth", spec: "selector: {}\nendpoints: [{port: web, authorization: {credentials: {name: auth, key: token}}, basicAuth: {username: {name: auth, key: user}}}]",
			endpoint: 0, field: "", err: "authorization and basicAuth cannot be configured at the same time"},
		{name: "class authorization and basic auth", settings: classes,
			spec:     "selector: {}\nscrapeClass: authz\nendpoints: [{port: web, basicAuth: {username: {name: auth, key: user}, password: {name: auth, key: pass}}}]",
			endpoint: 0, field: "", err: "at most one of basicAuth, oauth2 and authorization (possibly from the scrape class) may be set"},
		{name: "basic authorization type", spec: "selector: {}\nendpoints: [{port: web, authorization: {type: Basic, credentials: {name: auth, key: token}}}]",
			endpoint: 0, field: "", err: `'authorization' type cannot be set to "basic"`},
		{name: "proxy header without proxy", spec: "selector: {}\nendpoints: [{port: web, proxyConnectHeader: {X: [{name: auth, key: token}]}}]",
			endpoint: 0, field: "", err: "if proxyConnectHeader is configured, proxyUrl or proxyFromEnvironment must also be configured"},
		{name: "bad scheme", spec: "selector: {}\nendpoints: [{port: web, scheme: ftp}]",
			endpoint: 0, field: "scheme", err: `"ftp": want http or https`},
		{name: "bad body size", spec: "selector: {}\nbodySizeLimit: 10XB\nendpoints: [{port: web}]",
			endpoint: -1, field: "bodySizeLimit", err: `"10XB" is not a byte size like 512MB`},
		{name: "negative limit", spec: "selector: {}\nsampleLimit: -1\nendpoints: [{port: web}]",
			endpoint: -1, field: "sampleLimit", err: "must not be negative"},
		{name: "unknown protocol", spec: "selector: {}\nscrapeProtocols: [Telepathy]\nendpoints: [{port: web}]",
			endpoint: -1, field: "scrapeProtocols", err: `unknown scrape protocol "Telepathy"`},
		{name: "unknown SD role", spec: "selector: {}\nserviceDiscoveryRole: Ingress\nendpoints: [{port: web}]",
			endpoint: -1, field: "serviceDiscoveryRole", err: `"Ingress": want Endpoints or EndpointSlice`},
		{name: "empty target label name", spec: "selector: {}\ntargetLabels: ['']\nendpoints: [{port: web}]",
			endpoint: 0, field: "targetLabels", err: "requires 'target_label' value"},
		{name: "port that is no regex", spec: "selector: {}\nendpoints: [{port: 'a('}]",
			endpoint: 0, field: "port", err: "error parsing regexp"},
	}
	store := testStore(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewGenerator(c.settings)
			if err != nil {
				t.Fatal(err)
			}
			m, err := g.ServiceMonitor(sm(t, c.spec), store)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Kind != ServiceMonitorKind || e.Namespace != "ns1" || e.Name != "sm" || e.Endpoint != c.endpoint || e.Field != c.field {
				t.Errorf("error at %s %s/%s endpoint %d field %q, want endpoint %d field %q (%v)", e.Kind, e.Namespace, e.Name, e.Endpoint, e.Field, c.endpoint, c.field, err)
			}
			if !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %q does not say %q", err, c.err)
			}
			if !strings.HasPrefix(err.Error(), "ServiceMonitor ns1/sm: ") {
				t.Errorf("error %q does not start with the monitor", err)
			}
			if m == nil || m.Jobs != nil {
				t.Errorf("rejected monitor = %+v, want identity only", m)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Kind: PodMonitorKind, Namespace: "a", Name: "b", Endpoint: 2, Field: "tlsConfig.ca", Err: errors.New("secret a/x not found")}
	if got, want := e.Error(), "PodMonitor a/b: podMetricsEndpoints[2].tlsConfig.ca: secret a/x not found"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e = &Error{Kind: ServiceMonitorKind, Namespace: "a", Name: "b", Endpoint: -1, Field: "selector", Err: errors.New("bad")}
	if got, want := e.Error(), "ServiceMonitor a/b: selector: bad"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// One bad monitor does not affect another: a Generator keeps no state.
func TestRejectionIsPerMonitor(t *testing.T) {
	g, err := NewGenerator(Settings{})
	if err != nil {
		t.Fatal(err)
	}
	bad := sm(t, "selector: {}\nendpoints: [{port: web, basicAuth: {username: {name: gone, key: u}}}]")
	good := sm(t, "selector: {}\nendpoints: [{port: web}]")
	good.Name = "good"
	if _, err := g.ServiceMonitor(bad, testStore(t)); err == nil {
		t.Fatal("bad monitor accepted")
	}
	m, err := g.ServiceMonitor(good, testStore(t))
	if err != nil || len(m.Jobs) != 1 {
		t.Fatalf("good monitor: %v, %+v", err, m)
	}
}

func TestFileReferencesAllowed(t *testing.T) {
	g, err := NewGenerator(Settings{AllowFileReferences: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.ServiceMonitor(sm(t, "selector: {}\nendpoints: [{port: web, bearerTokenFile: /t, tlsConfig: {caFile: /ca, certFile: /c, keyFile: /k}}]"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Jobs[0].HTTP
	if a := h.Authorization; a == nil || a.Type != "Bearer" || a.CredentialsFile != "/t" || a.Credentials != "" {
		t.Errorf("authorization = %+v, want Bearer from file /t", a)
	}
	if h.TLS.CAFile != "/ca" || h.TLS.CertFile != "/c" || h.TLS.KeyFile != "/k" {
		t.Errorf("TLS = %+v", h.TLS)
	}
}

func TestSettingsRejected(t *testing.T) {
	cases := []struct {
		name string
		s    Settings
		err  string
	}{
		{"timeout over interval", Settings{ScrapeInterval: 10e9, ScrapeTimeout: 11e9}, "scrape timeout 11s greater than scrape interval 10s"},
		{"role", Settings{ServiceDiscoveryRole: "Pods"}, `serviceDiscoveryRole "Pods"`},
		{"protocol", Settings{ScrapeProtocols: []monitoringv1.ScrapeProtocol{"x"}}, `unknown scrape protocol "x"`},
		{"duplicate protocol", Settings{ScrapeProtocols: []monitoringv1.ScrapeProtocol{"PrometheusProto", "PrometheusProto"}}, "duplicate scrape protocol"},
		{"two defaults", Settings{ScrapeClasses: []monitoringv1.ScrapeClass{{Name: "a", Default: new(true)}, {Name: "b", Default: new(true)}}}, "multiple default scrape classes"},
		{"class relabeling", Settings{ScrapeClasses: []monitoringv1.ScrapeClass{{Name: "a", Relabelings: []monitoringv1.RelabelConfig{{Action: "hashmod", TargetLabel: "x"}}}}},
			`scrapeClasses[0] "a": invalid relabelings: [0]: relabel configuration for hashmod requires non-zero modulus`},
		{"class TLS from a secret", Settings{ScrapeClasses: []monitoringv1.ScrapeClass{{Name: "a", TLSConfig: &monitoringv1.TLSConfig{SafeTLSConfig: monitoringv1.SafeTLSConfig{
			CA: monitoringv1.SecretOrConfigMap{Secret: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}}}}},
			"only caFile, certFile and keyFile are supported"},
		{"class credentials from a secret", Settings{ScrapeClasses: []monitoringv1.ScrapeClass{{Name: "a", Authorization: &monitoringv1.Authorization{
			SafeAuthorization: monitoringv1.SafeAuthorization{Credentials: &corev1.SecretKeySelector{Key: "k"}}}}}}, "only credentialsFile is supported"},
		{"monitor selector", Settings{PodMonitors: Selection{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "-"}}}}, "PodMonitor selection: selector"},
		{"enforced label", Settings{EnforcedNamespaceLabel: "\xff"}, "is not a valid label name"},
		{"negative limit", Settings{EnforcedLimits: target.Limits{Samples: -1}}, "limits must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewGenerator(c.s)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("err = %v, want %q", err, c.err)
			}
		})
	}
}

func TestRefs(t *testing.T) {
	g, err := NewGenerator(Settings{})
	if err != nil {
		t.Fatal(err)
	}
	m := sm(t, `selector: {}
endpoints:
- port: a
  basicAuth: {username: {name: gone, key: u}, password: {name: auth, key: pass}}
- port: b
  oauth2: {clientId: {configMap: {name: cm, key: client-id}}, clientSecret: {name: auth, key: token}, tokenUrl: 'https://idp',
    tlsConfig: {ca: {configMap: {name: cas, key: ca.crt}}}}
  proxyUrl: http://proxy
  proxyConnectHeader: {X: [{name: proxy, key: h}]}
`)
	m.Spec.Endpoints[1].TargetPort = &intstr.IntOrString{IntVal: 1}
	got, err := g.ServiceMonitor(m, testStore(t))
	if err == nil {
		t.Fatal("monitor with a missing secret accepted")
	}
	want := "[ConfigMap ns1/cas ConfigMap ns1/cm Secret ns1/auth Secret ns1/gone Secret ns1/proxy]"
	var names []string
	for _, r := range got.Refs {
		names = append(names, r.String())
	}
	if s := "[" + strings.Join(names, " ") + "]"; s != want {
		t.Errorf("refs %s, want %s", s, want)
	}
}
