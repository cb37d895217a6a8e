package apiscale

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
)

// Config is one measurement run: one cluster, then one phase per entry of
// Phases on it, one after the other, each with the same churn.
type Config struct {
	Spec Spec
	// Phases run in order; a phase with Agents 0 measures the churn alone
	// (the API server's baseline).
	Phases []Phase
	// StartRate is how many agents start per second (default 50): a whole
	// DaemonSet never starts in the same instant either.
	StartRate float64
	// SyncTimeout bounds the wait for all agents of a phase to sync
	// (default 10m).
	SyncTimeout time.Duration
	// Churn is how long each phase churns: pod replacements for all of it,
	// plus the Service update stream in its second half.
	Churn                          time.Duration
	PodChurnRate, ServiceChurnRate float64 // per second
	// Settle is waited after the agents synced (for the last watches to
	// register) and after the churn (for its last changes to arrive);
	// default 5s.
	Settle time.Duration
	// APIServerRSSLimit ends a phase whose kube-apiserver RSS exceeds it
	// (0: no limit), so that a configuration which does not fit is
	// recorded before it exhausts the machine.
	APIServerRSSLimit int64
	// Workers write the cluster in parallel (default 16).
	Workers int
	Logf    func(format string, args ...any)
}

// Phase is one agent configuration.
type Phase struct {
	Mode   Mode
	Agents int
	// StartRate overrides Config.StartRate for this phase (0: keep it):
	// cluster-wide agents' full lists need a slower start than node-local
	// ones to fit beside the API server at all.
	StartRate float64
}

// Result is one phase's measurements. Per-agent figures are means over the
// phase's agents.
type Result struct {
	Spec   Spec
	Phase  Phase
	Synced time.Duration // first start to all agents synced
	// Failed says why the phase did not complete (empty when it did);
	// SyncedAgents is how many of its agents had synced by then.
	Failed       string
	SyncedAgents int

	StartBytes, StartBytesMax int64   // received per agent until synced (wire bytes)
	StartObjects              float64 // objects delivered per agent until synced
	StartServices             float64 // of them Services (node-local agents only)
	// Pods and ForeignPods are the pods delivered per agent over the whole
	// phase, and among them those of other nodes.
	Pods, ForeignPods   float64
	ChurnBytesPerHour   float64 // received per agent during churn, scaled to an hour
	ChurnObjectsPerHour float64
	ChurnObjects        float64 // delivered per agent during churn (not scaled)
	ChurnServices       float64 // of them Services (node-local agents only)
	Churn               ChurnStats

	Watches          Watches // after all agents synced
	APICPUStart      float64 // kube-apiserver CPU seconds from first start to synced
	APICPUChurnPerHr float64 // kube-apiserver CPU seconds during churn, scaled to an hour
	APIRSSMax        int64   // kube-apiserver RSS, highest sample of the phase
	EtcdDB           int64   // at the end of the phase

	Quiet, Stream Latency // pod Ready -> owning agent has it; without / with the Service stream
	Missed        int     // pod changes on agents' nodes never seen by their agent
	HarnessRSS    int64   // this process, with the phase's agents running
	// HeapPerAgent is this process's heap in use once the agents synced
	// (after a GC), less before they started, per agent: what one agent's
	// discovery holds.
	HeapPerAgent int64
}

func (cfg *Config) defaults() {
	cfg.Spec.defaults()
	if cfg.StartRate <= 0 {
		cfg.StartRate = 50
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 10 * time.Minute
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 5 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
}

// Run builds cfg.Spec on cp and measures each phase.
func Run(ctx context.Context, cp *controlplane.ControlPlane, cfg Config) ([]Result, error) {
	cfg.defaults()
	for _, p := range cfg.Phases {
		if p.Agents > cfg.Spec.Nodes {
			return nil, fmt.Errorf("phase %s: %d agents for %d nodes", p.Mode, p.Agents, cfg.Spec.Nodes)
		}
	}
	if err := build(ctx, cp, cfg.Spec, cfg.Workers, cfg.Logf); err != nil {
		return nil, err
	}
	ch := newChurner(cp, cfg.Spec)
	var out []Result
	for _, p := range cfg.Phases {
		r, err := runPhase(ctx, cp, cfg, ch, p)
		if err != nil {
			r.Failed = err.Error()
			cfg.Logf("%s", r.Row())
			return append(out, r), fmt.Errorf("phase %s x%d: %w", p.Mode, p.Agents, err)
		}
		cfg.Logf("%s", r.Row())
		out = append(out, r)
	}
	return out, nil
}

// runPhase starts the phase's agents, lets them sync, churns, and measures
// each step; a phase cut short returns what it measured with the reason.
func runPhase(ctx context.Context, cp *controlplane.ControlPlane, cfg Config, ch *churner, p Phase) (res Result, err error) {
	r := Result{Spec: cfg.Spec, Phase: p}
	// Sample kube-apiserver's memory every second while the phase runs,
	// and end the phase when it is over the limit.
	ctx, endPhase := context.WithCancelCause(ctx)
	defer endPhase(nil)
	api := startAPISampler(ctx, cp.APIServerPID(), cfg.APIServerRSSLimit, endPhase)
	defer func() { res.APIRSSMax = api.stop() }()

	tr := phaseTracker(p, cfg.Spec.Nodes)
	heap0 := heapInUse()
	cpu0 := api.cpu()
	var agents []*agent
	if p.Agents > 0 {
		var err error
		rate := cfg.StartRate
		if p.StartRate > 0 {
			rate = p.StartRate
		}
		agents, r.Synced, r.SyncedAgents, err = startAll(ctx, p.Mode, cp.Admin, p.Agents, rate, cfg.SyncTimeout, tr.seen)
		if err != nil {
			r.APICPUStart = api.cpu() - cpu0
			r.HarnessRSS = selfRSS()
			return r, err
		}
	}
	defer stopAll(agents)
	r.APICPUStart = api.cpu() - cpu0
	at := r.countStart(agents)
	time.Sleep(cfg.Settle) // let the last watches register
	if len(agents) > 0 {
		r.HeapPerAgent = (heapInUse() - heap0) / int64(len(agents))
	}
	if r.Watches, err = watches(ctx, cp); err != nil {
		return r, err
	}

	cpu1 := api.cpu()
	t1 := time.Now()
	if r.Churn, err = ch.run(ctx, cfg.Churn, cfg.PodChurnRate, cfg.ServiceChurnRate, 1, tr); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("churn: %w", context.Cause(ctx))
		}
		r.HarnessRSS = selfRSS()
		return r, err
	}
	cfg.Logf("%s x%d: churn %d pod replacements, %d Service updates in %v", p.Mode, p.Agents, r.Churn.PodReplacements, r.Churn.ServiceUpdates, r.Churn.Duration.Round(time.Millisecond))
	time.Sleep(cfg.Settle) // the last changes' way to the agents
	elapsed := time.Since(t1)
	// A change counts as missed only when its agent has not seen it 30 s
	// later: on a loaded machine the last ones may take longer than Settle.
	for deadline := time.Now().Add(30 * time.Second); tr.pendingCount() > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	perHour := float64(time.Hour) / float64(elapsed)
	r.APICPUChurnPerHr = (api.cpu() - cpu1) * perHour
	err = r.countChurn(agents, at, perHour)
	r.Quiet, r.Stream, r.Missed = tr.result()
	r.HarnessRSS = selfRSS()
	var dbErr error
	if r.EtcdDB, dbErr = etcdDBSize(ctx, cp); dbErr != nil {
		return r, errors.Join(err, dbErr)
	}
	return r, err // the agents' errors
}

// phaseTracker tracks the pod changes of the nodes that have an agent in
// phase p (agents run on node-0000 onwards).
func phaseTracker(p Phase, nodes int) *tracker {
	watched := make([]bool, nodes)
	for n := range p.Agents {
		watched[n] = true
	}
	return newTracker(func(node string) bool {
		if p.Mode == ClusterWideWire {
			return false // it decodes no pod
		}
		var n int
		_, err := fmt.Sscanf(node, "node-%d", &n)
		return err == nil && n < len(watched) && watched[n]
	})
}

// apiSampler reads kube-apiserver's CPU time and RSS from /proc; from start
// to stop it samples the RSS every second and ends the phase once it is over
// the limit.
type apiSampler struct {
	pid    int
	mu     sync.Mutex
	rssMax int64 // guarded by mu
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startAPISampler(ctx context.Context, pid int, limit int64, endPhase context.CancelCauseFunc) *apiSampler {
	s := &apiSampler{pid: pid}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.mu.Lock()
				s.sample()
				over := limit > 0 && s.rssMax > limit
				s.mu.Unlock()
				if over {
					endPhase(fmt.Errorf("kube-apiserver RSS over the limit of %s", size(float64(limit))))
					return
				}
			}
		}
	})
	return s
}

// sample returns kube-apiserver's CPU seconds and keeps its highest RSS;
// the caller holds s.mu.
func (s *apiSampler) sample() float64 {
	cpu, rss, err := procStat(s.pid)
	if err == nil {
		s.rssMax = max(s.rssMax, rss)
	}
	return cpu
}

// cpu samples now and returns kube-apiserver's CPU seconds.
func (s *apiSampler) cpu() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sample()
}

// stop ends the sampling and returns the highest RSS seen.
func (s *apiSampler) stop() int64 {
	s.cancel()
	s.wg.Wait()
	return s.rssMax
}

// agentCounts are each agent's counters when all had synced: the churn's
// figures are the differences from them.
type agentCounts struct{ in, obj, svc []int64 }

// countStart sets the per-agent start figures and returns the counters the
// churn is measured from.
func (r *Result) countStart(agents []*agent) agentCounts {
	at := agentCounts{in: make([]int64, len(agents)), obj: make([]int64, len(agents)), svc: make([]int64, len(agents))}
	for i, a := range agents {
		at.in[i], at.obj[i] = a.ctr.In.Load(), a.objects()
		if a.services != nil {
			at.svc[i] = a.services()
		}
		r.StartBytes += at.in[i]
		r.StartBytesMax = max(r.StartBytesMax, at.in[i])
		r.StartObjects += float64(at.obj[i])
		r.StartServices += float64(at.svc[i])
	}
	if n := len(agents); n > 0 {
		r.StartBytes /= int64(n)
		r.StartObjects /= float64(n)
		r.StartServices /= float64(n)
	}
	return at
}

// countChurn sets the per-agent churn figures (received since at, scaled by
// perHour) and the pods delivered; it returns the agents' errors.
func (r *Result) countChurn(agents []*agent, at agentCounts, perHour float64) error {
	var err error
	for i, a := range agents {
		r.ChurnBytesPerHour += float64(a.ctr.In.Load()-at.in[i]) * perHour
		r.ChurnObjects += float64(a.objects() - at.obj[i])
		if a.services != nil {
			r.ChurnServices += float64(a.services() - at.svc[i])
		}
		own, foreign := a.pods()
		r.Pods += float64(own + foreign)
		r.ForeignPods += float64(foreign)
		if e := a.err.Load(); e != nil {
			err = errors.Join(err, fmt.Errorf("agent %s: %w", a.node, *e))
		}
	}
	if n := len(agents); n > 0 {
		r.ChurnBytesPerHour /= float64(n)
		r.ChurnObjects /= float64(n)
		r.ChurnServices /= float64(n)
		r.ChurnObjectsPerHour = r.ChurnObjects * perHour
		r.Pods /= float64(n)
		r.ForeignPods /= float64(n)
	}
	return err
}

// heapInUse is this process's heap in use after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func selfRSS() int64 {
	_, rss, err := procStat(os.Getpid())
	if err != nil {
		return 0
	}
	return rss
}

// Header is the Markdown table header matching Row.
const Header = `| cluster (nodes × pods/node; pods, Services, ServiceMonitors) | agents | all synced | per agent at start: bytes (max), objects (Services) | churn written: pod replacements, Service updates (Services delivered per agent) | per agent per hour of churn: bytes, objects | pods delivered per agent (of other nodes) | watches (registered / WATCH requests) | kube-apiserver CPU s: start, per hour of churn | kube-apiserver RSS max | etcd db | pod Ready → target set p50 / p99 (n): pod churn | … with Service stream | missed | harness RSS | heap in use per agent after sync |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`

// Row is the phase as a row of Header's table.
func (r Result) Row() string {
	s := r.Spec
	agents := "none (churn only)"
	if r.Phase.Agents > 0 {
		agents = fmt.Sprintf("%d %s", r.Phase.Agents, r.Phase.Mode)
	}
	if r.Failed != "" {
		return fmt.Sprintf("| %d × %d; %d, %d, %d | %s | **did not complete**: %s | – | – | – | – | – | %.1f, – | %s | – | – | – | – | %s | – |",
			s.Nodes, s.PodsPerNode, s.Pods(), s.Services(), s.Monitors(), agents, strings.ReplaceAll(r.Failed, "|", "/"),
			r.APICPUStart, size(float64(r.APIRSSMax)), size(float64(r.HarnessRSS)))
	}
	reg := "n/a"
	if r.Watches.Registered >= 0 {
		reg = fmt.Sprintf("%.0f", r.Watches.Registered)
	}
	lat := func(l Latency) string {
		if l.N == 0 {
			return "–"
		}
		return fmt.Sprintf("%v / %v (%d)", l.P50.Round(time.Millisecond), l.P99.Round(time.Millisecond), l.N)
	}
	churn := fmt.Sprintf("%d, %d", r.Churn.PodReplacements, r.Churn.ServiceUpdates)
	if r.Phase.Mode == NodeLocal && r.Phase.Agents > 0 {
		churn += fmt.Sprintf(" (%.0f)", r.ChurnServices)
	}
	return fmt.Sprintf("| %d × %d; %d, %d, %d | %s | %v | %s (%s), %.0f (%.0f) | %s | %s, %.0f | %.0f (%.0f) | %s / %.0f | %.1f, %.0f | %s | %s | %s | %s | %d | %s | %s |",
		s.Nodes, s.PodsPerNode, s.Pods(), s.Services(), s.Monitors(), agents, r.Synced.Round(100*time.Millisecond),
		size(float64(r.StartBytes)), size(float64(r.StartBytesMax)), r.StartObjects, r.StartServices,
		churn, size(r.ChurnBytesPerHour), r.ChurnObjectsPerHour, r.Pods, r.ForeignPods,
		reg, r.Watches.LongRunning, r.APICPUStart, r.APICPUChurnPerHr,
		size(float64(r.APIRSSMax)), size(float64(r.EtcdDB)), lat(r.Quiet), lat(r.Stream), r.Missed, size(float64(r.HarnessRSS)), size(float64(r.HeapPerAgent)))
}

func size(b float64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for b >= 1000 && i < len(units)-1 {
		b /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}
