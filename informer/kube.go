package informer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monclient "github.com/prometheus-operator/prometheus-operator/pkg/client/versioned"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// KubeConfig configures discovery from ServiceMonitors and PodMonitors.
type KubeConfig struct {
	// Rest is the API server client configuration.
	Rest *rest.Config
	// NodeName is this node: only its pods are watched and scraped.
	NodeName string
	// Settings are the agent-wide scrape settings (what a Prometheus custom
	// resource would carry), including which monitors to take.
	Settings relabel.Settings
	// AllowOtherAddresses lets a target's relabeled __address__ point at a
	// host that is neither one of this node's pods nor the node itself (for
	// a target of no node: nor its endpoint's address). It never makes an
	// agent scrape another node's endpoints.
	AllowOtherAddresses bool
	// NodeAddrs, when set, is kept equal to this node's addresses and its
	// pods', for the scraper's dial-time check (scrapeloop.Config.NodeAddrs).
	NodeAddrs *target.NodeAddrs
	// Lease, when set, elects the agent that scrapes the targets of no node
	// (see LeaseConfig); without it every agent lists them as dropped.
	Lease *LeaseConfig
	// Debounce is how long a burst of events is collected before a rebuild;
	// default 100ms.
	Debounce time.Duration
	// MaxDebounce bounds how long a steady stream of events can postpone a
	// rebuild, counted from the first event not yet rebuilt; default 1s, at
	// least Debounce. A rebuild reads only the caches, so once a second
	// costs little even when events never pause.
	MaxDebounce time.Duration
	// RefSyncTimeout bounds the wait for a newly referenced Secret or
	// ConfigMap, and for the first list of a new Service watch; default 10s.
	RefSyncTimeout time.Duration
	Logger         *slog.Logger
}

// Rejection is a monitor the agent does not scrape, and why.
type Rejection struct {
	Kind      relabel.Kind
	Namespace string
	Name      string
	Reason    string
}

// Kube discovers this node's targets from the Kubernetes API.
type Kube struct {
	cfg  KubeConfig
	gen  *relabel.Generator
	kube kubernetes.Interface
	mon  monclient.Interface
	log  *slog.Logger

	pods, slices, nodes, sms, pms, namespaces cache.SharedIndexInformer

	refs  *refStore
	svcs  *serviceWatches
	lease *lease // nil without KubeConfig.Lease

	synced    atomic.Bool
	kick      chan struct{}
	delivered sync.Map // kind -> *atomic.Int64
	foreign   atomic.Int64

	// generated are the monitors' jobs of the last rebuild, by
	// kind/namespace/name; only the rebuilding goroutine touches them.
	generated map[string]generated

	mu       sync.Mutex
	rejected []Rejection
	lastLog  map[string]string // monitor -> reason last logged

	metrics       *metrics.Set
	dropped       *metrics.Counter
	rebuilds      *metrics.Counter
	rejectedCount atomic.Int64
}

// NewKube checks cfg and builds the clients; nothing is contacted until Run.
func NewKube(cfg KubeConfig) (*Kube, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("kube discovery: node name is required (NODE_NAME)")
	}
	if cfg.Rest == nil {
		return nil, errors.New("kube discovery: no API server configuration")
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.MaxDebounce <= 0 {
		cfg.MaxDebounce = time.Second
	}
	cfg.MaxDebounce = max(cfg.MaxDebounce, cfg.Debounce)
	if cfg.RefSyncTimeout <= 0 {
		cfg.RefSyncTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	gen, err := relabel.NewGenerator(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("kube discovery: %w", err)
	}
	// Built-in kinds as protobuf, as Kubernetes' own components read them:
	// each agent's lists and watch events are smaller and cheaper to
	// decode. Custom resources (the monitors) have no protobuf form.
	core := rest.CopyConfig(cfg.Rest)
	if core.ContentType == "" {
		core.ContentType = runtime.ContentTypeProtobuf
		core.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	// A node's Service watches (one per namespace of its pods and monitor
	// selector, tens of them) start together, a list and a watch each:
	// client-go's default of 5 requests a second, burst 10, would spread
	// them over tens of seconds before the first target set. kubelet takes
	// 50, burst 100.
	if core.QPS == 0 && core.RateLimiter == nil {
		core.QPS, core.Burst = 20, 100
	}
	kc, err := kubernetes.NewForConfig(core)
	if err != nil {
		return nil, fmt.Errorf("kube discovery: kubernetes client: %w", err)
	}
	mc, err := monclient.NewForConfig(cfg.Rest)
	if err != nil {
		return nil, fmt.Errorf("kube discovery: monitoring client: %w", err)
	}
	k := &Kube{
		cfg: cfg, gen: gen, kube: kc, mon: mc, log: cfg.Logger,
		kick:    make(chan struct{}, 1),
		lastLog: map[string]string{},
		metrics: metrics.NewSet(),
	}
	k.refs = newRefStore(kc, k.count, k.trigger, cfg.RefSyncTimeout)
	k.svcs = &serviceWatches{start: k.startServiceWatch, changed: k.trigger, timeout: cfg.RefSyncTimeout, log: cfg.Logger,
		timeouts: k.metrics.NewCounter(`nodescraper_discovery_service_watch_timeouts_total`), watches: map[svcKey]*svcWatch{}}
	k.metrics.NewGauge(`nodescraper_discovery_service_watches`, func() float64 { return float64(k.svcs.count()) })
	if cfg.Lease != nil {
		if k.lease, err = newLease(*cfg.Lease, cfg.NodeName, cfg.Rest, kc, k.metrics, k.trigger, cfg.Logger); err != nil {
			return nil, fmt.Errorf("kube discovery: %w", err)
		}
	}
	k.dropped = k.metrics.NewCounter(`nodescraper_targets_dropped_total{reason="address_not_on_node"}`)
	k.rebuilds = k.metrics.NewCounter(`nodescraper_discovery_rebuilds_total`)
	k.metrics.NewGauge(`nodescraper_monitors_rejected`, func() float64 { return float64(k.rejectedCount.Load()) })
	k.metrics.NewGauge(`nodescraper_discovery_synced`, func() float64 {
		if k.synced.Load() {
			return 1
		}
		return 0
	})
	k.setupInformers()
	return k, nil
}

// Synced reports whether the caches synced and the first target set was
// emitted (for /readyz).
func (k *Kube) Synced() bool { return k.synced.Load() }

// Rejected lists the monitors the agent rejects, sorted.
func (k *Kube) Rejected() []Rejection {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.rejected)
}

// Delivered returns how many objects of each kind the watches delivered
// (initial lists and watch events), and how many pods of other nodes were
// among them (none, when the field selector works).
func (k *Kube) Delivered() (perKind map[string]int64, foreignPods int64) {
	perKind = map[string]int64{}
	k.delivered.Range(func(key, v any) bool {
		perKind[key.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return perKind, k.foreign.Load()
}

// Metrics is the set of the discovery's own metrics; the caller registers
// it (metrics.RegisterSet) to expose it.
func (k *Kube) Metrics() *metrics.Set { return k.metrics }

// MetricsHelp returns the HELP text of the discovery's metrics by family name.
func (k *Kube) MetricsHelp() map[string]string {
	return map[string]string{
		`nodescraper_targets_dropped_total`:                  "Targets not scraped because their address is not on this node, counted at each rebuild of the target set.",
		`nodescraper_discovery_rebuilds_total`:               "Rebuilds of the node's target set from the watched objects.",
		`nodescraper_monitors_rejected`:                      "ServiceMonitors and PodMonitors rejected (see /targets for the reasons).",
		`nodescraper_discovery_synced`:                       "1 once the watches synced and the first target set was sent.",
		`nodescraper_discovery_service_watches`:              "Service watches open: one per namespace of this node's pods and Service selector of its monitors, and one per Service a custom EndpointSlice names.",
		`nodescraper_discovery_service_watch_timeouts_total`: "New Service watches not listed within the sync timeout; the target set was held until they were.",
		`nodescraper_cluster_lease_held`:                     "1 while this agent holds the cluster Lease and scrapes the targets of no node.",
		`nodescraper_cluster_lease_acquired_total`:           "Times this agent took (or, after a restart, renewed in its term) the cluster Lease.",
	}
}

func (k *Kube) count(kind string) {
	v, _ := k.delivered.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (k *Kube) trigger() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

func listWatch[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error), w func(context.Context, metav1.ListOptions) (watch.Interface, error), tweak func(*metav1.ListOptions)) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			return w(ctx, o)
		},
	}
}

// informer builds the informer of one kind; every event triggers a rebuild
// unless matters (if not nil) says the object cannot change the target set.
func (k *Kube) informer(kind string, lw cache.ListerWatcher, obj runtime.Object, strip func(any) any, matters func(any) bool) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	_ = inf.SetTransform(func(o any) (any, error) {
		k.count(kind)
		return strip(o), nil
	})
	if matters == nil {
		matters = func(any) bool { return true }
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if matters(o) {
				k.trigger()
			}
		},
		UpdateFunc: func(old, o any) {
			if matters(old) || matters(o) {
				k.trigger()
			}
		},
		DeleteFunc: func(o any) {
			if matters(o) {
				k.trigger()
			}
		},
	})
	return inf
}

// serviceMatters reports whether a Service can count in this node's target
// set: it has endpoints among the node's pods, or EndpointSlices not of the
// controller name it. The rebuild reads no other Service, so the events of
// the cluster's other Services trigger none: an agent's CPU follows its node,
// not the cluster's Service churn. (A pod change that makes a Service count
// triggers by itself, and the rebuild reads the Service's current version.)
func (k *Kube) serviceMatters(o any) bool {
	svc, ok := o.(*corev1.Service)
	if !ok {
		return true // a tombstone
	}
	objs, _ := k.slices.GetIndexer().ByIndex(cache.NamespaceIndex, svc.Namespace)
	for _, so := range objs {
		if es, ok := so.(*discoveryv1.EndpointSlice); ok && es.Labels[discoveryv1.LabelServiceName] == svc.Name {
			return true
		}
	}
	objs, _ = k.pods.GetIndexer().ByIndex(cache.NamespaceIndex, svc.Namespace)
	if len(objs) == 0 {
		return false
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, po := range objs {
		pods = append(pods, po.(*corev1.Pod))
	}
	return len(serviceEndpoints(svc, pods, "")) > 0
}

func (k *Kube) setupInformers() {
	node := k.cfg.NodeName
	core := k.kube.CoreV1()
	none := func(*metav1.ListOptions) {}
	k.pods = k.informer("Pod", listWatch(core.Pods("").List, core.Pods("").Watch, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}), &corev1.Pod{}, func(o any) any {
		if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != node {
			k.foreign.Add(1)
		}
		return stripPod(o)
	}, nil)
	k.nodes = k.informer("Node", listWatch(core.Nodes().List, core.Nodes().Watch, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
	}), &corev1.Node{}, stripNode, nil)
	disc := k.kube.DiscoveryV1()
	k.slices = k.informer("EndpointSlice", listWatch(disc.EndpointSlices("").List, disc.EndpointSlices("").Watch, func(o *metav1.ListOptions) {
		o.LabelSelector = discoveryv1.LabelManagedBy + "!=" + sliceManager
	}), &discoveryv1.EndpointSlice{}, func(o any) any { return stripSlice(o, node) }, nil)
	mon := k.mon.MonitoringV1()
	smSel := k.gen.MonitorSelector(relabel.ServiceMonitorKind).String()
	pmSel := k.gen.MonitorSelector(relabel.PodMonitorKind).String()
	k.sms = k.informer("ServiceMonitor", listWatch(mon.ServiceMonitors("").List, mon.ServiceMonitors("").Watch, func(o *metav1.ListOptions) {
		o.LabelSelector = smSel
	}), &monitoringv1.ServiceMonitor{}, stripMeta, nil)
	k.pms = k.informer("PodMonitor", listWatch(mon.PodMonitors("").List, mon.PodMonitors("").Watch, func(o *metav1.ListOptions) {
		o.LabelSelector = pmSel
	}), &monitoringv1.PodMonitor{}, stripMeta, nil)
	if k.gen.NeedsNamespaceLabels(relabel.ServiceMonitorKind) || k.gen.NeedsNamespaceLabels(relabel.PodMonitorKind) {
		k.namespaces = k.informer("Namespace", listWatch(core.Namespaces().List, core.Namespaces().Watch, none), &corev1.Namespace{}, stripMeta, nil)
	}
}

func (k *Kube) all() []cache.SharedIndexInformer {
	out := []cache.SharedIndexInformer{k.pods, k.nodes, k.slices, k.sms, k.pms}
	if k.namespaces != nil {
		out = append(out, k.namespaces)
	}
	return out
}

// Run watches until ctx is cancelled and sends the node's target set to
// out after the caches synced and whenever it changes. out should have a
// buffer of one: a newer target set replaces one not yet taken.
func (k *Kube) Run(ctx context.Context, out chan []target.Target) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		k.refs.stopAll()
		k.svcs.stopAll()
		wg.Wait()
	}()
	var syncs []cache.InformerSynced
	for _, inf := range k.all() {
		wg.Go(func() { inf.RunWithContext(ctx) })
		syncs = append(syncs, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), syncs...) {
		return fmt.Errorf("kube discovery: caches not synced: %w", ctx.Err())
	}
	if k.lease != nil {
		// After the sync: a new holder's first target set holds the
		// targets of no node.
		wg.Go(func() { k.lease.run(ctx) })
	}
	k.log.Info("kube discovery synced", "node", k.cfg.NodeName)
	var last []target.Target
	first := true
	debounce(ctx, k.kick, k.cfg.Debounce, k.cfg.MaxDebounce, func() {
		targets, ok := k.rebuild(ctx)
		if !ok {
			return // a new Service watch has not listed yet; its list triggers again
		}
		if first || !sameTargets(last, targets) {
			send(out, targets)
			last = targets
		}
		k.rebuilds.Inc() // after the emit: a rebuild counted has sent, or will not
		if first {
			first = false
			k.synced.Store(true)
		}
	})
	return nil
}

// sameTargets reports whether two target sets would run the same loops.
func sameTargets(a, b []target.Target) bool {
	return slices.EqualFunc(a, b, func(x, y target.Target) bool { return x.Key() == y.Key() })
}

// send replaces an untaken target set in out with ts.
func send(out chan []target.Target, ts []target.Target) {
	select {
	case <-out:
	default:
	}
	out <- ts
}
