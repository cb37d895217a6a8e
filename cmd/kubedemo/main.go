// Command kubedemo runs the whole product on one machine, with no cluster and
// no Datadog account: a real etcd + kube-apiserver on loopback, two nodes with
// example workloads (pods whose exporters listen on 127.0.x.y pod IPs),
// Services, a ServiceMonitor and a PodMonitor, the stand-in Datadog intake,
// and nodescraper as the agent of node-a. It is the README's first command
// (`make demo`); Ctrl-C stops everything.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const apiKey = "demo-api-key-0123456789abcdef0123"

func main() {
	bin := flag.String("bin", "bin", "directory holding the nodescraper and ddintake binaries")
	interval := flag.Duration("scrape-interval", 10*time.Second, "scrape interval of the demo's monitors")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "kubedemo:", err)
		os.Exit(1)
	}
}

// workload is one demo pod.
type workload struct {
	ns, name, node, app string
	ip                  string
	owner               string // ReplicaSet name, "" for none
}

var workloads = []workload{
	{"shop", "web-5d8f7c9b4-x2k9p", "node-a", "web", "127.0.1.10", "web-5d8f7c9b4"},
	{"shop", "web-5d8f7c9b4-q7w4m", "node-a", "web", "127.0.1.11", "web-5d8f7c9b4"},
	{"shop", "web-5d8f7c9b4-h3n8z", "node-b", "web", "127.0.2.10", "web-5d8f7c9b4"},
	{"payments", "cart-0", "node-a", "cart", "127.0.1.20", ""},
	{"payments", "cart-1", "node-b", "cart", "127.0.2.20", ""},
}

// run starts the control plane, fills it with the demo's nodes, pods,
// Service and monitors, starts the intake and the agent, and waits until ctx
// ends or one of them exits.
func run(ctx context.Context, bin string, interval time.Duration) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	work, err := os.MkdirTemp("", "nodescraper-demo-")
	if err != nil {
		return err
	}
	fmt.Println("starting a local Kubernetes control plane (etcd + kube-apiserver) ...")
	cp, err := controlplane.Start(ctx, controlplane.Config{Dir: filepath.Join(work, "controlplane")})
	if err != nil {
		return fmt.Errorf("control plane: %w (run scripts/controlplane.sh ensure first)", err)
	}
	defer cp.Stop()
	fmt.Printf("control plane up: %s\n", cp.Timings)

	servers, err := populate(ctx, cp, interval, log)
	defer func() {
		for _, srv := range slices.Backward(servers) {
			srv.Close()
		}
	}()
	if err != nil {
		return err
	}

	// The intake outlives the agent, so the agent's final flush reaches it.
	intakeCtx, stopIntake := context.WithCancel(context.Background())
	defer stopIntake()
	agentLog, err := os.Create(filepath.Join(work, "nodescraper.log"))
	if err != nil {
		return err
	}
	defer agentLog.Close()
	intake, agent, err := startProcesses(ctx, intakeCtx, bin, work, cp.Kubeconfig, agentLog)
	if err != nil {
		return err
	}
	fmt.Printf(`
nodescraper demo is running (Ctrl-C stops everything):
  cluster: 2 nodes (node-a, node-b); pods of shop/web (ServiceMonitor) and payments/cart (PodMonitor) on both
  nodescraper runs as the agent of node-a: it must scrape only node-a's 3 pods, never node-b's
    targets page:   http://127.0.0.1:9105/targets   (JSON: /api/v1/targets)
    own metrics:    http://127.0.0.1:9105/metrics
    its log:        %s
  kubectl access:   KUBECONFIG=%s
The stand-in Datadog intake prints what it receives below.

`, agentLog.Name(), cp.Kubeconfig)
	return wait(ctx, intake, agent, stopIntake, agentLog.Name())
}

// populate creates the two nodes, the workloads' pods (each with a demo
// exporter serving on its pod IP until ctx ends), the Service and the two
// monitors. It returns the exporters' servers, for the caller to close.
func populate(ctx context.Context, cp *controlplane.ControlPlane, interval time.Duration, log *slog.Logger) ([]*exporter.Server, error) {
	for name, ip := range map[string]string{"node-a": "127.0.0.2", "node-b": "127.0.0.3"} {
		if _, err := cp.CreateNode(ctx, name, netip.MustParseAddr(ip), nil); err != nil {
			return nil, err
		}
	}
	var servers []*exporter.Server
	for i, w := range workloads {
		d := exporter.NewDemo(uint64(i + 1))
		srv, err := d.Listen(w.ip + ":8080")
		if err != nil {
			return servers, err
		}
		servers = append(servers, srv)
		go d.Run(ctx, 0, log)
		labels := map[string]string{"app": w.app, "tags.datadoghq.com/service": w.app, "tags.datadoghq.com/env": "demo"}
		pod := controlplane.Pod(w.ns, w.name, w.node, labels, corev1.ContainerPort{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP})
		if w.owner != "" {
			controller := true
			pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: w.owner,
				UID: types.UID("00000000-0000-0000-0000-00000000000" + fmt.Sprint(i)), Controller: &controller}}
		}
		if _, err := cp.CreatePod(ctx, pod, controlplane.PodStatus{IP: netip.MustParseAddr(w.ip)}); err != nil {
			return servers, err
		}
	}
	svc := controlplane.Service("shop", "web", map[string]string{"app": "web"}, controlplane.ServicePort("metrics", 8080, "metrics"))
	svc.Labels = map[string]string{"app": "web"}
	every := monitoringv1.Duration(interval.String())
	sm := controlplane.ServiceMonitor("shop", "web", map[string]string{"app": "web"}, monitoringv1.Endpoint{Port: "metrics", Interval: every})
	pm := controlplane.PodMonitor("payments", "cart", map[string]string{"app": "cart"}, monitoringv1.PodMetricsEndpoint{Port: ptr("metrics"), Interval: every})
	return servers, cp.Create(ctx, svc, sm, pm)
}

// startProcesses starts the stand-in intake (stopped when intakeCtx ends)
// and the agent of node-a (stopped when ctx ends), the agent logging to
// agentLog.
func startProcesses(ctx, intakeCtx context.Context, bin, work, kubeconfig string, agentLog *os.File) (intake, agent *exec.Cmd, err error) {
	intake = exec.CommandContext(intakeCtx, filepath.Join(bin, "ddintake"), "-listen", "127.0.0.1:8129", "-api-key", apiKey, "-summary-interval", "10s")
	intake.Stdout, intake.Stderr = os.Stdout, os.Stderr
	agent = exec.CommandContext(ctx, filepath.Join(bin, "nodescraper"),
		"--kubeconfig", kubeconfig, "--node-name", "node-a", "--cluster-name", "demo",
		"--dd-url", "http://127.0.0.1:8129", "--allow-insecure-datadog-url", "--listen", "127.0.0.1:9105",
		"--state-dir", filepath.Join(work, "state"), "--flush-interval", "2s")
	agent.Env = append(os.Environ(), "DD_API_KEY="+apiKey)
	agent.Stdout, agent.Stderr = agentLog, agentLog
	for _, c := range []*exec.Cmd{intake, agent} {
		// Own process group: a terminal's Ctrl-C reaches only this command,
		// which then stops each child with one SIGTERM (a second signal would
		// make the agent skip its final checkpoint and flush).
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
		c.WaitDelay = 15 * time.Second
		if err := c.Start(); err != nil {
			return nil, nil, fmt.Errorf("start %s: %w (run make build first)", c.Path, err)
		}
	}
	return intake, agent, nil
}

// wait waits for ctx to end or for either process to exit, then stops the
// agent first (its final flush goes to the intake) and the intake after it.
func wait(ctx context.Context, intake, agent *exec.Cmd, stopIntake func(), agentLog string) error {
	agentDone := make(chan error, 1)
	intakeDone := make(chan error, 1)
	go func() { agentDone <- agent.Wait() }()
	go func() { intakeDone <- intake.Wait() }()
	var early error
	select {
	case <-ctx.Done():
		<-agentDone // SIGTERM'd through ctx: checkpoint and final flush first
	case err := <-agentDone:
		early = fmt.Errorf("nodescraper exited early: %v (see %s)", err, agentLog)
	case err := <-intakeDone:
		early = fmt.Errorf("ddintake exited early: %v", err)
		_ = agent.Process.Signal(syscall.SIGTERM)
		<-agentDone
	}
	stopIntake()
	if early == nil {
		<-intakeDone
	}
	if early != nil {
		return early
	}
	fmt.Println("demo stopped; agent log kept at", agentLog)
	return nil
}

func ptr[T any](v T) *T { return &v }
