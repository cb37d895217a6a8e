package ddclient

import (
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

// denseTarget is a target of benchmarks/cmd/nodebench's dense scenario:
// a file_sd static target with the labels job, namespace and pod (and the
// instance Prometheus' target rules add).
func denseTarget(tb testing.TB) *target.Target {
	tb.Helper()
	t, err := relabel.Populate(labels.FromStrings("__address__", "127.0.0.1:40123", "__meta_filepath", "/tmp/targets.json",
		"job", "api", "namespace", "payments", "pod", "api-3f9c1a7e2b-x7k2p"), nil, relabel.Defaults{Interval: 15 * time.Second, Timeout: 10 * time.Second, Job: "static"})
	if err != nil {
		tb.Fatal(err)
	}
	return &t
}

// denseBody is an exposition shaped like nodebench's synthetic exporter
// (synth.go): per object the labels container, id (a cgroup path), image,
// namespace and pod, and the same bundle of families with their variant
// labels. About 36.6 samples per object.
func denseBody(objects int) string {
	handlers := []string{"/api/v1/namespaces/{namespace}/orders/{id}", "/api/v1/namespaces/{namespace}/orders", "/api/v1/carts/{cart_id}/items"}
	type fam struct {
		name, typ string
		variants  []string
		every     int
	}
	fams := []fam{
		{"container_cpu_usage_seconds_total", "counter", []string{`,cpu="total"`}, 0},
		{"container_cpu_cfs_throttled_periods_total", "counter", []string{""}, 0},
		{"container_network_receive_bytes_total", "counter", []string{`,interface="eth0"`, `,interface="eth1"`}, 0},
		{"container_network_transmit_bytes_total", "counter", []string{`,interface="eth0"`, `,interface="eth1"`}, 0},
		{"container_network_receive_packets_dropped_total", "counter", []string{`,interface="eth0"`}, 0},
		{"container_fs_reads_bytes_total", "counter", []string{`,device="/dev/nvme0n1"`}, 0},
		{"container_fs_writes_bytes_total", "counter", []string{`,device="/dev/nvme0n1"`}, 0},
		{"http_requests_total", "counter", []string{
			`,code="200",handler="` + handlers[0] + `",method="GET"`, `,code="404",handler="` + handlers[0] + `",method="GET"`,
			`,code="201",handler="` + handlers[1] + `",method="POST"`, `,code="500",handler="` + handlers[1] + `",method="POST"`,
			`,code="200",handler="` + handlers[2] + `",method="PUT"`, `,code="204",handler="` + handlers[2] + `",method="DELETE"`}, 0},
		{"grpc_server_handled_total", "counter", []string{
			`,grpc_code="OK",grpc_method="GetRecommendations",grpc_service="acme.recommendations.v1.RecommendationService"`,
			`,grpc_code="Unavailable",grpc_method="GetRecommendations",grpc_service="acme.recommendations.v1.RecommendationService"`,
			`,grpc_code="OK",grpc_method="ListProducts",grpc_service="acme.catalog.v1.CatalogService"`}, 0},
		{"container_memory_working_set_bytes", "gauge", []string{""}, 0},
		{"container_memory_rss", "gauge", []string{""}, 0},
		{"container_spec_memory_limit_bytes", "gauge", []string{""}, 0},
		{"container_threads", "gauge", []string{""}, 0},
		{"http_request_duration_seconds", "histogram", []string{`,handler="` + handlers[0] + `",method="GET"`}, 0},
		{"rpc_duration_seconds", "summary", []string{`,service="acme.catalog.v1.CatalogService"`}, 8},
	}
	object := func(o int) string {
		return fmt.Sprintf(`container="api",id="/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%08x_1f2e_4d3c_8b7a_%012x.slice/cri-containerd-%064x.scope",`+
			`image="gcr.io/acme-prod/api:v1.%d.4",namespace="payments",pod="api-3f9c1a7e2b-%05x"`, o, o, o, o%30, o)
	}
	var b strings.Builder
	b.WriteString("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.7e9\n")
	for _, f := range fams {
		fmt.Fprintf(&b, "# TYPE %s %s\n", f.name, f.typ)
		for o := range objects {
			if f.every > 0 && o%f.every != 0 {
				continue
			}
			for i, v := range f.variants {
				ls := object(o) + v
				switch f.typ {
				case "histogram":
					for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"} {
						fmt.Fprintf(&b, "%s_bucket{%s,le=%q} %d\n", f.name, ls, le, o+i)
					}
					fmt.Fprintf(&b, "%s_sum{%s} %d\n%s_count{%s} %d\n", f.name, ls, o, f.name, ls, o)
				case "summary":
					for _, q := range []string{"0.5", "0.9", "0.99"} {
						fmt.Fprintf(&b, "%s{%s,quantile=%q} 0.01\n", f.name, ls, q)
					}
					fmt.Fprintf(&b, "%s_sum{%s} %d\n%s_count{%s} %d\n", f.name, ls, o, f.name, ls, o)
				default:
					fmt.Fprintf(&b, "%s{%s} %d\n", f.name, ls, o+i)
				}
			}
		}
	}
	return b.String()
}

// TestDenseVerbatim checks that no series of nodebench's dense scenario
// keeps its tags: its device and service labels, which rule 5 of tagRules
// renames exported_device and exported_service (7% of its series: the
// container_fs_* counters and the rpc_duration_seconds summary), are sent
// through their shape's masks like the clashes of namespace and pod.
func TestDenseVerbatim(t *testing.T) {
	body := denseBody(273)
	s := newScraper(t, newCaptureSinkV2(), denseTarget(t), prom)
	s.scrape(body, time.Now().UnixMilli())
	verbatim, stored := map[string]int{}, map[string]int{}
	p := &s.p
	p.Reset([]byte(body), prom)
	for p.Next() {
		c := s.refs[string(p.Series())]
		if c.kind == scrapeloop.KindDrop {
			continue
		}
		if c.ref&storedBit != 0 {
			stored[string(p.Name())]++
		} else {
			verbatim[string(p.Name())]++
		}
	}
	names := slices.Sorted(maps.Keys(stored))
	for _, n := range names {
		t.Errorf("%s: %d series stored, %d verbatim", n, stored[n], verbatim[n])
	}
	if n := len(verbatim); n != 20 {
		t.Errorf("%d metric names verbatim, want 20", n)
	}
}

// BenchmarkDenseHeap reports the live heap an appender holds per series
// for a target of nodebench's dense scenario (10,000 series: 273 objects),
// once every series was added, with a GC before and after (points are
// not appended: the payload buffers are the sink's, not per series). The
// refs the loop would keep (8 bytes a series, allocated at their number)
// are counted in.
func BenchmarkDenseHeap(b *testing.B) {
	body := []byte(denseBody(273))
	for _, wire := range wires {
		b.Run("wire="+wire.name, func(b *testing.B) {
			for b.Loop() {
				sink := wire.sink()
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tg := denseTarget(b)
				app, _ := sink.NewAppender(tg)
				cl := scrapeloop.NewClassifier(tg, app)
				var p exposition.Parser
				p.Reset(body, prom)
				refs := make([]uint64, 0, 10_004) // 8 bytes a series
				for p.Next() {
					ref, k := cl.Classify(&p)
					if k == scrapeloop.KindDrop {
						continue
					}
					refs = append(refs, ref)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(len(refs)), "B/series")
				runtime.KeepAlive(app)
				runtime.KeepAlive(cl)
				runtime.KeepAlive(refs)
			}
		})
	}
}

// BenchmarkDenseAppend appends one scrape of a dense scenario target
// (10,000 series, its series already added) per iteration: the cost of a
// point across its mix of series. With sink=discard it is the encoding
// alone; with client=zstd the payloads are sealed and compressed by a
// Client that sends nothing, what a point costs the scraping goroutine.
func BenchmarkDenseAppend(b *testing.B) {
	body := []byte(denseBody(273))
	for _, wire := range wires {
		for _, client := range []bool{false, true} {
			name := "wire=" + wire.name + "/sink=discard"
			if client {
				name = "wire=" + wire.name + "/client=zstd"
			}
			b.Run(name, func(b *testing.B) {
				var be scrapeloop.Backend = wire.sink()
				if client {
					c, err := New(Config{URL: "http://127.0.0.1:1", APIKey: "k", MaxQueueBytes: 1 << 20, SeriesV3: wire.name == "v3", Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						b.Fatal(err)
					}
					be = c
				}
				denseAppend(b, be, body)
			})
		}
	}
}

// denseAppend appends body's samples through an appender of be per
// iteration.
func denseAppend(b *testing.B, be scrapeloop.Backend, body []byte) {
	tg := denseTarget(b)
	app, err := be.NewAppender(tg)
	if err != nil {
		b.Fatal(err)
	}
	cl := scrapeloop.NewClassifier(tg, app)
	var p exposition.Parser
	var refs []uint64
	p.Reset(body, prom)
	for p.Next() {
		ref, k := cl.Classify(&p)
		if k == scrapeloop.KindDrop {
			ref = 0
		}
		refs = append(refs, ref)
	}
	ts := int64(1_800_000_000_000)
	// The goroutine's thread CPU time too: on a shared machine the
	// wall time counts the time others had the core.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	b.ReportAllocs()
	for b.Loop() {
		ts += 15_000
		p.Reset(body, prom)
		for i := 0; p.Next(); i++ {
			if refs[i] != 0 {
				app.Append(refs[i], &p, ts, float64(i))
			}
		}
		app.Commit()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(refs)), "ns/point")
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N*len(refs)), "cpu-ns/point")
}
