package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	monitoring "github.com/prometheus-operator/prometheus-operator/pkg/client/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Config selects what to run. The zero value runs etcd and kube-apiserver
// with the binaries found as described in the package comment.
type Config struct {
	// ControllerManager also runs kube-controller-manager (ServiceAccount,
	// EndpointSlice, garbage collection, ... controllers).
	ControllerManager bool
	// Controllers is kube-controller-manager's --controllers. The default
	// runs all of them except the node lifecycle controller: no kubelet
	// heartbeats here, so it would mark every node and pod not ready after
	// the node monitor grace period (~50 s) and evict pods later.
	Controllers []string
	// BinDir holds kube-apiserver and kube-controller-manager; empty means
	// $NODESCRAPER_KUBE_BIN or the repository cache.
	BinDir string
	// Dir receives certificates, kubeconfigs and logs; empty means a new
	// temporary directory removed by Stop.
	Dir string
	// StartTimeout bounds the start of each component (default 60 s; a cold
	// kube-apiserver on a busy 2-core machine takes several seconds).
	StartTimeout time.Duration
	// APIServerFlags are added to kube-apiserver's command line after the
	// defaults (a later flag wins), e.g. --max-requests-inflight for a
	// scale test.
	APIServerFlags []string
}

// defaultControllers: see Config.Controllers.
var defaultControllers = []string{"*", "-node-lifecycle-controller"}

// Timings is how long the start took, per step.
type Timings struct {
	Etcd, APIServer, CRDs, ControllerManager, Total time.Duration
}

func (t Timings) String() string {
	s := fmt.Sprintf("total %v (etcd %v, kube-apiserver %v, CRDs %v", t.Total.Round(time.Millisecond),
		t.Etcd.Round(time.Millisecond), t.APIServer.Round(time.Millisecond), t.CRDs.Round(time.Millisecond))
	if t.ControllerManager > 0 {
		s += fmt.Sprintf(", kube-controller-manager %v", t.ControllerManager.Round(time.Millisecond))
	}
	return s + ")"
}

// ControlPlane is a running etcd + kube-apiserver (+ kube-controller-manager).
// Its clients act as cluster admin (group system:masters).
type ControlPlane struct {
	// Admin is a client configuration with the admin credential.
	Admin *rest.Config
	// Kubeconfig is the path of a kubeconfig file with the admin credential
	// (for processes such as the agent or kubectl).
	Kubeconfig string
	// Kube and Monitoring are typed clients for Admin.
	Kube       kubernetes.Interface
	Monitoring monitoring.Interface
	// Timings of the start.
	Timings Timings

	cfg     Config
	bins    binaries
	dir     string
	ownDir  bool
	etcdDir string
	pki     *pki
	sp      *spawner

	etcdURL       string
	apiserverPort int

	schedOnce sync.Mutex // serialises ensureScheduler

	mu         sync.Mutex // guards the fields below
	etcd       *process
	apiserver  *process
	kcm        *process
	sched      *process // started with the first node
	nodes      []*Node
	stopped    bool
	namespaces map[string]bool // known to exist, see ensureNamespace
}

// Start runs the control plane and returns once kube-apiserver is ready and
// the monitor CRDs are established (and kube-controller-manager is healthy
// when asked for). On error everything started so far is stopped.
func Start(ctx context.Context, cfg Config) (cp *ControlPlane, err error) {
	begin := time.Now()
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if len(cfg.Controllers) == 0 {
		cfg.Controllers = defaultControllers
	}
	bins, err := findBinaries(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	cp = &ControlPlane{cfg: cfg, bins: bins, dir: cfg.Dir, namespaces: make(map[string]bool)}
	if cp.dir == "" {
		if cp.dir, err = os.MkdirTemp("", "nodescraper-controlplane-"); err != nil {
			return nil, fmt.Errorf("control plane dir: %w", err)
		}
		cp.ownDir = true
	} else if err = os.MkdirAll(cp.dir, 0o700); err != nil {
		return nil, fmt.Errorf("control plane dir: %w", err)
	}
	cp.sp = newSpawner()
	started := cp // a "return nil, err" below clears cp before this runs
	defer func() {
		if err != nil {
			if serr := started.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
			cp = nil
		}
	}()

	if cp.pki, err = newPKI(cp.dir); err != nil {
		return nil, err
	}
	step := time.Now()
	if err = cp.startEtcd(ctx); err != nil {
		return nil, err
	}
	cp.Timings.Etcd = time.Since(step)

	step = time.Now()
	if err = cp.startAPIServer(ctx); err != nil {
		return nil, err
	}
	cp.Timings.APIServer = time.Since(step)

	step = time.Now()
	if err = installMonitorCRDs(ctx, cp.Admin, cfg.StartTimeout); err != nil {
		return nil, err
	}
	if err = cp.warmMonitorCRDs(ctx); err != nil {
		return nil, err
	}
	cp.Timings.CRDs = time.Since(step)

	if cfg.ControllerManager {
		step = time.Now()
		if err = cp.startControllerManager(ctx); err != nil {
			return nil, err
		}
		cp.Timings.ControllerManager = time.Since(step)
	}
	cp.Timings.Total = time.Since(begin)
	return cp, nil
}

// freePort asks the kernel for an unused loopback port. Another process can
// take it before the component binds it; the starts retry on that.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// retryOnPortClash runs start up to three times while a component's log says
// its port was taken in between.
func retryOnPortClash(start func() (*process, error)) (*process, error) {
	for attempt := 1; ; attempt++ {
		p, err := start()
		if err == nil || p == nil || attempt == 3 || !strings.Contains(p.logTail(50), "address already in use") {
			return p, err
		}
		if err := p.stop(5 * time.Second); err != nil {
			return p, err
		}
	}
}

func (cp *ControlPlane) startEtcd(ctx context.Context) error {
	dataDir, err := etcdDataDir(cp.dir)
	if err != nil {
		return err
	}
	cp.etcdDir = dataDir
	_, err = retryOnPortClash(func() (*process, error) {
		clientPort, err := freePort()
		if err != nil {
			return nil, err
		}
		peerPort, err := freePort()
		if err != nil {
			return nil, err
		}
		client := "http://127.0.0.1:" + strconv.Itoa(clientPort)
		peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
		if err := os.RemoveAll(filepath.Join(dataDir, "member")); err != nil {
			return nil, err
		}
		p, err := startProcess(cp.sp, "etcd", cp.bins.etcd, []string{
			"--name=nodescraper",
			"--data-dir=" + dataDir,
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=nodescraper=" + peer,
			"--initial-cluster-state=new",
			"--logger=zap",
			"--log-level=warn",
			// A single member on loopback: elect itself in ~0.1 s rather
			// than after the 1 s default election timeout.
			"--heartbeat-interval=10",
			"--election-timeout=100",
		}, filepath.Join(cp.dir, "etcd.log"))
		if err != nil {
			return nil, err
		}
		cp.setProcess(&cp.etcd, p)
		cp.etcdURL = client
		return p, cp.waitReady(ctx, p, client+"/health", `"health":"true"`)
	})
	return err
}

// etcdDataDir puts etcd's data in memory (/dev/shm) when possible: etcd 3.4
// has no --unsafe-no-fsync, and fsyncs on a shared disk make every write
// slow. The directory name carries our pid so that leftovers of a process
// that died hard are recognised and removed by the next start.
func etcdDataDir(fallback string) (string, error) {
	const shm = "/dev/shm"
	if st, err := os.Stat(shm); err == nil && st.IsDir() {
		removeStaleEtcdDirs(shm)
		dir, err := os.MkdirTemp(shm, "nodescraper-etcd-"+strconv.Itoa(os.Getpid())+"-")
		if err == nil {
			return dir, nil
		}
	}
	dir := filepath.Join(fallback, "etcd")
	return dir, os.MkdirAll(dir, 0o700)
}

func removeStaleEtcdDirs(shm string) {
	matches, _ := filepath.Glob(filepath.Join(shm, "nodescraper-etcd-*-*"))
	for _, m := range matches {
		pid, err := strconv.Atoi(strings.Split(strings.TrimPrefix(filepath.Base(m), "nodescraper-etcd-"), "-")[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(m)
		}
	}
}

func (cp *ControlPlane) startAPIServer(ctx context.Context) error {
	admin, err := cp.pki.clientCert("nodescraper-admin", "system:masters")
	if err != nil {
		return fmt.Errorf("admin certificate: %w", err)
	}
	_, err = retryOnPortClash(func() (*process, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cp.apiserverPort = port
		cp.Admin = cp.restConfig(admin)
		return cp.runAPIServer(ctx)
	})
	if err != nil {
		return err
	}

	if cp.Kube, err = kubernetes.NewForConfig(cp.Admin); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	if cp.Monitoring, err = monitoring.NewForConfig(cp.Admin); err != nil {
		return fmt.Errorf("monitoring client: %w", err)
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "admin.kubeconfig")
	return writeKubeconfig(cp.Kubeconfig, cp.Admin.Host, cp.pki.caPEM, admin)
}

// runAPIServer starts kube-apiserver on cp.apiserverPort and waits for /readyz.
func (cp *ControlPlane) runAPIServer(ctx context.Context) (*process, error) {
	host := "https://127.0.0.1:" + strconv.Itoa(cp.apiserverPort)
	p, err := startProcess(cp.sp, "kube-apiserver", cp.bins.apiserver, append([]string{
		"--etcd-servers=" + cp.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(cp.apiserverPort),
		"--tls-cert-file=" + cp.pki.serverCertFile,
		"--tls-private-key-file=" + cp.pki.serverKeyFile,
		"--client-ca-file=" + cp.pki.caFile,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=" + host,
		"--service-account-key-file=" + cp.pki.saKeyFile,
		"--service-account-signing-key-file=" + cp.pki.saKeyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		// The "kubernetes" Service would get the loopback advertise address
		// as endpoint, which Endpoints validation rejects on every reconcile.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(cp.dir, "apiserver-certs"),
		// On SIGTERM close open watches within 2 s; by default they hold
		// the HTTP server's graceful shutdown for its full 60 s timeout.
		"--shutdown-watch-termination-grace-period=2s",
		"--profiling=false",
	}, cp.cfg.APIServerFlags...), filepath.Join(cp.dir, "kube-apiserver.log"))
	if err != nil {
		return nil, err
	}
	cp.setProcess(&cp.apiserver, p)
	return p, cp.waitReady(ctx, p, host+"/readyz", "ok")
}

func (cp *ControlPlane) restConfig(cred keyPair) *rest.Config {
	return &rest.Config{
		Host: "https://127.0.0.1:" + strconv.Itoa(cp.apiserverPort),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   cp.pki.caPEM,
			CertData: cred.certPEM,
			KeyData:  cred.keyPEM,
		},
		// Tests create objects in bursts; the client-side default (5 qps)
		// would make them wait instead of the server.
		QPS:   1000,
		Burst: 1000,
	}
}

func writeKubeconfig(path, host string, caPEM []byte, cred keyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["nodescraper"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: cred.certPEM, ClientKeyData: cred.keyPEM}
	cfg.Contexts["nodescraper"] = &clientcmdapi.Context{Cluster: "nodescraper", AuthInfo: "user"}
	cfg.CurrentContext = "nodescraper"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// startComponent runs kube-controller-manager or kube-scheduler: its own
// client certificate (user) and kubeconfig, a serving certificate for its
// secure port on a free loopback port, no leader election; it returns once
// /healthz answers.
func (cp *ControlPlane) startComponent(ctx context.Context, slot **process, name, bin, user string, flags ...string) error {
	cred, err := cp.pki.clientCert(user)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", name, err)
	}
	kubeconfig := filepath.Join(cp.dir, name+".kubeconfig")
	if err := writeKubeconfig(kubeconfig, cp.Admin.Host, cp.pki.caPEM, cred); err != nil {
		return err
	}
	certFile := filepath.Join(cp.dir, name+".crt")
	keyFile := filepath.Join(cp.dir, name+".key")
	if err := cp.pki.writeServingCert(name, certFile, keyFile); err != nil {
		return err
	}
	_, err = retryOnPortClash(func() (*process, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := startProcess(cp.sp, name, bin, append([]string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + certFile,
			"--tls-private-key-file=" + keyFile,
			"--leader-elect=false",
			"--profiling=false",
		}, flags...), filepath.Join(cp.dir, name+".log"))
		if err != nil {
			return nil, err
		}
		cp.setProcess(slot, p)
		return p, cp.waitReady(ctx, p, "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz", "ok")
	})
	return err
}

func (cp *ControlPlane) startControllerManager(ctx context.Context) error {
	err := cp.startComponent(ctx, &cp.kcm, "kube-controller-manager", cp.bins.controllerManager, "system:kube-controller-manager",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+cp.pki.saKeyFile,
		"--root-ca-file="+cp.pki.caFile,
		"--controllers="+strings.Join(cp.cfg.Controllers, ","),
	)
	if err != nil || !controllerEnabled(cp.cfg.Controllers, "serviceaccount-controller", "serviceaccount") {
		return err
	}
	// /healthz answers before the controllers run; the "default"
	// ServiceAccount of namespace default shows they do.
	ctx, cancel := context.WithTimeout(ctx, cp.cfg.StartTimeout)
	defer cancel()
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cp.Kube.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kube-controller-manager: controllers not running after %v; log %s:\n%s", cp.cfg.StartTimeout, cp.kcm.logPath, cp.kcm.logTail(30))
	}
	return nil
}

// controllerEnabled reports whether --controllers=list enables the
// controller known by any of names (its name and its older alias).
func controllerEnabled(list []string, names ...string) bool {
	enabled := false
	for _, c := range list {
		switch {
		case c == "*":
			enabled = true
		case slices.Contains(names, c):
			enabled = true
		case strings.HasPrefix(c, "-") && slices.Contains(names, c[1:]):
			return false
		}
	}
	return enabled
}

func (cp *ControlPlane) setProcess(slot **process, p *process) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	*slot = p
}

// waitReady polls url until its body contains want, the process exits, or
// the start timeout passes; errors carry the end of the component's log.
// /readyz and /healthz answer anonymous requests (RBAC role
// system:public-info-viewer), so the probe needs only the CA.
func (cp *ControlPlane) waitReady(ctx context.Context, p *process, url, want string) error {
	ctx, cancel := context.WithTimeout(ctx, cp.cfg.StartTimeout)
	defer cancel()
	hc := cp.pki.httpClient()
	defer hc.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = probe(ctx, hc, url, want)
		if last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during start (%v); log %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail(30))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v (%v); log %s:\n%s", p.name, cp.cfg.StartTimeout, last, p.logPath, p.logTail(30))
		case <-tick.C:
		}
	}
}

func probe(ctx context.Context, hc *http.Client, url, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf [512]byte
	n, _ := resp.Body.Read(buf[:])
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(buf[:n]), want) {
		return fmt.Errorf("GET %s: %s %q", url, resp.Status, buf[:n])
	}
	return nil
}

// RestartAPIServer stops kube-apiserver (SIGTERM, as a rolling upgrade
// does) and starts it again on the same port with the same flags, returning
// once it is ready and has accepted a first (dry-run) monitor write.
// Clients keep their configuration; their watches break and must be
// re-established by the client (informers do that themselves).
func (cp *ControlPlane) RestartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	old, stopped := cp.apiserver, cp.stopped
	cp.mu.Unlock()
	if stopped {
		return errors.New("restart kube-apiserver: control plane stopped")
	}
	if err := old.stop(30 * time.Second); err != nil {
		return err
	}
	if _, err := cp.runAPIServer(ctx); err != nil {
		return fmt.Errorf("restart kube-apiserver: %w", err)
	}
	if err := cp.warmMonitorCRDs(ctx); err != nil {
		return fmt.Errorf("restart kube-apiserver: %w", err)
	}
	return nil
}

// Stop stops the processes this control plane started, in reverse order,
// and removes its temporary directories. It is safe to call more than once.
func (cp *ControlPlane) Stop() error {
	cp.mu.Lock()
	if cp.stopped {
		cp.mu.Unlock()
		return nil
	}
	cp.stopped = true
	nodes := cp.nodes
	procs := []*process{cp.sched, cp.kcm, cp.apiserver, cp.etcd}
	cp.mu.Unlock()

	var errs []error
	// Nodes first: their kubelets need the API server to go quietly.
	for _, n := range nodes {
		errs = append(errs, n.Stop())
	}
	for _, p := range procs {
		if p != nil {
			errs = append(errs, p.stop(15*time.Second))
		}
	}
	cp.sp.close()
	if cp.etcdDir != "" {
		errs = append(errs, os.RemoveAll(cp.etcdDir))
	}
	if cp.ownDir {
		errs = append(errs, os.RemoveAll(cp.dir))
	}
	return errors.Join(errs...)
}

// Logs returns the last lines of each component's log, for failure reports.
func (cp *ControlPlane) Logs(lines int) string {
	cp.mu.Lock()
	procs := []*process{cp.etcd, cp.apiserver, cp.kcm, cp.sched}
	nodes := cp.nodes
	cp.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		if p != nil {
			fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.name, p.logPath, p.logTail(lines))
		}
	}
	for _, n := range nodes {
		b.WriteString(n.Logs(lines))
	}
	return b.String()
}

// Dir is the directory with certificates, kubeconfigs and logs.
func (cp *ControlPlane) Dir() string { return cp.dir }

// APIServerPID is the process id of the running kube-apiserver (0 when not
// running), for reading its CPU time and memory from /proc.
func (cp *ControlPlane) APIServerPID() int { return cp.pid(&cp.apiserver) }

// EtcdPID is the process id of the running etcd (0 when not running).
func (cp *ControlPlane) EtcdPID() int { return cp.pid(&cp.etcd) }

// EtcdURL is etcd's client URL (plain HTTP on loopback; /metrics is served there).
func (cp *ControlPlane) EtcdURL() string { return cp.etcdURL }

func (cp *ControlPlane) pid(slot **process) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if p := *slot; p != nil && p.running() {
		return p.cmd.Process.Pid
	}
	return 0
}
