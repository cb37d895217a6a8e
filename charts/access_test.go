package charts

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestEndpointAccess: endpoint.access reaches the agent; the ClusterRole
// grants creating TokenReviews and SubjectAccessReviews only in kubernetes
// mode, and the ServiceMonitor then sends the scraper's token; the
// NetworkPolicy, off by default, lets only networkPolicy.from reach the
// port (no pod at all when it is empty).
func TestEndpointAccess(t *testing.T) {
	h := newHelm(t)
	type rendered struct {
		access, rules string
		policy        *unstructured.Unstructured // nil without one
	}
	objects := func(values string) rendered {
		t.Helper()
		objs := render(t, h, valuesSet{name: "access", release: "agent", namespace: "monitoring", values: existingKey + values}, renderKubeVersion)
		var r rendered
		r.access, _ = flagValue(args(t, one(t, objs, "DaemonSet")), "endpoint-access")
		r.rules = fmt.Sprint(field(t, one(t, objs, "ClusterRole"), "rules"))
		if ps := ofKind(objs, "NetworkPolicy"); len(ps) > 0 {
			r.policy = ps[0]
		}
		return r
	}
	base := objects("")
	want(t, "default --endpoint-access", base.access, "localhost")
	if base.policy != nil {
		t.Error("a NetworkPolicy rendered by default")
	}
	kube := objects("endpoint: {access: kubernetes}\nserviceMonitor: {enabled: true}\n")
	want(t, "--endpoint-access", kube.access, "kubernetes")
	reviews := " map[apiGroups:[authentication.k8s.io] resources:[tokenreviews] verbs:[create]]" +
		" map[apiGroups:[authorization.k8s.io] resources:[subjectaccessreviews] verbs:[create]]]"
	want(t, "rules in kubernetes mode", kube.rules, base.rules[:len(base.rules)-1]+reviews)
	want(t, "ServiceMonitor token", fmt.Sprint(field(t, one(t, render(t, h, valuesSet{name: "sm", release: "agent", namespace: "monitoring",
		values: existingKey + "endpoint: {access: kubernetes}\nserviceMonitor: {enabled: true}\n"}, renderKubeVersion), "ServiceMonitor"),
		"spec", "endpoints")), "[map[bearerTokenFile:/var/run/secrets/kubernetes.io/serviceaccount/token path:/metrics port:http]]")
	open := objects("endpoint: {access: open}\n")
	want(t, "rules in open mode", open.rules, base.rules)

	np := objects(`networkPolicy:
  enabled: true
  from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
endpoint: {port: 9300}
`).policy
	if np == nil {
		t.Fatal("networkPolicy.enabled: no NetworkPolicy")
	}
	want(t, "NetworkPolicy spec", fmt.Sprint(field(t, np, "spec")),
		"map[ingress:[map[from:[map[namespaceSelector:map[matchLabels:map[kubernetes.io/metadata.name:monitoring]]]] ports:[map[port:9300 protocol:TCP]]]] "+
			"podSelector:map[matchLabels:map[app.kubernetes.io/instance:agent app.kubernetes.io/name:nodescraper]] policyTypes:[Ingress]]")
	closed := objects("networkPolicy: {enabled: true}\n").policy
	if closed == nil {
		t.Fatal("networkPolicy.enabled without peers: no NetworkPolicy")
	}
	want(t, "NetworkPolicy without peers", fmt.Sprint(field(t, closed, "spec", "ingress")), "[]")
}

// TestStatePrepared: by default the agent runs as 65532:65532 and an init
// container of the same image, root with the one capability CHOWN, gives it
// the state directory first; an agent run as root needs none.
func TestStatePrepared(t *testing.T) {
	h := newHelm(t)
	pod := func(values string) map[string]any {
		objs := render(t, h, valuesSet{name: "state", release: "agent", namespace: "monitoring", values: existingKey + values}, renderKubeVersion)
		return field(t, one(t, objs, "DaemonSet"), "spec", "template", "spec").(map[string]any)
	}
	p := pod("")
	inits := get[[]any](t, p, "initContainers")
	if len(inits) != 1 {
		t.Fatalf("%d init containers, want 1", len(inits))
	}
	c := inits[0].(map[string]any)
	want(t, "init image", c["image"], get[[]any](t, p, "containers")[0].(map[string]any)["image"])
	want(t, "init command", fmt.Sprint(c["command"]), "[/nodescraper prepare-state-dir --owner=65532:65532 /var/lib/nodescraper]")
	want(t, "init securityContext", fmt.Sprint(c["securityContext"]),
		"map[allowPrivilegeEscalation:false capabilities:map[add:[CHOWN] drop:[ALL]] readOnlyRootFilesystem:true runAsGroup:0 runAsNonRoot:false runAsUser:0]")
	want(t, "init mounts", fmt.Sprint(c["volumeMounts"]), "[map[mountPath:/var/lib/nodescraper name:state]]")
	c = get[[]any](t, pod("securityContext: {runAsUser: 1000, runAsGroup: 2000}\n"), "initContainers")[0].(map[string]any)
	want(t, "init command, own user", fmt.Sprint(c["command"]), "[/nodescraper prepare-state-dir --owner=1000:2000 /var/lib/nodescraper]")
	for _, values := range []string{"state: {prepare: false}\n", "securityContext: {runAsUser: 0, runAsGroup: 0, runAsNonRoot: false}\n"} {
		if _, ok := pod(values)["initContainers"]; ok {
			t.Errorf("%s: an init container rendered", values)
		}
	}
}
