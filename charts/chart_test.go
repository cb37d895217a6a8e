package charts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// klog starts its flush daemon in init; it lives as long as the binary.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
	)
}

const (
	helmVersion = "v3.22.0"
	chart       = "nodescraper" // the chart's directory, beside this file
	// renderKubeVersion is the Kubernetes version helm template renders for
	// when no cluster is asked: a helm built with `go install` assumes
	// v1.20 (release builds set it at link time), below the chart's
	// kubeVersion. The cluster tests use the server's version instead.
	renderKubeVersion = "v1.34.0"
)

// helmBin is the helm the tests run: $NODESCRAPER_HELM, or the one
// `make helm` installs into .cache/bin. A missing helm fails the test.
func helmBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("NODESCRAPER_HELM")
	if p == "" {
		abs, err := filepath.Abs(filepath.Join("..", ".cache", "bin", "helm-"+helmVersion))
		if err != nil {
			t.Fatal(err)
		}
		p = abs
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("helm %s not found at %s: run `make helm` (it installs helm.sh/helm/v3/cmd/helm@%s into .cache/bin) or set NODESCRAPER_HELM", helmVersion, p, helmVersion)
	}
	return p
}

// helm runs helm with its own empty config, cache and data directories.
type helm struct {
	t          *testing.T
	bin        string
	kubeconfig string
	home       string
}

func newHelm(t *testing.T) *helm {
	return &helm{t: t, bin: helmBin(t), home: t.TempDir()}
}

// run returns helm's output; err carries its stderr.
func (h *helm) run(args ...string) (string, error) {
	h.t.Helper()
	cmd := exec.CommandContext(h.t.Context(), h.bin, args...)
	kubeconfig := h.kubeconfig
	if kubeconfig == "" {
		kubeconfig = filepath.Join(h.home, "no-cluster.kubeconfig") // render only: no cluster reachable
	}
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
		"KUBECONFIG="+kubeconfig,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stdout.String()+"\n"+stderr.String()))
	}
	return stdout.String(), nil
}

// valuesSet is one way to install the chart.
type valuesSet struct {
	name      string
	release   string
	namespace string
	values    string // YAML
}

const existingKey = "datadog:\n  apiKeyExistingSecret: datadog-api-key\n"

// everything sets every value away from its default.
const everything = `
nameOverride: scraper
fullnameOverride: node-agent
image: {repository: registry.example/team/nodescraper, tag: 0.1.0-rc1, pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
datadog:
  site: datadoghq.eu
  url: http://intake.obs.svc:8129
  allowInsecureURL: true
  useV3APISeries: "true"
  apiKeyExistingSecret: dd-key
  apiKeySecretKey: key
  clusterName: prod-eu
  metricNamespace: k8s
  appKeyExistingSecret: dd-app-key
  appKeySecretKey: app
  metadataInterval: 12h
  metadataMaxNames: 5000
  reportSeries: false
  serviceChecks: false
tags:
  cardinality: orchestrator
  includeLabels: [code, method]
  excludeLabels: [instance]
  renameLabels: {method: http_method}
monitors:
  namespaces: [shop, payments]
  labelSelector: "team in (a,b),tier!=dev"
  namespaceSelector: monitoring=on
  serviceDiscoveryRole: Endpoints
  allowOtherAddresses: true
  trustedNamespaces: [monitoring, kube-system]
  allowedProxyURLs: ["http://proxy.corp:3128", "https://proxy2.corp:443"]
  allowedTokenURLs: ["https://idp.corp/oauth2/"]
  enforced: {sampleLimit: 50000, targetLimit: 20, labelLimit: 30, labelNameLengthLimit: 100, labelValueLengthLimit: 500, bodySizeLimit: 10485760, keepDroppedTargets: 5, namespaceLabel: tenant}
  ignoreNamespaceSelectors: true
  overrideHonorLabels: true
  overrideHonorTimestamps: true
scrape:
  interval: 15s
  timeout: 5s
  maxSeries: 500000
  maxSeriesPerTarget: 100000
  maxSeriesPerNamespace: 250000
  maxBytesInFlight: 96MiB
  sampleLimit: 100000
  labelLimit: 40
  labelNameLengthLimit: 128
  labelValueLengthLimit: 1024
  bodySizeLimit: -1
send:
  flushInterval: 10s
  compression: gzip
  concurrency: 4
  queueMaxBytes: 32MiB
  spoolMaxBytes: 1GiB
  shutdownFlushTimeout: 20s
referencedObjects: [{namespace: shop, secrets: [basic-auth], configMaps: [ca]}]
state:
  hostPath: /data/nodescraper
  hostPathType: Directory
  checkpointInterval: 30s
  checkpointMaxAge: 2h
  seriesStaleAfter: 30m
endpoint: {port: 9200, pprof: true, access: kubernetes}
networkPolicy:
  enabled: true
  from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}, podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}}]
service: {enabled: true, port: 80, annotations: {owner: obs}}
serviceMonitor:
  enabled: true
  labels: {release: prom}
  interval: 1m
  scrapeTimeout: 10s
  relabelings: [{sourceLabels: [__meta_kubernetes_pod_node_name], targetLabel: node, action: replace}]
  metricRelabelings: [{sourceLabels: [__name__], regex: go_.*, action: drop}]
memoryLimit: 400MiB
log: {level: debug, format: text}
extraArgs: [--label-limit=50]
env: {HTTPS_PROXY: "http://proxy.internal:3128", NO_PROXY: "10.96.0.1,.svc"}
extraEnv: [{name: PROXY_TOKEN, valueFrom: {secretKeyRef: {name: proxy, key: token}}}]
updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 10%, maxSurge: 0}}
terminationGracePeriodSeconds: 45
resources: {requests: {cpu: 200m, memory: 256Mi}, limits: {cpu: "1", memory: 1Gi}}
rbac: {create: true}
serviceAccount: {create: true, name: scraper-sa, annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::1:role/x"}}
securityContext: {runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true}
podSecurityContext: {fsGroup: 65532}
podLabels: {team: obs}
podAnnotations: {note: everything}
priorityClassName: system-node-critical
nodeSelector: {kubernetes.io/os: linux}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]}]
tolerations: [{key: dedicated, operator: Equal, value: metrics, effect: NoSchedule}]
`

// valuesSets are rendered, linted, dry-run on the apiserver and checked
// against the agent's flag parser.
var valuesSets = []valuesSet{
	{name: "defaults", release: "agent", namespace: "monitoring", values: existingKey},
	{name: "everything", release: "full", namespace: "obs", values: everything},
	{name: "referenced-in-one-namespace", release: "refs", namespace: "monitoring", values: existingKey + `
referencedObjects:
  - {namespace: app, secrets: [basic-auth]}
  - {namespace: app, secrets: [bearer, basic-auth], configMaps: [ca]}
  - {namespace: shop, configMaps: [ca]}
monitors: {namespaceSelector: "team=a"}
`},
	{name: "non-root", release: "nonroot", namespace: "monitoring", values: existingKey + `
securityContext: {runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true}
state: {hostPathType: Directory}
`},
	{name: "strategy-percent", release: "pct", namespace: "monitoring", values: existingKey + `
updateStrategy: {rollingUpdate: {maxUnavailable: 25%}}
`},
	{name: "strategy-on-delete", release: "ondelete", namespace: "monitoring", values: existingKey + `
updateStrategy: {type: OnDelete}
`},
	{name: "service-monitor", release: "sm", namespace: "monitoring", values: existingKey + `
serviceMonitor: {enabled: true, labels: {release: prometheus}, interval: 30s}
endpoint: {access: kubernetes}
`},
	{name: "chart-secret-no-rbac", release: "bare", namespace: "monitoring", values: `
datadog: {apiKey: 0123456789abcdef0123456789abcdef}
rbac: {create: false}
serviceAccount: {create: false, name: nodescraper}
service: {enabled: false}
tolerations: []
`},
}

func (vs valuesSet) file(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), vs.name+".yaml")
	if err := os.WriteFile(p, []byte(vs.values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// render runs helm template and returns the rendered objects.
func render(t *testing.T, h *helm, vs valuesSet, kubeVersion string, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", vs.release, chart, "--namespace", vs.namespace,
		"--kube-version", kubeVersion, "-f", vs.file(t)}, extra...)
	out, err := h.run(args...)
	if err != nil {
		t.Fatalf("%s: %v", vs.name, err)
	}
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatalf("%s: %v", vs.name, err)
	}
	return objs
}

// decodeObjects splits a YAML stream into objects; empty documents are skipped.
func decodeObjects(stream string) ([]*unstructured.Unstructured, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("decode %q: %w", doc, err)
		}
		if m == nil {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of kind.
func one(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := ofKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("%d %s objects rendered, want 1", len(found), kind)
	}
	return found[0]
}

func field(t *testing.T, o *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(o.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s %s: no field %s (%v)", o.GetKind(), o.GetName(), strings.Join(path, "."), err)
	}
	return v
}

// container is the DaemonSet's only container.
func container(t *testing.T, ds *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs := field(t, ds, "spec", "template", "spec", "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return cs[0].(map[string]any)
}

func args(t *testing.T, ds *unstructured.Unstructured) []string {
	t.Helper()
	var out []string
	for _, a := range container(t, ds)["args"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

// flagValue is the value of the last --name=value in args ("" and false when
// absent; a bare --name has the value "true").
func flagValue(args []string, name string) (string, bool) {
	v, found := "", false
	for _, a := range args {
		if a == "--"+name {
			v, found = "true", true
		} else if rest, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v, found = rest, true
		}
	}
	return v, found
}

func get[T any](t *testing.T, m map[string]any, path ...string) T {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(m, path...)
	if err != nil || !ok {
		t.Fatalf("no field %s (%v)", strings.Join(path, "."), err)
	}
	x, ok := v.(T)
	if !ok {
		t.Fatalf("field %s is %T, want %T", strings.Join(path, "."), v, x)
	}
	return x
}

func want[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func appVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q %v", c.AppVersion, err)
	}
	return c.AppVersion
}

func TestLint(t *testing.T) {
	h := newHelm(t)
	for _, vs := range valuesSets {
		out, err := h.run("lint", chart, "--strict", "--namespace", vs.namespace, "--kube-version", renderKubeVersion, "-f", vs.file(t))
		if err != nil || !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("%s: helm lint: %v\n%s", vs.name, err, out)
		}
	}
}

// TestDefaults checks what a plain install renders.
func TestDefaults(t *testing.T) {
	h := newHelm(t)
	objs := render(t, h, valuesSets[0], renderKubeVersion)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(kinds)
	wantKinds := []string{"ClusterRole/monitoring-agent-nodescraper", "ClusterRoleBinding/monitoring-agent-nodescraper",
		"DaemonSet/agent-nodescraper", "Role/agent-nodescraper-lease", "RoleBinding/agent-nodescraper-lease",
		"Service/agent-nodescraper", "ServiceAccount/agent-nodescraper"}
	if !slices.Equal(kinds, wantKinds) {
		t.Fatalf("rendered %v, want %v", kinds, wantKinds)
	}
	// The cluster targets' Lease: this one Lease read and renewed, Leases
	// created only in the release's namespace.
	lease := one(t, objs, "Role")
	want(t, "lease Role namespace", lease.GetNamespace(), "monitoring")
	want(t, "lease Role rules", fmt.Sprint(field(t, lease, "rules")),
		"[map[apiGroups:[coordination.k8s.io] resourceNames:[agent-nodescraper-cluster-targets] resources:[leases] verbs:[get update]] "+
			"map[apiGroups:[coordination.k8s.io] resources:[leases] verbs:[create]]]")

	ds := one(t, objs, "DaemonSet")
	want(t, "namespace", ds.GetNamespace(), "monitoring")
	want(t, "updateStrategy.type", field(t, ds, "spec", "updateStrategy", "type"), any("RollingUpdate"))
	want(t, "maxSurge", fmt.Sprint(field(t, ds, "spec", "updateStrategy", "rollingUpdate", "maxSurge")), "0")
	want(t, "maxUnavailable", fmt.Sprint(field(t, ds, "spec", "updateStrategy", "rollingUpdate", "maxUnavailable")), "1")
	pod := field(t, ds, "spec", "template", "spec").(map[string]any)
	want(t, "serviceAccountName", get[string](t, pod, "serviceAccountName"), "agent-nodescraper")
	want(t, "seccompProfile", get[string](t, pod, "securityContext", "seccompProfile", "type"), "RuntimeDefault")
	want(t, "tolerations", fmt.Sprint(get[[]any](t, pod, "tolerations")), "[map[operator:Exists]]")

	c := container(t, ds)
	want(t, "image", get[string](t, c, "image"), "ghcr.io/nodescraper/nodescraper:"+appVersion(t))
	a := args(t, ds)
	for flag, v := range map[string]string{
		"listen": "0.0.0.0:9105", "state-dir": "/var/lib/nodescraper", "scrape-interval": "30s",
		"dd-site": "datadoghq.com", "shutdown-flush-timeout": "10s", "service-discovery-role": "EndpointSlice",
		"max-series": "2000000", "body-size-limit": "67108864", "memory-limit": "auto", "gc-percent": "25", "log-format": "json",
		"endpoint-access":       "localhost",
		"max-series-per-target": "0", "max-series-per-namespace": "0", "max-bytes-in-flight": "auto",
	} {
		got, ok := flagValue(a, flag)
		if !ok || got != v {
			t.Errorf("--%s = %q (set %v), want %q", flag, got, ok, v)
		}
	}
	for _, absent := range []string{"scrape-timeout", "dd-url", "allow-insecure-datadog-url", "cluster-name", "monitor-selector", "allow-other-addresses", "trusted-namespaces", "enable-pprof"} {
		if _, ok := flagValue(a, absent); ok {
			t.Errorf("--%s set by default", absent)
		}
	}
	flush, _ := flagValue(a, "shutdown-flush-timeout")
	if d, err := time.ParseDuration(flush); err != nil || d.Seconds() >= get[float64](t, pod, "terminationGracePeriodSeconds") {
		t.Errorf("terminationGracePeriodSeconds %v not above --shutdown-flush-timeout %s", pod["terminationGracePeriodSeconds"], flush)
	}

	want(t, "port", fmt.Sprint(get[[]any](t, c, "ports")), "[map[containerPort:9105 name:http protocol:TCP]]")
	want(t, "readiness", fmt.Sprint(get[map[string]any](t, c, "readinessProbe", "httpGet")), "map[path:/readyz port:http]")
	want(t, "liveness", fmt.Sprint(get[map[string]any](t, c, "livenessProbe", "httpGet")), "map[path:/healthz port:http]")
	env := fmt.Sprint(get[[]any](t, c, "env"))
	for _, e := range []string{"map[name:NODE_NAME valueFrom:map[fieldRef:map[fieldPath:spec.nodeName]]]",
		"map[name:DD_API_KEY_FILE value:/etc/nodescraper/api-key/api-key]",
		"map[name:DD_USE_V3_API_SERIES_ENABLED value:datadog_only]"} {
		if !strings.Contains(env, e) {
			t.Errorf("env %s lacks %s", env, e)
		}
	}
	sc := get[map[string]any](t, c, "securityContext")
	want(t, "runAsUser", fmt.Sprint(sc["runAsUser"]), "65532")
	want(t, "runAsGroup", fmt.Sprint(sc["runAsGroup"]), "65532")
	want(t, "runAsNonRoot", sc["runAsNonRoot"], any(true))
	want(t, "readOnlyRootFilesystem", sc["readOnlyRootFilesystem"], any(true))
	want(t, "allowPrivilegeEscalation", sc["allowPrivilegeEscalation"], any(false))
	want(t, "capabilities", fmt.Sprint(sc["capabilities"]), "map[drop:[ALL]]")
	want(t, "resources", fmt.Sprint(c["resources"]), "map[limits:map[memory:512Mi] requests:map[cpu:100m memory:128Mi]]")

	vols := fmt.Sprint(get[[]any](t, pod, "volumes"))
	for _, v := range []string{"map[hostPath:map[path:/var/lib/nodescraper/monitoring-agent type:DirectoryOrCreate] name:state]",
		"map[name:api-key secret:map[secretName:datadog-api-key]]"} {
		if !strings.Contains(vols, v) {
			t.Errorf("volumes %s lack %s", vols, v)
		}
	}

	svc := one(t, objs, "Service")
	want(t, "internalTrafficPolicy", field(t, svc, "spec", "internalTrafficPolicy"), any("Local"))
	want(t, "service ports", fmt.Sprint(field(t, svc, "spec", "ports")), "[map[name:http port:9105 protocol:TCP targetPort:http]]")
	podLabels := get[map[string]any](t, ds.Object, "spec", "template", "metadata", "labels")
	for k, v := range field(t, svc, "spec", "selector").(map[string]any) {
		if podLabels[k] != v {
			t.Errorf("Service selects %s=%v, pods have %v", k, v, podLabels[k])
		}
	}

	cr := one(t, objs, "ClusterRole")
	rules := fmt.Sprint(field(t, cr, "rules"))
	for _, forbidden := range []string{"secrets", "configmaps", "namespaces", "metrics", "nonResourceURLs", "create", "update", "delete", "patch"} {
		if strings.Contains(rules, forbidden) {
			t.Errorf("ClusterRole grants %s: %s", forbidden, rules)
		}
	}
	crb := one(t, objs, "ClusterRoleBinding")
	want(t, "binding subject", fmt.Sprint(field(t, crb, "subjects")), "[map[kind:ServiceAccount name:agent-nodescraper namespace:monitoring]]")
}

// TestNamesPerReleaseAndNamespace: releases never share a name outside their
// namespace, nor a state directory.
func TestNamesPerReleaseAndNamespace(t *testing.T) {
	h := newHelm(t)
	seen := map[string]string{}
	for _, vs := range []valuesSet{
		{name: "a-in-team-a", release: "agent", namespace: "team-a", values: existingKey},
		{name: "a-in-team-b", release: "agent", namespace: "team-b", values: existingKey},
		{name: "b-in-team-a", release: "other", namespace: "team-a", values: existingKey},
		{name: "override-in-team-c", release: "x", namespace: "team-c", values: existingKey + "fullnameOverride: agent-nodescraper\n"},
		{name: "refs-in-team-d", release: "agent", namespace: "team-d", values: existingKey + "referencedObjects: [{namespace: app, secrets: [s]}]\n"},
		{name: "refs-in-team-e", release: "agent", namespace: "team-e", values: existingKey + "referencedObjects: [{namespace: app, secrets: [s]}]\n"},
	} {
		objs := render(t, h, vs, renderKubeVersion)
		ds := one(t, objs, "DaemonSet")
		keys := []string{"hostPath " + fmt.Sprint(field(t, ds, "spec", "template", "spec", "volumes").([]any)[0].(map[string]any)["hostPath"])}
		for _, o := range objs {
			ns := o.GetNamespace()
			if ns == vs.namespace {
				continue // namespaced in the release's own namespace: helm refuses a clash there
			}
			if !strings.HasPrefix(o.GetName(), vs.namespace+"-") {
				t.Errorf("%s: %s %s/%s outside the release namespace lacks it in its name", vs.name, o.GetKind(), ns, o.GetName())
			}
			keys = append(keys, o.GetKind()+" "+ns+"/"+o.GetName())
		}
		for _, k := range keys {
			if other, dup := seen[k]; dup {
				t.Errorf("%s and %s both render %s", other, vs.name, k)
			}
			seen[k] = vs.name
		}
	}
	if got := one(t, render(t, h, valuesSet{name: "plain", release: "nodescraper", namespace: "monitoring", values: existingKey}, renderKubeVersion), "DaemonSet").GetName(); got != "nodescraper" {
		t.Errorf("release nodescraper: DaemonSet %q, want nodescraper", got)
	}
}

// TestReferencedObjectsMerged: one Role and RoleBinding per referenced
// namespace, holding every object named for it.
func TestReferencedObjectsMerged(t *testing.T) {
	h := newHelm(t)
	objs := render(t, h, valuesSets[2], renderKubeVersion)
	roles := map[string]string{}
	for _, r := range ofKind(objs, "Role") {
		if strings.HasSuffix(r.GetName(), "-lease") {
			continue // the cluster targets' Lease, see TestDefaults
		}
		if _, dup := roles[r.GetNamespace()]; dup {
			t.Errorf("two Roles in %s", r.GetNamespace())
		}
		want(t, "Role name", r.GetName(), "monitoring-refs-nodescraper-refs")
		roles[r.GetNamespace()] = fmt.Sprint(field(t, r, "rules"))
	}
	wantRoles := map[string]string{
		"app": "[map[apiGroups:[] resourceNames:[basic-auth bearer] resources:[secrets] verbs:[get list watch]] " +
			"map[apiGroups:[] resourceNames:[ca] resources:[configmaps] verbs:[get list watch]]]",
		"shop": "[map[apiGroups:[] resourceNames:[ca] resources:[configmaps] verbs:[get list watch]]]",
	}
	if fmt.Sprint(roles) != fmt.Sprint(wantRoles) {
		t.Errorf("Roles:\n%v\nwant\n%v", roles, wantRoles)
	}
	bindings := slices.DeleteFunc(ofKind(objs, "RoleBinding"), func(b *unstructured.Unstructured) bool { return strings.HasSuffix(b.GetName(), "-lease") })
	if len(bindings) != 2 {
		t.Fatalf("%d RoleBindings, want 2", len(bindings))
	}
	for _, b := range bindings {
		want(t, "RoleBinding roleRef", fmt.Sprint(field(t, b, "roleRef", "name")), "monitoring-refs-nodescraper-refs")
		want(t, "RoleBinding subject", fmt.Sprint(field(t, b, "subjects")), "[map[kind:ServiceAccount name:refs-nodescraper namespace:monitoring]]")
	}
	if !strings.Contains(fmt.Sprint(field(t, one(t, objs, "ClusterRole"), "rules")), "namespaces") {
		t.Error("monitors.namespaceSelector set, but the ClusterRole does not grant reading Namespaces")
	}
}

// TestEveryOption checks that each value reaches the rendered objects.
func TestEveryOption(t *testing.T) {
	h := newHelm(t)
	objs := render(t, h, valuesSets[1], renderKubeVersion)
	ds := one(t, objs, "DaemonSet")
	want(t, "DaemonSet name", ds.GetName(), "node-agent")
	want(t, "ClusterRole name", one(t, objs, "ClusterRole").GetName(), "obs-node-agent")
	want(t, "selector name label", fmt.Sprint(field(t, ds, "spec", "selector", "matchLabels", "app.kubernetes.io/name")), "scraper")
	a := args(t, ds)
	for flag, v := range map[string]string{
		"listen": "0.0.0.0:9200", "dd-site": "datadoghq.eu", "dd-url": "http://intake.obs.svc:8129", "allow-insecure-datadog-url": "true",
		"cluster-name": "prod-eu", "metric-namespace": "k8s", "monitor-namespaces": "shop,payments",
		"monitor-selector": "team in (a,b),tier!=dev", "monitor-namespace-selector": "monitoring=on",
		"service-discovery-role": "Endpoints", "allow-other-addresses": "true", "trusted-namespaces": "monitoring,kube-system",
		"allowed-proxy-urls": "http://proxy.corp:3128,https://proxy2.corp:443", "allowed-token-urls": "https://idp.corp/oauth2/",
		"scrape-interval": "15s", "scrape-timeout": "5s", "max-series": "500000", "sample-limit": "100000",
		"max-series-per-target": "100000", "max-series-per-namespace": "250000", "max-bytes-in-flight": "96MiB",
		"label-limit":             "50", // extraArgs wins over labelLimit 40
		"label-name-length-limit": "128", "label-value-length-limit": "1024", "body-size-limit": "-1",
		"flush-interval": "10s", "compression": "gzip", "send-concurrency": "4", "queue-max-bytes": "32MiB",
		"spool-max-bytes": "1GiB", "shutdown-flush-timeout": "20s", "checkpoint-interval": "30s",
		"checkpoint-max-age": "2h", "series-stale-after": "30m", "memory-limit": "400MiB",
		"log-level": "debug", "log-format": "text", "enable-pprof": "true", "state-dir": "/var/lib/nodescraper",
		"dd-app-key-file": "/etc/nodescraper/app-key/app", "metadata-interval": "12h", "metadata-max-names": "5000", "report-series": "false",
		"service-checks": "false", "tag-cardinality": "orchestrator", "include-labels": "code,method",
		"exclude-labels": "instance", "rename-labels": "method=http_method",
		"enforced-sample-limit": "50000", "enforced-target-limit": "20", "enforced-label-limit": "30",
		"enforced-label-name-length-limit": "100", "enforced-label-value-length-limit": "500",
		"enforced-body-size-limit": "10485760", "enforced-keep-dropped-targets": "5", "enforced-namespace-label": "tenant",
		"ignore-namespace-selectors": "true", "override-honor-labels": "true", "override-honor-timestamps": "true",
		"endpoint-access": "kubernetes",
	} {
		got, ok := flagValue(a, flag)
		if !ok || got != v {
			t.Errorf("--%s = %q (set %v), want %q", flag, got, ok, v)
		}
	}

	pod := field(t, ds, "spec", "template").(map[string]any)
	c := container(t, ds)
	for what, pair := range map[string][2]string{
		"image":              {fmt.Sprint(c["image"]), "registry.example/team/nodescraper:0.1.0-rc1"},
		"pullPolicy":         {fmt.Sprint(c["imagePullPolicy"]), "Always"},
		"imagePullSecrets":   {fmt.Sprint(get[any](t, pod, "spec", "imagePullSecrets")), "[map[name:regcred]]"},
		"serviceAccount":     {fmt.Sprint(get[any](t, pod, "spec", "serviceAccountName")), "scraper-sa"},
		"priorityClass":      {fmt.Sprint(get[any](t, pod, "spec", "priorityClassName")), "system-node-critical"},
		"nodeSelector":       {fmt.Sprint(get[any](t, pod, "spec", "nodeSelector")), "map[kubernetes.io/os:linux]"},
		"tolerations":        {fmt.Sprint(get[any](t, pod, "spec", "tolerations")), "[map[effect:NoSchedule key:dedicated operator:Equal value:metrics]]"},
		"affinity":           {fmt.Sprint(get[any](t, pod, "spec", "affinity", "nodeAffinity") != nil), "true"},
		"grace":              {fmt.Sprint(get[any](t, pod, "spec", "terminationGracePeriodSeconds")), "45"},
		"podSecurity":        {fmt.Sprint(get[any](t, pod, "spec", "securityContext")), "map[fsGroup:65532 seccompProfile:map[type:RuntimeDefault]]"},
		"podLabel":           {fmt.Sprint(get[any](t, pod, "metadata", "labels", "team")), "obs"},
		"podAnnotation":      {fmt.Sprint(get[any](t, pod, "metadata", "annotations", "note")), "everything"},
		"selectorNoPodLabel": {fmt.Sprint(len(get[map[string]any](t, ds.Object, "spec", "selector", "matchLabels"))), "2"},
		"runAsUser":          {fmt.Sprint(get[any](t, c, "securityContext", "runAsUser")), "65532"},
		"runAsNonRoot":       {fmt.Sprint(get[any](t, c, "securityContext", "runAsNonRoot")), "true"},
		"readOnlyRoot":       {fmt.Sprint(get[any](t, c, "securityContext", "readOnlyRootFilesystem")), "true"},
		"resources":          {fmt.Sprint(c["resources"]), "map[limits:map[cpu:1 memory:1Gi] requests:map[cpu:200m memory:256Mi]]"},
		"strategy":           {fmt.Sprint(field(t, ds, "spec", "updateStrategy")), "map[rollingUpdate:map[maxSurge:0 maxUnavailable:10%] type:RollingUpdate]"},
		"hostPath":           {fmt.Sprint(get[[]any](t, pod, "spec", "volumes")[0]), "map[hostPath:map[path:/data/nodescraper type:Directory] name:state]"},
		"apiKeySecret":       {fmt.Sprint(get[[]any](t, pod, "spec", "volumes")[1]), "map[name:api-key secret:map[secretName:dd-key]]"},
		"appKeySecret":       {fmt.Sprint(get[[]any](t, pod, "spec", "volumes")[2]), "map[name:app-key secret:map[secretName:dd-app-key]]"},
		"appKeyMount":        {fmt.Sprint(get[[]any](t, c, "volumeMounts")[2]), "map[mountPath:/etc/nodescraper/app-key name:app-key readOnly:true]"},
		"port":               {fmt.Sprint(c["ports"]), "[map[containerPort:9200 name:http protocol:TCP]]"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s = %s, want %s", what, pair[0], pair[1])
		}
	}
	env := fmt.Sprint(c["env"])
	for _, e := range []string{"map[name:DD_API_KEY_FILE value:/etc/nodescraper/api-key/key]",
		"map[name:DD_USE_V3_API_SERIES_ENABLED value:true]",
		"map[name:HTTPS_PROXY value:http://proxy.internal:3128]", "map[name:NO_PROXY value:10.96.0.1,.svc]",
		"map[name:PROXY_TOKEN valueFrom:map[secretKeyRef:map[key:token name:proxy]]]"} {
		if !strings.Contains(env, e) {
			t.Errorf("env %s lacks %s", env, e)
		}
	}

	sa := one(t, objs, "ServiceAccount")
	want(t, "ServiceAccount", sa.GetName(), "scraper-sa")
	want(t, "ServiceAccount annotation", sa.GetAnnotations()["eks.amazonaws.com/role-arn"], "arn:aws:iam::1:role/x")
	svc := one(t, objs, "Service")
	want(t, "Service", fmt.Sprint(svc.GetAnnotations(), field(t, svc, "spec", "ports")), "map[owner:obs] [map[name:http port:80 protocol:TCP targetPort:http]]")
	sm := one(t, objs, "ServiceMonitor")
	want(t, "ServiceMonitor label", sm.GetLabels()["release"], "prom")
	want(t, "ServiceMonitor endpoints", fmt.Sprint(field(t, sm, "spec", "endpoints")),
		"[map[bearerTokenFile:/var/run/secrets/kubernetes.io/serviceaccount/token interval:1m metricRelabelings:[map[action:drop regex:go_.* sourceLabels:[__name__]]] path:/metrics port:http "+
			"relabelings:[map[action:replace sourceLabels:[__meta_kubernetes_pod_node_name] targetLabel:node]] scrapeTimeout:10s]]")
	want(t, "ServiceMonitor selector", fmt.Sprint(field(t, sm, "spec", "selector", "matchLabels")), fmt.Sprint(field(t, svc, "spec", "selector")))
	if len(ofKind(objs, "Secret")) != 0 {
		t.Error("a Secret rendered although datadog.apiKeyExistingSecret is set")
	}
}

// TestVariants: the non-root, strategy, ServiceMonitor and bare sets.
func TestVariants(t *testing.T) {
	h := newHelm(t)
	byName := map[string]valuesSet{}
	for _, vs := range valuesSets {
		byName[vs.name] = vs
	}
	ds := one(t, render(t, h, byName["non-root"], renderKubeVersion), "DaemonSet")
	c := container(t, ds)
	want(t, "non-root securityContext", fmt.Sprint(c["securityContext"]),
		"map[allowPrivilegeEscalation:false capabilities:map[drop:[ALL]] readOnlyRootFilesystem:true runAsGroup:65532 runAsNonRoot:true runAsUser:65532]")
	want(t, "non-root hostPath", fmt.Sprint(field(t, ds, "spec", "template", "spec", "volumes").([]any)[0]),
		"map[hostPath:map[path:/var/lib/nodescraper/monitoring-nonroot type:Directory] name:state]")

	ds = one(t, render(t, h, byName["strategy-percent"], renderKubeVersion), "DaemonSet")
	want(t, "percent strategy", fmt.Sprint(field(t, ds, "spec", "updateStrategy")), "map[rollingUpdate:map[maxSurge:0 maxUnavailable:25%] type:RollingUpdate]")
	ds = one(t, render(t, h, byName["strategy-on-delete"], renderKubeVersion), "DaemonSet")
	want(t, "OnDelete strategy", fmt.Sprint(field(t, ds, "spec", "updateStrategy")), "map[type:OnDelete]")

	objs := render(t, h, byName["service-monitor"], renderKubeVersion)
	sm := one(t, objs, "ServiceMonitor")
	want(t, "ServiceMonitor", sm.GetNamespace()+"/"+sm.GetName(), "monitoring/sm-nodescraper")
	want(t, "ServiceMonitor namespaces", fmt.Sprint(field(t, sm, "spec", "namespaceSelector")), "map[matchNames:[monitoring]]")
	if len(ofKind(render(t, h, valuesSets[0], renderKubeVersion), "ServiceMonitor")) != 0 {
		t.Error("a ServiceMonitor rendered by default")
	}

	objs = render(t, h, byName["chart-secret-no-rbac"], renderKubeVersion)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(kinds)
	want(t, "bare install", fmt.Sprint(kinds), "[DaemonSet/bare-nodescraper Secret/bare-nodescraper-api-key]")
	ds = one(t, objs, "DaemonSet")
	want(t, "bare ServiceAccount", fmt.Sprint(field(t, ds, "spec", "template", "spec", "serviceAccountName")), "nodescraper")
	if _, ok, _ := unstructured.NestedFieldNoCopy(ds.Object, "spec", "template", "spec", "tolerations"); ok {
		t.Error("tolerations: [] still renders tolerations")
	}
	want(t, "chart Secret", fmt.Sprint(field(t, one(t, objs, "Secret"), "data")), "map[api-key:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]")
}

// TestSchemaRejects: bad values fail before anything renders, saying which
// value and why.
func TestSchemaRejects(t *testing.T) {
	h := newHelm(t)
	for _, c := range []struct {
		set  []string
		want []string
	}{
		{[]string{"scrape.interval=banana"}, []string{"at '/scrape/interval'", "'banana' does not match pattern"}},
		{[]string{"scrape.intervall=30s"}, []string{"at '/scrape'", "additional properties 'intervall' not allowed"}},
		{[]string{"colour=blue"}, []string{"additional properties 'colour' not allowed"}},
		{[]string{"tolerations[0].operater=Exists"}, []string{"at '/tolerations/0'", "additional properties 'operater' not allowed"}},
		{[]string{"scrape.maxSeries=-5"}, []string{"at '/scrape/maxSeries'", "minimum: got -5, want 1"}},
		{[]string{"scrape.sampleLimit=0"}, []string{"at '/scrape/sampleLimit'"}},
		{[]string{"scrape.maxSeriesPerTarget=-1"}, []string{"at '/scrape/maxSeriesPerTarget'", "minimum: got -1, want 0"}},
		{[]string{"scrape.maxBytesInFlight=lots"}, []string{"at '/scrape/maxBytesInFlight'", "'lots' does not match pattern"}},
		{[]string{"send.compression=lz4"}, []string{"at '/send/compression'", "value must be one of"}},
		{[]string{"send.spoolMaxBytes=lots"}, []string{"at '/send/spoolMaxBytes'", "'lots' does not match pattern"}},
		{[]string{"send.concurrency=1000"}, []string{"at '/send/concurrency'", "maximum"}},
		{[]string{"state.checkpointInterval=5x"}, []string{"at '/state/checkpointInterval'"}},
		{[]string{"log.level=verbose"}, []string{"at '/log/level'"}},
		{[]string{"memoryLimit=most"}, []string{"at '/memoryLimit'"}},
		{[]string{"endpoint.port=70000"}, []string{"at '/endpoint/port'"}},
		{[]string{"monitors.trustedNamespaces[0]=Kube_System"}, []string{"at '/monitors/trustedNamespaces/0'"}},
		{[]string{"referencedObjects[0].secrets[0]=s"}, []string{"at '/referencedObjects/0'", "missing property 'namespace'"}},
		{[]string{"updateStrategy.rollingUpdate.maxSurge=1"}, []string{"maxSurge=1: a surge pod would wait for the old pod's lock", "never finish"}},
		{[]string{"datadog.apiKeyExistingSecret="}, []string{"set datadog.apiKeyExistingSecret (recommended) or datadog.apiKey"}},
		{[]string{"serviceMonitor.enabled=true", "service.enabled=false"}, []string{"serviceMonitor.enabled needs service.enabled"}},
		{[]string{"datadog.useV3APISeries=sometimes"}, []string{"at '/datadog/useV3APISeries'"}},
		{[]string{"endpoint.access=public"}, []string{"at '/endpoint/access'", "value must be one of"}},
		{[]string{"serviceMonitor.enabled=true"}, []string{"serviceMonitor.enabled needs endpoint.access kubernetes (or open)"}},
		{[]string{"networkPolicy.from[0].namespaceSelektor.x=y"}, []string{"at '/networkPolicy/from/0'", "additional properties 'namespaceSelektor' not allowed"}},
		{[]string{"datadog.url=http://intake.obs.svc:8129"}, []string{"datadog.url=http://intake.obs.svc:8129: plain http would send the Datadog API key", "datadog.allowInsecureURL=true"}},
	} {
		args := []string{"template", "x", chart, "--kube-version", renderKubeVersion, "-f", valuesSets[0].file(t)}
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		_, err := h.run(args...)
		if err == nil {
			t.Errorf("--set %v: rendered, want it refused", c.set)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("--set %v: error lacks %q:\n%v", c.set, w, err)
			}
		}
	}
	// helm lint says the same.
	_, err := h.run("lint", chart, "--kube-version", renderKubeVersion, "-f", valuesSets[0].file(t), "--set", "scrape.interval=banana")
	if err == nil || !strings.Contains(err.Error(), "'banana' does not match pattern") {
		t.Errorf("helm lint with scrape.interval=banana: %v", err)
	}
}

// TestREADMEListsEveryValue: the chart README's table has a row for every
// value of values.yaml.
func TestREADMEListsEveryValue(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(chart, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var leaves func(prefix string, m map[string]any)
	n := 0
	leaves = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + k
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				leaves(path+".", sub)
				continue
			}
			n++
			row := "| `" + path + "` |"
			if !bytes.Contains(readme, []byte(row)) {
				t.Errorf("charts/nodescraper/README.md has no row %s", row)
			}
		}
	}
	leaves("", values)
	if n < 60 {
		t.Errorf("only %d values found in values.yaml", n)
	}
}

// agentFlagsFromValues are the agent's flags the chart leaves out on
// purpose; every other flag must be reachable from values.
var agentFlagsFromValues = map[string]string{
	"node-name":           "NODE_NAME from the downward API",
	"kubeconfig":          "in-cluster credentials",
	"static-targets":      "local mode only",
	"dd-api-key-file":     "DD_API_KEY_FILE, the mounted Secret",
	"dry-run":             "extraArgs",
	"service-account-dir": "the pod's own service-account mount, at its standard path",
	"version":             "not an agent setting",
	"local-listen":        "the agent's own default, 127.0.0.1:<endpoint.port> beside a hostNetwork --listen (extraArgs to change it)",
	"use-v3-api-series":   "DD_USE_V3_API_SERIES_ENABLED, from datadog.useV3APISeries",
}

// TestEveryAgentFlagReachable reads the agent's flag definitions and checks
// the "everything" set renders each one.
func TestEveryAgentFlagReachable(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "cmd", "nodescraper", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	defs := regexp.MustCompile(`fs\.[A-Za-z0-9]+\((?:&[^,]+, )?"([a-z0-9-]+)"`).FindAllSubmatch(src, -1)
	if len(defs) < 30 {
		t.Fatalf("found %d flag definitions in cmd/nodescraper/config.go; the pattern no longer matches them", len(defs))
	}
	a := args(t, one(t, render(t, newHelm(t), valuesSets[1], renderKubeVersion), "DaemonSet"))
	for _, d := range defs {
		name := string(d[1])
		if _, skip := agentFlagsFromValues[name]; skip {
			continue
		}
		if _, ok := flagValue(a, name); !ok {
			t.Errorf("agent flag --%s is not reachable from the chart's values (add a value, or list it in agentFlagsFromValues)", name)
		}
	}
}

// TestAgentAcceptsRenderedArgs runs the agent with each set's rendered
// arguments and plain environment values: its configuration check must pass (exit 2 is a configuration
// error); it then stops at the missing kubeconfig, the first thing that
// needs a cluster.
func TestAgentAcceptsRenderedArgs(t *testing.T) {
	h := newHelm(t)
	bin := filepath.Join(t.TempDir(), "nodescraper")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/nodescraper")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/nodescraper: %v\n%s", err, out)
	}
	missing := filepath.Join(t.TempDir(), "missing.kubeconfig")
	for _, vs := range valuesSets {
		ds := one(t, render(t, h, vs, renderKubeVersion), "DaemonSet")
		a := args(t, ds)
		// --dry-run: nothing is sent and the state directory is not used.
		cmd := exec.CommandContext(t.Context(), bin, append(a, "--dry-run", "--kubeconfig="+missing)...)
		// The rendered environment's plain values (DD_USE_V3_API_SERIES_ENABLED, ...).
		cmd.Env = []string{"NODE_NAME=node-a"}
		for _, e := range get[[]any](t, container(t, ds), "env") {
			if e, ok := e.(map[string]any); ok && e["value"] != nil {
				cmd.Env = append(cmd.Env, fmt.Sprint(e["name"], "=", e["value"]))
			}
		}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "missing.kubeconfig") {
			t.Errorf("%s: nodescraper %s: %v, want exit 1 at the kubeconfig:\n%s", vs.name, strings.Join(a, " "), err, out)
		}
	}
}

// TestTrustedNamespacesRBAC: trusting namespaces adds to the ClusterRole
// exactly what kube-prometheus' ClusterRole grants its Prometheus for the
// targets scraped with its own token, and nothing else.
func TestTrustedNamespacesRBAC(t *testing.T) {
	h := newHelm(t)
	rules := func(values string) []any {
		objs := render(t, h, valuesSet{name: "trusted", release: "agent", namespace: "monitoring", values: existingKey + values}, renderKubeVersion)
		return field(t, one(t, objs, "ClusterRole"), "rules").([]any)
	}
	base := rules("")
	with := rules("monitors: {trustedNamespaces: [monitoring]}\n")
	if len(with) < len(base) || fmt.Sprint(with[:len(base)]) != fmt.Sprint(base) {
		t.Fatalf("rules with trustedNamespaces %v do not begin with the default rules %v", with, base)
	}
	want(t, "rules added by trustedNamespaces", fmt.Sprint(with[len(base):]),
		"[map[apiGroups:[] resources:[nodes/metrics] verbs:[get]] map[nonResourceURLs:[/metrics /metrics/slis] verbs:[get]]]")
	a := args(t, one(t, render(t, h, valuesSet{name: "trusted", release: "agent", namespace: "monitoring",
		values: existingKey + "monitors: {trustedNamespaces: [monitoring, kube-system]}\n"}, renderKubeVersion), "DaemonSet"))
	if v, _ := flagValue(a, "trusted-namespaces"); v != "monitoring,kube-system" {
		t.Errorf("--trusted-namespaces=%q, want monitoring,kube-system", v)
	}
}
