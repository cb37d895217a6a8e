package apiscale

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/controlplane"
	"k8s.io/client-go/rest"
)

// TestWireListWatch: the wire-level list and watch count a list's items and
// each later event of the kind.
func TestWireListWatch(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	if _, err := cp.CreateNode(ctx, "n", netip.MustParseAddr("127.0.1.1"), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := cp.CreatePod(ctx, controlplane.Pod("default", fmt.Sprintf("a-%d", i), "n", nil), controlplane.PodStatus{IP: netip.MustParseAddr("127.0.0.9")}); err != nil {
			t.Fatal(err)
		}
	}
	hc, err := rest.HTTPClientFor(cp.Admin)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	ready := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := listWatch(wctx, hc, cp.Admin.Host+"/api/v1/pods", func(k int64) { n.Add(k) }, func() { close(ready) }); err != nil {
			t.Errorf("listWatch: %v", err)
		}
	})
	defer func() { cancel(); wg.Wait() }()
	<-ready
	if got := n.Load(); got != 3 {
		t.Errorf("list: %d items, want 3", got)
	}
	// A create and a status write: two events.
	if _, err := cp.CreatePod(ctx, controlplane.Pod("default", "b", "n", nil), controlplane.PodStatus{IP: netip.MustParseAddr("127.0.0.10")}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); n.Load() < 5 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if got := n.Load(); got != 5 {
		t.Errorf("after a pod's create and status write: %d counted, want 5", got)
	}
}
