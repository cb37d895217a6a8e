package scrapeloop

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

// BenchmarkScrape measures a target's whole steady-state scrape after the
// first, fetch included: the request through an in-memory transport (the
// same body each time, with its Content-Length), the body read into a pooled
// buffer, then process. What it adds to BenchmarkProcess is the fetch path.
func BenchmarkScrape(b *testing.B) {
	for _, name := range []string{"node_exporter-e2e-output.prom", "k8s135-kube-state-metrics.prom"} {
		b.Run(name, func(b *testing.B) {
			body, err := os.ReadFile("exposition/testdata/corpus/" + name)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Unix(1_800_000_000, 0)
			rt := &routes{bodies: map[string]*served{}}
			tr := &http.Transport{DisableCompression: true}
			tr.RegisterProtocol("http", rt)
			tg := target.Target{URL: "http://127.0.0.1:1/metrics", Labels: labels.FromStrings("job", "bench", "instance", "10.0.0.1:9100"),
				Interval: 30 * time.Second, Timeout: 10 * time.Second}
			rt.set(tg.URL, string(body), benchCT)
			store := deltastore.New(deltastore.Config{})
			m := NewManager(Config{Store: store, Backend: &discardBackend{}, Transport: tr, DefaultLimits: target.Limits{Samples: -1},
				Now: func() time.Time { return now }})
			l, err := newLoop(m.cfg, tg)
			if err != nil {
				b.Fatal(err)
			}
			l.resume()
			ctx := context.Background()
			for range 2 {
				now = now.Add(30 * time.Second)
				if _, err := l.scrape(ctx, now); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(30 * time.Second)
				if _, err := l.scrape(ctx, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
