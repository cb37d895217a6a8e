package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/nodescraper/nodescraper/internal/image"
)

// NodeConfig describes one node.
type NodeConfig struct {
	// Name is the Node's name (the kubelet's --hostname-override); default
	// "node-a".
	Name string
	// Images are image tarballs (docker save or OCI archives, as
	// image.Write makes) imported into the node's containerd before the
	// kubelet starts: there is no registry to pull from, so pods use them
	// with imagePullPolicy IfNotPresent or Never.
	Images []string
}

// PauseImage is the pod sandbox image every node has (see pause/).
const PauseImage = "localhost/nodescraper/pause:test"

// Node is a kubelet with its own containerd, registered with the control
// plane: the real DaemonSet controller, scheduler and kubelet run pods on
// it, probes included. It runs as root (containers, mounts, cgroups).
//
// The node has no address but loopback: the harness acts as the cloud
// controller manager (kubelet --cloud-provider=external) and sets the Node's
// InternalIP to 127.0.0.1, so hostNetwork pods get 127.0.0.1 as pod IP and
// every probe and scrape stays on loopback. Pods that need a pod network
// cannot run here: the CNI configuration is loopback only.
type Node struct {
	// Name is the Node's name.
	Name string
	// Dir holds the node's configuration, logs, kubelet and containerd
	// roots.
	Dir string

	cp     *ControlPlane
	runDir string // containerd state and socket: a short path under /run (socket paths are limited to 108 bytes)
	sock   string
	cg     cgroupRoot

	mu         sync.Mutex
	containerd *process
	kubelet    *process
	stopped    bool
}

// StartNode starts a node and returns once its Node is Ready and
// schedulable. It needs a control plane with the kube-controller-manager
// (DaemonSet and garbage collection controllers); kube-scheduler is started
// with the first node.
func (cp *ControlPlane) StartNode(ctx context.Context, cfg NodeConfig) (n *Node, err error) {
	if cfg.Name == "" {
		cfg.Name = "node-a"
	}
	cniDir, err := cp.checkNodeNeeds()
	if err != nil {
		return nil, err
	}
	if err := cp.ensureScheduler(ctx); err != nil {
		return nil, err
	}

	removeStaleNodes()
	n = &Node{Name: cfg.Name, Dir: filepath.Join(cp.dir, "node-"+cfg.Name), cp: cp}
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("start node %s: %w", n.Name, err)
	}
	if n.runDir, err = os.MkdirTemp("/run", nodeRunPrefix+strconv.Itoa(os.Getpid())+"-"); err != nil {
		return nil, fmt.Errorf("start node %s: %w", n.Name, err)
	}
	// A later start removes what a test binary killed outright left
	// behind, the kubelet's mounts under Dir included.
	if err := os.WriteFile(filepath.Join(n.runDir, "node-dir"), []byte(n.Dir), 0o600); err != nil {
		return nil, fmt.Errorf("start node %s: %w", n.Name, err)
	}
	n.sock = filepath.Join(n.runDir, "containerd.sock")
	cp.mu.Lock()
	cp.nodes = append(cp.nodes, n)
	cp.mu.Unlock()
	defer func() {
		if err != nil {
			if serr := n.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
			n = nil
		}
	}()

	// Pods of this node go to a cgroup hierarchy of its own, so that two
	// kubelets on one machine (two test packages at once) never see each
	// other's pod cgroups as orphans to kill.
	if n.cg, err = newCgroupRoot(filepath.Base(n.runDir)); err != nil {
		return nil, fmt.Errorf("start node %s: %w", n.Name, err)
	}
	if err := n.startContainerd(ctx, cniDir); err != nil {
		return nil, err
	}
	pause, err := n.buildPauseImage()
	if err != nil {
		return nil, err
	}
	for _, img := range append([]string{pause}, cfg.Images...) {
		if err := n.ImportImage(ctx, img); err != nil {
			return nil, err
		}
	}
	if err := n.startKubelet(ctx); err != nil {
		return nil, err
	}
	if err := n.initialize(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// checkNodeNeeds checks what a node needs before anything starts: root, the
// kube-controller-manager, the kubelet and scheduler binaries, containerd and
// runc; it returns the directory of the CNI plugins.
func (cp *ControlPlane) checkNodeNeeds() (cniDir string, err error) {
	if os.Geteuid() != 0 {
		return "", errors.New("start node: must run as root (containerd, runc, mounts, cgroups)")
	}
	if !cp.cfg.ControllerManager {
		return "", errors.New("start node: the control plane runs no kube-controller-manager (Config.ControllerManager)")
	}
	for _, b := range []string{cp.bins.kubelet, cp.bins.scheduler} {
		if err := executable(b); err != nil {
			return "", fmt.Errorf("start node: %w; %s", err, ensureHint)
		}
	}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			if _, err2 := os.Stat(filepath.Join("/usr/sbin", b)); err2 != nil {
				return "", fmt.Errorf("start node: %s not found (%v); %s", b, err, ensureHint)
			}
		}
	}
	if cniDir = cniBinDir(); cniDir == "" {
		return "", fmt.Errorf("start node: no CNI plugins (loopback) in /usr/lib/cni or /opt/cni/bin; %s", ensureHint)
	}
	return cniDir, nil
}

const nodeRunPrefix = "nodescraper-node-"

func cniBinDir() string {
	for _, d := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		if executable(filepath.Join(d, "loopback")) == nil {
			return d
		}
	}
	return ""
}

func (n *Node) setProcess(slot **process, p *process) {
	n.mu.Lock()
	defer n.mu.Unlock()
	*slot = p
}

func (n *Node) startContainerd(ctx context.Context, cniBin string) error {
	cniConf := filepath.Join(n.Dir, "cni")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		return err
	}
	// containerd reports the pod network ready once a configuration
	// loads; hostNetwork pods never call it.
	conflist := `{"cniVersion": "0.4.0", "name": "nodescraper-loopback", "plugins": [{"type": "loopback"}]}` + "\n"
	if err := os.WriteFile(filepath.Join(cniConf, "10-loopback.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
# Snapshotters and plugins a test node never uses; some probe the machine noisily.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  disable_apparmor = true
  # Containers get no lower OOM score than containerd has: lowering it needs
  # CAP_SYS_RESOURCE, which a sandboxed test machine's root may lack (runc
  # then fails with "failed to update /proc/self/oom_score_adj").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(n.Dir, "containerd"), filepath.Join(n.runDir, "state"), n.sock,
		filepath.Join(n.Dir, "opt"), PauseImage, filepath.Join(n.runDir, "runc"), cniBin, cniConf)
	configPath := filepath.Join(n.Dir, "containerd.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return err
	}
	containerd, _ := exec.LookPath("containerd")
	p, err := startProcess(n.cp.sp, "containerd", containerd, []string{"--config=" + configPath, "--log-level=warn"},
		filepath.Join(n.Dir, "containerd.log"))
	if err != nil {
		return err
	}
	n.setProcess(&n.containerd, p)
	return n.poll(ctx, p, func(ctx context.Context) error {
		_, err := n.ctr(ctx, "version")
		return err
	})
}

// ctr runs containerd's client against this node's containerd, in the
// namespace the CRI plugin uses.
func (n *Node) ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.sock, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ImportImage imports an image tarball into the node's containerd, as a
// pull would have put it there. A running kubelet sees it at once.
func (n *Node) ImportImage(ctx context.Context, tarball string) error {
	if _, err := n.ctr(ctx, "images", "import", tarball); err != nil {
		return fmt.Errorf("node %s: import image %s: %w", n.Name, tarball, err)
	}
	return nil
}

// buildPauseImage builds pause/ into the node's sandbox image tarball.
func (n *Node) buildPauseImage() (string, error) {
	out := filepath.Join(n.Dir, "pause.tar")
	err := BuildImage(ImageSpec{Package: "./internal/controlplane/pause", Ref: PauseImage, Version: "test",
		Title: "pause", Description: "pod sandbox of the test node"}, out)
	if err != nil {
		return "", fmt.Errorf("node %s: %w", n.Name, err)
	}
	return out, nil
}

// ImageSpec is a main package of this module packaged as a container image.
type ImageSpec struct {
	// Package is the main package, relative to the module root
	// ("./cmd/demoexporter").
	Package string
	// Ref is the reference the tarball carries ("localhost/x:1").
	Ref string
	// Version labels the image: two versions of one binary are two images.
	Version string
	// Title and Description label it; default the agent's (image.Config).
	Title, Description string
}

// BuildImage compiles spec.Package as a static binary and writes it as an
// image tarball to out (internal/image: the binary at /<name of the
// package>, its entrypoint; CA certificates; user 65532).
func BuildImage(spec ImageSpec, out string) error {
	root, err := repoRoot()
	if err != nil {
		return fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	bin := out + ".bin"
	defer os.Remove(bin)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, spec.Package)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("image %s: go build %s: %w: %s", spec.Ref, spec.Package, err, b)
	}
	ca := "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(ca); err != nil {
		ca = os.DevNull
	}
	img, err := image.Build(image.Config{Binary: bin, CACerts: ca, Path: "/" + filepath.Base(spec.Package),
		Version: spec.Version, Created: time.Unix(0, 0), Title: spec.Title, Description: spec.Description})
	if err != nil {
		return fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	if err := image.Write(out, spec.Ref, img); err != nil {
		return fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	return nil
}

func (n *Node) startKubelet(ctx context.Context) error {
	cred, err := n.cp.pki.clientCert("system:node:"+n.Name, "system:nodes")
	if err != nil {
		return fmt.Errorf("node %s: kubelet certificate: %w", n.Name, err)
	}
	kubeconfig := filepath.Join(n.Dir, "kubelet.kubeconfig")
	if err := writeKubeconfig(kubeconfig, n.cp.Admin.Host, n.cp.pki.caPEM, cred); err != nil {
		return err
	}
	_, err = retryOnPortClash(func() (*process, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		healthz, err := freePort()
		if err != nil {
			return nil, err
		}
		config := map[string]any{
			"kind":               "KubeletConfiguration",
			"apiVersion":         "kubelet.config.k8s.io/v1beta1",
			"address":            "127.0.0.1",
			"port":               port,
			"readOnlyPort":       0,
			"healthzBindAddress": "127.0.0.1",
			"healthzPort":        healthz,
			"authentication": map[string]any{
				"anonymous": map[string]any{"enabled": false},
				"webhook":   map[string]any{"enabled": false},
				"x509":      map[string]any{"clientCAFile": n.cp.pki.caFile},
			},
			"authorization":            map[string]any{"mode": "AlwaysAllow"},
			"cgroupDriver":             "cgroupfs",
			"cgroupRoot":               n.cg.name,
			"failCgroupV1":             false,
			"failSwapOn":               false,
			"containerRuntimeEndpoint": "unix://" + n.sock,
			"podLogsDir":               filepath.Join(n.Dir, "pod-logs"),
			// A shared test machine's disk may be nearly full; evicting
			// the pods under test for it would only confuse the tests.
			"evictionHard":                map[string]string{"nodefs.available": "0%", "nodefs.inodesFree": "0%", "imagefs.available": "0%"},
			"imageGCHighThresholdPercent": 100,
			"imageGCLowThresholdPercent":  99,
			"serializeImagePulls":         false,
			// Status reaches the API server sooner: tests wait on it.
			"syncFrequency":             "10s",
			"nodeStatusUpdateFrequency": "5s",
		}
		b, _ := json.MarshalIndent(config, "", "  ")
		configPath := filepath.Join(n.Dir, "kubelet.json")
		if err := os.WriteFile(configPath, b, 0o600); err != nil {
			return nil, err
		}
		p, err := startProcess(n.cp.sp, "kubelet", n.cp.bins.kubelet, []string{
			"--config=" + configPath,
			"--kubeconfig=" + kubeconfig,
			"--root-dir=" + filepath.Join(n.Dir, "kubelet"),
			"--cert-dir=" + filepath.Join(n.Dir, "kubelet-pki"),
			"--hostname-override=" + n.Name,
			"--cloud-provider=external",
			"--v=1",
		}, filepath.Join(n.Dir, "kubelet.log"))
		if err != nil {
			return nil, err
		}
		n.setProcess(&n.kubelet, p)
		return p, n.cp.waitReady(ctx, p, "http://127.0.0.1:"+strconv.Itoa(healthz)+"/healthz", "ok")
	})
	return err
}

// initialize does what a cloud controller manager does for a new Node: set
// its addresses (loopback only) and lift the uninitialized taint; then it
// waits for the Node to be Ready.
func (n *Node) initialize(ctx context.Context) error {
	nodes := n.cp.Kube.CoreV1().Nodes()
	err := n.poll(ctx, n.kubelet, func(ctx context.Context) error {
		_, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("node %s: not registered: %w", n.Name, err)
	}
	if err := n.cloudInit(ctx); err != nil {
		return err
	}
	return n.waitSchedulable(ctx)
}

// cloudInit sets the Node's addresses (loopback only) and lifts its
// uninitialized taint, as a cloud controller manager would.
func (n *Node) cloudInit(ctx context.Context) error {
	nodes := n.cp.Kube.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: n.Name},
		}
		_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("node %s: set addresses: %w", n.Name, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints := node.Spec.Taints[:0]
		for _, t := range node.Spec.Taints {
			if t.Key != "node.cloudprovider.kubernetes.io/uninitialized" {
				taints = append(taints, t)
			}
		}
		node.Spec.Taints = taints
		_, err = nodes.Update(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("node %s: remove uninitialized taint: %w", n.Name, err)
	}
	return nil
}

// waitSchedulable waits for the Node to be Ready and without the not-ready
// taint, lifting that taint itself when no node lifecycle controller runs.
func (n *Node) waitSchedulable(ctx context.Context) error {
	nodes := n.cp.Kube.CoreV1().Nodes()
	err := n.poll(ctx, n.kubelet, func(ctx context.Context) error {
		node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("condition Ready %s: %s %s", c.Status, c.Reason, c.Message)
			}
		}
		return errors.New("no Ready condition yet")
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	// The kubelet registers the Node with the not-ready taint; the node
	// lifecycle controller lifts it once the Node is Ready. Without that
	// controller (Config.Controllers leaves it out by default) the harness
	// does it, or no pod but a tolerating one would ever be scheduled.
	lifecycle := controllerEnabled(n.cp.cfg.Controllers, "node-lifecycle-controller", "nodelifecycle")
	err = n.poll(ctx, n.kubelet, func(ctx context.Context) error {
		node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		i := slices.IndexFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
		if i < 0 {
			return nil
		}
		if lifecycle {
			return fmt.Errorf("taint %s still set", corev1.TaintNodeNotReady)
		}
		node.Spec.Taints = slices.Delete(node.Spec.Taints, i, i+1)
		_, err = nodes.Update(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	return nil
}

// poll calls check until it succeeds, p exits, or the start timeout passes.
func (n *Node) poll(ctx context.Context, p *process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, n.cp.cfg.StartTimeout)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if !p.running() {
			return false, fmt.Errorf("%s exited (%v); log %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail(30))
		}
		last = check(ctx)
		return last == nil, nil
	})
	if err != nil && last != nil && p.running() {
		return fmt.Errorf("%s: not ready after %v (%v); log %s:\n%s", p.name, n.cp.cfg.StartTimeout, last, p.logPath, p.logTail(30))
	}
	return err
}

// Stop stops the kubelet, kills the node's containers, stops containerd and
// removes what they mounted and created outside Dir. Pods and the Node
// object stay in the API server. Safe to call more than once.
func (n *Node) Stop() error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	kubelet, containerd := n.kubelet, n.containerd
	n.mu.Unlock()

	var errs []error
	if kubelet != nil {
		errs = append(errs, kubelet.stop(15*time.Second))
	}
	// The kubelet leaves containers running when it exits (a restart
	// must not restart pods); a test node's pods end with it.
	errs = append(errs, n.cg.killAll())
	if containerd != nil {
		errs = append(errs, containerd.stop(15*time.Second))
	}
	errs = append(errs, cleanupNodeDirs(n.runDir, n.Dir), n.cg.remove())
	return errors.Join(errs...)
}

// Logs returns the end of the kubelet's and containerd's logs.
func (n *Node) Logs(lines int) string {
	n.mu.Lock()
	procs := []*process{n.containerd, n.kubelet}
	n.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		if p != nil {
			fmt.Fprintf(&b, "--- %s of %s (%s)\n%s\n", p.name, n.Name, p.logPath, p.logTail(lines))
		}
	}
	return b.String()
}

// ensureScheduler starts kube-scheduler once: pods of a DaemonSet are bound
// to their node by it (the controller sets node affinity, not nodeName).
func (cp *ControlPlane) ensureScheduler(ctx context.Context) error {
	cp.schedOnce.Lock()
	defer cp.schedOnce.Unlock()
	cp.mu.Lock()
	running := cp.sched != nil
	cp.mu.Unlock()
	if running {
		return nil
	}
	return cp.startComponent(ctx, &cp.sched, "kube-scheduler", cp.bins.scheduler, "system:kube-scheduler")
}

// repoRoot is the directory holding tools/kube/go.mod above the working
// directory (the module root).
func repoRoot() (string, error) {
	dir, err := cacheBinDir()
	if err != nil {
		return "", err
	}
	// cacheBinDir is <root>/.cache/kube/<version>/bin.
	return filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(dir)))), nil
}
