package scrapeloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/internal/exporter"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"
)

// captureSink keeps every point submitted.
type captureSink struct {
	mu     sync.Mutex
	points []ddclient.Point
}

func (s *captureSink) Submit(b *ddclient.Batch) {
	ps, err := b.Points()
	if err != nil {
		panic(err)
	}
	b.Reset()
	s.mu.Lock()
	s.points = append(s.points, ps...)
	s.mu.Unlock()
}

// take returns the points since the last take as sorted readable lines.
func (s *captureSink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.points {
		tags := append([]string(nil), p.Tags...)
		sort.Strings(tags)
		out = append(out, fmt.Sprintf("%s %s/%d %g %s", p.Metric, p.Type, p.Interval, p.Value, strings.Join(tags, ",")))
	}
	sort.Strings(out)
	s.points = nil
	return out
}

type testLoop struct {
	*loop
	sink  *captureSink
	store *deltastore.Store
	now   time.Time
}

func newTestLoop(t *testing.T, tg Target) *testLoop {
	t.Helper()
	return newTestLoopStore(t, tg, deltastore.New(deltastore.Config{}), time.Unix(1_800_000_000, 0))
}

// newTestLoopStore makes a loop on the given store whose clock starts at now.
func newTestLoopStore(t *testing.T, tg Target, store *deltastore.Store, now time.Time) *testLoop {
	t.Helper()
	if tg.URL == "" {
		tg.URL = "http://127.0.0.1:1/metrics"
	}
	if tg.Interval == 0 {
		tg.Interval, tg.Timeout = 30*time.Second, 10*time.Second
	}
	tl := &testLoop{sink: &captureSink{}, store: store, now: now}
	m := NewManager(Config{Store: tl.store, Sink: tl.sink, Host: "node-a", Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return tl.now }})
	l, err := newLoop(m.cfg, tg)
	if err != nil {
		t.Fatal(err)
	}
	tl.loop = l
	l.resume()
	return tl
}

// feed processes one exposition body as a scrape at the loop's clock and
// advances the clock by the interval.
func (tl *testLoop) feed(t *testing.T, body, contentType string) error {
	t.Helper()
	tl.now = tl.now.Add(tl.target.Interval)
	_, err := tl.process([]byte(body), contentType, tl.now)
	if tl.batch.Len() > 0 {
		tl.cfg.Sink.Submit(&tl.batch)
	}
	if err == nil {
		tl.succeed(tl.now)
	}
	return err
}

const textCT = "text/plain; version=0.0.4"
const omCT = "application/openmetrics-text; version=1.0.0"

func TestDatadogNaming(t *testing.T) {
	first := `# TYPE http_requests_total counter
http_requests_total{code="200"} 10
# TYPE plain counter
plain 1
# TYPE temp gauge
temp{room="a"} 21.5
untyped_thing 3
# TYPE lat histogram
lat_bucket{le="0.1"} 1
lat_bucket{le="1"} 2
lat_bucket{le="+Inf"} 3
lat_sum 4.5
lat_count 3
# TYPE rpc summary
rpc{quantile="0.5"} 0.2
rpc_sum 10
rpc_count 7
`
	second := strings.NewReplacer(`code="200"} 10`, `code="200"} 15`, "plain 1", "plain 3", "21.5", "22",
		`le="0.1"} 1`, `le="0.1"} 2`, `le="1"} 2`, `le="1"} 4`, `le="+Inf"} 3`, `le="+Inf"} 6`, "lat_sum 4.5", "lat_sum 6", "lat_count 3", "lat_count 6",
		`quantile="0.5"} 0.2`, `quantile="0.5"} 0.3`, "rpc_sum 10", "rpc_sum 11.5", "rpc_count 7", "rpc_count 9").Replace(first)
	tl := newTestLoop(t, Target{Labels: labels.FromStrings("job", "app", "instance", "127.0.0.1:1"), Namespace: "shop", Tags: []string{"kube_namespace:prod"}})
	if err := tl.feed(t, first, textCT); err != nil {
		t.Fatal(err)
	}
	tgs := "instance:127.0.0.1:1,job:app,kube_namespace:prod"
	wantFirst := []string{
		"shop.rpc.quantile gauge/0 0.2 " + tgs + ",quantile:0.5",
		"shop.temp gauge/0 21.5 " + tgs + ",room:a",
		"shop.untyped_thing gauge/0 3 " + tgs,
	}
	if got := tl.sink.take(); !equal(got, wantFirst) {
		t.Fatalf("first scrape (gauges only; counters set baselines):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantFirst, "\n"))
	}
	if err := tl.feed(t, second, textCT); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"shop.http_requests.count count/30 5 code:200," + tgs,
		"shop.lat.bucket count/30 1 " + tgs + ",upper_bound:0.1",
		"shop.lat.bucket count/30 2 " + tgs + ",upper_bound:1",
		"shop.lat.count count/30 3 " + tgs,
		"shop.lat.sum count/30 1.5 " + tgs,
		"shop.plain.count count/30 2 " + tgs,
		"shop.rpc.count count/30 2 " + tgs,
		"shop.rpc.quantile gauge/0 0.3 " + tgs + ",quantile:0.5",
		"shop.rpc.sum count/30 1.5 " + tgs,
		"shop.temp gauge/0 22 " + tgs + ",room:a",
		"shop.untyped_thing gauge/0 3 " + tgs,
	}
	if got := tl.sink.take(); !equal(got, want) {
		t.Fatalf("second scrape:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestOpenMetricsCreated(t *testing.T) {
	tl := newTestLoop(t, Target{})
	start := tl.now.Unix()
	// A counter created before our window: baseline only. One created after
	// the window began (a new series of a running target): its whole value.
	body := fmt.Sprintf(`# TYPE old counter
old_total 100
old_created %d
# TYPE new counter
new_total 7
new_created %d
# EOF
`, start-3600, start+10)
	if err := tl.feed(t, body, omCT); err != nil {
		t.Fatal(err)
	}
	want := []string{"new.count count/30 7 instance:,job:"}
	if got := tl.sink.take(); len(got) != 1 || !strings.HasPrefix(got[0], "new.count count/30 7") {
		t.Fatalf("got %q, want %q", got, want)
	}
	// A newer _created is a reset even though the value grew.
	body = fmt.Sprintf("# TYPE old counter\nold_total 150\nold_created %d\n# TYPE new counter\nnew_total 9\nnew_created %d\n# EOF\n", start+40, start+10)
	if err := tl.feed(t, body, omCT); err != nil {
		t.Fatal(err)
	}
	got := tl.sink.take()
	if len(got) != 2 || !strings.HasPrefix(got[0], "new.count count/30 2") || !strings.HasPrefix(got[1], "old.count count/30 150") {
		t.Fatalf("got %q", got)
	}
}

func TestFirstSightRules(t *testing.T) {
	tl := newTestLoop(t, Target{})
	if err := tl.feed(t, "# TYPE a counter\na 5\n", textCT); err != nil {
		t.Fatal(err)
	}
	if got := tl.sink.take(); len(got) != 0 {
		t.Fatalf("first scrape emitted %q", got)
	}
	// b appears after the target's first successful scrape: all of it is new.
	if err := tl.feed(t, "# TYPE a counter\na 6\n# TYPE b counter\nb 4\n", textCT); err != nil {
		t.Fatal(err)
	}
	if got := tl.sink.take(); !equal(got, []string{"a.count count/30 1 ", "b.count count/30 4 "}) {
		t.Fatalf("got %q", got)
	}
	// A process that started after the last scrape counted everything while we watched.
	tl2 := newTestLoop(t, Target{})
	started := tl2.now.Add(5 * time.Second).Unix()
	body := fmt.Sprintf("# TYPE c counter\nc 3\nprocess_start_time_seconds %d\n", started)
	if err := tl2.feed(t, body, textCT); err != nil {
		t.Fatal(err)
	}
	if got := tl2.sink.take(); len(got) != 2 || got[0] != "c.count count/30 3 " {
		t.Fatalf("got %q", got)
	}
}

// TestResumeAfterAgentRestart: the target's last successful scrape survives
// an agent restart in the delta checkpoint, so the new agent's loop treats a
// series that appeared while no agent ran as new (its whole value counted
// after that scrape) and goes on with the restored series.
func TestResumeAfterAgentRestart(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	start := time.Unix(1_800_000_000, 0)
	a := deltastore.New(deltastore.Config{Dir: dir, Logger: logger, Now: func() time.Time { return start }})
	if _, err := a.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	tl := newTestLoopStore(t, Target{}, a, start)
	for _, body := range []string{"# TYPE a counter\na 5\n", "# TYPE a counter\na 6\n"} {
		if err := tl.feed(t, body, textCT); err != nil {
			t.Fatal(err)
		}
	}
	if got := tl.sink.take(); !equal(got, []string{"a.count count/30 1 "}) {
		t.Fatalf("before the restart: %q", got)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// Five minutes later a new agent restores the state; meanwhile a grew by
	// 2 and b appeared with 3.
	later := tl.now.Add(5 * time.Minute)
	b := deltastore.New(deltastore.Config{Dir: dir, Logger: logger, Now: func() time.Time { return later }})
	if r, err := b.Restore(context.Background()); err != nil || r.Outcome != deltastore.OutcomeOK {
		t.Fatalf("restore = %+v, %v", r, err)
	}
	body := "# TYPE a counter\na 8\n# TYPE b counter\nb 3\n"
	tl2 := newTestLoopStore(t, Target{}, b, later)
	if err := tl2.feed(t, body, textCT); err != nil {
		t.Fatal(err)
	}
	if got := tl2.sink.take(); !equal(got, []string{"a.count count/30 2 ", "b.count count/30 3 "}) {
		t.Fatalf("first scrape after the restart: %q", got)
	}
	b.Close()

	// Without the checkpoint both are first sights: baselines only.
	tl3 := newTestLoopStore(t, Target{}, deltastore.New(deltastore.Config{}), later)
	if err := tl3.feed(t, body, textCT); err != nil {
		t.Fatal(err)
	}
	if got := tl3.sink.take(); len(got) != 0 {
		t.Fatalf("first scrape without a checkpoint emitted %q", got)
	}
}

func TestSeriesGoneReleasesState(t *testing.T) {
	tl := newTestLoop(t, Target{})
	if err := tl.feed(t, "# TYPE a counter\na{x=\"1\"} 5\na{x=\"2\"} 5\n", textCT); err != nil {
		t.Fatal(err)
	}
	if n := tl.store.Len(); n != 3 {
		t.Fatalf("store holds %d series, want 2 and the target's marker", n)
	}
	if err := tl.feed(t, "# TYPE a counter\na{x=\"1\"} 6\n", textCT); err != nil {
		t.Fatal(err)
	}
	if n, c := tl.store.Len(), len(tl.cache); n != 2 || c != 1 {
		t.Fatalf("after a series went away: store %d, cache %d, want 2 (a series and the marker), 1", n, c)
	}
	tl.release()
	if n := tl.store.Len(); n != 0 {
		t.Fatalf("after release: store %d", n)
	}
}

func TestLabelsAndRelabeling(t *testing.T) {
	var mr []*promrelabel.Config
	if err := yaml.UnmarshalStrict([]byte(`
- source_labels: [__name__]
  regex: drop_me.*
  action: drop
- source_labels: [__name__]
  regex: old_name
  target_label: __name__
  replacement: new_name
`), &mr); err != nil {
		t.Fatal(err)
	}
	for _, c := range mr {
		if err := c.Validate(model.UTF8Validation); err != nil {
			t.Fatal(err)
		}
	}
	body := "drop_me_gauge 1\nold_name{job=\"scraped\"} 2\n"
	cases := []struct {
		honor bool
		want  []string
	}{
		{false, []string{"new_name gauge/0 2 exported_job:scraped,job:app"}},
		{true, []string{"new_name gauge/0 2 job:scraped"}},
	}
	for _, c := range cases {
		tl := newTestLoop(t, Target{Labels: labels.FromStrings("job", "app"), HonorLabels: c.honor, MetricRelabel: mr})
		if err := tl.feed(t, body, textCT); err != nil {
			t.Fatal(err)
		}
		if got := tl.sink.take(); !equal(got, c.want) {
			t.Fatalf("honor_labels=%v: got %q, want %q", c.honor, got, c.want)
		}
	}
}

func TestLimits(t *testing.T) {
	body := "a{x=\"1\",y=\"22\"} 1\nb 2\nc 3\n"
	cases := []struct {
		limits Limits
		err    error
	}{
		{Limits{Samples: 2}, errSampleLimit},
		{Limits{Labels: 1}, errLabelLimit},
		{Limits{LabelNameLength: 0, LabelValueLength: 1}, errLabelValueLimit},
		{Limits{Samples: 3, Labels: 2, LabelValueLength: 2}, nil},
	}
	for _, c := range cases {
		tl := newTestLoop(t, Target{Limits: c.limits})
		err := tl.feed(t, body, textCT)
		if !errors.Is(err, c.err) {
			t.Fatalf("limits %+v: err = %v, want %v", c.limits, err, c.err)
		}
	}
}

func TestTargetIntervalBounds(t *testing.T) {
	m := NewManager(Config{MaxInterval: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	cases := []struct {
		interval, timeout time.Duration
		err               string
	}{
		{30 * time.Second, 10 * time.Second, ""},
		{500 * time.Millisecond, 100 * time.Millisecond, "must be at least 1s"},
		{10 * time.Second, 20 * time.Second, "timeout 20s within it"},
		{2 * time.Minute, 10 * time.Second, "longer than half of --series-stale-after"},
	}
	for _, c := range cases {
		_, err := newLoop(m.cfg, Target{URL: "http://127.0.0.1:1/metrics", Interval: c.interval, Timeout: c.timeout})
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("interval %s timeout %s: err = %v, want %q", c.interval, c.timeout, err, c.err)
		}
	}
}

func TestParseErrorNamesTheLine(t *testing.T) {
	tl := newTestLoop(t, Target{})
	err := tl.feed(t, "ok 1\nbroken{ 2\n", textCT)
	if err == nil || !strings.Contains(err.Error(), "line 2 col 9") || !strings.Contains(err.Error(), `near "2"`) {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
}

// TestScrapeHTTP runs real scrapes of the test exporter over loopback HTTP,
// gzip included, through a target restart.
func TestScrapeHTTP(t *testing.T) {
	e := exporter.New()
	reqs := e.Family("reqs_total", exporter.Counter, "")
	temp := e.Family("temp", exporter.Gauge, "")
	reqs.Set(`a="1"`, 10)
	temp.Set("", 5)
	srv, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tl := newTestLoop(t, Target{URL: "http://" + srv.Addr() + "/metrics", Timeout: 5 * time.Second, Interval: 10 * time.Second})
	ctx := context.Background()
	scrape := func() {
		t.Helper()
		tl.now = tl.now.Add(10 * time.Second)
		if _, err := tl.scrape(ctx, tl.now); err != nil {
			t.Fatal(err)
		}
	}
	scrape()
	reqs.Add(`a="1"`, 4)
	temp.Set("", 6)
	scrape()
	e.Restart(0) // counters back to 0, then 3 more
	reqs.Add(`a="1"`, 3)
	scrape()
	want := []string{"reqs.count count/10 3 a:1", "reqs.count count/10 4 a:1", "temp gauge/0 5 ", "temp gauge/0 6 ", "temp gauge/0 6 "}
	if got := tl.sink.take(); !equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	e.FailNext(1)
	tl.now = tl.now.Add(10 * time.Second)
	if _, err := tl.scrape(ctx, tl.now); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want the HTTP 500 named", err)
	}
	tl.target.Limits.BodySize = 10
	tl.now = tl.now.Add(10 * time.Second)
	if _, err := tl.scrape(ctx, tl.now); !errors.Is(err, errBodySizeLimit) {
		t.Fatalf("err = %v, want body size limit", err)
	}
}

func TestManagerSync(t *testing.T) {
	e := exporter.New()
	e.Family("g", exporter.Gauge, "").Set("", 1)
	srv, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sink := &captureSink{}
	m := NewManager(Config{Store: deltastore.New(deltastore.Config{}), Sink: sink, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg := func(job string) Target {
		return Target{URL: "http://" + srv.Addr() + "/metrics", Labels: labels.FromStrings("job", job), Interval: time.Second, Timeout: 500 * time.Millisecond}
	}
	m.Sync(ctx, []Target{tg("a"), tg("b")})
	if n := len(m.Targets()); n != 2 {
		t.Fatalf("%d targets, want 2", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.Scrapes() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	m.Sync(ctx, []Target{tg("b")})
	ts := m.Targets()
	if len(ts) != 1 || ts[0].Labels["job"] != "b" || ts[0].Health != "up" {
		t.Fatalf("targets after removal: %+v", ts)
	}
	problems := func() []Problem {
		return []Problem{{Object: "ServiceMonitor app/web", Reason: "secret app/creds not found"}}
	}
	for _, c := range []struct{ url, want string }{
		{"/targets", `<td class="up">up</td>`},
		{"/targets", `<td>ServiceMonitor app/web</td><td class="down">secret app/creds not found</td>`},
		{"/targets?format=json", `"health":"up"`},
		{"/targets?format=json", `"rejected":[{"object":"ServiceMonitor app/web","reason":"secret app/creds not found"}]`},
	} {
		rec := httptest.NewRecorder()
		m.TargetsHandler(problems).ServeHTTP(rec, httptest.NewRequest("GET", c.url, nil))
		if body := rec.Body.String(); !strings.Contains(body, c.want) || !strings.Contains(body, srv.Addr()) || strings.Contains(body, `job="a"`) {
			t.Errorf("%s: %s", c.url, body)
		}
	}
	cancel()
	m.Wait()
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
