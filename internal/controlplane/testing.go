package controlplane

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// ForTest starts a control plane for t and stops it when t ends. It fails t
// (never skips it) when the binaries are missing or a component does not
// come up. When t fails, the end of each component's log is reported.
//
// An interrupt (SIGINT, SIGTERM) while it runs stops the processes first and
// then lets the signal end the test binary as it would have; a test binary
// killed outright takes them along through Pdeathsig.
func ForTest(t testing.TB, cfg Config) *ControlPlane {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir() // registered first, so removed after Stop
	}
	cp, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Logf("control plane %s up: %v", cp.Admin.Host, cp.Timings)

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case s := <-sigc:
			_ = cp.Stop()
			signal.Stop(sigc)
			// With our handler gone the default action applies again:
			// the test binary ends as the signal intended.
			if sig, ok := s.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), sig)
			}
		case <-done:
			signal.Stop(sigc)
		}
	}()

	t.Cleanup(func() {
		close(done)
		<-watcherDone
		if t.Failed() {
			t.Logf("control plane logs (tail):\n%s", cp.Logs(40))
		}
		begin := time.Now()
		if err := cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
		t.Logf("control plane stopped in %v", time.Since(begin).Round(time.Millisecond))
	})
	return cp
}

// NodeForTest starts a node of cp for t and stops it when t ends (before cp,
// whose ForTest cleanup was registered earlier). It fails t when the node
// does not come up; when t fails, the end of its logs is reported.
func NodeForTest(t testing.TB, cp *ControlPlane, cfg NodeConfig) *Node {
	t.Helper()
	begin := time.Now()
	n, err := cp.StartNode(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Logf("node %s up in %v", n.Name, time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node logs (tail):\n%s", n.Logs(60))
		}
		if err := n.Stop(); err != nil {
			t.Errorf("stop node %s: %v", n.Name, err)
		}
	})
	return n
}
