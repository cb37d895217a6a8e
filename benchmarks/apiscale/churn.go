package apiscale

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// tracker times pod changes until the owning agent reports the pod: it is
// told when a pod's Ready status is about to be written (expect) and by the
// agents which pods their target sets hold (seen).
type tracker struct {
	mu      sync.Mutex
	pending map[string]time.Time // node/pod -> when its Ready status was sent
	window  int                  // 0: pod churn only, 1: with the Service stream
	lat     [2][]time.Duration
	watched func(node string) bool
}

func newTracker(watched func(string) bool) *tracker {
	return &tracker{pending: map[string]time.Time{}, watched: watched}
}

func (t *tracker) expect(node, pod string) {
	if !t.watched(node) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending[node+"/"+pod] = time.Now()
}

func (t *tracker) seen(node, pod string) {
	now := time.Now()
	key := node + "/" + pod
	t.mu.Lock()
	defer t.mu.Unlock()
	if sent, ok := t.pending[key]; ok {
		t.lat[t.window] = append(t.lat[t.window], now.Sub(sent))
		delete(t.pending, key)
	}
}

func (t *tracker) setWindow(w int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.window = w
}

// Latency is the distribution of pod-change-to-target-set times.
type Latency struct {
	N        int
	P50, P99 time.Duration
	Max      time.Duration
}

// pendingCount is how many pod changes no agent has seen yet.
func (t *tracker) pendingCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

func (t *tracker) result() (quiet, stream Latency, missed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := func(d []time.Duration) Latency {
		if len(d) == 0 {
			return Latency{}
		}
		d = slices.Clone(d)
		slices.Sort(d)
		q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
		return Latency{N: len(d), P50: q(0.50), P99: q(0.99), Max: d[len(d)-1]}
	}
	return f(t.lat[0]), f(t.lat[1]), len(t.pending)
}

// churner replaces pods and touches Services. gens[n][k] is the current
// generation of pod slot k on node n; it persists across phases.
type churner struct {
	cp   *controlplane.ControlPlane
	spec Spec
	gens [][]int
}

func newChurner(cp *controlplane.ControlPlane, s Spec) *churner {
	g := make([][]int, s.Nodes)
	for n := range g {
		g[n] = make([]int, s.PodsPerNode)
	}
	return &churner{cp: cp, spec: s, gens: g}
}

// ChurnStats is what a churn window did.
type ChurnStats struct {
	PodReplacements, ServiceUpdates int
	Duration                        time.Duration
}

// run replaces a random pod podRate times a second for d (delete with grace
// 0, as a kubelet confirms; create on the same node; write Running/Ready),
// and in d's second half also updates a random Service's annotation
// svcRate times a second. The pod sequence depends only on seed, so phases
// churn alike.
func (c *churner) run(ctx context.Context, d time.Duration, podRate, svcRate float64, seed uint64, tr *tracker) (ChurnStats, error) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var st ChurnStats
	var wg sync.WaitGroup
	var svcErr error
	half := time.NewTimer(d / 2)
	defer half.Stop()
	wg.Go(func() {
		select {
		case <-ctx.Done():
			return
		case <-half.C:
		}
		tr.setWindow(1)
		if svcRate <= 0 {
			return
		}
		rng := rand.New(rand.NewPCG(seed, 2))
		// The value is new in every run: the same seed picks the same
		// Services in each phase, and a patch to a value they already
		// hold is a no-op the watches never see.
		run := time.Now().UnixNano()
		tick := time.NewTicker(time.Duration(float64(time.Second) / svcRate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			a := rng.IntN(c.spec.Services())
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"apiscale/churn":"%d-%d"}}}`, run, i)
			_, err := c.cp.Kube.CoreV1().Services(c.spec.namespace(a)).Patch(ctx, fmt.Sprintf("s-%d", a), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			if err != nil {
				if !ending(ctx, err) {
					svcErr = fmt.Errorf("service churn: %w", err)
				}
				return
			}
			st.ServiceUpdates++
		}
	})
	rng := rand.New(rand.NewPCG(seed, 1))
	tick := time.NewTicker(time.Duration(float64(time.Second) / podRate))
	defer tick.Stop()
	var podErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		n, k := rng.IntN(c.spec.Nodes), rng.IntN(c.spec.PodsPerNode)
		if err := c.replace(ctx, n, k, tr); err != nil {
			if !ending(ctx, err) {
				podErr = err
			}
			break
		}
		st.PodReplacements++
	}
	cancel()
	wg.Wait()
	st.Duration = time.Since(begin)
	if podErr != nil {
		return st, podErr
	}
	return st, svcErr
}

func (c *churner) replace(ctx context.Context, n, k int, tr *tracker) error {
	g := c.gens[n][k]
	old := podName(n, k, g)
	zero := int64(0)
	ns := c.spec.namespace(c.spec.service(n, k))
	if err := c.cp.Kube.CoreV1().Pods(ns).Delete(ctx, old, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		return fmt.Errorf("pod churn: delete %s/%s: %w", ns, old, err)
	}
	c.gens[n][k] = g + 1
	return createPodThen(ctx, c.cp, c.spec, n, k, g+1, func() { tr.expect(nodeName(n), podName(n, k, g+1)) })
}

// ending reports whether err only says the churn window is over: the
// context ended, or client-go's rate limiter refused to wait past its
// deadline ("would exceed context deadline", not wrapped as
// context.DeadlineExceeded).
func ending(ctx context.Context, err error) bool {
	return ctx.Err() != nil || strings.Contains(err.Error(), "would exceed context deadline")
}
