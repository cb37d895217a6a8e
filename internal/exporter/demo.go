package exporter

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Demo is a simulated application: request counters, an in-flight gauge, a
// latency histogram and an RPC summary that move every second.
type Demo struct {
	*Exporter
	reqs, inflight, lat, rpc *Family
	r                        *rand.Rand
}

// NewDemo returns a simulated application whose randomness is seeded by seed.
func NewDemo(seed uint64) *Demo {
	e := New()
	e.SetStartTime(float64(time.Now().Unix()))
	return &Demo{
		Exporter: e,
		reqs:     e.Family("http_requests_total", Counter, "HTTP requests served."),
		inflight: e.Family("http_requests_in_flight", Gauge, "Requests being served."),
		lat:      e.Family("http_request_duration_seconds", Histogram, "Request latency.", 0.005, 0.01, 0.05, 0.1, 0.5, 1),
		rpc:      e.Family("rpc_duration_seconds", Summary, "RPC latency."),
		r:        rand.New(rand.NewPCG(seed, 1)),
	}
}

// Step simulates one second of traffic.
func (d *Demo) Step() {
	for _, s := range []string{`code="200",method="get"`, `code="200",method="post"`, `code="500",method="get"`} {
		n := d.r.IntN(20)
		if s[6:9] == "500" {
			n = d.r.IntN(2)
		}
		d.reqs.Add(s, float64(n))
		for range n {
			d.lat.Observe(`handler="/api"`, d.r.ExpFloat64()/20)
		}
	}
	d.inflight.Set("", float64(d.r.IntN(8)))
	for range 5 {
		d.rpc.Observe(`peer="cart"`, d.r.ExpFloat64()/50)
	}
	d.rpc.SetQuantile(`peer="cart"`, 0.5, 0.014+d.r.Float64()/100)
	d.rpc.SetQuantile(`peer="cart"`, 0.99, 0.09+d.r.Float64()/20)
}

// Run steps every second until ctx is cancelled, simulating a process
// restart (counters back to zero) every restartEvery (0: never).
func (d *Demo) Run(ctx context.Context, restartEvery time.Duration, log *slog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if restartEvery > 0 && now.Sub(last) >= restartEvery {
				d.Restart(float64(now.Unix()))
				last = now
				log.Info("simulated a restart: counters are back to 0")
			}
			d.Step()
		}
	}
}
