package informer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodescraper/nodescraper/relabel"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// refStore serves the Secrets and ConfigMaps monitors reference. Each one is
// watched alone (field selector metadata.name in the monitor's namespace),
// so the agent needs no cluster-wide Secret access, a rotation reaches the
// targets at once, and RBAC can grant the names one by one.
type refStore struct {
	kube    kubernetes.Interface
	count   func(kind string)
	changed func()
	timeout time.Duration

	mu      sync.Mutex
	watches map[relabel.ObjectRef]*refWatch
	used    map[relabel.ObjectRef]bool // looked up during the current rebuild
}

type refWatch struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
	done   chan struct{}
	// timedOut is set when the first list did not finish in time; the
	// watch keeps trying and an event triggers a rebuild when it does.
	timedOut atomic.Bool
	// denied is closed, and deniedErr set, when the API server refused the
	// list (RBAC): waiting longer would change nothing. The watch keeps
	// retrying with client-go's backoff, so a grant made later is found.
	denied     chan struct{}
	deniedOnce sync.Once
	deniedErr  atomic.Pointer[error]
}

// waitSynced waits for the first list, a refusal or timeout, whichever
// comes first.
func (w *refWatch) waitSynced(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !w.inf.HasSynced() {
		select {
		case <-w.denied:
			return fmt.Errorf("the agent may not read it: %w", *w.deniedErr.Load())
		case <-deadline.C:
			w.timedOut.Store(true)
			return fmt.Errorf("not readable within %v (RBAC?)", timeout)
		case <-tick.C:
		}
	}
	return nil
}

// deny records that the API server refused to list the object.
func (w *refWatch) deny(err error) {
	w.deniedErr.Store(&err)
	w.deniedOnce.Do(func() { close(w.denied) })
}

func newRefStore(kube kubernetes.Interface, count func(string), changed func(), timeout time.Duration) *refStore {
	return &refStore{kube: kube, count: count, changed: changed, timeout: timeout, watches: map[relabel.ObjectRef]*refWatch{}}
}

// begin starts a rebuild: watches not used by its end are stopped.
func (s *refStore) begin() {
	s.mu.Lock()
	s.used = map[relabel.ObjectRef]bool{}
	s.mu.Unlock()
}

// end stops the watches no monitor used in this rebuild.
func (s *refStore) end(ctx context.Context, refs []relabel.ObjectRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range refs {
		s.used[r] = true
	}
	for r, w := range s.watches {
		if !s.used[r] {
			w.cancel()
			<-w.done
			delete(s.watches, r)
		}
	}
}

func (s *refStore) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r, w := range s.watches {
		w.cancel()
		<-w.done
		delete(s.watches, r)
	}
}

// get returns the object ref names, starting its watch and waiting for its
// first list when it is new. ok is false when the object does not exist.
func (s *refStore) get(ref relabel.ObjectRef) (obj any, ok bool, err error) {
	s.mu.Lock()
	s.used[ref] = true
	w := s.watches[ref]
	if w == nil {
		w = s.start(ref)
		s.watches[ref] = w
	}
	s.mu.Unlock()
	if !w.inf.HasSynced() {
		if err := w.deniedErr.Load(); err != nil {
			return nil, false, fmt.Errorf("%s: the agent may not read it: %w", ref, *err)
		}
		if w.timedOut.Load() {
			// Waited once already: do not hold every rebuild for it.
			return nil, false, fmt.Errorf("%s: not readable (RBAC?)", ref)
		}
		// Until the first list, a refusal or the timeout, whichever comes
		// first: a refused reference rejects its monitor at once instead
		// of holding the rebuild, and every node's, for the timeout.
		if err := w.waitSynced(s.timeout); err != nil {
			return nil, false, fmt.Errorf("%s: %w", ref, err)
		}
	}
	obj, ok, err = w.inf.GetStore().GetByKey(ref.Namespace + "/" + ref.Name)
	return obj, ok, err
}

func (s *refStore) start(ref relabel.ObjectRef) *refWatch {
	sel := fields.OneTermEqualSelector("metadata.name", ref.Name).String()
	tweak := func(o *metav1.ListOptions) { o.FieldSelector = sel }
	core := s.kube.CoreV1()
	var lw cache.ListerWatcher
	var obj runtime.Object = &corev1.Secret{}
	if ref.Kind == relabel.SecretRef {
		lw = listWatch(core.Secrets(ref.Namespace).List, core.Secrets(ref.Namespace).Watch, tweak)
	} else {
		obj = &corev1.ConfigMap{}
		lw = listWatch(core.ConfigMaps(ref.Namespace).List, core.ConfigMaps(ref.Namespace).Watch, tweak)
	}
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	kind := string(ref.Kind)
	_ = inf.SetTransform(func(o any) (any, error) {
		s.count(kind)
		return stripMeta(o), nil
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		// The first list is awaited by get; later events mean a rotation.
		AddFunc:    func(_ any) { s.changed() },
		UpdateFunc: func(any, any) { s.changed() },
		DeleteFunc: func(any) { s.changed() },
	})
	ctx, cancel := context.WithCancel(context.Background())
	w := &refWatch{inf: inf, cancel: cancel, done: make(chan struct{}), denied: make(chan struct{})}
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			w.deny(err)
		}
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	go func() {
		defer close(w.done)
		inf.RunWithContext(ctx)
	}()
	return w
}

// SecretKey implements relabel.Store.
func (s *refStore) SecretKey(namespace, name, key string) ([]byte, error) {
	obj, ok, err := s.get(relabel.ObjectRef{Kind: relabel.SecretRef, Namespace: namespace, Name: name})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("secret %s/%s not found", namespace, name)
	}
	sec := obj.(*corev1.Secret)
	v, ok := sec.Data[key]
	if !ok {
		return nil, fmt.Errorf("key %q in secret %s/%s not found", key, namespace, name)
	}
	return v, nil
}

// ConfigMapKey implements relabel.Store.
func (s *refStore) ConfigMapKey(namespace, name, key string) (string, error) {
	obj, ok, err := s.get(relabel.ObjectRef{Kind: relabel.ConfigMapRef, Namespace: namespace, Name: name})
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("configmap %s/%s not found", namespace, name)
	}
	cm := obj.(*corev1.ConfigMap)
	if v, ok := cm.Data[key]; ok {
		return v, nil
	}
	if v, ok := cm.BinaryData[key]; ok {
		return string(v), nil
	}
	return "", fmt.Errorf("key %q in configmap %s/%s not found", key, namespace, name)
}
