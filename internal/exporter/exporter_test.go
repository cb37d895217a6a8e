package exporter

import (
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// serverGoroutines returns the stacks of the goroutines that run an HTTP
// server: its accept loop, a connection, a handler.
func serverGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "net/http.(*Server).Serve(") || strings.Contains(g, "net/http.(*conn).serve(") || strings.Contains(g, "(*Exporter).ServeHTTP(") {
			found = append(found, g)
		}
	}
	return found
}

// TestCloseWaits: when Close returns, the server's goroutines have ended,
// a handler in the middle of a delayed answer included.
func TestCloseWaits(t *testing.T) {
	e := New()
	e.Family("g", Gauge, "").Set("", 1)
	e.SetDelay(time.Hour)
	srv, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	done := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + srv.Addr() + "/metrics")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for e.Scrapes() == 0 {
		time.Sleep(time.Millisecond) // the handler counts the scrape, then waits its delay
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if g := serverGoroutines(); len(g) > 0 {
		t.Errorf("%d server goroutines run after Close:\n%s", len(g), strings.Join(g, "\n\n"))
	}
	if err := <-done; err == nil {
		t.Error("the delayed scrape was answered although Close cut it short")
	}
}
