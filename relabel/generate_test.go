package relabel

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/labels"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// firstJob generates the ServiceMonitor of spec (see sm) under s and
// returns its first job.
func firstJob(t *testing.T, s Settings, spec string) *Job {
	t.Helper()
	g, err := NewGenerator(s)
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.ServiceMonitor(sm(t, spec), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m.Jobs[0]
}

func TestScrapeOptions(t *testing.T) {
	cases := []struct {
		name     string
		settings Settings
		spec     string
		check    func(t *testing.T, o ScrapeOptions)
	}{
		{name: "Prometheus defaults", spec: "selector: {}\nendpoints: [{port: web}]", check: func(t *testing.T, o ScrapeOptions) {
			want := ScrapeOptions{Interval: 30 * time.Second, Timeout: 10 * time.Second, Scheme: "http", MetricsPath: "/metrics",
				HonorTimestamps: true, EnableCompression: true,
				ScrapeProtocols: []string{"OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText1.0.0", "PrometheusText0.0.4"}}
			if !reflect.DeepEqual(o, want) {
				t.Errorf("got  %+v\nwant %+v", o, want)
			}
		}},
		{name: "timeout capped at a short interval", spec: "selector: {}\nendpoints: [{port: web, interval: 5s}]", check: func(t *testing.T, o ScrapeOptions) {
			if o.Interval != 5*time.Second || o.Timeout != 5*time.Second {
				t.Errorf("interval %s timeout %s, want 5s 5s", o.Interval, o.Timeout)
			}
		}},
		{name: "agent defaults", settings: Settings{ScrapeInterval: time.Minute, ScrapeTimeout: 20 * time.Second},
			spec: "selector: {}\nendpoints: [{port: web}, {port: b, interval: 15s}]", check: func(t *testing.T, o ScrapeOptions) {
				if o.Interval != time.Minute || o.Timeout != 20*time.Second {
					t.Errorf("interval %s timeout %s, want 1m 20s", o.Interval, o.Timeout)
				}
			}},
		{name: "interval 0 is unset", spec: "selector: {}\nendpoints: [{port: web, interval: '0'}]", check: func(t *testing.T, o ScrapeOptions) {
			if o.Interval != 30*time.Second {
				t.Errorf("interval %s, want 30s", o.Interval)
			}
		}},
		{name: "endpoint settings", spec: "selector: {}\nendpoints: [{port: web, scheme: HTTPS, path: /m, params: {module: [a, b]}, honorLabels: true, honorTimestamps: false, trackTimestampsStaleness: true, interval: 1m30s, scrapeTimeout: 45s}]",
			check: func(t *testing.T, o ScrapeOptions) {
				if o.Scheme != "https" || o.MetricsPath != "/m" || o.Params.Encode() != "module=a&module=b" || !o.HonorLabels || o.HonorTimestamps ||
					!o.TrackTimestampsStaleness || o.Interval != 90*time.Second || o.Timeout != 45*time.Second {
					t.Errorf("got %+v", o)
				}
			}},
		{name: "overrides", settings: Settings{OverrideHonorLabels: true, OverrideHonorTimestamps: true},
			spec: "selector: {}\nendpoints: [{port: web, honorLabels: true, honorTimestamps: true}]", check: func(t *testing.T, o ScrapeOptions) {
				if o.HonorLabels || o.HonorTimestamps {
					t.Errorf("honor labels %v timestamps %v, want both false", o.HonorLabels, o.HonorTimestamps)
				}
			}},
		{name: "limits: monitor capped by enforced, else global capped by enforced",
			settings: Settings{Limits: target.Limits{Samples: 5000, Labels: 40, BodySize: 1 << 20}, EnforcedLimits: target.Limits{Samples: 1000, Targets: 10, LabelValueLength: 100}},
			spec:     "selector: {}\nsampleLimit: 2000\ntargetLimit: 5\nlabelValueLengthLimit: 0\nbodySizeLimit: 2KiB\nendpoints: [{port: web}]",
			check: func(t *testing.T, o ScrapeOptions) {
				want := target.Limits{Samples: 1000, Targets: 5, Labels: 40, LabelValueLength: 100, BodySize: 2048}
				if o.Limits != want {
					t.Errorf("limits %+v, want %+v", o.Limits, want)
				}
			}},
		{name: "global protocols", settings: Settings{ScrapeProtocols: []monitoringv1.ScrapeProtocol{"PrometheusText0.0.4"}},
			spec: "selector: {}\nendpoints: [{port: web}]", check: func(t *testing.T, o ScrapeOptions) {
				if strings.Join(o.ScrapeProtocols, ",") != "PrometheusText0.0.4" {
					t.Errorf("protocols %v", o.ScrapeProtocols)
				}
			}},
		{name: "native histograms put protobuf first", spec: "selector: {}\nscrapeNativeHistograms: true\nendpoints: [{port: web}]", check: func(t *testing.T, o ScrapeOptions) {
			if o.ScrapeProtocols[0] != "PrometheusProto" || len(o.ScrapeProtocols) != 5 || !o.NativeHistograms.Scrape {
				t.Errorf("protocols %v native %+v", o.ScrapeProtocols, o.NativeHistograms)
			}
		}},
		{name: "fallback protocol from the class", settings: Settings{ScrapeClasses: []monitoringv1.ScrapeClass{{Name: "c", Default: new(true), FallbackScrapeProtocol: new(monitoringv1.PrometheusText0_0_4)}}},
			spec: "selector: {}\nendpoints: [{port: web}]", check: func(t *testing.T, o ScrapeOptions) {
				if o.FallbackProtocol != "PrometheusText0.0.4" {
					t.Errorf("fallback %q", o.FallbackProtocol)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, firstJob(t, c.settings, c.spec).Scrape)
		})
	}
}

// TestTargets runs label sets as Kubernetes SD gives them for role
// endpoints through generated chains; the expected target labels are
// written from the Operator's documented behaviour.
func TestTargets(t *testing.T) {
	endpoint := func(extra ...string) labels.Labels {
		l := []string{
			"__address__", "10.1.2.3:8080",
			"__meta_kubernetes_namespace", "shop",
			"__meta_kubernetes_service_name", "cart",
			"__meta_kubernetes_service_label_app_kubernetes_io_name", "cart",
			"__meta_kubernetes_service_labelpresent_app_kubernetes_io_name", "true",
			"__meta_kubernetes_service_label_team", "payments",
			"__meta_kubernetes_service_labelpresent_team", "true",
			"__meta_kubernetes_endpoint_port_name", "http-metrics",
			"__meta_kubernetes_endpoint_ready", "true",
			"__meta_kubernetes_endpoint_address_target_kind", "Pod",
			"__meta_kubernetes_endpoint_address_target_name", "cart-7d9f-x2",
			"__meta_kubernetes_pod_name", "cart-7d9f-x2",
			"__meta_kubernetes_pod_container_name", "server",
			"__meta_kubernetes_pod_container_port_name", "http-metrics",
			"__meta_kubernetes_pod_container_port_number", "8080",
			"__meta_kubernetes_pod_phase", "Running",
			"__meta_kubernetes_pod_node_name", "node-a",
			"__meta_kubernetes_pod_label_version", "1.4",
			"__meta_kubernetes_pod_labelpresent_version", "true",
		}
		b := labels.NewBuilder(labels.FromStrings(l...))
		for i := 0; i+1 < len(extra); i += 2 {
			b.Set(extra[i], extra[i+1])
		}
		return b.Labels()
	}
	// target builds the expected target labels: the Operator's labels for
	// this endpoint with job=cart, changed by kv ("" deletes).
	target := func(kv ...string) string {
		m := map[string]string{"container": "server", "endpoint": "http-metrics", "instance": "10.1.2.3:8080", "job": "cart",
			"namespace": "shop", "pod": "cart-7d9f-x2", "service": "cart"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return labels.FromMap(m).String()
	}
	cases := []struct {
		name     string
		settings Settings
		spec     string
		in       labels.Labels
		want     string // target labels, "" when dropped
		url      string
	}{
		{name: "service endpoint", spec: "selector: {matchLabels: {app.kubernetes.io/name: cart}}\nendpoints: [{port: http-metrics}]",
			in: endpoint(), want: target(), url: "http://10.1.2.3:8080/metrics"},
		{name: "other port dropped", spec: "selector: {}\nendpoints: [{port: grpc}]", in: endpoint()},
		{name: "selector mismatch dropped", spec: "selector: {matchLabels: {app.kubernetes.io/name: checkout}}\nendpoints: [{port: http-metrics}]", in: endpoint()},
		{name: "NotIn drops", spec: "selector: {matchExpressions: [{key: team, operator: NotIn, values: [payments, search]}]}\nendpoints: [{port: http-metrics}]", in: endpoint()},
		{name: "DoesNotExist keeps", spec: "selector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}\nendpoints: [{port: http-metrics}]",
			in: endpoint(), want: target()},
		{name: "failed pod dropped", spec: "selector: {}\nendpoints: [{port: http-metrics}]", in: endpoint("__meta_kubernetes_pod_phase", "Failed")},
		{name: "failed pod kept without filterRunning", spec: "selector: {}\nendpoints: [{port: http-metrics, filterRunning: false}]",
			in: endpoint("__meta_kubernetes_pod_phase", "Failed"), want: target()},
		{name: "targetPort by number", spec: "selector: {}\nendpoints: [{targetPort: 8080}]",
			in: endpoint(), want: target("endpoint", "8080")},
		{name: "jobLabel, targetLabels, podTargetLabels, path and params",
			spec: "selector: {}\njobLabel: team\ntargetLabels: [team, absent]\npodTargetLabels: [version]\nendpoints: [{port: http-metrics, path: /x, params: {a: ['1']}}]",
			in:   endpoint(), want: target("job", "payments", "team", "payments", "version", "1.4"), url: "http://10.1.2.3:8080/x?a=1"},
		// The enforced label is the monitor's namespace (ns1), set after
		// the monitor's own relabelings.
		{name: "user relabelings after the Operator's, enforced namespace label last",
			settings: Settings{EnforcedNamespaceLabel: "namespace"},
			spec:     "selector: {}\nendpoints: [{port: http-metrics, relabelings: [{sourceLabels: [__meta_kubernetes_pod_node_name], targetLabel: node}, {targetLabel: namespace, replacement: other}]}]",
			in:       endpoint(), want: target("node", "node-a", "namespace", "ns1")},
		{name: "relabeling may drop", spec: "selector: {}\nendpoints: [{port: http-metrics, relabelings: [{action: drop, sourceLabels: [service], regex: cart}]}]", in: endpoint()},
		{name: "endpoint whose target is a node (the kubelet Service)", spec: "selector: {}\nendpoints: [{port: http-metrics}]",
			in: endpoint("__meta_kubernetes_endpoint_address_target_kind", "Node", "__meta_kubernetes_endpoint_address_target_name", "node-a",
				"__meta_kubernetes_pod_name", "", "__meta_kubernetes_pod_container_name", ""),
			want: target("node", "node-a", "pod", "", "container", "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg, err := firstJob(t, c.settings, c.spec).Target(c.in)
			if c.want == "" {
				if !errors.Is(err, ErrDropped) {
					t.Fatalf("got %v, %v; want dropped", tg.Labels, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tg.Labels.String(); got != c.want {
				t.Errorf("labels\n got %s\nwant %s", got, c.want)
			}
			if c.url != "" && tg.URL != c.url {
				t.Errorf("url %s, want %s", tg.URL, c.url)
			}
		})
	}
}

func TestPodMonitorChain(t *testing.T) {
	g, err := NewGenerator(Settings{PodTargetLabels: []string{"app.kubernetes.io/version"}})
	if err != nil {
		t.Fatal(err)
	}
	pm := &monitoringv1.PodMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "pm"}}
	if err := yaml.UnmarshalStrict([]byte(`
selector: {matchLabels: {app: x}}
jobLabel: app
podTargetLabels: [team]
podMetricsEndpoints:
- port: web
- portNumber: 9100
  filterRunning: false
`), &pm.Spec); err != nil {
		t.Fatal(err)
	}
	m, err := g.PodMonitor(pm, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Written from the Operator's generatePodMonitorConfig.
	want := [][]string{{
		`action=replace source=["job"] sep=";" regex="(.*)" mod=0 target="__tmp_prometheus_job_name" repl="$1"`,
		`action=drop source=["__meta_kubernetes_pod_phase"] sep=";" regex="(Failed|Succeeded)" mod=0 target="" repl="$1"`,
		`action=keep source=["__meta_kubernetes_pod_label_app" "__meta_kubernetes_pod_labelpresent_app"] sep=";" regex="(x);true" mod=0 target="" repl="$1"`,
		`action=keep source=["__meta_kubernetes_pod_container_port_name"] sep=";" regex="web" mod=0 target="" repl="$1"`,
		`action=replace source=["__meta_kubernetes_namespace"] sep=";" regex="(.*)" mod=0 target="namespace" repl="$1"`,
		`action=replace source=["__meta_kubernetes_pod_container_name"] sep=";" regex="(.*)" mod=0 target="container" repl="$1"`,
		`action=replace source=["__meta_kubernetes_pod_name"] sep=";" regex="(.*)" mod=0 target="pod" repl="$1"`,
		`action=replace source=["__meta_kubernetes_pod_label_team"] sep=";" regex="(.+)" mod=0 target="team" repl="${1}"`,
		`action=replace source=["__meta_kubernetes_pod_label_app_kubernetes_io_version"] sep=";" regex="(.+)" mod=0 target="app_kubernetes_io_version" repl="${1}"`,
		`action=replace source=[] sep=";" regex="(.*)" mod=0 target="job" repl="ns1/pm"`,
		`action=replace source=["__meta_kubernetes_pod_label_app"] sep=";" regex="(.+)" mod=0 target="job" repl="${1}"`,
		`action=replace source=[] sep=";" regex="(.*)" mod=0 target="endpoint" repl="web"`,
		`action=replace source=["__address__" "__tmp_hash"] sep=";" regex="(.+);" mod=0 target="__tmp_hash" repl="$1"`,
		`action=hashmod source=["__tmp_hash"] sep=";" regex="(.*)" mod=1 target="__tmp_hash" repl="$1"`,
		`action=keep source=["__tmp_hash" "__tmp_disable_sharding"] sep=";" regex="0;|.+;.+" mod=0 target="" repl="$1"`,
	}}
	second := append([]string{want[0][0], want[0][2],
		`action=keep source=["__meta_kubernetes_pod_container_port_number"] sep=";" regex="9100" mod=0 target="" repl="$1"`},
		want[0][4:11]...)
	want = append(want, append(second, want[0][12:]...))
	for i, j := range m.Jobs {
		if j.Name != fmt.Sprintf("podMonitor/ns1/pm/%d", i) || j.SD.Role != RolePod || strings.Join(j.SD.Namespaces, ",") != "ns1" {
			t.Errorf("job %d: %s role %s namespaces %v", i, j.Name, j.SD.Role, j.SD.Namespaces)
		}
		var got []string
		for _, r := range j.RelabelConfigs {
			got = append(got, ruleString(r))
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("job %d chain:\n%s\nwant\n%s", i, strings.Join(got, "\n"), strings.Join(want[i], "\n"))
		}
	}
}

func TestSelects(t *testing.T) {
	g, err := NewGenerator(Settings{
		ServiceMonitors: Selection{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"release": "main"}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "monitoring", Operator: metav1.LabelSelectorOpExists}}}},
		PodMonitors: Selection{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		kind     Kind
		ns       string
		labels   map[string]string
		nsLabels map[string]string
		want     bool
	}{
		{ServiceMonitorKind, "a", map[string]string{"release": "main"}, map[string]string{"monitoring": "on"}, true},
		{ServiceMonitorKind, "a", map[string]string{"release": "canary"}, map[string]string{"monitoring": "on"}, false},
		{ServiceMonitorKind, "a", map[string]string{"release": "main"}, nil, false},
		{PodMonitorKind, "a", nil, map[string]string{"monitoring": "on"}, false},
	}
	for _, c := range cases {
		if got := g.Selects(c.kind, c.ns, c.labels, c.nsLabels); got != c.want {
			t.Errorf("Selects(%s, %s, %v, %v) = %v", c.kind, c.ns, c.labels, c.nsLabels, got)
		}
	}
	if s := g.MonitorSelector(ServiceMonitorKind).String(); s != "release=main" {
		t.Errorf("watch selector %q", s)
	}
	if !g.NeedsNamespaceLabels(ServiceMonitorKind) || g.MonitorSelector(PodMonitorKind).Matches(nil) {
		t.Error("namespace labels needed; pod monitors disabled")
	}
}

func TestSettingsFromPrometheus(t *testing.T) {
	p := &monitoringv1.Prometheus{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: "k8s"}}
	if err := yaml.UnmarshalStrict([]byte(`
serviceMonitorSelector: {}
podMonitorNamespaceSelector: {}
scrapeInterval: 1m
scrapeTimeout: 15s
enforcedSampleLimit: 100
bodySizeLimit: 64MB
enforcedBodySizeLimit: 32MB
serviceDiscoveryRole: EndpointSlice
arbitraryFSAccessThroughSMs: {deny: false}
`), &p.Spec); err != nil {
		t.Fatal(err)
	}
	s, err := SettingsFromPrometheus(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.ServiceMonitors.Disabled || s.ServiceMonitors.Selector == nil || !reflect.DeepEqual(s.ServiceMonitors.Namespaces, []string{"monitoring"}) {
		t.Errorf("service monitors %+v: want all of namespace monitoring", s.ServiceMonitors)
	}
	if !s.PodMonitors.Disabled {
		t.Errorf("pod monitors %+v: a null selector takes none", s.PodMonitors)
	}
	if s.ScrapeInterval != time.Minute || s.ScrapeTimeout != 15*time.Second || s.EnforcedLimits.Samples != 100 ||
		s.Limits.BodySize != 64<<20 || s.EnforcedLimits.BodySize != 32<<20 || s.ServiceDiscoveryRole != monitoringv1.EndpointSliceRole || s.AllowFileReferences {
		t.Errorf("settings %+v", s)
	}
}

func TestSecretsStayHidden(t *testing.T) {
	h := httpconfig.Config{Authorization: &httpconfig.Authorization{Type: "Bearer", Credentials: "s3cr3t"}, BasicAuth: &httpconfig.BasicAuth{Username: "u", Password: "pw-s3cr3t"}}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v %+v", h.Authorization, h.BasicAuth), string(b)} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("secret printed: %s", s)
		}
	}
}

func TestHTTPFromSecrets(t *testing.T) {
	g, err := NewGenerator(Settings{AllowedProxyURLs: []string{"http://proxy:3128"}, AllowedTokenURLs: []string{"https://idp/"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.ServiceMonitor(sm(t, `selector: {}
endpoints:
- port: a
  bearerTokenSecret: {name: auth, key: token}
- port: b
  scheme: https
  tlsConfig: {ca: {configMap: {name: cm, key: ca.crt}}, cert: {secret: {name: auth, key: tls.crt}}, keySecret: {name: auth, key: tls.key}, serverName: api, minVersion: TLS12}
  oauth2: {clientId: {configMap: {name: cm, key: client-id}}, clientSecret: {name: auth, key: token}, tokenUrl: 'https://idp/token', scopes: [read]}
  proxyUrl: http://proxy:3128
  proxyConnectHeader: {X-Auth: [{name: auth, key: token}]}
  followRedirects: false
`), testStore(t))
	if err != nil {
		t.Fatal(err)
	}
	store := testStore(t)
	if a := m.Jobs[0].HTTP.Authorization; a == nil || a.Type != "Bearer" || a.Credentials != "t0k" {
		t.Errorf("bearer token secret: %+v", a)
	}
	h := m.Jobs[1].HTTP
	proxy, _ := url.Parse("http://proxy:3128")
	want := httpconfig.Config{
		EnableHTTP2: true,
		OAuth2:      &httpconfig.OAuth2{ClientID: "id-1", ClientSecret: "t0k", TokenURL: "https://idp/token", Scopes: []string{"read"}},
		TLS: httpconfig.TLS{CA: store.ConfigMaps["ns1/cm"]["ca.crt"], Cert: string(store.Secrets["ns1/auth"]["tls.crt"]),
			Key: httpconfig.Secret(store.Secrets["ns1/auth"]["tls.key"]), ServerName: "api", MinVersion: 0x0303},
		Proxy: httpconfig.Proxy{URL: proxy, ConnectHeader: map[string][]httpconfig.Secret{"X-Auth": {"t0k"}}},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got  %#v\nwant %#v", h, want)
	}
}

func TestRegexesShared(t *testing.T) {
	g, err := NewGenerator(Settings{})
	if err != nil {
		t.Fatal(err)
	}
	spec := "selector: {matchLabels: {app: x}}\nendpoints: [{port: web, metricRelabelings: [{action: drop, sourceLabels: [__name__], regex: 'go_.*'}]}]"
	a, err := g.ServiceMonitor(sm(t, spec), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.ServiceMonitor(sm(t, spec), nil)
	if err != nil {
		t.Fatal(err)
	}
	ja, jb := a.Jobs[0], b.Jobs[0]
	if ja.RelabelConfigs[0] != jb.RelabelConfigs[0] {
		t.Error("fixed rules not shared")
	}
	if ja.RelabelConfigs[1] == jb.RelabelConfigs[1] || ja.RelabelConfigs[1].Regex.Regexp != jb.RelabelConfigs[1].Regex.Regexp {
		t.Error("selector rules should be distinct configs sharing one compiled regex")
	}
	if ja.MetricRelabelConfigs[0].Regex.Regexp != jb.MetricRelabelConfigs[0].Regex.Regexp {
		t.Error("user regex not shared")
	}
}

func BenchmarkServiceMonitor(b *testing.B) {
	g, err := NewGenerator(Settings{})
	if err != nil {
		b.Fatal(err)
	}
	m := &monitoringv1.ServiceMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "sm"}}
	if err := yaml.UnmarshalStrict([]byte(`selector: {matchLabels: {app.kubernetes.io/name: api}}
targetLabels: [team]
endpoints:
- {port: metrics, interval: 15s, relabelings: [{sourceLabels: [__meta_kubernetes_pod_node_name], targetLabel: node_name}], metricRelabelings: [{action: drop, sourceLabels: [__name__], regex: 'go_.*'}]}
- {port: admin, path: /admin/metrics}
`), &m.Spec); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.ServiceMonitor(m, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// Durations reach Populate in Prometheus' notation: Go's "1.5s" is not one.
func TestTargetDurations(t *testing.T) {
	j := firstJob(t, Settings{}, "selector: {}\nendpoints: [{port: web, interval: 1m30s, scrapeTimeout: 1500ms}]")
	tg, err := j.Target(labels.FromStrings("__address__", "10.0.0.1:80", "__meta_kubernetes_endpoint_port_name", "web"))
	if err != nil {
		t.Fatal(err)
	}
	if tg.Interval != 90*time.Second || tg.Timeout != 1500*time.Millisecond {
		t.Errorf("interval %s timeout %s, want 1m30s 1.5s", tg.Interval, tg.Timeout)
	}
}
