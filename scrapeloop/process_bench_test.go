package scrapeloop

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

// discardBackend takes points and keeps nothing: what the scrape loop itself
// costs, without a backend's encoding.
type discardBackend struct{ points int }

func (d *discardBackend) NewAppender(*target.Target) (Appender, error) { return d, nil }
func (d *discardBackend) AddSeries(s *Series) (uint64, Kind) {
	if s.Role == exposition.RoleCreated {
		return 0, KindDrop
	}
	if s.Type == exposition.TypeCounter || s.Role == exposition.RoleBucket || s.Role == exposition.RoleSum || s.Role == exposition.RoleCount {
		return 1, KindCounter
	}
	return 2, KindGauge
}
func (d *discardBackend) Append(uint64, *exposition.Parser, int64, float64) { d.points++ }
func (d *discardBackend) Forget(uint64)                                     {}
func (d *discardBackend) Commit()                                           {}
func (d *discardBackend) Close()                                            {}

// benchLoop makes a loop on store with the given backend, not started.
func benchLoop(tb testing.TB, tg target.Target, store *deltastore.Store, be Backend, now *time.Time) *loop {
	tb.Helper()
	if tg.URL == "" {
		tg.URL = "http://127.0.0.1:1/metrics"
	}
	if tg.Interval == 0 {
		tg.Interval, tg.Timeout = 30*time.Second, 10*time.Second
	}
	m := NewManager(Config{Store: store, Backend: be, Logger: slog.New(slog.DiscardHandler),
		DefaultLimits: target.Limits{Samples: -1},
		Now:           func() time.Time { return *now }})
	l, err := newLoop(m.cfg, tg)
	if err != nil {
		tb.Fatal(err)
	}
	l.resume()
	return l
}

// processLocked runs one scrape's processing as scrape does.
func processLocked(l *loop, body []byte, ct string, at time.Time) (int, error) {
	l.table.Lock()
	defer l.table.Unlock()
	n, _, err := l.process(body, ct, at)
	l.app.Commit()
	if err == nil {
		l.succeed(at)
	}
	return n, err
}

// BenchmarkProcess measures the steady state of one target's scrape after the
// first: parse, series lookup, delta, hand-off of every point.
func BenchmarkProcess(b *testing.B) {
	for _, name := range []string{"node_exporter-e2e-output.prom", "k8s135-kube-state-metrics.prom", "k8s135-kubelet-cadvisor.prom"} {
		b.Run(name, func(b *testing.B) {
			body, err := os.ReadFile("exposition/testdata/corpus/" + name)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Unix(1_800_000_000, 0)
			l := benchLoop(b, target.Target{Labels: labels.FromStrings("job", "bench", "instance", "10.0.0.1:9100")},
				deltastore.New(deltastore.Config{}), &discardBackend{}, &now)
			samples, err := processLocked(l, body, benchCT, now)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(30 * time.Second)
				if _, err := processLocked(l, body, benchCT, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(samples), "ns/sample")
		})
	}
}
