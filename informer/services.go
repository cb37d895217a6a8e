package informer

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
)

// The agent does not watch the cluster's Services: their number grows with
// the cluster, and each one cached costs every agent about 3 KB and every
// update reaches every agent. It watches, per namespace where this node has
// pods, only the Services its ServiceMonitors can select there (one watch
// per namespace and label selector), and by name the Services that the
// watched custom EndpointSlices name. Those are all the Services a rebuild
// reads: a selector Service counts only through this node's pods, and a
// monitor's selector is a keep rule on the Service's labels.

// svcKey is one Service watch: the Services of namespace matching the label
// selector (all of them when empty), or, when name is set, that one Service.
type svcKey struct {
	namespace, selector, name string
}

func (k svcKey) String() string {
	if k.name != "" {
		return k.namespace + "/" + k.name
	}
	return k.namespace + " {" + k.selector + "}"
}

// svcWatch is one running Service watch.
type svcWatch struct {
	store   cache.Store
	synced  func() bool
	cancel  context.CancelFunc
	done    chan struct{}
	started time.Time
	// late is set when a rebuild gave up waiting for the first list; the
	// watch then triggers a rebuild when it completes.
	late atomic.Bool
}

func (w *svcWatch) stop() {
	w.cancel()
	<-w.done
}

// serviceWatches is the set of Service watches the last rebuild wanted.
// Only the rebuilding goroutine changes it (and Run's exit stops it).
type serviceWatches struct {
	start    func(svcKey) *svcWatch
	changed  func()
	timeout  time.Duration
	log      *slog.Logger
	timeouts *metrics.Counter

	mu      sync.Mutex
	watches map[svcKey]*svcWatch
}

// ensure starts the watches of want not running yet and waits until every
// one of want has listed, each at most timeout from its start (over all
// rebuilds). It reports whether all have: a target set built before would
// lack their Services' targets, so the caller must not emit it (the loops of
// those targets would stop and lose their delta state). A watch that lists
// later triggers a rebuild.
func (s *serviceWatches) ensure(ctx context.Context, want map[svcKey]bool) bool {
	s.mu.Lock()
	var pending []*svcWatch
	var keys []svcKey
	deadline := time.Time{}
	for key := range want {
		w := s.watches[key]
		if w == nil {
			w = s.start(key)
			s.watches[key] = w
		}
		if !w.synced() {
			pending = append(pending, w)
			keys = append(keys, key)
			deadline = later(deadline, w.started.Add(s.timeout))
		}
	}
	s.mu.Unlock()
	if len(pending) == 0 {
		return true
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	syncs := make([]cache.InformerSynced, len(pending))
	for i, w := range pending {
		syncs[i] = w.synced
	}
	if cache.WaitForCacheSync(wctx.Done(), syncs...) {
		return true
	}
	for i, w := range pending {
		if w.synced() || w.late.Swap(true) {
			continue // synced meanwhile, or counted and logged already
		}
		s.timeouts.Inc()
		s.log.Warn("service watch not listed in time: the target set is held until it is",
			"watch", keys[i].String(), "timeout", s.timeout)
		if w.synced() { // listed between the check and late: no trigger came
			s.changed()
		}
	}
	return false
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// retain stops the watches not in want.
func (s *serviceWatches) retain(want map[svcKey]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, w := range s.watches {
		if !want[key] {
			w.stop()
			delete(s.watches, key)
		}
	}
}

func (s *serviceWatches) stopAll() { s.retain(nil) }

// count is the number of running watches.
func (s *serviceWatches) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watches)
}

// byKey returns the Services the watches of want hold, by namespace/name
// (the watches a rebuild no longer wants are not read: the set it builds
// must not depend on what they held). A Service several watches hold (it
// matches several monitors' selectors) is taken once, from the watch first
// in key order, so that a rebuild sees one object per Service.
func (s *serviceWatches) byKey(want map[svcKey]bool) map[string]*corev1.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.SortedFunc(maps.Keys(want), func(a, b svcKey) int {
		return strings.Compare(a.namespace+"\x00"+a.selector+"\x00"+a.name, b.namespace+"\x00"+b.selector+"\x00"+b.name)
	})
	out := map[string]*corev1.Service{}
	for _, key := range keys {
		w := s.watches[key]
		if w == nil {
			continue
		}
		for _, o := range w.store.List() {
			svc := o.(*corev1.Service)
			id := svc.Namespace + "/" + svc.Name
			if _, ok := out[id]; !ok {
				out[id] = svc
			}
		}
	}
	return out
}

// startServiceWatch starts the watch of key; its events trigger a rebuild
// when serviceMatters says they can change the target set.
func (k *Kube) startServiceWatch(key svcKey) *svcWatch {
	core := k.kube.CoreV1()
	tweak := func(o *metav1.ListOptions) {
		o.LabelSelector = key.selector
		if key.name != "" {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", key.name).String()
		}
	}
	inf := k.informer("Service", listWatch(core.Services(key.namespace).List, core.Services(key.namespace).Watch, tweak),
		&corev1.Service{}, stripService, k.serviceMatters)
	ctx, cancel := context.WithCancel(context.Background())
	w := &svcWatch{store: inf.GetStore(), synced: inf.HasSynced, cancel: cancel, done: make(chan struct{}), started: time.Now()}
	go func() {
		defer close(w.done)
		var wg sync.WaitGroup
		wg.Go(func() { inf.RunWithContext(ctx) })
		if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) && w.late.Load() {
			k.trigger()
		}
		wg.Wait()
	}()
	return w
}

// monitorServices is what one generated ServiceMonitor reads of Services:
// the label selector of its Services, in the namespaces its jobs discover
// (nil: all).
type monitorServices struct {
	selector   string
	namespaces []string
}

// serviceWatchKeys returns the Service watches the snapshot's rebuild needs:
// per namespace where this node has pods, the selectors of the monitors that
// discover there (an empty selector, all the namespace's Services, covers
// the others), and the Services named by the watched EndpointSlices that
// have endpoints kept for this node, in namespaces some monitor discovers.
func (k *Kube) serviceWatchKeys(s *snapshot, mons []monitorServices) map[svcKey]bool {
	covers := func(m monitorServices, ns string) bool {
		return m.namespaces == nil || slices.Contains(m.namespaces, ns)
	}
	want := map[svcKey]bool{}
	all := map[string]bool{} // namespaces whose Services are all watched
	for ns := range s.pods {
		for _, m := range mons {
			if covers(m, ns) {
				want[svcKey{namespace: ns, selector: m.selector}] = true
				all[ns] = all[ns] || m.selector == ""
			}
		}
	}
	for _, o := range k.slices.GetStore().List() {
		es := o.(*discoveryv1.EndpointSlice)
		name, ok := es.Labels[discoveryv1.LabelServiceName]
		if !ok || len(es.Endpoints) == 0 {
			continue
		}
		for _, m := range mons {
			if covers(m, es.Namespace) {
				want[svcKey{namespace: es.Namespace, name: name}] = true
				break
			}
		}
	}
	for key := range want {
		if all[key.namespace] && (key.selector != "" || key.name != "") {
			delete(want, key)
		}
	}
	return want
}

// serviceSelector is the label selector of the Services monitor sm selects,
// as the API server takes it ("" for all).
func serviceSelector(sm *relabel.Monitor, sel *metav1.LabelSelector) (monitorServices, bool) {
	if len(sm.Jobs) == 0 {
		return monitorServices{}, false
	}
	ls, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return monitorServices{}, false // the generator rejected it already
	}
	return monitorServices{selector: ls.String(), namespaces: sm.Jobs[0].SD.Namespaces}, true
}
