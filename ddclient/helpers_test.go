package ddclient

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

// scraper drives an appender the way scrapeloop's loop does: real
// exposition text parsed by exposition.Parser, each new series (keyed by its
// raw series bytes, as the loop's table is) classified by the loop's own
// rules (scrapeloop.Classifier), then one Append per sample, Forget for the
// series that went away and Commit at the end of each scrape. Counter values
// are passed on as they are: the tests choose them as the deltas the loop
// would send.
type scraper struct {
	t      testing.TB
	target *target.Target
	app    scrapeloop.Appender
	format exposition.Format
	cl     *scrapeloop.Classifier
	// nonVerbatim forces Verbatim=false on every series, as the loop does
	// when relabeling changed the labels.
	nonVerbatim bool

	p    exposition.Parser
	refs map[string]cached
	gen  int
	// added counts the series classified; appended the Append calls (with
	// any value) and finite those with a finite value.
	added, appended, finite int
	// final are the labels of each series AddSeries was given, by raw
	// series; exported and omitted count the series with such bits.
	final             map[string]labels.Labels
	exported, omitted int
}

type cached struct {
	ref  uint64
	kind scrapeloop.Kind
	gen  int
}

func newScraper(t testing.TB, be scrapeloop.Backend, target *target.Target, f exposition.Format) *scraper {
	t.Helper()
	app, err := be.NewAppender(target)
	if err != nil {
		t.Fatal(err)
	}
	s := &scraper{t: t, target: target, app: app, format: f, refs: map[string]cached{}, final: map[string]labels.Labels{}}
	s.cl = scrapeloop.NewClassifier(target, recordingAppender{app, s})
	return s
}

// scrape parses body and appends every sample at tsMs; it fails the test
// on a parse error.
func (s *scraper) scrape(body string, tsMs int64) {
	s.t.Helper()
	s.scrapeValues(body, tsMs, nil)
}

// scrapeValues is scrape with the value of each sample taken from value
// (when not nil) instead of the text.
func (s *scraper) scrapeValues(body string, tsMs int64, value func(p *exposition.Parser) float64) {
	s.t.Helper()
	s.gen++
	s.p.Reset([]byte(body), s.format)
	for s.p.Next() {
		raw := string(s.p.Series())
		c, ok := s.refs[raw]
		if !ok {
			c.ref, c.kind = s.cl.Classify(&s.p)
			s.added++
		}
		c.gen = s.gen
		s.refs[raw] = c
		if c.kind == scrapeloop.KindDrop {
			continue
		}
		v := s.p.Value()
		if value != nil {
			v = value(&s.p)
		}
		s.appended++
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			s.finite++
		}
		s.app.Append(c.ref, &s.p, tsMs, v)
	}
	if err := s.p.Err(); err != nil {
		s.t.Fatalf("parse: %v", err)
	}
	for raw, c := range s.refs {
		if c.gen != s.gen {
			if c.kind != scrapeloop.KindDrop {
				s.app.Forget(c.ref)
			}
			delete(s.refs, raw)
		}
	}
	s.app.Commit()
}

// recordingAppender records, for the scraper, the Series the loop's rules
// give its appender (and clears Verbatim with nonVerbatim).
type recordingAppender struct {
	scrapeloop.Appender
	s *scraper
}

func (r recordingAppender) AddSeries(ser *scrapeloop.Series) (uint64, scrapeloop.Kind) {
	s := r.s
	if s.nonVerbatim {
		ser.Verbatim = false
	}
	// The loop reuses the labels' memory once AddSeries returns.
	s.final[string(s.p.Series())] = ser.Labels.Copy()
	if ser.Exported != 0 {
		s.exported++
	}
	if ser.Omitted != 0 {
		s.omitted++
	}
	return r.Appender.AddSeries(ser)
}

// captureSink is a sink that keeps every payload an appender hands over.
type captureSink struct {
	mu       sync.Mutex
	set      *metrics.Set
	enc      *encodeMetrics
	seal     int
	limit    int
	payloads [][]byte
	v3       bool // payloads are v3 (uncompressed), not v2 JSON
}

// newCaptureSink captures v3 payloads when the tests run on v3
// (DD_USE_V3_API_SERIES_ENABLED true, as the agent reads it), else v2.
func newCaptureSink() *captureSink {
	c := newCaptureSinkV2()
	c.v3 = testV3
	return c
}

// testV3 says the tests run on the v3 wire.
var testV3, _ = UseV3Series(os.Getenv("DD_USE_V3_API_SERIES_ENABLED"), "http://127.0.0.1")

// sizeCompression is the compression of tests that count payload bytes:
// none, so that sizes are the raw ones; v3 is zstd only, and with it the
// sizes are upper bounds.
func sizeCompression() string {
	if testV3 {
		return "zstd"
	}
	return "none"
}

// newCaptureSinkV2 captures v2 payloads, for the tests of the JSON itself.
func newCaptureSinkV2() *captureSink {
	set := metrics.NewSet()
	return &captureSink{set: set, enc: newEncodeMetrics(set), seal: MaxUncompressedBytes / 2, limit: MaxUncompressedBytes}
}

func (c *captureSink) NewAppender(t *target.Target) (scrapeloop.Appender, error) {
	return newAppender(c, &Mapping{}, t), nil
}

func (c *captureSink) seriesV3() bool { return c.v3 }

func (c *captureSink) acquire() *buffer {
	bf := &buffer{seal: c.seal, limit: c.limit - len(payloadClose)}
	if c.v3 {
		bf.w = new(v3Writer)
	}
	bf.reset(time.Now())
	return bf
}

func (c *captureSink) full(bf *buffer) *buffer {
	c.release(bf)
	return c.acquire()
}

func (c *captureSink) release(bf *buffer) {
	if bf.points() == 0 {
		return
	}
	c.mu.Lock()
	if bf.w != nil {
		c.payloads = append(c.payloads, bf.w.appendPayload(nil))
	} else {
		c.payloads = append(c.payloads, slices.Clone(bf.body(nil, 0, bf.points())))
	}
	c.mu.Unlock()
}

func (c *captureSink) maxEntry() int            { return c.limit - len(payloadOpen) - len(payloadClose) }
func (c *captureSink) counters() *encodeMetrics { return c.enc }

// mappedBackend is a captureSink whose appenders use mapping m.
type mappedBackend struct {
	*captureSink
	m Mapping
}

func (b mappedBackend) NewAppender(t *target.Target) (scrapeloop.Appender, error) {
	return newAppender(b.captureSink, &b.m, t), nil
}

// decodePayload decodes a payload into the client library's model, as the
// intake does, and fails on anything the model does not know.
func decodePayload(t testing.TB, body []byte) datadogV2.MetricPayload {
	t.Helper()
	var p datadogV2.MetricPayload
	if err := datadog.Unmarshal(body, &p); err != nil {
		t.Fatalf("payload does not decode: %v\n%s", err, body)
	}
	if p.UnparsedObject != nil || p.AdditionalProperties != nil {
		t.Fatalf("payload does not match MetricPayload: %v %v\n%s", p.UnparsedObject, p.AdditionalProperties, body)
	}
	for _, s := range p.Series {
		if s.UnparsedObject != nil || s.AdditionalProperties != nil {
			t.Fatalf("series %s does not match MetricSeries: %v %v", s.Metric, s.UnparsedObject, s.AdditionalProperties)
		}
		for _, pt := range s.Points {
			if pt.UnparsedObject != nil || pt.AdditionalProperties != nil || pt.Timestamp == nil || pt.Value == nil {
				t.Fatalf("series %s: bad point %+v", s.Metric, pt)
			}
		}
	}
	return p
}

// series returns every series the sink captured, decoded.
func (c *captureSink) series(t testing.TB) []datadogV2.MetricSeries {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []datadogV2.MetricSeries
	for _, body := range c.payloads {
		if c.v3 {
			out = append(out, v3AsV2(decodeV3(t, body))...)
			continue
		}
		out = append(out, decodePayload(t, body).Series...)
	}
	return out
}

// v3AsV2 gives series read from v3 payloads the v2 model, to compare them.
func v3AsV2(ss []v3Series) []datadogV2.MetricSeries {
	out := make([]datadogV2.MetricSeries, 0, len(ss))
	for _, s := range ss {
		m := datadogV2.MetricSeries{Metric: s.Name, Type: datadogV2.MetricIntakeType(s.Type & 0x0f).Ptr(), Tags: s.Tags}
		if s.Interval > 0 {
			m.Interval = datadog.PtrInt64(s.Interval)
		}
		if s.Host != "" {
			m.Resources = []datadogV2.MetricResource{{Name: datadog.PtrString(s.Host), Type: datadog.PtrString("host")}}
		}
		for i, ts := range s.TS {
			m.Points = append(m.Points, datadogV2.MetricPoint{Timestamp: datadog.PtrInt64(ts), Value: datadog.PtrFloat64(s.Vals[i])})
		}
		out = append(out, m)
	}
	return out
}

// normalize sorts each series' tags and the series, so that payloads that
// differ only in tag and series order compare equal.
func normalize(ss []datadogV2.MetricSeries) []datadogV2.MetricSeries {
	out := slices.Clone(ss)
	for i := range out {
		out[i].Tags = slices.Sorted(slices.Values(out[i].Tags))
	}
	sort.SliceStable(out, func(i, j int) bool { return render(out[i]) < render(out[j]) })
	return out
}

// render is one readable line per series:
// "metric type[/interval] host=h [sorted tags] = v1 v2 ...".
func render(s datadogV2.MetricSeries) string {
	var b strings.Builder
	b.WriteString(s.Metric)
	b.WriteByte(' ')
	b.WriteString(MetricType(s.GetType()).String())
	if s.Interval != nil {
		fmt.Fprintf(&b, "/%d", *s.Interval)
	}
	for _, r := range s.Resources {
		fmt.Fprintf(&b, " %s=%s", r.GetType(), r.GetName())
	}
	tags := slices.Sorted(slices.Values(s.Tags))
	fmt.Fprintf(&b, " [%s] =", strings.Join(tags, " "))
	for _, p := range s.Points {
		fmt.Fprintf(&b, " %g", p.GetValue())
	}
	return b.String()
}

func renderAll(ss []datadogV2.MetricSeries) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = render(s)
	}
	sort.Strings(out)
	return out
}

// metricValue reads one metric of set; a metric that is not there fails
// the test (a renamed metric must not read as 0).
func metricValue(t testing.TB, set *metrics.Set, name string) float64 {
	t.Helper()
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	for line := range strings.SplitSeq(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not in the set", name)
	return 0
}

func dropped(t testing.TB, set *metrics.Set, reason string) float64 {
	t.Helper()
	return metricValue(t, set, `nodescraper_dd_points_dropped_total{reason="`+reason+`"}`)
}
