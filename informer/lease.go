package informer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseConfig configures the election of the one agent of the fleet that
// scrapes the targets of no node (endpoints without a node name at an
// address of no node: the API server of a managed cluster, selectorless
// Services to external addresses), with a Kubernetes Lease as Kubernetes'
// own controllers elect theirs.
//
// The holder does not give the Lease up when it stops: an agent that comes
// back on the same node before the Lease expires (a restart, a rollout of a
// pod whose image is present) renews it in the same term and goes on from
// its persisted delta state, so nothing is lost or counted twice. When the
// holder does not come back, another agent takes the Lease once it expired,
// within LeaseDuration + RetryPeriod of the holder's last renewal, and
// scrapes at once; keep that under the node-less targets' scrape interval.
type LeaseConfig struct {
	// Namespace and Name are the Lease object's.
	Namespace, Name string
	// Identity is this agent's name in the Lease; default the node name,
	// which a restarted agent on the same node keeps.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's leader
	// election timings; defaults 15s, 10s and 2s, as Kubernetes' own
	// components use.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// withDefaults fills the unset fields.
func (c LeaseConfig) withDefaults(node string) LeaseConfig {
	if c.Identity == "" {
		c.Identity = node
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = 15 * time.Second
	}
	if c.RenewDeadline <= 0 {
		c.RenewDeadline = 10 * time.Second
	}
	if c.RetryPeriod <= 0 {
		c.RetryPeriod = 2 * time.Second
	}
	return c
}

// lease runs the election and says whether this agent holds the Lease, and
// in which term.
type lease struct {
	cfg     LeaseConfig
	lock    *resourcelock.LeaseLock
	changed func() // a rebuild: the node-less targets come or go
	log     *slog.Logger

	kube kubernetes.Interface

	mu     sync.Mutex
	term   string                    // non-empty while this agent holds the Lease
	holder string                    // the last holder observed
	nodes  cache.SharedIndexInformer // every Node's addresses, while holding

	acquired *metrics.Counter
}

// newLease prepares the election; kube (discovery's client) watches the
// Nodes while this agent holds the Lease.
func newLease(cfg LeaseConfig, node string, rc *rest.Config, kube kubernetes.Interface, set *metrics.Set, changed func(), log *slog.Logger) (*lease, error) {
	cfg = cfg.withDefaults(node)
	if cfg.Namespace == "" || cfg.Name == "" {
		return nil, errors.New("cluster lease: namespace and name are required")
	}
	if cfg.LeaseDuration <= cfg.RenewDeadline || cfg.RenewDeadline <= cfg.RetryPeriod {
		return nil, fmt.Errorf("cluster lease: want lease duration (%s) > renew deadline (%s) > retry period (%s)", cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod)
	}
	// A request that hangs must not outlive the renew deadline, as
	// resourcelock.NewFromKubeconfig sets it.
	c := rest.CopyConfig(rc)
	c.Timeout = max(cfg.RenewDeadline/2, time.Second)
	kc, err := kubernetes.NewForConfig(rest.AddUserAgent(c, "nodescraper-lease"))
	if err != nil {
		return nil, fmt.Errorf("cluster lease: client: %w", err)
	}
	l := &lease{
		cfg: cfg, changed: changed, log: log, kube: kube,
		lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
			Client:     kc.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		},
		acquired: set.NewCounter(`nodescraper_cluster_lease_acquired_total`),
	}
	set.NewGauge(`nodescraper_cluster_lease_held`, func() float64 {
		if l.Term() != "" {
			return 1
		}
		return 0
	})
	return l, nil
}

// Term is the term in which this agent holds the Lease, empty when it does
// not: the holder's identity and the Lease's transition count when it was
// taken. A holder that renews after a restart keeps its term.
func (l *lease) Term() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term
}

// Holder is the last holder observed, empty before any.
func (l *lease) Holder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder
}

// run campaigns until ctx is cancelled: a lost Lease is campaigned for
// again. client-go's callbacks only hand over; the holding (lead) runs here.
func (l *lease) run(ctx context.Context) {
	for ctx.Err() == nil {
		took := make(chan context.Context, 1)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          l.lock,
			Name:          l.cfg.Name,
			LeaseDuration: l.cfg.LeaseDuration,
			RenewDeadline: l.cfg.RenewDeadline,
			RetryPeriod:   l.cfg.RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				// Its context ends when the Lease is lost or ctx is done.
				OnStartedLeading: func(held context.Context) { took <- held },
				OnStoppedLeading: func() {},
				OnNewLeader:      l.observed,
			},
		})
		if err != nil { // the config is checked in newLease
			l.log.Error("cluster lease", "err", err)
			return
		}
		done := make(chan struct{})
		go func() { defer close(done); le.Run(ctx) }() // joined below
		select {
		case held := <-took:
			l.lead(held)
		case <-done:
		}
		<-done
	}
}

// lead holds the Lease until held ends. The targets of no node come only
// once the holder knows every node's addresses (an endpoint naming no node
// at a node's address is that node's agent's), and go when held ends.
func (l *lease) lead(held context.Context) {
	term := l.cfg.Identity + "/" + strconv.FormatInt(time.Now().UnixNano(), 10)
	// A lock of its own: LeaseLock caches what it read, and the elector's
	// is in use by its goroutine.
	reader := &resourcelock.LeaseLock{LeaseMeta: l.lock.LeaseMeta, Client: l.lock.Client}
	if rec, _, err := reader.Get(held); err == nil && rec.HolderIdentity == l.cfg.Identity {
		// The transitions count rises whenever another identity takes the
		// Lease, not when the same one renews (after a restart).
		term = l.cfg.Identity + "/" + strconv.Itoa(rec.LeaderTransitions)
	} else {
		// Unknown transitions: a term no state can have, so the targets
		// start afresh rather than from another term's state.
		l.log.Warn("cluster lease: cannot read the Lease's term; its targets start afresh", "err", err)
	}
	nodes := l.newNodes()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { nodes.RunWithContext(held) })
	if !cache.WaitForCacheSync(held.Done(), nodes.HasSynced) {
		return
	}
	l.mu.Lock()
	l.term, l.holder, l.nodes = term, l.cfg.Identity, nodes
	l.mu.Unlock()
	l.acquired.Inc()
	l.log.Info("cluster lease taken: this agent scrapes the targets of no node", "lease", l.cfg.Namespace+"/"+l.cfg.Name, "term", term)
	l.changed()
	<-held.Done()
	l.mu.Lock()
	l.term, l.nodes = "", nil
	l.mu.Unlock()
	l.log.Info("cluster lease lost or given up: the targets of no node stop here", "lease", l.cfg.Namespace+"/"+l.cfg.Name, "term", term)
	l.changed()
}

// byAddress indexes the holder's Node cache by address.
const byAddress = "address"

// newNodes is the holder's cache of every Node's addresses: one agent of
// the fleet watches them, while it holds the Lease.
func (l *lease) newNodes() cache.SharedIndexInformer {
	nodes := l.kube.CoreV1().Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return nodes.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Node{}, 0, cache.Indexers{byAddress: func(o any) ([]string, error) {
		n, ok := o.(*corev1.Node)
		if !ok {
			return nil, nil
		}
		out := make([]string, 0, len(n.Status.Addresses))
		for _, a := range n.Status.Addresses {
			out = append(out, a.Address)
		}
		return out, nil
	}})
	_ = inf.SetTransform(func(o any) (any, error) {
		if n, ok := o.(*corev1.Node); ok {
			return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, ResourceVersion: n.ResourceVersion}, Status: corev1.NodeStatus{Addresses: n.Status.Addresses}}, nil
		}
		return o, nil
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		// A node's addresses decide whose some endpoints are.
		AddFunc:    func(any) { l.changed() },
		UpdateFunc: func(old, o any) { l.changed() },
		DeleteFunc: func(any) { l.changed() },
	})
	return inf
}

// nodeOf returns the node with address addr, known while this agent holds
// the Lease.
func (l *lease) nodeOf(addr string) string {
	l.mu.Lock()
	nodes := l.nodes
	l.mu.Unlock()
	if nodes == nil {
		return ""
	}
	objs, _ := nodes.GetIndexer().ByIndex(byAddress, addr)
	for _, o := range objs {
		return o.(*corev1.Node).Name
	}
	return ""
}

func (l *lease) observed(identity string) {
	l.mu.Lock()
	l.holder = identity
	l.mu.Unlock()
	l.changed() // the dropped targets name the holder
}
