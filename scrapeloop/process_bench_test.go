package scrapeloop

import (
	"os"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/prometheus/prometheus/model/labels"
)

type discardSink struct{}

func (discardSink) Submit(b *ddclient.Batch) { b.Reset() }

// BenchmarkProcess measures the steady state of one target's scrape after the
// first: parse, cache hit, delta, encoding of every point.
func BenchmarkProcess(b *testing.B) {
	for _, name := range []string{"node_exporter-e2e-output.prom", "k8s135-kube-state-metrics.prom", "k8s135-kubelet-cadvisor.prom"} {
		b.Run(name, func(b *testing.B) {
			body, err := os.ReadFile("exposition/testdata/corpus/" + name)
			if err != nil {
				b.Fatal(err)
			}
			tl := newTestLoop(&testing.T{}, Target{Labels: labels.FromStrings("job", "bench", "instance", "10.0.0.1:9100"), Tags: []string{"kube_namespace:prod", "pod_name:x"}})
			tl.cfg.Sink = discardSink{}
			samples, err := tl.process(body, textCT, tl.now)
			if err != nil {
				b.Fatal(err)
			}
			tl.batch.Reset()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				tl.now = tl.now.Add(30 * time.Second)
				if _, err := tl.process(body, textCT, tl.now); err != nil {
					b.Fatal(err)
				}
				tl.batch.Reset()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(samples), "ns/sample")
		})
	}
}
