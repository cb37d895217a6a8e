package main

import (
	"strconv"
	"strings"
)

// A synthetic target is a cadvisor/application-shaped exporter: a number of
// "objects" (containers), each with the same five long labels (container,
// cgroup id, image, namespace, pod) and a fixed bundle of families:
// 18 counter series, 4 gauges, one 11-bucket histogram (14 samples) and, on
// every 8th object, a 3-quantile summary (5 samples): about 36.6 samples per
// object, 5-8 labels per sample, most of them counters. One
// process_start_time_seconds gauge per target, older than the agent, tells
// the agent the process did not restart while it watched.
//
// Values are functions of the scrape number k (the target's served-scrape
// count, frozen at the end), so nothing is stored per series:
//   - a counter sample with increment inc of the generation present at the
//     first scrape is inc*(B+k); of a later generation (churn) inc*(k-kb+1),
//     where kb is the scrape it was born at (it counted only since then);
//   - a gauge is a fixed per-series value plus 0.5*(k mod 7).
//
// Churn: with churn on, object o is replaced by a new object (new pod name,
// UID and container ID: a restarted pod) every 10 scrapes, objects staggered
// so that 10% of the target's series are new at every scrape.

// churnPeriod is how many scrapes an object lives with churn on.
const churnPeriod = 10

// samplesPerObject is the average number of samples per object (see above).
const samplesPerObject = 18 + 4 + 14 + 5.0/summaryEvery

// summaryEvery: only every summaryEvery-th object has the summary.
const summaryEvery = 8

// leBounds are the histogram's finite bucket bounds, written as the agent
// will copy them into upper_bound tags.
var leBounds = []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"}

var quantiles = []string{"0.5", "0.9", "0.99"}

// family is one metric family of the bundle; variants are its series per
// object (extra labels after the object's own).
type family struct {
	name, typ, help string
	variants        [][]label
	every           int // present on objects o with o%every == 0; 0 means all
	frag            []string
}

func v(pairs ...string) []label {
	ls := make([]label, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		ls = append(ls, label{pairs[i], pairs[i+1]})
	}
	return ls
}

// bundle returns the families of every synthetic target, with their
// variant label fragments rendered.
func bundle() []*family {
	handlers := []string{"/api/v1/namespaces/{namespace}/orders/{id}", "/api/v1/namespaces/{namespace}/orders", "/api/v1/carts/{cart_id}/items"}
	fams := []*family{
		{name: "container_cpu_usage_seconds_total", typ: "counter", help: "Cumulative cpu time consumed in seconds.", variants: [][]label{v("cpu", "total")}},
		{name: "container_cpu_cfs_throttled_periods_total", typ: "counter", help: "Number of throttled period intervals.", variants: [][]label{nil}},
		{name: "container_network_receive_bytes_total", typ: "counter", help: "Cumulative count of bytes received", variants: [][]label{v("interface", "eth0"), v("interface", "eth1")}},
		{name: "container_network_transmit_bytes_total", typ: "counter", help: "Cumulative count of bytes transmitted", variants: [][]label{v("interface", "eth0"), v("interface", "eth1")}},
		{name: "container_network_receive_packets_dropped_total", typ: "counter", help: "Cumulative count of packets dropped while receiving", variants: [][]label{v("interface", "eth0")}},
		{name: "container_fs_reads_bytes_total", typ: "counter", help: "Cumulative count of bytes read", variants: [][]label{v("device", "/dev/nvme0n1")}},
		{name: "container_fs_writes_bytes_total", typ: "counter", help: "Cumulative count of bytes written", variants: [][]label{v("device", "/dev/nvme0n1")}},
		{name: "http_requests_total", typ: "counter", help: "Total number of HTTP requests by status code, handler and method.", variants: [][]label{
			v("code", "200", "handler", handlers[0], "method", "GET"), v("code", "404", "handler", handlers[0], "method", "GET"),
			v("code", "201", "handler", handlers[1], "method", "POST"), v("code", "500", "handler", handlers[1], "method", "POST"),
			v("code", "200", "handler", handlers[2], "method", "PUT"), v("code", "204", "handler", handlers[2], "method", "DELETE")}},
		{name: "grpc_server_handled_total", typ: "counter", help: "Total number of RPCs completed on the server, regardless of success or failure.", variants: [][]label{
			v("grpc_code", "OK", "grpc_method", "GetRecommendations", "grpc_service", "acme.recommendations.v1.RecommendationService"),
			v("grpc_code", "Unavailable", "grpc_method", "GetRecommendations", "grpc_service", "acme.recommendations.v1.RecommendationService"),
			v("grpc_code", "OK", "grpc_method", "ListProducts", "grpc_service", "acme.catalog.v1.CatalogService")}},
		{name: "container_memory_working_set_bytes", typ: "gauge", help: "Current working set in bytes.", variants: [][]label{nil}},
		{name: "container_memory_rss", typ: "gauge", help: "Size of RSS in bytes.", variants: [][]label{nil}},
		{name: "container_spec_memory_limit_bytes", typ: "gauge", help: "Memory limit for the container.", variants: [][]label{nil}},
		{name: "container_threads", typ: "gauge", help: "Number of threads running inside the container", variants: [][]label{nil}},
		{name: "http_request_duration_seconds", typ: "histogram", help: "Latency of HTTP requests.", variants: [][]label{v("handler", handlers[0], "method", "GET")}},
		{name: "rpc_duration_seconds", typ: "summary", help: "RPC latency distributions.", variants: [][]label{v("service", "acme.catalog.v1.CatalogService")}, every: summaryEvery},
	}
	for _, f := range fams {
		for _, vr := range f.variants {
			var b []byte
			for _, l := range vr {
				b = appendLabel(append(b, ','), l)
			}
			f.frag = append(f.frag, string(b))
		}
	}
	return fams
}

// appendLabel appends name="value" with the exposition format's escapes.
func appendLabel(b []byte, l label) []byte {
	b = append(b, l.name...)
	b = append(b, '=', '"')
	for i := 0; i < len(l.value); i++ {
		switch c := l.value[i]; c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

var (
	namespaces = []string{"payments", "checkout", "search", "recommendations", "auth", "billing", "data-pipeline", "ml-serving", "ingress-nginx", "monitoring"}
	apps       = []string{"api", "web", "worker", "frontend", "backend", "cache", "db-proxy", "scheduler", "gateway", "indexer", "consumer", "producer"}
	registries = []string{"docker.io/library", "gcr.io/acme-prod", "quay.io/acme", "registry.k8s.io", "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme"}
)

// mix is splitmix64's finalizer: the harness's deterministic "random" values.
func mix(h uint64) uint64 {
	h += 0x9e3779b97f4a7c15
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9
	h = (h ^ (h >> 27)) * 0x94d049bb133111eb
	return h ^ (h >> 31)
}

func seed(parts ...uint64) uint64 {
	h := uint64(0x6e6f646562656e63) // "nodebenc"
	for _, p := range parts {
		h = mix(h ^ p)
	}
	return h
}

func hexN(s uint64, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		if i%16 == 0 {
			s = mix(s)
		}
		b[i] = digits[(s>>(4*(i%16)))&15]
	}
	return string(b)
}

// synthTarget serves one synthetic exporter.
type synthTarget struct {
	id        uint64
	objects   int
	churn     bool
	fams      []*family
	startTime int64 // process_start_time_seconds
	// frags caches each object's rendered labels for generation gens[o].
	// Only the render path (serialized by the exporter) touches them.
	frags []string
	gens  []int
}

func newSynthTarget(id uint64, series int, churn bool, fams []*family, startTime int64) *synthTarget {
	n := max(1, int(float64(series-1)/samplesPerObject+0.5))
	t := &synthTarget{id: id, objects: n, churn: churn, fams: fams, startTime: startTime, frags: make([]string, n), gens: make([]int, n)}
	for o := range t.gens {
		t.gens[o] = -1
	}
	return t
}

// gen is the generation of object o at scrape k (k >= 1).
func (t *synthTarget) gen(o, k int) int {
	if !t.churn {
		return 0
	}
	return (k + o%churnPeriod) / churnPeriod
}

// born is the first scrape of generation g of object o (g > gen(o, 1)).
func (t *synthTarget) born(o, g int) int { return g*churnPeriod - o%churnPeriod }

// objectLabels are the labels object o has in generation g.
func (t *synthTarget) objectLabels(o, g int) []label {
	so := seed(t.id, uint64(o))
	sg := seed(t.id, uint64(o), uint64(g)+1)
	app := apps[so%uint64(len(apps))]
	uid := hexN(sg, 8) + "-" + hexN(sg^1, 4) + "-" + hexN(sg^2, 4) + "-" + hexN(sg^3, 4) + "-" + hexN(sg^4, 12)
	return []label{
		{"container", app},
		{"id", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + hexN(sg^5, 64) + ".scope"},
		{"image", registries[(so>>8)%uint64(len(registries))] + "/" + app + ":v1." + strconv.Itoa(int(so>>16)%30) + "." + strconv.Itoa(int(so>>24)%10)},
		{"namespace", namespaces[(so>>32)%uint64(len(namespaces))]},
		{"pod", app + "-" + hexN(so^7, 10) + "-" + hexN(sg^6, 5)},
	}
}

func (t *synthTarget) frag(o, g int) string {
	if t.gens[o] != g {
		var b []byte
		for i, l := range t.objectLabels(o, g) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, l)
		}
		t.frags[o], t.gens[o] = string(b), g
	}
	return t.frags[o]
}

// inc is the per-scrape increment of counter-like series s, and base its
// starting multiple for the generation present from the first scrape.
func inc(s uint64) int64  { return 1 + int64(s%17) }
func base(s uint64) int64 { return int64(s>>20) % 100_000 }

// histObs is how many observations histogram series s gets per scrape;
// bucket j (0-based, len(leBounds) is +Inf) gets histObs*(j+1)/(len+1).
func histObs(s uint64) int64 { return 4 + int64(s%9) }

func bucketInc(n int64, j int) int64 { return n * int64(j+1) / int64(len(leBounds)+1) }

// counterValue is a counter-like sample's value at scrape k in generation g
// of object o, for per-scrape increment d.
func (t *synthTarget) counterValue(o, g, k int, s uint64, d int64) int64 {
	if g == t.gen(o, 1) {
		return d * (base(s) + int64(k))
	}
	return d * int64(k-t.born(o, g)+1)
}

func gaugeValue(s uint64, k int) float64 { return float64(s%1_000_000) + 0.5*float64(k%7) }

func (t *synthTarget) seriesSeed(o, g, fi, vi int) uint64 {
	return seed(t.id, uint64(o), uint64(g), uint64(fi), uint64(vi))
}

// render appends the exposition of scrape k and returns the sample count.
func (t *synthTarget) render(b []byte, k int) ([]byte, int) {
	n := 0
	b = append(b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds "...)
	b = strconv.AppendInt(b, t.startTime, 10)
	b = append(b, '\n')
	n++
	for fi, f := range t.fams {
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.help...)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		for o := 0; o < t.objects; o++ {
			if f.every > 0 && o%f.every != 0 {
				continue
			}
			g := t.gen(o, k)
			of := t.frag(o, g)
			for vi, vf := range f.frag {
				s := t.seriesSeed(o, g, fi, vi)
				b, n = t.renderSeries(b, n, f, of, vf, o, g, k, s)
			}
		}
	}
	return b, n
}

func line(b []byte, name, suffix, of, vf, extra string) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	b = append(b, '{')
	b = append(b, of...)
	b = append(b, vf...)
	b = append(b, extra...)
	return append(b, '}', ' ')
}

func (t *synthTarget) renderSeries(b []byte, n int, f *family, of, vf string, o, g, k int, s uint64) ([]byte, int) {
	switch f.typ {
	case "counter":
		b = line(b, f.name, "", of, vf, "")
		b = strconv.AppendInt(b, t.counterValue(o, g, k, s, inc(s)), 10)
		return append(b, '\n'), n + 1
	case "gauge":
		b = line(b, f.name, "", of, vf, "")
		b = strconv.AppendFloat(b, gaugeValue(s, k), 'g', -1, 64)
		return append(b, '\n'), n + 1
	case "histogram":
		obs := histObs(s)
		for j, le := range leBounds {
			b = line(b, f.name, "_bucket", of, vf, `,le="`+le+`"`)
			b = strconv.AppendInt(b, t.counterValue(o, g, k, s, bucketInc(obs, j)), 10)
			b = append(b, '\n')
		}
		b = line(b, f.name, "_bucket", of, vf, `,le="+Inf"`)
		b = strconv.AppendInt(b, t.counterValue(o, g, k, s, obs), 10)
		b = line(append(b, '\n'), f.name, "_sum", of, vf, "")
		b = strconv.AppendInt(b, t.counterValue(o, g, k, s, 3*obs), 10)
		b = line(append(b, '\n'), f.name, "_count", of, vf, "")
		b = strconv.AppendInt(b, t.counterValue(o, g, k, s, obs), 10)
		return append(b, '\n'), n + len(leBounds) + 3
	case "summary":
		obs := histObs(s)
		for qi, q := range quantiles {
			b = line(b, f.name, "", of, vf, `,quantile="`+q+`"`)
			b = strconv.AppendFloat(b, quantileValue(qi, k), 'g', -1, 64)
			b = append(b, '\n')
		}
		b = line(b, f.name, "_sum", of, vf, "")
		b = strconv.AppendInt(b, t.counterValue(o, g, k, s, 2*obs), 10)
		b = line(append(b, '\n'), f.name, "_count", of, vf, "")
		b = strconv.AppendInt(b, t.counterValue(o, g, k, s, obs), 10)
		return append(b, '\n'), n + len(quantiles) + 2
	}
	return b, n
}

func quantileValue(qi, k int) float64 { return 0.001 * float64(qi+1) * float64(1+k%4) }

// learn tells k every label name the target's series carry.
func (t *synthTarget) learn(k *keyer, target []label) {
	ls := append(t.objectLabels(0, 0), label{"le", ""}, label{"quantile", ""})
	for _, f := range t.fams {
		for _, vr := range f.variants {
			ls = append(ls, vr...)
		}
	}
	k.learn(ls, target)
}

// expect calls fn with the truth for every series served between scrape k1,
// the first the agent received, and kf, where the values froze: for a count
// the increase the agent should report over that span, for a gauge its last
// value. A generation born after k1 counts from zero: the agent sends the
// first value of a series that appears after the target's first scrape.
func (t *synthTarget) expect(target []label, k1, kf int, fn func(metric string, kd kind, tags []string, want float64)) {
	m, kd, tags := predict("gauge", "process_start_time_seconds", "process_start_time_seconds", nil, target)
	fn(m, kd, tags, float64(t.startTime))
	for o := 0; o < t.objects; o++ {
		for g := t.gen(o, k1); g <= t.gen(o, kf); g++ {
			kl := kf
			if t.churn {
				kl = min(kf, t.born(o, g+1)-1)
			}
			obj := t.objectLabels(o, g)
			for fi, f := range t.fams {
				if f.every > 0 && o%f.every != 0 {
					continue
				}
				for vi, vr := range f.variants {
					s := t.seriesSeed(o, g, fi, vi)
					t.expectSeries(fn, target, f, append(obj[:len(obj):len(obj)], vr...), o, g, k1, kl, s)
				}
			}
		}
	}
}

func (t *synthTarget) expectSeries(fn func(string, kind, []string, float64), target []label, f *family, ls []label, o, g, k1, kl int, s uint64) {
	// increase is the truth for a counter-like sample with per-scrape increment d.
	increase := func(d int64) float64 {
		if g == t.gen(o, k1) {
			return float64(d * int64(kl-k1))
		}
		return float64(t.counterValue(o, g, kl, s, d))
	}
	emit := func(name string, extra []label, want float64) {
		metric, kd, tags := predict(f.typ, f.name, name, append(ls[:len(ls):len(ls)], extra...), target)
		if kd != kindSkip {
			fn(metric, kd, tags, want)
		}
	}
	switch f.typ {
	case "counter":
		emit(f.name, nil, increase(inc(s)))
	case "gauge":
		emit(f.name, nil, gaugeValue(s, kl))
	case "histogram":
		obs := histObs(s)
		for j, le := range leBounds {
			emit(f.name+"_bucket", []label{{"le", le}}, increase(bucketInc(obs, j)))
		}
		emit(f.name+"_bucket", []label{{"le", "+Inf"}}, 0) // not sent
		emit(f.name+"_sum", nil, increase(3*obs))
		emit(f.name+"_count", nil, increase(obs))
	case "summary":
		obs := histObs(s)
		for qi, q := range quantiles {
			emit(f.name, []label{{"quantile", q}}, quantileValue(qi, kl))
		}
		emit(f.name+"_sum", nil, increase(2*obs))
		emit(f.name+"_count", nil, increase(obs))
	}
}
