package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

const exporterImage = "localhost/nodescraper/demoexporter:test"

// TestNodeRunsPod: a pod created without a node is bound by kube-scheduler,
// started by the kubelet through containerd and runc from an imported image,
// turns Ready by the kubelet's own HTTP probe, and serves on 127.0.0.1;
// deleting it stops the container; stopping the node leaves no container,
// mount or cgroup behind.
func TestNodeRunsPod(t *testing.T) {
	// Every controller, the node lifecycle controller included: with a
	// real kubelet it lifts the not-ready taint once the Node is Ready.
	cp := ForTest(t, Config{ControllerManager: true, Controllers: []string{"*"}})
	tar := filepath.Join(t.TempDir(), "exporter.tar")
	if err := BuildImage(ImageSpec{Package: "./cmd/demoexporter", Ref: exporterImage, Version: "test"}, tar); err != nil {
		t.Fatal(err)
	}
	node := NodeForTest(t, cp, NodeConfig{Name: "node-a", Images: []string{tar}})
	ctx := t.Context()

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "exporter"},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{{
				Name:            "exporter",
				Image:           exporterImage,
				ImagePullPolicy: corev1.PullNever,
				Args:            []string{"-listen=127.0.0.1:" + strconv.Itoa(port), "-counting-series=2"},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(port)}},
					PeriodSeconds: 1,
				},
			}},
			TerminationGracePeriodSeconds: new(int64(5)),
		},
	}
	if _, err := cp.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitPod(t, cp, "default", "exporter", 90*time.Second, podReady)
	if got.Spec.NodeName != node.Name || got.Status.PodIP != "127.0.0.1" || got.Status.HostIP != "127.0.0.1" {
		t.Fatalf("pod on node %q with pod IP %q host IP %q, want node %s and 127.0.0.1", got.Spec.NodeName, got.Status.PodIP, got.Status.HostIP, node.Name)
	}
	body := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if !strings.Contains(body, `demo_scrapes_total{series="1"} 1`) {
		t.Fatalf("the pod's exporter answered:\n%s", body)
	}
	// The kubelet mounted the ServiceAccount token, as for any pod.
	if mounts := mountsUnder(t, node.Dir); mounts == 0 {
		t.Fatalf("no mounts under %s while a pod runs", node.Dir)
	}

	if err := cp.Kube.CoreV1().Pods("default").Delete(ctx, "exporter", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cp, "default", "exporter", 60*time.Second)
	if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port)); err == nil {
		resp.Body.Close()
		t.Fatalf("the deleted pod's exporter still answers on port %d", port)
	}

	cg := node.cg
	if err := node.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := mountsUnder(t, node.Dir); n != 0 {
		t.Errorf("%d mounts left under %s after Stop", n, node.Dir)
	}
	for _, d := range cg.dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left after Stop", d)
		}
	}
	if _, err := os.Stat(node.runDir); err == nil {
		t.Errorf("%s left after Stop", node.runDir)
	}
}

// waitPod polls the pod until ok says so, failing t with its status after
// timeout.
func waitPod(t *testing.T, cp *ControlPlane, ns, name string, timeout time.Duration, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return ok(p), nil
	})
	if err != nil {
		if last != nil {
			t.Fatalf("pod %s/%s: %v; phase %s, conditions %+v, containers %+v", ns, name, err, last.Status.Phase, last.Status.Conditions, last.Status.ContainerStatuses)
		}
		t.Fatalf("pod %s/%s: %v", ns, name, err)
	}
	return last
}

func waitGone(t *testing.T, cp *ControlPlane, ns, name string, timeout time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := cp.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not gone after %v", ns, name, timeout)
	}
}

func mountsUnder(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(unescapeMountPath(f[4]), dir+"/") {
			n++
		}
	}
	return n
}
