package ddclient

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/scrapeloop"
)

// cadvisorBody is an exposition shaped as cadvisor's and the benchmark
// harness's dense targets: families one after another, each with one series
// (or a few variants) per container, every container with the same five
// long labels.
func cadvisorBody(objects int) string {
	var b strings.Builder
	obj := func(o int) string {
		return fmt.Sprintf(`container="app-%d",id="/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%08x_1a2b_3c4d_5e6f_%012x.slice/cri-containerd-%064x.scope",image="gcr.io/acme-prod/app-%d:v1.%d.3",namespace="ns-%d",pod="app-%d-%010x-%05x"`,
			o%12, o*7919, o*104729, o*15485863, o%12, o%30, o%10, o%12, o*31, o*17)
	}
	fam := func(name, typ string, variants []string) {
		fmt.Fprintf(&b, "# HELP %s help text\n# TYPE %s %s\n", name, name, typ)
		sample := name
		if typ == "histogram" {
			sample += "_bucket"
		}
		for o := range objects {
			for _, v := range variants {
				fmt.Fprintf(&b, "%s{%s%s} %d\n", sample, obj(o), v, 1000+o)
			}
		}
	}
	for i := range 7 {
		fam(fmt.Sprintf("container_counter_%d_total", i), "counter", []string{""})
	}
	fam("container_network_receive_bytes_total", "counter", []string{`,interface="eth0"`, `,interface="eth1"`})
	fam("http_requests_total", "counter", []string{`,code="200",handler="/api/v1/orders/{id}",method="GET"`, `,code="404",handler="/api/v1/orders/{id}",method="GET"`,
		`,code="201",handler="/api/v1/orders",method="POST"`, `,code="500",handler="/api/v1/orders",method="POST"`})
	for i := range 4 {
		fam(fmt.Sprintf("container_gauge_%d", i), "gauge", []string{""})
	}
	var buckets []string
	for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"} {
		buckets = append(buckets, `,handler="/api/v1/orders/{id}",method="GET",le="`+le+`"`)
	}
	fam("http_request_duration_seconds", "histogram", buckets)
	return b.String()
}

// BenchmarkDenseScrape parses and appends a dense target's scrape (about
// 10,000 samples, long labels) per iteration: what a point costs the
// scraping goroutine through the parser and the appender, on each wire,
// the payloads sealed and compressed by a Client that sends nothing.
func BenchmarkDenseScrape(b *testing.B) {
	body := cadvisorBody(300)
	for _, v3 := range []bool{false, true} {
		b.Run(map[bool]string{false: "wire=v2", true: "wire=v3"}[v3], func(b *testing.B) {
			c, err := New(Config{URL: "http://127.0.0.1:1", APIKey: "k", MaxQueueBytes: 1 << 20, SeriesV3: v3, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			s := newScraper(b, c, benchTarget(), prom)
			ts := time.Now().UnixMilli()
			s.scrape(body, ts)
			// The refs in sample order: the loop's lookup is not measured.
			var refs []uint64
			s.p.Reset([]byte(body), prom)
			for s.p.Next() {
				refs = append(refs, s.refs[string(s.p.Series())].ref)
			}
			raw := []byte(body)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				ts += 15_000
				s.p.Reset(raw, prom)
				for i := 0; s.p.Next(); i++ {
					if refs[i] != 0 {
						s.app.Append(refs[i], &s.p, ts, float64(i))
					}
				}
				s.app.Commit()
				n += len(refs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/sample")
		})
	}
}

var _ scrapeloop.Appender = (*appender)(nil)
