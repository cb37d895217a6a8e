package charts

import (
	"strings"
	"testing"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestPodSecurityLevel: what a real kube-apiserver's PodSecurity admission
// says of the agent's pod as the chart renders it, as the README tells:
// baseline refuses it for the hostPath volume alone; restricted also for the
// init container's root and CHOWN, never for the agent's own container;
// privileged admits it, with hostNetwork too.
func TestPodSecurityLevel(t *testing.T) {
	h := newHelm(t)
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	sv, err := cp.Kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	pod := func(values string) *corev1.Pod {
		ds := one(t, render(t, h, valuesSet{name: "psa", release: "agent", namespace: "monitoring", values: existingKey + values}, sv.GitVersion), "DaemonSet")
		tmpl, ok, err := unstructured.NestedMap(ds.Object, "spec", "template")
		if !ok || err != nil {
			t.Fatalf("no pod template: %v", err)
		}
		var p corev1.Pod
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &p); err != nil {
			t.Fatal(err)
		}
		p.Name = "agent"
		return &p
	}
	admitted := func(level string, p *corev1.Pod) error {
		ns := "psa-" + level
		_, err := cp.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": level}}}, metav1.CreateOptions{})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.Spec.ServiceAccountName}}
		if _, err := cp.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		p = p.DeepCopy()
		p.Namespace = ns
		_, err = cp.Kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	def := pod("")
	// Baseline forbids hostPath volumes, and nothing else of the pod.
	err = admitted("baseline", def)
	if err == nil || !strings.HasSuffix(err.Error(), `violates PodSecurity "baseline:latest": hostPath volumes (volume "state")`) {
		t.Errorf("baseline: %v; want a refusal for the hostPath volume alone", err)
	}
	err = admitted("restricted", def)
	for _, w := range []string{`restricted volume types (volume "state" uses restricted volume type "hostPath")`,
		`runAsNonRoot != true (container "prepare-state-dir"`, `unrestricted capabilities (container "prepare-state-dir" must not include "CHOWN"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("restricted: %v; want a refusal naming %s", err, w)
		}
	}
	if err != nil && strings.Contains(err.Error(), `container "nodescraper"`) {
		t.Errorf("restricted names the agent's own container: %v", err)
	}
	for _, values := range []string{"", "hostNetwork: true\n"} {
		if err := admitted("privileged", pod(values)); err != nil {
			t.Errorf("privileged refuses the pod of %q: %v", values, err)
		}
	}
}
