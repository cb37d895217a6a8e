package main

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// tally keeps, per received Datadog series (metric, host, known tags), the
// sum of its count points and its last gauge value: memory grows with the
// number of distinct series, never with the number of points. It also keeps
// a histogram of scrape-to-intake latency while measuring.
type tally struct {
	keys *keyer

	measuring atomic.Bool

	mu      sync.Mutex
	series  map[uint64]acc
	unknown map[string]int64 // received tag keys the harness never produces (at most maxUnknown)
	lat     latencyHist
	types   [4]int64 // series received by Datadog type (0 unspecified .. 3 gauge)
}

// acc is what one series received.
type acc struct {
	sum    float64 // count points added up
	last   float64 // gauge: value of the latest timestamp
	lastTS int64
	points int64
}

const maxUnknown = 32

func newTally(k *keyer) *tally {
	return &tally{keys: k, series: map[uint64]acc{}, unknown: map[string]int64{}}
}

// pointRef is one series' key and points, taken outside the lock.
type pointRef struct {
	key    uint64
	count  bool
	points []fakeintake.SinkPoint
}

// accept is the intake Sink's OnAccept.
func (t *tally) accept(at time.Time, series []fakeintake.SinkSeries) {
	refs := make([]pointRef, 0, len(series))
	var scratch []string
	unknown := map[string]int64{}
	var types [4]int64
	for i := range series {
		s := &series[i]
		var key uint64
		key, scratch = t.keys.key(s.Metric, s.Host, s.Tags, scratch, func(k string) { unknown[k]++ })
		if int(s.Type) >= 0 && int(s.Type) < len(types) {
			types[s.Type]++
		}
		refs = append(refs, pointRef{key: key, count: s.Type == datadogV2.METRICINTAKETYPE_COUNT, points: s.Points})
	}
	recv := float64(at.UnixNano()) / 1e9
	measuring := t.measuring.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, n := range types {
		t.types[i] += n
	}
	for k, n := range unknown {
		if _, ok := t.unknown[k]; ok || len(t.unknown) < maxUnknown {
			t.unknown[k] += n
		}
	}
	for _, r := range refs {
		a := t.series[r.key]
		for _, pt := range r.points {
			a.points++
			if r.count {
				a.sum += pt.Value
			} else if a.points == 1 || pt.Timestamp >= a.lastTS {
				a.last, a.lastTS = pt.Value, pt.Timestamp
			}
			if measuring {
				t.lat.add(recv - float64(pt.Timestamp))
			}
		}
		t.series[r.key] = a
	}
}

// latencyHist counts latencies in 100 ms bins up to latencyBins/10 seconds;
// the last bin holds everything longer.
type latencyHist struct {
	bins [latencyBins + 1]int64
	n    int64
}

const latencyBins = 6000 // 10 minutes

func (h *latencyHist) add(sec float64) {
	i := int(math.Floor(sec * 10))
	i = min(max(i, 0), latencyBins)
	h.bins[i]++
	h.n++
}

// quantile returns the upper edge of the bin holding quantile q, in
// seconds; 0 when nothing was counted.
func (h *latencyHist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var c int64
	for i, n := range h.bins {
		c += n
		if c >= rank {
			return float64(i+1) / 10
		}
	}
	return math.Inf(1)
}

// latency returns the measured p50 and p99 and the number of points.
func (t *tally) latency() (p50, p99 float64, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lat.quantile(0.5), t.lat.quantile(0.99), t.lat.n
}
