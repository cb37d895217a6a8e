package ddclient

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

// discardSink takes full payloads and forgets them: the appender's cost
// alone.
type discardSink struct {
	enc      *encodeMetrics
	bf       *buffer
	payloads int
	bytes    int
}

func newDiscardSink() *discardSink {
	s := &discardSink{enc: newEncodeMetrics(metrics.NewSet())}
	s.bf = &buffer{seal: MaxUncompressedBytes / 2, limit: MaxUncompressedBytes - len(payloadClose)}
	s.bf.reset(time.Now())
	return s
}

// newDiscardSinkV3 is a discardSink of v3 payloads.
func newDiscardSinkV3() *discardSink {
	s := newDiscardSink()
	s.bf.w = new(v3Writer)
	s.bf.seal = MaxCompressedBytes
	s.bf.reset(time.Now())
	return s
}

// wires are the series APIs the tests and benchmarks run on.
var wires = []struct {
	name string
	sink func() *discardSink
}{{"v2", newDiscardSink}, {"v3", newDiscardSinkV3}}

func (s *discardSink) seriesV3() bool { return s.bf.w != nil }

func (s *discardSink) acquire() *buffer { return s.bf }
func (s *discardSink) full(bf *buffer) *buffer {
	s.payloads++
	s.bytes += bf.size()
	bf.reset(time.Now())
	return bf
}
func (s *discardSink) release(*buffer) {}
func (s *discardSink) maxEntry() int {
	return MaxUncompressedBytes - len(payloadOpen) - len(payloadClose)
}
func (s *discardSink) counters() *encodeMetrics { return s.enc }

func (s *discardSink) NewAppender(t *target.Target) (scrapeloop.Appender, error) {
	return newAppender(s, &Mapping{Namespace: "k8s", Host: "ip-10-0-12-34.eu-west-1.compute.internal-prod"}, t), nil
}

// benchTarget is a pod's target as a ServiceMonitor gives it: six labels,
// and the discovered labels of a Deployment's pod.
func benchTarget() *target.Target {
	pod := "checkout-service-backend-7d9f8b6c5d-x2x4p"
	return &target.Target{
		URL: "http://10.12.34.56:8080/actuator/prometheus", Interval: 30 * time.Second,
		Labels: labels.FromStrings("container", "checkout-service-backend", "endpoint", "http-metrics",
			"instance", "10.12.34.56:8080", "job", "checkout-service-backend", "namespace", "payments-production", "pod", pod),
		Discovered: labels.FromStrings(meta+"namespace", "payments-production", meta+"pod_name", pod,
			meta+"service_name", "checkout-service-backend", meta+"pod_container_name", "checkout-service-backend",
			meta+"pod_controller_kind", "ReplicaSet", meta+"pod_controller_name", "checkout-service-backend-7d9f8b6c5d",
			meta+"pod_label_pod_template_hash", "7d9f8b6c5d", meta+"pod_label_tags_datadoghq_com_env", "production"),
	}
}

// benchSample is a Spring Boot style counter with seven labels, long values.
const benchSample = "# TYPE http_server_requests_seconds_count counter\n" +
	`http_server_requests_seconds_count{application="checkout-service-backend",exception="None",method="POST",` +
	`outcome="SUCCESS",status="200",uri="/api/v2/orders/{orderId}/payments/{paymentId}/capture",` +
	`client_name="payments-gateway.payments-production.svc.cluster.local"} 12345` + "\n" +
	"# TYPE http_server_requests_seconds histogram\n" +
	`http_server_requests_seconds_bucket{application="checkout-service-backend",exception="None",method="POST",` +
	`outcome="SUCCESS",status="200",uri="/api/v2/orders/{orderId}/payments/{paymentId}/capture",le="0.25"} 12000` + "\n"

// positioned returns an appender of be and a parser on the n-th sample of
// benchSample (0: the counter, 1: the bucket) with the sample's ref.
func positioned(tb testing.TB, be scrapeloop.Backend, n int) (scrapeloop.Appender, *exposition.Parser, uint64) {
	s := newScraper(tb, be, benchTarget(), prom)
	s.scrape(benchSample, time.Now().UnixMilli())
	p := &s.p
	p.Reset([]byte(benchSample), prom)
	for range n + 1 {
		if !p.Next() {
			tb.Fatal("sample missing")
		}
	}
	c, ok := s.refs[string(p.Series())]
	if !ok || c.kind == scrapeloop.KindDrop || c.ref&storedBit != 0 {
		tb.Fatalf("sample %d: %+v, want a verbatim series", n, c)
	}
	return s.app, p, c.ref
}

// TestAppendDoesNotAllocate checks the steady state of the hot path: a
// verbatim point costs no allocation.
func TestAppendDoesNotAllocate(t *testing.T) {
	for _, wire := range wires {
		for n, what := range []string{"counter", "bucket"} {
			app, p, ref := positioned(t, wire.sink(), n)
			ts := time.Now().UnixMilli()
			i := 0
			// Past a payload's worth first: v3's dictionaries and columns
			// grow to their size once.
			for range 3 * MaxPointsPerPayload {
				i++
				app.Append(ref, p, ts+int64(i/1000)*1000, float64(i))
			}
			if a := testing.AllocsPerRun(30_000, func() {
				i++
				app.Append(ref, p, ts+int64(i/1000)*1000, float64(i)+0.5*float64(i%2))
			}); a != 0 {
				t.Errorf("%s %s: %v allocations per Append", wire.name, what, a)
			}
		}
	}
}

// BenchmarkAppend encodes verbatim points from a realistic sample (seven
// labels with long values, six target labels, seven Kubernetes tags). With
// sink=discard it is the encoding alone; with client=zstd the payloads are
// sealed and compressed by a Client that sends nothing (its queue is
// bounded, so the oldest payloads are dropped), which is what a point costs
// the scraping goroutine.
func BenchmarkAppend(b *testing.B) {
	for n, what := range []string{"counter", "bucket"} {
		for _, wire := range wires {
			b.Run(fmt.Sprintf("sample=%s/wire=%s/sink=discard", what, wire.name), func(b *testing.B) {
				sink := wire.sink()
				i := appendLoop(b, sink, n, false)
				b.ReportMetric(float64(sink.bytes+sink.bf.size())/float64(i), "B/point")
			})
		}
		for _, v3 := range []bool{false, true} {
			b.Run(fmt.Sprintf("sample=%s/wire=%s/client=zstd", what, map[bool]string{false: "v2", true: "v3"}[v3]), func(b *testing.B) {
				benchClient(b, n, v3)
			})
		}
	}
}

// benchClient appends points through a Client that sends nothing.
func benchClient(b *testing.B, n int, v3 bool) {
	c, err := New(Config{URL: "http://127.0.0.1:1", APIKey: "k", MaxQueueBytes: 1 << 20, SeriesV3: v3, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	appendLoop(b, c, n, true)
}

// appendLoop appends sample n of benchSample b.N times, committing every
// 10,000 points (a scrape's end) when commit is set; it returns b.N.
func appendLoop(b *testing.B, be scrapeloop.Backend, n int, commit bool) int {
	app, p, ref := positioned(b, be, n)
	ts := time.Now().UnixMilli()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		app.Append(ref, p, ts+int64(i/100_000)*1000, float64(i))
		if commit && i%10_000 == 0 {
			app.Commit()
		}
	}
	app.Commit()
	return i
}

// seriesOf returns the scrapeloop.Series the loop's rules give the appender
// for the first sample of body (copied: the loop reuses its memory).
func seriesOf(tb testing.TB, t *target.Target, body string) scrapeloop.Series {
	var got scrapeloop.Series
	capture := captureSeries(func(s *scrapeloop.Series) {
		got = *s
		got.Labels = s.Labels.Copy()
		got.Family = append([]byte(nil), s.Family...)
	})
	var p exposition.Parser
	p.Reset([]byte(body), prom)
	if !p.Next() {
		tb.Fatal("no sample")
	}
	scrapeloop.NewClassifier(t, capture).Classify(&p)
	return got
}

// captureSeries is an Appender that only records the Series of AddSeries.
type captureSeries func(*scrapeloop.Series)

func (f captureSeries) AddSeries(s *scrapeloop.Series) (uint64, scrapeloop.Kind) {
	f(s)
	return 0, scrapeloop.KindGauge
}
func (captureSeries) Append(uint64, *exposition.Parser, int64, float64) {}
func (captureSeries) Forget(uint64)                                     {}
func (captureSeries) Commit()                                           {}
func (captureSeries) Close()                                            {}

// BenchmarkAddSeries is what a new series costs the appender (a scrape
// cache miss): the tag rules over its labels and its shape. sample=plain is
// benchSample's counter, kept verbatim; sample=reserved the same with host
// and env labels, which the rules rename (its tags are then kept encoded).
func BenchmarkAddSeries(b *testing.B) {
	reserved := "# TYPE http_server_requests_seconds_count counter\n" +
		`http_server_requests_seconds_count{application="checkout-service-backend",exception="None",method="POST",` +
		`outcome="SUCCESS",status="200",uri="/api/v2/orders/{orderId}/payments/{paymentId}/capture",` +
		`host="spoofed",env="prod"} 12345` + "\n"
	for _, c := range []struct{ name, body string }{{"plain", benchSample}, {"reserved", reserved}} {
		b.Run("sample="+c.name, func(b *testing.B) {
			tg := benchTarget()
			app, _ := newDiscardSink().NewAppender(tg)
			s := seriesOf(b, tg, c.body)
			b.ReportAllocs()
			for b.Loop() {
				ref, _ := app.AddSeries(&s)
				app.Forget(ref)
			}
		})
	}
}
