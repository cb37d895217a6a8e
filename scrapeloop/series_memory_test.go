package scrapeloop

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

const benchCT = "text/plain; version=0.0.4"

// genSeries writes an exposition of about n series shaped like a busy
// Kubernetes node's: counters with 6-8 labels of long values (pods with
// hashes, UIDs, images), histograms, gauges. step moves every counter.
func genSeries(n, step int) []byte {
	b := make([]byte, 0, n*230)
	fam := 0
	for i := 0; i < n; fam++ {
		per := min(2000, n-i)
		name := fmt.Sprintf("app_component_%03d_requests", fam)
		switch fam % 5 {
		case 3: // histogram: 10 buckets + sum + count per label set
			b = fmt.Appendf(b, "# HELP %s_seconds Request latency.\n# TYPE %s_seconds histogram\n", name, name)
			for j := 0; j < per; j += 12 {
				ls := fmt.Sprintf(`namespace="team-%02d-production",pod="checkout-api-%08x-%05x",container="server",uid="%08x-1f2e-4d3c-8b7a-%012x"`, j%37, fam*7919, j, fam, j)
				for k, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"} {
					b = fmt.Appendf(b, "%s_seconds_bucket{%s,le=\"%s\"} %d\n", name, ls, le, (k+1)*(j+step))
				}
				b = fmt.Appendf(b, "%s_seconds_sum{%s} %d.25\n%s_seconds_count{%s} %d\n", name, ls, j+step, name, ls, 10*(j+step))
			}
		case 4: // gauge
			b = fmt.Appendf(b, "# HELP %s_in_flight In-flight requests.\n# TYPE %s_in_flight gauge\n", name, name)
			for j := range per {
				b = fmt.Appendf(b, `%s_in_flight{namespace="team-%02d-production",pod="checkout-api-%08x-%05x",container="server",image="registry.example.com/team/checkout-api:v1.%d.4-abcdef0",node="ip-10-0-%d-%d.eu-west-1.compute.internal"} %d`+"\n",
					name, j%37, fam*7919, j, fam%30, j%250, j%200, (j*step)%97)
			}
		default: // counter
			b = fmt.Appendf(b, "# HELP %s_total Requests served.\n# TYPE %s_total counter\n", name, name)
			for j := range per {
				b = fmt.Appendf(b, `%s_total{namespace="team-%02d-production",pod="checkout-api-%08x-%05x",container="server",uid="%08x-1f2e-4d3c-8b7a-%012x",method="%s",code="%d"} %d`+"\n",
					name, j%37, fam*7919, j, fam, j, [...]string{"GET", "POST", "PUT", "DELETE"}[j%4], 200+j%5*100, j*3+step*(j%7))
			}
		}
		i += per
	}
	return b
}

// BenchmarkSeriesMemory drives the real loop over a million series (two
// scrapes, the second a steady-state one) and reports the heap the loop and
// its delta table retain per series after a garbage collection, the body
// excluded. The Datadog appender keeps nothing per series whose labels
// relabeling left alone (see ddclient); the agent's own figure, RSS per
// series under load, comes from the harness in benchmarks/.
func BenchmarkSeriesMemory(b *testing.B) {
	const n = 1_000_000
	bodies := [][]byte{genSeries(n, 1), genSeries(n, 2)}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		now := time.Unix(1_800_000_000, 0)
		store := deltastore.New(deltastore.Config{})
		l := benchLoop(b, target.Target{Labels: labels.FromStrings("job", "bench", "instance", "127.0.0.1:9100", "namespace", "monitoring", "pod", "exporter-0")},
			store, &discardBackend{}, &now)
		series := 0
		for _, body := range bodies {
			now = now.Add(30 * time.Second)
			if _, err := processLocked(l, body, benchCT, now); err != nil {
				b.Fatal(err)
			}
		}
		series = l.table.Len()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(series), "B/series")
		b.ReportMetric(float64(series), "series")
		runtime.KeepAlive(l)
	}
}
