package charts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// warnings collects the apiserver's warnings (an unknown field, a
// deprecated API, a duplicate env entry, ...).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// TestCluster applies the chart to a real kube-apiserver: every values set
// as a server-side dry-run, then real helm installs, upgrade and uninstall,
// with the RBAC checked from the chart's ServiceAccount token.
func TestCluster(t *testing.T) {
	h := newHelm(t) // fails first when helm is missing
	cp := controlplane.ForTest(t, controlplane.Config{})
	h.kubeconfig = cp.Kubeconfig
	sv, err := cp.Kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	warned := &warnings{}
	cfg := rest.CopyConfig(cp.Admin)
	cfg.WarningHandler = warned
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(cp.Kube.Discovery())
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	resource := func(gvk schema.GroupVersionKind, namespace string) (dynamic.ResourceInterface, error) {
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, err
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			return dyn.Resource(m.Resource).Namespace(namespace), nil
		}
		return dyn.Resource(m.Resource), nil
	}

	t.Run("dry-run", func(t *testing.T) {
		ctx := t.Context()
		for _, vs := range valuesSets {
			objs := render(t, h, vs, sv.GitVersion)
			for _, o := range objs {
				if ns := o.GetNamespace(); ns != "" {
					createNamespace(t, cp.Kube, ns)
				}
			}
			accepted := 0
			for _, o := range objs {
				ri, err := resource(o.GroupVersionKind(), o.GetNamespace())
				if err != nil {
					t.Errorf("%s: %s: %v", vs.name, o.GetKind(), err)
					continue
				}
				_, err = ri.Create(ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
				if err != nil {
					t.Errorf("%s: %s %s/%s refused by kube-apiserver: %v", vs.name, o.GetKind(), o.GetNamespace(), o.GetName(), err)
					continue
				}
				accepted++
			}
			if w := warned.take(); len(w) > 0 {
				t.Errorf("%s: kube-apiserver warnings: %q", vs.name, w)
			}
			t.Logf("%s: %d of %d objects accepted (dry-run)", vs.name, accepted, len(objs))
		}
	})

	t.Run("install", func(t *testing.T) { testInstall(t, h, cp) })
}

func createNamespace(t *testing.T, kube kubernetes.Interface, name string) {
	t.Helper()
	_, err := kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// testInstall installs the same release name in two namespaces and a second
// release beside one of them, checks what the ServiceAccount may read, then
// upgrades and uninstalls.
func testInstall(t *testing.T, h *helm, cp *controlplane.ControlPlane) {
	ctx := t.Context()
	cm := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name}, Data: map[string]string{"ca.crt": "x"}}
	}
	if err := cp.Create(ctx,
		controlplane.Secret("app", "creds", map[string]string{"password": "p"}),
		controlplane.Secret("app", "other", map[string]string{"password": "q"}),
		cm("ca"), cm("ca2"),
	); err != nil {
		t.Fatal(err)
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`
datadog: {apiKey: 0123456789abcdef0123456789abcdef}
referencedObjects:
  - {namespace: app, secrets: [creds]}
  - {namespace: app, configMaps: [ca]}
monitors: {trustedNamespaces: [monitoring]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	install := func(release, namespace string, extra ...string) string {
		t.Helper()
		out, err := h.run(append([]string{"install", release, chart, "--namespace", namespace, "--create-namespace", "-f", values}, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	notes := install("agent", "team-a")
	t.Logf("helm install team-a/agent:\n%s", notes)
	for _, w := range []string{"kubectl -n team-a get daemonset agent-nodescraper", "port-forward", "/targets", "/readyz",
		"internalTrafficPolicy Local", "/var/lib/nodescraper/team-a-agent"} {
		if !strings.Contains(notes, w) {
			t.Errorf("NOTES lack %q:\n%s", w, notes)
		}
	}
	install("agent", "team-b") // the same release name in another namespace
	install("other", "team-a") // a second release beside the first

	kube := cp.Kube
	for _, name := range []string{"team-a-agent-nodescraper", "team-b-agent-nodescraper", "team-a-other-nodescraper"} {
		if _, err := kube.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("ClusterRole %s: %v", name, err)
		}
	}
	roles, err := kube.RbacV1().Roles("app").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var roleNames []string
	for _, r := range roles.Items {
		roleNames = append(roleNames, r.Name)
	}
	slices.Sort(roleNames)
	want(t, "Roles in app", fmt.Sprint(roleNames), "[team-a-agent-nodescraper-refs team-a-other-nodescraper-refs team-b-agent-nodescraper-refs]")
	hostPaths := map[string]bool{}
	for _, ns := range []string{"team-a", "team-b"} {
		dss, err := kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ds := range dss.Items {
			hostPaths[ds.Spec.Template.Spec.Volumes[0].HostPath.Path] = true
		}
	}
	want(t, "distinct state directories", len(hostPaths), 3)

	t.Run("rbac", func(t *testing.T) { checkRBAC(t, cp) })

	if _, err := h.run("upgrade", "agent", chart, "--namespace", "team-a", "-f", values, "--set", "scrape.interval=15s"); err != nil {
		t.Fatal(err)
	}
	ds, err := kube.AppsV1().DaemonSets("team-a").Get(ctx, "agent-nodescraper", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := flagValue(ds.Spec.Template.Spec.Containers[0].Args, "scrape-interval"); v != "15s" {
		t.Errorf("after helm upgrade: --scrape-interval=%q, want 15s", v)
	}

	if _, err := h.run("uninstall", "agent", "--namespace", "team-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.RbacV1().ClusterRoles().Get(ctx, "team-a-agent-nodescraper", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after helm uninstall: ClusterRole team-a-agent-nodescraper: %v, want not found", err)
	}
	if _, err := kube.RbacV1().Roles("app").Get(ctx, "team-a-agent-nodescraper-refs", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after helm uninstall: Role app/team-a-agent-nodescraper-refs: %v, want not found", err)
	}
	if _, err := kube.RbacV1().ClusterRoles().Get(ctx, "team-b-agent-nodescraper", metav1.GetOptions{}); err != nil {
		t.Errorf("uninstalling team-a/agent removed team-b's ClusterRole: %v", err)
	}
}

// checkRBAC acts as team-a/agent's ServiceAccount, with a bound token as the
// kubelet mounts it: what discovery needs and the referenced objects are
// readable, nothing else.
func checkRBAC(t *testing.T, cp *controlplane.ControlPlane) {
	ctx := t.Context()
	saCfg, err := cp.ServiceAccountConfig(ctx, "team-a", "agent-nodescraper")
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(saCfg)
	if err != nil {
		t.Fatal(err)
	}
	saDyn, err := dynamic.NewForConfig(saCfg)
	if err != nil {
		t.Fatal(err)
	}
	one := metav1.ListOptions{FieldSelector: "metadata.name=creds"}
	core := sa.CoreV1()
	allowed := map[string]func(context.Context) error{
		"get secret app/creds": func(ctx context.Context) error {
			_, err := core.Secrets("app").Get(ctx, "creds", metav1.GetOptions{})
			return err
		},
		"list+watch secret app/creds by name": func(ctx context.Context) error { _, err := core.Secrets("app").List(ctx, one); return err },
		"get configmap app/ca": func(ctx context.Context) error {
			_, err := core.ConfigMaps("app").Get(ctx, "ca", metav1.GetOptions{})
			return err
		},
		"list pods in all namespaces": func(ctx context.Context) error { _, err := core.Pods("").List(ctx, metav1.ListOptions{}); return err },
		"list services in all namespaces": func(ctx context.Context) error {
			_, err := core.Services("").List(ctx, metav1.ListOptions{})
			return err
		},
		"list nodes": func(ctx context.Context) error { _, err := core.Nodes().List(ctx, metav1.ListOptions{}); return err },
		"list endpointslices in all namespaces": func(ctx context.Context) error {
			_, err := sa.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
			return err
		},
		// monitors.trustedNamespaces: what targets scraped with the
		// agent's own token ask of it, as kube-prometheus grants it.
		"get /metrics":                    getPath(sa, "/metrics"),
		"get /metrics/slis":               getPath(sa, "/metrics/slis"),
		"get nodes/metrics (a kubelet's)": can(sa, authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "metrics", Name: "node-a"}),
		"list servicemonitors and podmonitors": func(ctx context.Context) error {
			for _, kind := range []string{"ServiceMonitor", "PodMonitor"} {
				gvr := schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: strings.ToLower(kind) + "s"}
				if _, err := saDyn.Resource(gvr).List(ctx, metav1.ListOptions{}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	forbidden := map[string]func(context.Context) error{
		"get secret app/other": func(ctx context.Context) error {
			_, err := core.Secrets("app").Get(ctx, "other", metav1.GetOptions{})
			return err
		},
		"get configmap app/ca2": func(ctx context.Context) error {
			_, err := core.ConfigMaps("app").Get(ctx, "ca2", metav1.GetOptions{})
			return err
		},
		"list all secrets of app": func(ctx context.Context) error {
			_, err := core.Secrets("app").List(ctx, metav1.ListOptions{})
			return err
		},
		"list secrets in all namespaces": func(ctx context.Context) error {
			_, err := core.Secrets("").List(ctx, metav1.ListOptions{})
			return err
		},
		"get its own API key Secret": func(ctx context.Context) error {
			_, err := core.Secrets("team-a").Get(ctx, "agent-nodescraper-api-key", metav1.GetOptions{})
			return err
		},
		"get the other release's API key": func(ctx context.Context) error {
			_, err := core.Secrets("team-a").Get(ctx, "other-nodescraper-api-key", metav1.GetOptions{})
			return err
		},
		"list namespaces (no selector asked)": func(ctx context.Context) error {
			_, err := core.Namespaces().List(ctx, metav1.ListOptions{})
			return err
		},
		"create a configmap": func(ctx context.Context) error {
			_, err := core.ConfigMaps("team-a").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		},
		"delete a pod":                      func(ctx context.Context) error { return core.Pods("team-a").Delete(ctx, "x", metav1.DeleteOptions{}) },
		"get /debug/pprof/":                 getPath(sa, "/debug/pprof/"),
		"get nodes/proxy (a kubelet's API)": can(sa, authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: "node-a"}),
	}
	for what, f := range allowed {
		if err := f(ctx); err != nil {
			t.Errorf("%s: %v, want allowed", what, err)
		}
	}
	for what, f := range forbidden {
		if err := f(ctx); !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want 403 Forbidden", what, err)
		}
	}
}

// getPath GETs a non-resource path of the API server as kube.
func getPath(kube kubernetes.Interface, path string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := kube.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx)
		return err
	}
}

// can asks the API server whether kube may do attrs (a kubelet's API is not
// there to ask), and answers 403 Forbidden when it may not.
func can(kube kubernetes.Interface, attrs authorizationv1.ResourceAttributes) func(context.Context) error {
	return func(ctx context.Context) error {
		r, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if !r.Status.Allowed {
			return apierrors.NewForbidden(schema.GroupResource{Resource: attrs.Resource + "/" + attrs.Subresource}, attrs.Name, fmt.Errorf("denied: %s", r.Status.Reason))
		}
		return nil
	}
}
