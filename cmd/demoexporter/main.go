// Command demoexporter serves a simulated application's Prometheus metrics
// (request counters, an in-flight gauge, a latency histogram and summary) that
// change every second, with an occasional simulated restart so counter resets
// show up. It is the example workload of the README's demo.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nodescraper/nodescraper/internal/exporter"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9200", "address to serve /metrics on")
	restartEvery := flag.Duration("restart-every", 2*time.Minute, "simulate a process restart this often (counters back to 0); 0 = never")
	openMetrics := flag.Bool("openmetrics", false, "answer in OpenMetrics instead of the Prometheus text format")
	flag.Parse()

	e := exporter.New()
	e.SetOpenMetrics(*openMetrics)
	start := float64(time.Now().Unix())
	e.SetStartTime(start)
	reqs := e.Family("http_requests_total", exporter.Counter, "HTTP requests served.")
	inflight := e.Family("http_requests_in_flight", exporter.Gauge, "Requests being served.")
	lat := e.Family("http_request_duration_seconds", exporter.Histogram, "Request latency.", 0.005, 0.01, 0.05, 0.1, 0.5, 1)
	sum := e.Family("rpc_duration_seconds", exporter.Summary, "RPC latency.")

	srv, err := e.Listen(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demoexporter:", err)
		os.Exit(1)
	}
	slog.Info("demoexporter serving", "url", "http://"+srv.Addr()+"/metrics")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRestart := time.Now()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for {
		select {
		case <-ctx.Done():
			_ = srv.Close()
			return
		case now := <-tick.C:
			if *restartEvery > 0 && now.Sub(lastRestart) >= *restartEvery {
				e.Restart(float64(now.Unix()))
				lastRestart = now
				slog.Info("demoexporter simulated a restart: counters are back to 0")
			}
			for _, s := range []string{`code="200",method="get"`, `code="200",method="post"`, `code="500",method="get"`} {
				n := r.IntN(20)
				if s[6:9] == "500" {
					n = r.IntN(2)
				}
				reqs.Add(s, float64(n))
				for range n {
					lat.Observe(`handler="/api"`, r.ExpFloat64()/20)
				}
			}
			inflight.Set("", float64(r.IntN(8)))
			for range 5 {
				sum.Observe(`service="cart"`, r.ExpFloat64()/50)
			}
			sum.SetQuantile(`service="cart"`, 0.5, 0.014+r.Float64()/100)
			sum.SetQuantile(`service="cart"`, 0.99, 0.09+r.Float64()/20)
		}
	}
}
