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
	counting := flag.Int("counting-series", 0, "instead of the simulated application, serve this many counters that each grow by exactly 1 per scrape "+
		"(GET /scrapes tells how many scrapes were answered, so a test knows the true increase)")
	flag.Parse()

	d := exporter.NewDemo(uint64(time.Now().UnixNano()))
	d.SetOpenMetrics(*openMetrics)
	var srv *exporter.Server
	var err error
	if *counting > 0 {
		e := exporter.New()
		e.SetOpenMetrics(*openMetrics)
		f := e.Family("demo_scrapes_total", exporter.Counter, "Grows by 1 at every scrape.")
		for i := range *counting {
			f.Add(fmt.Sprintf(`series="%d"`, i), 0)
		}
		e.AddPerScrape(1)
		srv, err = e.Listen(*listen)
		*restartEvery = 0
		d = nil
	} else {
		srv, err = d.Listen(*listen)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demoexporter:", err)
		os.Exit(1)
	}
	log := slog.Default().With("url", "http://"+srv.Addr()+"/metrics")
	log.Info("demoexporter serving")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if d != nil {
		d.Run(ctx, *restartEvery, log)
	} else {
		<-ctx.Done()
	}
	_ = srv.Close()
}
