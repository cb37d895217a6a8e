package scrapeloop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

// BenchmarkBodyMemory runs the manager over 100 loopback targets whose
// text bodies are 1 to 3 MB (about 870k series together), each scraped
// every benchInterval on the real clock, and reports what the body buffers
// cost while they run: the bytes scrapes held at once at most (in flight,
// sampled), the bytes the pool keeps idle (buffers and chunks) and the live
// heap the manager adds (its loops, delta state and pool) after a garbage
// collection at the end, with the loops still running; and the bytes
// allocated in the second half of the run, when every target was scraped
// before (buffers the pool dropped and made again). One iteration takes
// about benchRounds intervals.
func BenchmarkBodyMemory(b *testing.B) {
	const (
		targets       = 100
		benchInterval = 3 * time.Second
		benchRounds   = 6
	)
	bodies := make([][]byte, targets)
	var serving, servingPeak atomic.Int64
	var tgs []target.Target
	for i := range targets {
		size := 1<<20 + i*(2<<20)/targets
		bodies[i] = genSeries(size/225, 1)
		body := bodies[i]
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			n := serving.Add(1)
			defer serving.Add(-1)
			for p := servingPeak.Load(); n > p && !servingPeak.CompareAndSwap(p, n); p = servingPeak.Load() {
			}
			w.Header().Set("Content-Type", benchCT)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
		}))
		b.Cleanup(srv.Close)
		tgs = append(tgs, target.Target{URL: srv.URL + "/metrics", Labels: labels.FromStrings("job", "bench", "instance", fmt.Sprint(i)),
			Interval: benchInterval, Timeout: benchInterval})
	}
	total := 0
	for _, body := range bodies {
		total += len(body)
	}
	b.ReportMetric(float64(total)/float64(targets)/1e6, "MB/body")
	for b.Loop() {
		var ms0, ms1, ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		store := deltastore.New(deltastore.Config{})
		m := NewManager(Config{Store: store, Backend: &discardBackend{}, Logger: slog.New(slog.DiscardHandler),
			DefaultLimits: target.Limits{Samples: -1}})
		ctx, cancel := context.WithCancel(context.Background())
		m.Sync(ctx, tgs)
		var peakInFlight int64
		start := time.Now()
		end := start.Add(benchRounds * benchInterval)
		for half := false; time.Now().Before(end); {
			if !half && time.Since(start) > benchRounds*benchInterval/2 {
				half = true
				runtime.ReadMemStats(&ms1)
			}
			time.Sleep(2 * time.Millisecond)
			bb := m.cfg.inflight
			bb.mu.Lock()
			peakInFlight = max(peakInFlight, bb.used)
			bb.mu.Unlock()
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		idle, idleBufs, chunks := poolHeld(&m.cfg.bodies)
		cancel()
		m.Wait()
		b.ReportMetric(float64(peakInFlight)/1e6, "MB-in-flight-peak")
		b.ReportMetric(float64(servingPeak.Load()), "requests-at-once-peak")
		b.ReportMetric(float64(idle)/1e6, "MB-idle-buffers")
		b.ReportMetric(float64(idleBufs), "idle-buffers")
		b.ReportMetric(float64(chunks*chunkSize)/1e6, "MB-idle-chunks")
		b.ReportMetric(float64(ms.HeapAlloc-ms0.HeapAlloc)/1e6, "MB-heap")
		b.ReportMetric(float64(ms.TotalAlloc-ms1.TotalAlloc)/1e6, "MB-allocated-2nd-half")
		b.ReportMetric(float64(store.Len()), "series")
		b.Logf("idle buffers by level: %s", poolLevels(&m.cfg.bodies))
	}
}

// poolHeld returns the bytes and count of the idle buffers bp keeps, and its
// idle chunks.
func poolHeld(bp *bodyPool) (idle int64, bufs, chunks int) {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	for _, lv := range bp.levels {
		for _, b := range lv {
			idle += int64(cap(*b.b))
			bufs++
		}
	}
	return idle, bufs, len(bp.chunks)
}

// poolLevels lists bp's idle buffers as count×capacity per level.
func poolLevels(bp *bodyPool) string {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	s := ""
	for _, lv := range bp.levels {
		for _, b := range lv {
			s += fmt.Sprintf(" %dKiB", cap(*b.b)>>10)
		}
	}
	return s
}
