package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// source renders a target's exposition and knows its truth.
type source interface {
	// render appends the exposition of scrape k (1-based) to b and returns
	// it with the number of samples.
	render(b []byte, k int) ([]byte, int)
	// learn tells the keyer every label name the series carry.
	learn(k *keyer, target []label)
	// expect calls fn with what the intake should hold per series after the
	// agent scraped k1..kf (see synthTarget.expect).
	expect(target []label, k1, kf int, fn func(metric string, kd kind, tags []string, want float64))
}

// exportTarget is one exporter listener and what it served.
type exportTarget struct {
	src    source
	labels []label // file_sd labels; the agent adds instance=<addr>
	addr   string  // host:port, set when listening

	mu       sync.Mutex // serializes scrapes of the target: buf, started, frozenAt
	buf      []byte
	started  int // scrapes begun
	frozenAt int // when > 0, every scrape serves scrape frozenAt's values

	firstOK    atomic.Int64 // scrape number of the first response fully written
	scrapesOK  atomic.Int64
	samplesOK  atomic.Int64
	bytesOK    atomic.Int64
	postFreeze atomic.Int64 // responses written after freeze
	writeErrs  atomic.Int64
}

// targetLabels are the labels the agent gives the target's series:
// the file_sd labels plus instance.
func (t *exportTarget) targetLabels() []label {
	return append(t.labels[:len(t.labels):len(t.labels)], label{"instance", t.addr})
}

func (t *exportTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.started++
	k, frozen := t.started, t.frozenAt > 0
	if frozen {
		k = t.frozenAt
	}
	var n int
	t.buf, n = t.src.render(t.buf[:0], k)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(t.buf)))
	if _, err := w.Write(t.buf); err != nil {
		t.writeErrs.Add(1)
		return
	}
	t.firstOK.CompareAndSwap(0, int64(k))
	t.scrapesOK.Add(1)
	t.samplesOK.Add(int64(n))
	t.bytesOK.Add(int64(len(t.buf)))
	if frozen {
		t.postFreeze.Add(1)
	}
}

// freeze stops the target's values (and churn) where the last scrape left
// them and returns that scrape's number.
func (t *exportTarget) freeze() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.frozenAt = max(t.started, 1)
	return t.frozenAt
}

// exporters serves every target on its own 127.0.x.y listener from one
// http.Server.
type exporters struct {
	targets []*exportTarget
	srv     *http.Server
	wg      sync.WaitGroup
	errs    chan error
}

type targetCtxKey struct{}

// loopbackAddr is target i's address: 127.0.100.1, 127.0.100.2, ...; only
// 127.0.0.0/8 is ever used.
func loopbackAddr(i int) string {
	return fmt.Sprintf("127.0.%d.%d:0", 100+i/250, 1+i%250)
}

// startExporters listens for every target (a free port on its own loopback
// address) and serves them until close.
func startExporters(targets []*exportTarget) (*exporters, error) {
	if len(targets) > 250*150 {
		return nil, fmt.Errorf("exporters: %d targets, at most %d fit in 127.0.100.0-127.0.249.255", len(targets), 250*150)
	}
	e := &exporters{targets: targets, errs: make(chan error, len(targets))}
	byAddr := make(map[string]*exportTarget, len(targets))
	lns := make([]net.Listener, 0, len(targets))
	for i, t := range targets {
		ln, err := net.Listen("tcp4", loopbackAddr(i))
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("exporters: listen for target %d: %w", i, err)
		}
		t.addr = ln.Addr().String()
		byAddr[t.addr] = t
		lns = append(lns, ln)
	}
	e.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, targetCtxKey{}, byAddr[c.LocalAddr().String()])
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Context().Value(targetCtxKey{}).(*exportTarget).ServeHTTP(w, r)
		}),
	}
	for _, ln := range lns {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			if err := e.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				e.errs <- fmt.Errorf("exporters: serve %s: %w", ln.Addr(), err)
			}
		}()
	}
	return e, nil
}

// close stops every listener and waits for the serving goroutines.
func (e *exporters) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, e.srv.Close())
	}
	e.wg.Wait()
	close(e.errs)
	for serr := range e.errs {
		err = errors.Join(err, serr)
	}
	return err
}

// served sums what every target served so far.
type servedTotals struct {
	scrapes, samples, bytes int64
}

func (e *exporters) totals() servedTotals {
	var s servedTotals
	for _, t := range e.targets {
		s.scrapes += t.scrapesOK.Load()
		s.samples += t.samplesOK.Load()
		s.bytes += t.bytesOK.Load()
	}
	return s
}

// minScrapes is the fewest complete scrapes any target has served.
func (e *exporters) minScrapes() int64 {
	m := int64(-1)
	for _, t := range e.targets {
		if n := t.scrapesOK.Load(); m < 0 || n < m {
			m = n
		}
	}
	return m
}

// minPostFreeze is the fewest responses any target has written since freeze.
func (e *exporters) minPostFreeze() int64 {
	m := int64(-1)
	for _, t := range e.targets {
		if n := t.postFreeze.Load(); m < 0 || n < m {
			m = n
		}
	}
	return m
}
