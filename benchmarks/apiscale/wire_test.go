package apiscale

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
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
	var last uint64
	for i := range 3 {
		p, err := cp.CreatePod(ctx, controlplane.Pod("default", fmt.Sprintf("a-%d", i), "n", nil), controlplane.PodStatus{IP: netip.MustParseAddr("127.0.0.9")})
		if err != nil {
			t.Fatal(err)
		}
		last, _ = strconv.ParseUint(p.ResourceVersion, 10, 64)
	}
	hc, err := rest.HTTPClientFor(cp.Admin)
	if err != nil {
		t.Fatal(err)
	}
	// A list at resourceVersion=0 is served by the watch cache, which may
	// not hold the last status write yet (then the watch delivers it, and
	// the list's count is short by what the watch adds). Wait until the
	// cache is at the last write, so that the list alone holds the three.
	waitCache(t, hc, cp.Admin.Host+"/api/v1/pods", last)
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

// waitCache waits until a resourceVersion=0 list of u is at rv or later.
func waitCache(t *testing.T, hc *http.Client, u string, rv uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		body, err := get(t.Context(), hc, u+"?resourceVersion=0")
		if err != nil {
			t.Fatal(err)
		}
		_, at, err := listItems(body)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.ParseUint(at, 10, 64); n >= rv {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch cache at %s after 10s, want %d", at, rv)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
