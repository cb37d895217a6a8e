package charts

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
	"github.com/nodescraper/nodescraper/internal/controlplane"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

const (
	agentRepo     = "localhost/nodescraper/nodescraper"
	exporterImage = "localhost/nodescraper/demoexporter:test"
	apiKey        = "0123456789abcdef0123456789abcdef"
	series        = 3 // counters of the workload, each +1 per scrape
)

// TestOnNode installs the chart on a real node (kubelet + containerd, with
// the DaemonSet controller and scheduler of the control plane) from image
// tarballs built by the project: the agent pod turns Running and Ready by its
// own probes, scrapes a workload pod of its node into the stand-in intake;
// installed running as root (as older charts did), helm upgrade to a second
// image tag and the default non-root agent rolls out (old pod stopped, its
// root-owned state given to 65532 by the init container and handed over on
// the node, new pod Ready, its process uid 65532 without capabilities)
// within the grace period; the non-root pod is deleted and restarts on its
// state; after helm uninstall the intake's sums equal the workload's true
// increase, and nothing of the release is left but its state directory.
func TestOnNode(t *testing.T) {
	h := newHelm(t)
	cp := controlplane.ForTest(t, controlplane.Config{ControllerManager: true, Controllers: []string{"*"}})
	h.kubeconfig = cp.Kubeconfig
	ctx := t.Context()

	dir := t.TempDir()
	var images []string
	for _, spec := range []controlplane.ImageSpec{
		{Package: "./cmd/nodescraper", Ref: agentRepo + ":0.1.0-a", Version: "0.1.0-a"},
		{Package: "./cmd/nodescraper", Ref: agentRepo + ":0.1.0-b", Version: "0.1.0-b"},
		{Package: "./cmd/demoexporter", Ref: exporterImage, Version: "test", Title: "demoexporter", Description: "test workload"},
	} {
		out := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(spec.Ref)+".tar")
		if err := controlplane.BuildImage(spec, out); err != nil {
			t.Fatal(err)
		}
		images = append(images, out)
	}
	node := controlplane.NodeForTest(t, cp, controlplane.NodeConfig{Name: "node-a", Images: images})

	// The intake serves only the series API this run expects: the agent's
	// environment comes from the chart here, so with
	// DD_USE_V3_API_SERIES_ENABLED=true (make e2e-v3) the values below set
	// datadog.useV3APISeries; by default a loopback intake gets v2.
	seriesAPI := fakeintake.SeriesAPIFromEnv()
	dd, err := fakeintake.Start("", fakeintake.Config{APIKeys: []string{apiKey}, SeriesAPI: seriesAPI})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dd.Close() })
	useV3 := ""
	if seriesAPI == fakeintake.SeriesV3 {
		useV3 = ", useV3APISeries: true" // in the values file, so that the upgrade below keeps it
	}

	// The workload: a hostNetwork pod (the node has no pod network), found
	// through a PodMonitor (EndpointSlices refuse loopback addresses).
	wport := freePort(t)
	createNamespace(t, cp.Kube, "app")
	workload := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "exporter", Labels: map[string]string{"app": "exporter"}},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers: []corev1.Container{{
				Name:            "exporter",
				Image:           exporterImage,
				ImagePullPolicy: corev1.PullNever,
				Args:            []string{"-listen=127.0.0.1:" + strconv.Itoa(wport), "-counting-series=" + strconv.Itoa(series)},
				Ports:           []corev1.ContainerPort{{Name: "metrics", ContainerPort: int32(wport)}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(wport)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
	if _, err := cp.Kube.CoreV1().Pods("app").Create(ctx, workload, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pm := &monitoringv1.PodMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "exporter"},
		Spec: monitoringv1.PodMonitorSpec{
			Selector:            metav1.LabelSelector{MatchLabels: map[string]string{"app": "exporter"}},
			PodMetricsEndpoints: []monitoringv1.PodMetricsEndpoint{{Port: new("metrics"), Interval: "2s"}},
		},
	}
	if _, err := cp.Monitoring.MonitoringV1().PodMonitors("app").Create(ctx, pm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "workload pod Ready", func(ctx context.Context) error {
		return podReadyErr(ctx, cp, "app", "exporter")
	})

	state := filepath.Join(dir, "state")
	aport := freePort(t)
	grace := 30
	values := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(values, fmt.Appendf(nil, `
image: {repository: %s, tag: 0.1.0-a, pullPolicy: Never}
datadog: {url: %q, allowInsecureURL: true, apiKey: %s%s}
hostNetwork: true
endpoint: {port: %d}
state: {hostPath: %q}
scrape: {interval: 2s}
send: {flushInterval: 1s}
terminationGracePeriodSeconds: %d
# No kube-proxy on the test node: the kubernetes Service's ClusterIP leads
# nowhere, so the agent is pointed at the API server's own address.
env: {KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: %q}
`, agentRepo, dd.URL, apiKey, useV3, aport, state, grace, apiserverPort(t, cp)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Installed as root, as charts before the non-root default ran it: the
	// state it leaves is root-owned, and the upgrade below must keep it.
	asRoot := filepath.Join(dir, "root.yaml")
	if err := os.WriteFile(asRoot, []byte("securityContext: {runAsUser: 0, runAsGroup: 0, runAsNonRoot: false}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const ns, release, dsName = "monitoring", "agent", "agent-nodescraper"
	if out, err := h.run("install", release, chart, "--namespace", ns, "--create-namespace", "-f", values, "-f", asRoot); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("helm install:\n%s", out)
	}
	first := waitRollout(t, cp, ns, dsName, agentRepo+":0.1.0-a", 120*time.Second)
	t.Logf("agent pod %s Running and Ready on %s", first.Name, first.Spec.NodeName)
	if first.Spec.NodeName != node.Name {
		t.Fatalf("agent pod on node %q, want %s", first.Spec.NodeName, node.Name)
	}
	// It scrapes the workload and sends to the intake.
	waitFor(t, 60*time.Second, "first points at the intake", func(context.Context) error {
		if got := dd.Sum("demo_scrapes.count", "series:0"); got < 4 {
			return fmt.Errorf("demo_scrapes.count{series:0} sum %v", got)
		}
		return nil
	})
	checkAgentUser(t, aport, 0)
	targets := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/api/v1/targets", aport))
	if !strings.Contains(targets, fmt.Sprintf(`"scrapeUrl":"http://127.0.0.1:%d/metrics"`, wport)) || !strings.Contains(targets, `"health":"up"`) {
		t.Errorf("the agent's /api/v1/targets lacks the healthy workload target:\n%s", targets)
	}

	// The rollout, to the chart's default non-root agent: maxSurge 0, so the
	// DaemonSet controller deletes the old pod first; its final checkpoint,
	// written as root, is what the new one restores once its init container
	// has given it the directory.
	begin := time.Now()
	if _, err := h.run("upgrade", release, chart, "--namespace", ns, "-f", values, "--set", "image.tag=0.1.0-b"); err != nil {
		t.Fatal(err)
	}
	second := waitRollout(t, cp, ns, dsName, agentRepo+":0.1.0-b", time.Duration(grace)*time.Second+60*time.Second)
	took := time.Since(begin)
	if second.UID == first.UID {
		t.Fatal("helm upgrade left the old agent pod in place")
	}
	if took > time.Duration(grace)*time.Second {
		t.Errorf("rollout took %v, more than the grace period of %ds", took.Round(time.Millisecond), grace)
	}
	t.Logf("rollout to 0.1.0-b done in %v: pod %s Ready", took.Round(time.Millisecond), second.Name)
	waitPoints(t, dd, "points from the new agent")
	checkAgentUser(t, aport, 65532)
	if log := checkStatePrepared(t, node.Dir, second, state); !strings.Contains(log, "entries changed") || strings.Contains(log, "(0 entries changed)") {
		t.Errorf("the first non-root pod's init container gave nothing away; its log: %q", log)
	}

	// A restart of the non-root agent: the init container finds the
	// directory given away already (what it can no longer read it leaves
	// alone), and the state carries on (the sums below).
	if err := cp.Kube.CoreV1().Pods(ns).Delete(ctx, second.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	third := waitRollout(t, cp, ns, dsName, agentRepo+":0.1.0-b", time.Duration(grace)*time.Second+60*time.Second)
	if third.UID == second.UID {
		t.Fatal("the deleted agent pod is still the DaemonSet's")
	}
	waitPoints(t, dd, "points from the restarted agent")
	checkAgentUser(t, aport, 65532)
	if log := checkStatePrepared(t, node.Dir, third, state); !strings.Contains(log, "(0 entries changed)") {
		t.Errorf("the restarted pod's init container: %q, want 0 entries changed", log)
	}

	// Freeze the truth: from now on every scrape fails and adds nothing.
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/fail", wport), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(5 * time.Second) // a scrape in flight when /fail came finishes
	scrapes, err := strconv.Atoi(strings.TrimSpace(httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/scrapes", wport))))
	if err != nil {
		t.Fatal(err)
	}

	if _, err := h.run("uninstall", release, "--namespace", ns, "--wait"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Duration(grace)*time.Second+30*time.Second, "agent pod gone", func(ctx context.Context) error {
		pods, err := cp.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		return nil
	})

	// Every scrape adds 1 to each counter and the agent's first scrape is
	// its baseline: the true increase is scrapes-1 per series, across the
	// rollout.
	truth := float64(scrapes - 1)
	for i := range series {
		if got := dd.Sum("demo_scrapes.count", fmt.Sprintf("series:%d", i)); got != truth {
			t.Errorf("series %d: the intake received %v, the true increase is %v", i, got, truth)
		}
	}
	st := dd.Stats()
	if n := st.Rejected[fakeintake.ReasonWrongSeriesAPI]; n > 0 {
		t.Errorf("the agent sent %d series payloads to the wrong path: this run expects the %s series API", n, seriesAPI)
	}
	if st.DuplicatePoints != 0 || st.RejectedTotal() != 0 {
		t.Errorf("intake: %d duplicate points, %d requests refused", st.DuplicatePoints, st.RejectedTotal())
	}
	t.Logf("%d scrapes: %d series each summed to %v at the intake across install, rollout and uninstall (%d points in all)",
		scrapes, series, truth, st.Points)

	left := releaseObjects(t, cp, ns, release)
	if len(left) > 0 {
		t.Errorf("after helm uninstall, still there: %v", left)
	}
	entries, err := os.ReadDir(state)
	if err != nil || len(entries) == 0 {
		t.Errorf("state directory %s after uninstall: %v entries, %v; want the checkpoint kept", state, len(entries), err)
	}
}

// waitRollout waits until the DaemonSet's rollout is complete, as kubectl
// rollout status judges it (observed generation, every pod updated and
// available), with its one pod on image and Ready; it returns that pod.
func waitRollout(t *testing.T, cp *controlplane.ControlPlane, ns, name, image string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, timeout, "DaemonSet "+name+" rolled out with "+image, func(ctx context.Context) error {
		ds, err := cp.Kube.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := ds.Status
		if s.ObservedGeneration < ds.Generation || s.DesiredNumberScheduled != 1 || s.UpdatedNumberScheduled != 1 || s.NumberAvailable != 1 || s.NumberUnavailable != 0 {
			return fmt.Errorf("status %+v", s)
		}
		pods, err := cp.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=agent"})
		if err != nil {
			return err
		}
		if len(pods.Items) != 1 {
			return fmt.Errorf("%d agent pods", len(pods.Items))
		}
		p := &pods.Items[0]
		if p.Spec.Containers[0].Image != image || p.DeletionTimestamp != nil {
			return fmt.Errorf("pod %s runs %s (deleting: %v)", p.Name, p.Spec.Containers[0].Image, p.DeletionTimestamp != nil)
		}
		if err := podReadyErr(ctx, cp, ns, p.Name); err != nil {
			return err
		}
		pod = p
		return nil
	})
	return pod
}

func podReadyErr(ctx context.Context, cp *controlplane.ControlPlane, ns, name string) error {
	p, err := cp.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("pod %s/%s %s, not Ready: %+v", ns, name, p.Status.Phase, p.Status.ContainerStatuses)
}

// waitFor polls check every 200 ms until it succeeds, failing t with its
// last error after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, check func(context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = check(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not after %v: %v", what, timeout, last)
	}
}

// releaseObjects lists what still carries the release's instance label.
func releaseObjects(t *testing.T, cp *controlplane.ControlPlane, ns, release string) []string {
	t.Helper()
	ctx := t.Context()
	opts := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release}
	var left []string
	add := func(kind string, n int, err error) {
		if err != nil {
			t.Errorf("list %s: %v", kind, err)
		}
		if n > 0 {
			left = append(left, fmt.Sprintf("%d %s", n, kind))
		}
	}
	k := cp.Kube
	if l, err := k.AppsV1().DaemonSets(ns).List(ctx, opts); true {
		add("DaemonSets", len(l.Items), err)
	}
	if l, err := k.CoreV1().Pods(ns).List(ctx, opts); true {
		add("Pods", len(l.Items), err)
	}
	if l, err := k.CoreV1().Services(ns).List(ctx, opts); true {
		add("Services", len(l.Items), err)
	}
	if l, err := k.CoreV1().ServiceAccounts(ns).List(ctx, opts); true {
		add("ServiceAccounts", len(l.Items), err)
	}
	if l, err := k.CoreV1().Secrets(ns).List(ctx, opts); true {
		add("Secrets", len(l.Items), err)
	}
	if l, err := k.RbacV1().Roles("").List(ctx, opts); true {
		add("Roles", len(l.Items), err)
	}
	if l, err := k.RbacV1().RoleBindings("").List(ctx, opts); true {
		add("RoleBindings", len(l.Items), err)
	}
	if l, err := k.RbacV1().ClusterRoles().List(ctx, opts); true {
		add("ClusterRoles", len(l.Items), err)
	}
	if l, err := k.RbacV1().ClusterRoleBindings().List(ctx, opts); true {
		add("ClusterRoleBindings", len(l.Items), err)
	}
	if l, err := k.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{}); true {
		add("EndpointSlices", len(l.Items), err)
	}
	return left
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func apiserverPort(t *testing.T, cp *controlplane.ControlPlane) string {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(cp.Admin.Host, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v: %s", url, resp.Status, err, b)
	}
	return string(b)
}

// waitPoints waits until the intake's demo_scrapes.count{series:0} has grown
// by 4 more scrapes.
func waitPoints(t *testing.T, dd *fakeintake.Server, what string) {
	t.Helper()
	before := dd.Sum("demo_scrapes.count", "series:0")
	waitFor(t, 60*time.Second, what, func(context.Context) error {
		if got := dd.Sum("demo_scrapes.count", "series:0"); got < before+4 {
			return fmt.Errorf("sum %v, %v before", got, before)
		}
		return nil
	})
}

// checkAgentUser finds the agent's process on this host (the node), by its
// --listen port, and checks it runs as uid with no effective capability.
func checkAgentUser(t *testing.T, port, uid int) {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("--listen=127.0.0.1:%d\x00", port)
	var found []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(b), "/nodescraper\x00") || !strings.Contains(string(b), listen) {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if err != nil {
			continue // exited meanwhile
		}
		var uids, capEff string
		for line := range strings.SplitSeq(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				uids = strings.Join(strings.Fields(v), " ")
			}
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				capEff = strings.TrimSpace(v)
			}
		}
		found = append(found, fmt.Sprintf("%s uid %s caps %s", filepath.Dir(p), uids, capEff))
		want := strings.Repeat(strconv.Itoa(uid)+" ", 4)
		if uids != want[:len(want)-1] || capEff != "0000000000000000" {
			t.Errorf("agent process %s runs with uids (real, effective, saved, fs) %s and effective capabilities %s; want %d and none", filepath.Dir(p), uids, capEff, uid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one agent process listening on port %d, found %v", port, found)
	}
	t.Logf("agent process: %s", found[0])
}

// checkStatePrepared checks pod's init container ended well and the state
// directory on the node is the agent's user's, with a checkpoint in it; it
// returns the init container's log (how much it changed).
func checkStatePrepared(t *testing.T, nodeDir string, pod *corev1.Pod, state string) (log string) {
	t.Helper()
	st := pod.Status.InitContainerStatuses
	if len(st) != 1 || st[0].Name != "prepare-state-dir" || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 0 {
		t.Errorf("pod %s: init containers %+v, want prepare-state-dir exited 0", pod.Name, st)
	}
	// The kubelet's own log file (the API server cannot reach the test
	// node's kubelet by its name).
	logs, _ := filepath.Glob(filepath.Join(nodeDir, "pod-logs", pod.Namespace+"_"+pod.Name+"_*", "prepare-state-dir", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		log += string(b)
		t.Logf("pod %s, init container log: %s (%v)", pod.Name, strings.TrimSpace(string(b)), err)
	}
	n := 0
	err := filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if s := fi.Sys().(*syscall.Stat_t); s.Uid != 65532 || s.Gid != 65532 {
			t.Errorf("%s owned by %d:%d, want 65532:65532", p, s.Uid, s.Gid)
		}
		n++
		return nil
	})
	if err != nil || n < 2 {
		t.Errorf("state directory %s: %d entries, %v", state, n, err)
	}
	return log
}
