package apiscale

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodescraper/nodescraper/informer"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Mode is an agent configuration.
type Mode string

const (
	// NodeLocal is nodescraper's discovery, informer.Kube.
	NodeLocal Mode = "node-local"
	// ClusterWide is what a per-node mode built on cluster-wide discovery
	// does: every agent watches all Pods and all EndpointSlices (plain
	// client-go informers, no field selector; Services and monitors, which
	// such an agent watches too, left out).
	ClusterWide Mode = "cluster-wide"
)

// agent is one running discovery instance with its own connection.
type agent struct {
	node    string
	ctr     Counter
	objects func() int64 // objects delivered (initial lists + watch events)
	// services counts the Services delivered (node-local agents; nil for
	// the cluster-wide ones, which do not watch Services).
	services func() int64
	// pods returns the pods delivered: of this node, of other nodes.
	pods      func() (own, foreign int64)
	synced    chan struct{}
	closeIdle func()
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	err       atomic.Pointer[error]
}

func (a *agent) stop() {
	a.cancel()
	a.wg.Wait()
	a.closeIdle()
}

// startLocal runs informer.Kube for node, as cmd/nodescraper builds it
// (role endpointslice, all monitors); every target set it emits is handed to
// seen.
func startLocal(admin *rest.Config, node string, seen func(node, pod string)) (*agent, error) {
	a := &agent{node: node, synced: make(chan struct{})}
	rc, closeIdle, err := agentConfig(admin, "nodescraper/"+node, &a.ctr)
	if err != nil {
		return nil, err
	}
	a.closeIdle = closeIdle
	k, err := informer.NewKube(informer.KubeConfig{
		Rest: rc, NodeName: node,
		Settings: relabel.Settings{ServiceDiscoveryRole: monitoringv1.EndpointSliceRole},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		closeIdle()
		return nil, err
	}
	a.objects = func() int64 {
		perKind, _ := k.Delivered()
		var n int64
		for _, v := range perKind {
			n += v
		}
		return n
	}
	a.services = func() int64 {
		perKind, _ := k.Delivered()
		return perKind["Service"]
	}
	a.pods = func() (int64, int64) {
		perKind, foreign := k.Delivered()
		return perKind["Pod"] - foreign, foreign
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	out := make(chan []target.Target, 1)
	a.wg.Go(func() {
		if err := k.Run(ctx, out); err != nil && ctx.Err() == nil {
			a.err.Store(&err)
		}
	})
	a.wg.Go(func() {
		first := true
		for {
			select {
			case <-ctx.Done():
				return
			case ts := <-out:
				for _, t := range ts {
					if t.Drop.Reason == "" {
						seen(node, t.Labels.Get("pod"))
					}
				}
				if first {
					first = false
					close(a.synced)
				}
			}
		}
	})
	return a, nil
}

// startWide runs the cluster-wide comparison for node: Pod and EndpointSlice
// informers without selectors. Objects are cut down before they are cached
// (SetTransform), as a careful agent would, so that many of them fit in one
// process; what crosses the wire is unchanged. A pod of node that has an IP
// is handed to seen.
func startWide(admin *rest.Config, node string, seen func(node, pod string)) (*agent, error) {
	a := &agent{node: node, synced: make(chan struct{})}
	rc, closeIdle, err := agentConfig(admin, "clusterwide/"+node, &a.ctr)
	if err != nil {
		return nil, err
	}
	a.closeIdle = closeIdle
	// Protobuf, as informer.Kube (and Kubernetes' own components) read.
	rc.ContentType = runtime.ContentTypeProtobuf
	rc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		closeIdle()
		return nil, fmt.Errorf("cluster-wide agent %s: %w", node, err)
	}
	var objects, own, foreign atomic.Int64
	a.objects = objects.Load
	a.pods = func() (int64, int64) { return own.Load(), foreign.Load() }
	pods := cache.NewSharedIndexInformer(lw(kc.CoreV1().Pods("").List, kc.CoreV1().Pods("").Watch), &corev1.Pod{}, 0, cache.Indexers{})
	_ = pods.SetTransform(func(o any) (any, error) {
		objects.Add(1)
		p, ok := o.(*corev1.Pod)
		if !ok {
			return o, nil
		}
		if p.Spec.NodeName == node {
			own.Add(1)
		} else {
			foreign.Add(1)
		}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, ResourceVersion: p.ResourceVersion, Labels: p.Labels},
			Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName},
			Status:     corev1.PodStatus{PodIP: p.Status.PodIP, Phase: p.Status.Phase},
		}, nil
	})
	onPod := func(o any) {
		if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName == node && p.Status.PodIP != "" {
			seen(node, p.Name)
		}
	}
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onPod, UpdateFunc: func(_, o any) { onPod(o) }})
	eps := cache.NewSharedIndexInformer(lw(kc.DiscoveryV1().EndpointSlices("").List, kc.DiscoveryV1().EndpointSlices("").Watch), &discoveryv1.EndpointSlice{}, 0, cache.Indexers{})
	_ = eps.SetTransform(func(o any) (any, error) {
		objects.Add(1)
		s, ok := o.(*discoveryv1.EndpointSlice)
		if !ok {
			return o, nil
		}
		out := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name, ResourceVersion: s.ResourceVersion}}
		for _, e := range s.Endpoints {
			if e.NodeName != nil && *e.NodeName == node {
				out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{Addresses: slices.Clone(e.Addresses), NodeName: e.NodeName})
			}
		}
		return out, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Go(func() { pods.RunWithContext(ctx) })
	a.wg.Go(func() { eps.RunWithContext(ctx) })
	a.wg.Go(func() {
		if cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, eps.HasSynced) {
			close(a.synced)
		}
	})
	return a, nil
}

func lw[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error), w func(context.Context, metav1.ListOptions) (watch.Interface, error)) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) },
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return w(ctx, o) },
	}
}

// startAll starts one agent per node 0..n-1 at rate agents per second and
// waits until all synced (or timeout). On failure it reports how many had
// synced: a configuration that does not fit is a result too.
func startAll(ctx context.Context, mode Mode, admin *rest.Config, n int, rate float64, timeout time.Duration, seen func(node, pod string)) ([]*agent, time.Duration, int, error) {
	start := startLocal
	switch mode {
	case ClusterWide:
		start = startWide
	case ClusterWideWire:
		start = startWire
	}
	begin := time.Now()
	agents := make([]*agent, 0, n)
	fail := func(err error) ([]*agent, time.Duration, int, error) {
		synced := 0
		for _, a := range agents {
			select {
			case <-a.synced:
				synced++
			default:
			}
		}
		stopAll(agents)
		return nil, time.Since(begin), synced, fmt.Errorf("%s agents: %d of %d synced (%d started) after %v: %w",
			mode, synced, n, len(agents), time.Since(begin).Round(time.Second), err)
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for range n {
		a, err := start(admin, nodeName(len(agents)), seen)
		if err != nil {
			return fail(err)
		}
		agents = append(agents, a)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fail(context.Cause(ctx))
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, a := range agents {
		select {
		case <-a.synced:
		case <-deadline.C:
			return fail(fmt.Errorf("not synced %v after the last start", timeout))
		case <-ctx.Done():
			return fail(context.Cause(ctx))
		}
	}
	return agents, time.Since(begin), n, nil
}

// stopAll stops the agents in parallel and waits for all of them.
func stopAll(agents []*agent) {
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(a.stop)
	}
	wg.Wait()
}
