package scrapeloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/internal/exporter"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"
)

const textCT = "text/plain; version=0.0.4"
const omCT = "application/openmetrics-text; version=1.0.0"

// recBackend is the tests' Backend. Each appender it makes records what its
// loop hands it and checks the Appender contract as it goes; a test fails at
// its end when one of them saw a violation (see recAppender.problem).
type recBackend struct {
	// kind classifies a series; nil is testKind.
	kind func(*Series) Kind
	// err, when set, is what NewAppender returns.
	err error

	mu   sync.Mutex
	apps []*recAppender
}

func (b *recBackend) NewAppender(t *target.Target) (Appender, error) {
	if b.err != nil {
		return nil, b.err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	kind := b.kind
	if kind == nil {
		kind = testKind
	}
	a := &recAppender{id: uint64(len(b.apps) + 1), target: *t, kind: kind, refs: map[uint64]*recSeries{}}
	b.apps = append(b.apps, a)
	return a, nil
}

// appenders returns the appenders made so far, oldest first.
func (b *recBackend) appenders() []*recAppender {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.apps)
}

// testKind classifies as a Prometheus-minded backend would: the cumulative
// samples of counters, histograms and summaries are counters, the rest gauges.
func testKind(s *Series) Kind {
	switch s.Type {
	case exposition.TypeCounter, exposition.TypeHistogram, exposition.TypeSummary:
		switch s.Role {
		case exposition.RoleTotal, exposition.RoleBucket, exposition.RoleSum, exposition.RoleCount:
			return KindCounter
		}
	}
	return KindGauge
}

func allGauges(*Series) Kind { return KindGauge }

// recSeries is what an appender keeps of a series: a copy of its Series.
type recSeries struct {
	Series
	ref       uint64
	kind      Kind
	raw       string // the raw series of its first point
	points    int
	forgotten bool
}

// recPoint is one point as a backend would send it: the labels are
// reconstructed from the parser by the Verbatim rules when the series is
// verbatim (as the Datadog encoder does), else they are Series.Labels.
type recPoint struct {
	Labels labels.Labels
	Kind   Kind
	TS     int64
	Value  float64
}

func (p recPoint) String() string {
	return fmt.Sprintf("%s %s %s", kindName(p.Kind), fmtLabels(p.Labels), strconv.FormatFloat(p.Value, 'g', -1, 64))
}

func kindName(k Kind) string {
	switch k {
	case KindGauge:
		return "gauge"
	case KindCounter:
		return "counter"
	case KindDrop:
		return "drop"
	}
	return fmt.Sprintf("kind%d", k)
}

// fmtLabels writes labels as name{a="1",b="2"}, in label order.
func fmtLabels(ls labels.Labels) string {
	var b strings.Builder
	b.WriteString(ls.Get(model.MetricNameLabel))
	n := 0
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		if n == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		n++
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	})
	if n > 0 {
		b.WriteByte('}')
	}
	return b.String()
}

// verbatimLabels applies the Verbatim rules of Series to the sample p is on:
// what a backend that keeps nothing of a verbatim series encodes.
func verbatimLabels(p *exposition.Parser, target labels.Labels, exported uint32, omitted uint64) labels.Labels {
	var sb labels.ScratchBuilder
	sb.Add(model.MetricNameLabel, string(p.Name()))
	for k := range p.NumLabels() {
		name, value := p.Label(k)
		n := string(name)
		if k < 32 && exported&(1<<k) != 0 {
			n = model.ExportedLabelPrefix + n
		}
		sb.Add(n, string(value))
	}
	i := 0
	target.Range(func(l labels.Label) {
		if i >= 64 || omitted&(1<<i) == 0 {
			sb.Add(l.Name, l.Value)
		}
		i++
	})
	sb.Sort()
	return sb.Labels()
}

// recAppender records one loop's series and points. Its refs carry the
// appender's id, so a ref handed to the wrong appender is caught.
type recAppender struct {
	id     uint64
	target target.Target
	kind   func(*Series) Kind

	mu       sync.Mutex
	refs     map[uint64]*recSeries
	added    []*recSeries // in AddSeries order
	pending  []recPoint   // appended since the last Commit
	points   []recPoint   // committed, not taken yet
	batches  [][]recPoint // every Commit's points
	forgets  []uint64
	stray    int // Forget(0): a slot the loop dropped without asking us
	reports  []Report
	closed   bool
	problems []string
}

func (a *recAppender) problem(format string, args ...any) {
	a.problems = append(a.problems, fmt.Sprintf(format, args...))
}

func (a *recAppender) AddSeries(s *Series) (uint64, Kind) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		a.problem("AddSeries(%s) after Close", fmtLabels(s.Labels))
	}
	if s.Role == exposition.RoleCreated {
		a.problem("AddSeries of a _created sample %s", fmtLabels(s.Labels))
	}
	rs := &recSeries{Series: *s, ref: a.id<<32 | uint64(len(a.added)+1), kind: a.kind(s)}
	// Family, Help and Unit are valid only during the call.
	rs.Family = bytes.Clone(s.Family)
	rs.Help = bytes.Clone(s.Help)
	rs.Unit = bytes.Clone(s.Unit)
	rs.Labels = s.Labels.Copy()
	a.refs[rs.ref] = rs
	a.added = append(a.added, rs)
	return rs.ref, rs.kind
}

func (a *recAppender) Append(ref uint64, p *exposition.Parser, tsMs int64, v float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rs := a.refs[ref]
	switch {
	case a.closed:
		a.problem("Append(%#x) after Close", ref)
	case rs == nil:
		a.problem("Append of ref %#x, not one of appender %d", ref, a.id)
		return
	case rs.forgotten:
		a.problem("Append of forgotten ref %#x (%s)", ref, fmtLabels(rs.Labels))
	case rs.kind == KindDrop:
		a.problem("Append of dropped series %s", fmtLabels(rs.Labels))
	}
	raw := string(p.Series())
	if rs.raw == "" {
		rs.raw = raw
	} else if raw != rs.raw {
		a.problem("ref %#x names two series: %s and %s", ref, rs.raw, raw)
	}
	rs.points++
	lbls := rs.Labels
	if rs.Verbatim {
		lbls = verbatimLabels(p, a.target.Labels, rs.Exported, rs.Omitted)
		if !labels.Equal(lbls, rs.Labels) {
			a.problem("series %s: Verbatim rules give %s, Series.Labels are %s", raw, fmtLabels(lbls), fmtLabels(rs.Labels))
		}
	}
	a.pending = append(a.pending, recPoint{Labels: lbls, Kind: rs.kind, TS: tsMs, Value: v})
}

// Report implements Reporter.
func (a *recAppender) Report(r *Report) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		a.problem("Report after Close")
	}
	if len(a.pending) > 0 {
		a.problem("Report before the scrape's Commit")
	}
	a.reports = append(a.reports, *r)
}

func (a *recAppender) Forget(ref uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ref == 0 {
		a.stray++
		return
	}
	rs := a.refs[ref]
	switch {
	case rs == nil:
		a.problem("Forget of ref %#x, not one of appender %d", ref, a.id)
	case rs.forgotten:
		a.problem("Forget of ref %#x twice", ref)
	default:
		rs.forgotten = true
		a.forgets = append(a.forgets, ref)
	}
}

func (a *recAppender) Commit() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.points = append(a.points, a.pending...)
	a.batches = append(a.batches, a.pending)
	a.pending = nil
}

func (a *recAppender) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		a.problem("Close twice")
	}
	a.closed = true
}

// take returns the points committed since the last take as sorted lines.
func (a *recAppender) take() []string {
	out := []string{}
	for _, p := range a.takePoints() {
		out = append(out, p.String())
	}
	sort.Strings(out)
	return out
}

func (a *recAppender) takePoints() []recPoint {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.points
	a.points = nil
	return ps
}

// series returns a copy of what AddSeries received, in call order.
func (a *recAppender) series() []recSeries {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]recSeries, len(a.added))
	for i, rs := range a.added {
		out[i] = *rs
	}
	return out
}

func (a *recAppender) state() (commits int, closed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.batches), a.closed
}

// batch returns the points of the i-th Commit.
func (a *recAppender) batch(i int) []recPoint {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.batches[i]
}

// check fails t with the contract violations the appender saw.
func (a *recAppender) check(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.problems {
		t.Errorf("appender %d: %s", a.id, p)
	}
}

// routes answers the http:// requests of test loops, each URL with the body
// its loop was given, so feed goes through the loop's real scrape path.
type routes struct {
	mu     sync.Mutex
	bodies map[string]*served
}

type served struct {
	body []byte
	ct   string
}

func (r *routes) set(url, body, ct string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies[url] = &served{body: []byte(body), ct: ct}
}

func (r *routes) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	s := r.bodies[req.URL.String()]
	r.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("no body for %s", req.URL)
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {s.ct}},
		Body:          io.NopCloser(bytes.NewReader(s.body)),
		ContentLength: int64(len(s.body)),
		Request:       req,
	}, nil
}

// testEnv is a Manager's environment for loops driven by the test: one
// store, one backend, one clock.
type testEnv struct {
	mgr     *Manager
	backend *recBackend
	store   *deltastore.Store
	routes  *routes
	now     time.Time
}

var t0 = time.Unix(1_800_000_000, 0)

// newTestEnv makes an environment on store (nil: a new in-memory one) whose
// clock starts at now; mod may change the manager's Config (a nil Transport
// there means real HTTP).
func newTestEnv(t *testing.T, store *deltastore.Store, now time.Time, mod func(*Config)) *testEnv {
	t.Helper()
	if store == nil {
		store = deltastore.New(deltastore.Config{Logger: slog.New(slog.DiscardHandler)})
	}
	e := &testEnv{backend: &recBackend{}, store: store, routes: &routes{bodies: map[string]*served{}}, now: now}
	// Plain http:// goes to routes; https:// (and TLS settings, which need an
	// *http.Transport) stay real.
	tr := &http.Transport{DisableCompression: true}
	tr.RegisterProtocol("http", e.routes)
	cfg := Config{Store: store, Backend: e.backend, Transport: tr, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return e.now }}
	if mod != nil {
		mod(&cfg)
	}
	e.mgr = NewManager(cfg)
	t.Cleanup(func() {
		if tr, ok := e.mgr.cfg.Transport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
		for _, a := range e.backend.appenders() {
			a.check(t)
		}
	})
	return e
}

// testLoop is a loop the test drives: feed scrapes it at the env's clock.
type testLoop struct {
	*loop
	env *testEnv
	app *recAppender
}

// loop makes a loop for tg, started as Manager.run starts it.
func (e *testEnv) loop(t *testing.T, tg target.Target) *testLoop {
	t.Helper()
	if tg.URL == "" {
		tg.URL = "http://127.0.0.1:1/metrics"
	}
	if tg.Interval == 0 {
		tg.Interval, tg.Timeout = 30*time.Second, 10*time.Second
	}
	l, err := newLoop(e.mgr.cfg, tg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.closeIdle)
	l.resume()
	apps := e.backend.appenders()
	return &testLoop{loop: l, env: e, app: apps[len(apps)-1]}
}

func newTestLoop(t *testing.T, tg target.Target) *testLoop {
	t.Helper()
	return newTestEnv(t, nil, t0, nil).loop(t, tg)
}

// feed scrapes body one interval after the previous scrape, through the
// loop's scrape path (fetch, process, Commit, end of the window).
func (tl *testLoop) feed(t *testing.T, body, contentType string) error {
	t.Helper()
	tl.env.routes.set(tl.target.URL, body, contentType)
	tl.env.now = tl.env.now.Add(tl.target.Interval)
	_, err := tl.scrape(context.Background(), tl.env.now)
	return err
}

func (tl *testLoop) mustFeed(t *testing.T, body, contentType string) {
	t.Helper()
	if err := tl.feed(t, body, contentType); err != nil {
		t.Fatal(err)
	}
}

// scrapeStatus scrapes body as the loop's goroutine does and returns the
// target's status.
func (tl *testLoop) scrapeStatus(t *testing.T, body string) Status {
	t.Helper()
	tl.env.routes.set(tl.target.URL, body, textCT)
	tl.env.now = tl.env.now.Add(tl.target.Interval)
	tl.scrapeOnce(context.Background())
	return tl.getStatus()
}

// metricValue reads one sample of a metrics set; a sample that is not there
// fails the test (a renamed metric must not read as 0).
func metricValue(t *testing.T, set *metrics.Set, name string) float64 {
	t.Helper()
	var b bytes.Buffer
	set.WritePrometheus(&b)
	for line := range strings.SplitSeq(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not in the set", name)
	return 0
}

func mustRelabel(t *testing.T, y string) []*promrelabel.Config {
	t.Helper()
	var mr []*promrelabel.Config
	if err := yaml.UnmarshalStrict([]byte(y), &mr); err != nil {
		t.Fatal(err)
	}
	for _, c := range mr {
		if err := c.Validate(model.UTF8Validation); err != nil {
			t.Fatal(err)
		}
	}
	return mr
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestOpenMetricsCreated(t *testing.T) {
	tl := newTestLoop(t, target.Target{})
	start := tl.env.now.Unix()
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
	tl.mustFeed(t, body, omCT)
	wantLines(t, "first scrape", tl.app.take(), "counter new_total 7")
	// A newer _created is a reset even though the value grew.
	body = fmt.Sprintf("# TYPE old counter\nold_total 150\nold_created %d\n# TYPE new counter\nnew_total 9\nnew_created %d\n# EOF\n", start+40, start+10)
	tl.mustFeed(t, body, omCT)
	wantLines(t, "second scrape", tl.app.take(), "counter new_total 2", "counter old_total 150")
	// The _created samples are read with their counters, never series of
	// their own (recAppender fails an AddSeries of one).
	for _, s := range tl.app.series() {
		if s.Role != exposition.RoleTotal || string(s.Family) != strings.TrimSuffix(s.Labels.Get(model.MetricNameLabel), "_total") {
			t.Errorf("series %s: role %v family %q", fmtLabels(s.Labels), s.Role, s.Family)
		}
	}
	if n := len(tl.app.series()); n != 2 {
		t.Errorf("%d series added, want 2", n)
	}
}

func TestFirstSightRules(t *testing.T) {
	start := t0.Unix()
	ps := func(sec int64) string { return fmt.Sprintf("process_start_time_seconds %d\n", sec) }
	psGauge := func(sec int64) string {
		return "gauge process_start_time_seconds " + strconv.FormatFloat(float64(sec), 'g', -1, 64)
	}
	type scrape struct {
		body    string
		wantErr bool
		want    []string
	}
	cases := []struct {
		name    string
		scrapes []scrape
	}{
		{"first scrape of a fresh loop sets baselines", []scrape{
			{body: "# TYPE a counter\na 5\n"},
			{body: "# TYPE a counter\na 6\n", want: []string{"counter a 1"}},
		}},
		{"a series appearing after the first successful scrape counts whole", []scrape{
			{body: "# TYPE a counter\na 5\n"},
			{body: "# TYPE a counter\na 6\n# TYPE b counter\nb 4\n", want: []string{"counter a 1", "counter b 4"}},
		}},
		{"after a failed first scrape a new series is only a baseline", []scrape{
			{body: "# TYPE a counter\na 5\nbroken{ 1\n", wantErr: true},
			{body: "# TYPE a counter\na 6\n# TYPE b counter\nb 4\n", want: []string{"counter a 1"}},
			{body: "# TYPE a counter\na 6\n# TYPE b counter\nb 5\n", want: []string{"counter a 0", "counter b 1"}},
		}},
		{"a process that started after the window began counted everything while we watched", []scrape{
			{body: "# TYPE c counter\nc 3\n" + ps(start+5), want: []string{"counter c 3", psGauge(start + 5)}},
		}},
		{"a process that started before the window: baselines", []scrape{
			{body: "# TYPE c counter\nc 3\n" + ps(start-3600), want: []string{psGauge(start - 3600)}},
		}},
		{"a newer process start is a reset even if the counter grew", []scrape{
			{body: "# TYPE c counter\nc 5\n" + ps(start-3600), want: []string{psGauge(start - 3600)}},
			{body: "# TYPE c counter\nc 7\n" + ps(start+45), want: []string{"counter c 7", psGauge(start + 45)}},
			{body: "# TYPE c counter\nc 8\n" + ps(start+45), want: []string{"counter c 1", psGauge(start + 45)}},
		}},
		{"a counter going down is a reset", []scrape{
			{body: "# TYPE c counter\nc 5\n"},
			{body: "# TYPE c counter\nc 2\n", want: []string{"counter c 2"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tl := newTestLoop(t, target.Target{})
			for i, s := range c.scrapes {
				err := tl.feed(t, s.body, textCT)
				if (err != nil) != s.wantErr {
					t.Fatalf("scrape %d: err = %v", i+1, err)
				}
				wantLines(t, fmt.Sprintf("scrape %d", i+1), tl.app.take(), s.want...)
			}
		})
	}
}

// TestResumeAfterAgentRestart: the target's last successful scrape survives
// an agent restart in the delta checkpoint, so the new agent's loop treats a
// series that appeared while no agent ran as new (its whole value counted
// after that scrape) and goes on with the restored series.
func TestResumeAfterAgentRestart(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	a := deltastore.New(deltastore.Config{Dir: dir, Logger: logger, Now: func() time.Time { return t0 }})
	if _, err := a.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	tl := newTestEnv(t, a, t0, nil).loop(t, target.Target{Labels: labels.FromStrings("job", "app")})
	tl.mustFeed(t, "# TYPE a counter\na 5\n", textCT)
	tl.mustFeed(t, "# TYPE a counter\na 6\n", textCT)
	wantLines(t, "before the restart", tl.app.take(), `counter a{job="app"} 1`)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// Five minutes later a new agent restores the state; meanwhile a grew by
	// 2 and b appeared with 3.
	later := tl.env.now.Add(5 * time.Minute)
	b := deltastore.New(deltastore.Config{Dir: dir, Logger: logger, Now: func() time.Time { return later }})
	if r, err := b.Restore(context.Background()); err != nil || r.Outcome != deltastore.OutcomeOK {
		t.Fatalf("restore = %+v, %v", r, err)
	}
	defer b.Close()
	body := "# TYPE a counter\na 8\n# TYPE b counter\nb 3\n"
	tl2 := newTestEnv(t, b, later, nil).loop(t, target.Target{Labels: labels.FromStrings("job", "app")})
	if !tl2.succeeded || tl2.windowStart != tl.windowStart {
		t.Fatalf("resumed window: succeeded %v start %d, want the last scrape %d", tl2.succeeded, tl2.windowStart, tl.windowStart)
	}
	tl2.mustFeed(t, body, textCT)
	wantLines(t, "first scrape after the restart", tl2.app.take(), `counter a{job="app"} 2`, `counter b{job="app"} 3`)
	// The restored series were classified anew by the new agent's appender.
	if n := len(tl2.app.series()); n != 2 {
		t.Errorf("%d series added after the restart, want 2", n)
	}

	// Without the checkpoint both are first sights: baselines only.
	tl3 := newTestEnv(t, nil, later, nil).loop(t, target.Target{Labels: labels.FromStrings("job", "app")})
	tl3.mustFeed(t, body, textCT)
	wantLines(t, "first scrape without a checkpoint", tl3.app.take())
}

// TestSeriesGoneReleasesState: a series missing from a scrape releases its
// slot and backend handle, except that the slot of one holding counter
// state stays until stale (see TestAbsentSeries), and the series' return is
// a delta.
func TestSeriesGoneReleasesState(t *testing.T) {
	tl := newTestLoop(t, target.Target{})
	tl.mustFeed(t, "# TYPE a counter\na{x=\"1\"} 5\na{x=\"2\"} 5\ng 1\n", textCT)
	wantLines(t, "first scrape", tl.app.take(), "gauge g 1")
	if n := tl.env.store.Len(); n != 3 {
		t.Fatalf("store holds %d series, want 3", n)
	}
	refs := map[string]uint64{}
	for _, s := range tl.app.series() {
		refs[fmtLabels(s.Labels)] = s.ref
	}
	tl.mustFeed(t, "# TYPE a counter\na{x=\"1\"} 6\n", textCT)
	wantLines(t, "second scrape", tl.app.take(), `counter a{x="1"} 1`)
	if n := tl.env.store.Len(); n != 2 {
		t.Fatalf("after two series went away the store holds %d, want 2 (the counter's state stays)", n)
	}
	if got, want := slices.Sorted(slices.Values(tl.app.forgets)), slices.Sorted(slices.Values([]uint64{refs["g"], refs[`a{x="2"}`]})); !slices.Equal(got, want) {
		t.Fatalf("forgotten refs %#x, want %#x (g and a{x=\"2\"})", got, want)
	}
	tl.mustFeed(t, "# TYPE a counter\na{x=\"1\"} 6\na{x=\"2\"} 7\n", textCT)
	wantLines(t, "third scrape", tl.app.take(), `counter a{x="1"} 0`, `counter a{x="2"} 2`)
	tl.release()
	if n := tl.env.store.Len(); n != 0 {
		t.Fatalf("after release: store %d", n)
	}
}

func TestLabelsAndRelabeling(t *testing.T) {
	tls := labels.FromStrings("instance", "10.0.0.1:9100", "job", "app") // bits: instance 0, job 1
	rename := `
- source_labels: [__name__]
  regex: drop_me.*
  action: drop
- source_labels: [__name__]
  regex: old_name
  target_label: __name__
  replacement: new_name
`
	cases := []struct {
		name     string
		body     string
		honor    bool
		relabel  string
		want     []string // final labels of each series added
		verbatim bool     // of every series added
		exported uint32   // and, when verbatim, its rules
		omitted  uint64
	}{
		{name: "target labels added", body: `m{a="1"} 1`,
			want: []string{`m{a="1",instance="10.0.0.1:9100",job="app"}`}, verbatim: true},
		{name: "no sample labels", body: `m 1`,
			want: []string{`m{instance="10.0.0.1:9100",job="app"}`}, verbatim: true},
		{name: "clash: scraped label kept as exported_", body: `m{a="1",job="x"} 1`,
			want: []string{`m{a="1",exported_job="x",instance="10.0.0.1:9100",job="app"}`}, verbatim: true, exported: 1 << 1},
		{name: "two clashes", body: `m{job="x",instance="y"} 1`,
			want: []string{`m{exported_instance="y",exported_job="x",instance="10.0.0.1:9100",job="app"}`}, verbatim: true, exported: 1<<0 | 1<<1},
		{name: "honor_labels: scraped label wins", body: `m{job="x"} 1`, honor: true,
			want: []string{`m{instance="10.0.0.1:9100",job="x"}`}, verbatim: true, omitted: 1 << 1},
		{name: "honor_labels: an empty scraped label removes the target label", body: `m{job=""} 1`, honor: true,
			want: []string{`m{instance="10.0.0.1:9100"}`}},
		{name: "empty scraped label without honor_labels", body: `m{job="",a=""} 1`,
			want: []string{`m{instance="10.0.0.1:9100",job="app"}`}},
		{name: "exported_ name taken: exported_exported_", body: `m{exported_job="e",job="x"} 1`,
			want: []string{`m{exported_exported_job="x",exported_job="e",instance="10.0.0.1:9100",job="app"}`}},
		{name: "escaped and quoted names", body: `{"m.x","a.b"="q\"\\n\n"} 1`,
			want: []string{`m.x{a.b="q\"\\n\n",instance="10.0.0.1:9100",job="app"}`}, verbatim: true},
		{name: "relabel drop and rename", body: "drop_me_gauge 1\nold_name{job=\"scraped\"} 2\n", relabel: rename,
			want: []string{`new_name{exported_job="scraped",instance="10.0.0.1:9100",job="app"}`}},
		{name: "relabel drop and rename, honor_labels", body: "drop_me_gauge 1\nold_name{job=\"scraped\"} 2\n", relabel: rename, honor: true,
			want: []string{`new_name{instance="10.0.0.1:9100",job="scraped"}`}},
		{name: "labeldrop", body: `m{a="1",b="2"} 1`, relabel: "- regex: instance|b\n  action: labeldrop\n",
			want: []string{`m{a="1",job="app"}`}},
		{name: "replace adds a label", body: `m{a="1"} 1`, relabel: "- target_label: env\n  replacement: prod\n",
			want: []string{`m{a="1",env="prod",instance="10.0.0.1:9100",job="app"}`}},
		{name: "replace rewrites a value", body: `m{a="1"} 1`, relabel: "- source_labels: [a]\n  target_label: a\n  replacement: x$1\n",
			want: []string{`m{a="x1",instance="10.0.0.1:9100",job="app"}`}},
		{name: "replace to the same value keeps the series verbatim", body: `m{a="1"} 1`, relabel: "- source_labels: [a]\n  target_label: a\n",
			want: []string{`m{a="1",instance="10.0.0.1:9100",job="app"}`}, verbatim: true},
		{name: "keep", body: "m{a=\"1\"} 1\nother 2\n", relabel: "- source_labels: [__name__]\n  regex: m\n  action: keep\n",
			want: []string{`m{a="1",instance="10.0.0.1:9100",job="app"}`}, verbatim: true},
		{name: "relabeling away the name drops the series", body: `m{a="1"} 1`, relabel: "- regex: __name__\n  action: labeldrop\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg := target.Target{Labels: tls, HonorLabels: c.honor}
			if c.relabel != "" {
				tg.MetricRelabel = mustRelabel(t, c.relabel)
			}
			tl := newTestLoop(t, tg)
			tl.mustFeed(t, c.body+"\n", textCT)
			var got []string
			for _, s := range tl.app.series() {
				got = append(got, fmtLabels(s.Labels))
				if s.Verbatim != c.verbatim || (s.Verbatim && (s.Exported != c.exported || s.Omitted != c.omitted)) {
					t.Errorf("%s: Verbatim %v Exported %b Omitted %b, want %v %b %b", fmtLabels(s.Labels), s.Verbatim, s.Exported, s.Omitted, c.verbatim, c.exported, c.omitted)
				}
			}
			wantLines(t, "series", got, c.want...)
			// Every series is a gauge here: one point each, with those labels.
			var points []string
			for _, p := range tl.app.takePoints() {
				points = append(points, fmtLabels(p.Labels))
			}
			slices.Sort(points)
			wantLines(t, "points", points, c.want...)
		})
	}
}

func TestLimits(t *testing.T) {
	body := "a{x=\"1\",yy=\"22\"} 1\nb 2\nc 3\n"
	many := func(n int) string { // one series with n labels
		var b strings.Builder
		b.WriteString("m{")
		for i := range n {
			fmt.Fprintf(&b, "l%d=\"v\",", i)
		}
		b.WriteString("} 1\n")
		return b.String()
	}
	long := func(name, value int) string {
		return fmt.Sprintf("m{%s=\"%s\"} 1\n", strings.Repeat("n", name), strings.Repeat("v", value))
	}
	cases := []struct {
		name     string
		body     string
		target   labels.Labels
		limits   target.Limits
		defaults target.Limits // Config.DefaultLimits
		err      error
	}{
		{name: "samples", body: body, limits: target.Limits{Samples: 2}, err: errSampleLimit},
		{name: "labels", body: body, limits: target.Limits{Labels: 1}, err: errLabelLimit},
		{name: "target labels count", body: body, target: labels.FromStrings("job", "app"), limits: target.Limits{Labels: 2}, err: errLabelLimit},
		{name: "label name length", body: body, limits: target.Limits{LabelNameLength: 1}, err: errLabelNameLimit},
		{name: "label value length", body: body, limits: target.Limits{LabelValueLength: 1}, err: errLabelValueLimit},
		{name: "body size", body: body, limits: target.Limits{BodySize: int64(len(body) - 1)}, err: errBodySizeLimit},
		{name: "all at their bound", body: body, limits: target.Limits{BodySize: int64(len(body)), Samples: 3, Labels: 2, LabelNameLength: 2, LabelValueLength: 2}},

		{name: "default samples", body: body, defaults: target.Limits{Samples: 2}, err: errSampleLimit},
		{name: "default body size", body: body, defaults: target.Limits{BodySize: 10}, err: errBodySizeLimit},
		{name: "target limit over the default", body: body, limits: target.Limits{Samples: 3}, defaults: target.Limits{Samples: 2}},
		{name: "-1 lifts the default", body: body, limits: target.Limits{Samples: -1, BodySize: -1}, defaults: target.Limits{Samples: 2, BodySize: 10}},
		{name: "default -1 lifts the package default", body: many(DefaultLabels + 1), defaults: target.Limits{Labels: -1}},

		{name: "package default labels", body: many(DefaultLabels + 1), err: errLabelLimit},
		{name: "package default labels, at the bound", body: many(DefaultLabels)},
		{name: "package default name length", body: long(DefaultLabelNameLength+1, 1), err: errLabelNameLimit},
		{name: "package default name length, at the bound", body: long(DefaultLabelNameLength, 1)},
		{name: "package default value length", body: long(1, DefaultLabelValueLength+1), err: errLabelValueLimit},
		{name: "package default value length, at the bound", body: long(1, DefaultLabelValueLength)},
		{name: "-1 lifts the package default", body: long(DefaultLabelNameLength+1, DefaultLabelValueLength+1), limits: target.Limits{LabelNameLength: -1, LabelValueLength: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.DefaultLimits = c.defaults })
			tl := e.loop(t, target.Target{Labels: c.target, Limits: c.limits})
			err := tl.feed(t, c.body, textCT)
			if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if err != nil && tl.succeeded {
				t.Fatal("a scrape over a limit ended the observation window")
			}
		})
	}
}

// TestLimitsDefaults: a target's limit, else Config.DefaultLimits, else the
// package's; -1 at either level means no limit.
func TestLimitsDefaults(t *testing.T) {
	// lim and want take the limits in one order: body size, samples,
	// labels, label name length, label value length.
	lim := func(b, s, l, n, v int64) target.Limits {
		return target.Limits{BodySize: b, Samples: s, Labels: l, LabelNameLength: n, LabelValueLength: v}
	}
	want := func(b int64, s, l, n, v int) scrapeLimits {
		return scrapeLimits{BodySize: b, Samples: s, Labels: l, LabelNameLength: n, LabelValueLength: v}
	}
	pkg := want(DefaultBodySize, DefaultSamples, DefaultLabels, DefaultLabelNameLength, DefaultLabelValueLength)
	none := want(math.MaxInt64-1, 0, 0, 0, 0)
	cases := []struct {
		target, defaults target.Limits
		want             scrapeLimits
	}{
		{target.Limits{}, target.Limits{}, pkg},
		{target.Limits{Samples: 5}, target.Limits{}, want(DefaultBodySize, 5, DefaultLabels, DefaultLabelNameLength, DefaultLabelValueLength)},
		{target.Limits{}, lim(1, 2, 3, 4, 5), want(1, 2, 3, 4, 5)},
		{lim(6, 7, 8, 9, 10), lim(1, 2, 3, 4, 5), want(6, 7, 8, 9, 10)},
		{lim(-1, -1, -1, -1, -1), lim(1, 2, 3, 4, 5), none},
		{target.Limits{}, lim(-1, -1, -1, -1, -1), none},
		{lim(6, 7, 8, 9, 10), lim(-1, -1, -1, -1, -1), want(6, 7, 8, 9, 10)},
		// The pool's limits are discovery's and change no scrape.
		{target.Limits{Targets: 1, KeepDroppedTargets: 1}, target.Limits{Targets: 2}, pkg},
	}
	for _, c := range cases {
		if got := resolveLimits(c.target, c.defaults); got != c.want {
			t.Errorf("%+v with defaults %+v = %+v, want %+v", c.target, c.defaults, got, c.want)
		}
		e := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.DefaultLimits = c.defaults })
		if got := e.loop(t, target.Target{Limits: c.target}).limits; got != c.want {
			t.Errorf("loop limits %+v, want %+v", got, c.want)
		}
	}
}

func TestTargetIntervalBounds(t *testing.T) {
	e := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.MaxInterval = time.Minute })
	cases := []struct {
		interval, timeout time.Duration
		err               string
	}{
		{30 * time.Second, 10 * time.Second, ""},
		{time.Second, time.Second, ""},
		{500 * time.Millisecond, 100 * time.Millisecond, "must be at least 1s"},
		{10 * time.Second, 20 * time.Second, "timeout 20s within it"},
		{10 * time.Second, 0, "timeout 0s within it"},
		{2 * time.Minute, 10 * time.Second, "longer than half of --series-stale-after"},
	}
	for _, c := range cases {
		_, err := newLoop(e.mgr.cfg, target.Target{URL: "http://127.0.0.1:1/metrics", Interval: c.interval, Timeout: c.timeout})
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("interval %s timeout %s: err = %v, want %q", c.interval, c.timeout, err, c.err)
		}
	}
	if n := len(e.backend.appenders()); n != 2 {
		t.Errorf("%d appenders made, want 2: none for a refused target", n)
	}
	e.backend.err = errors.New("no backend today")
	if _, err := newLoop(e.mgr.cfg, target.Target{URL: "http://127.0.0.1:1/metrics", Interval: time.Minute, Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "no backend today") {
		t.Errorf("err = %v, want the backend's", err)
	}
}

func TestParseErrorNamesTheLine(t *testing.T) {
	tl := newTestLoop(t, target.Target{})
	err := tl.feed(t, "ok 1\nbroken{ 2\n", textCT)
	if err == nil || !strings.Contains(err.Error(), "line 2 col 9") || !strings.Contains(err.Error(), `near "2"`) {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
	// The points before the error are sent; the series after it keep their
	// state (no sweep) and the window does not end.
	tl2 := newTestLoop(t, target.Target{})
	tl2.mustFeed(t, "# TYPE a counter\na 1\n# TYPE b counter\nb 1\n", textCT)
	if err := tl2.feed(t, "# TYPE a counter\na 2\nbroken{ 2\n# TYPE b counter\nb 5\n", textCT); err == nil {
		t.Fatal("no error")
	}
	wantLines(t, "failed scrape", tl2.app.take(), "counter a 1")
	tl2.mustFeed(t, "# TYPE a counter\na 3\n# TYPE b counter\nb 7\n", textCT)
	wantLines(t, "next scrape", tl2.app.take(), "counter a 1", "counter b 6")
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
	env := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.Transport = nil })
	url := "http://" + srv.Addr() + "/metrics"
	tl := env.loop(t, target.Target{URL: url, Timeout: 5 * time.Second, Interval: 10 * time.Second})
	ctx := context.Background()
	scrape := func(tl *testLoop) error {
		t.Helper()
		env.now = env.now.Add(10 * time.Second)
		_, err := tl.scrape(ctx, env.now)
		return err
	}
	if err := scrape(tl); err != nil {
		t.Fatal(err)
	}
	if tl.gz == nil {
		t.Fatal("the exporter's gzip answer was not decoded by the loop")
	}
	reqs.Add(`a="1"`, 4)
	temp.Set("", 6)
	if err := scrape(tl); err != nil {
		t.Fatal(err)
	}
	e.Restart(0) // counters back to 0, then 3 more
	reqs.Add(`a="1"`, 3)
	if err := scrape(tl); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "points", tl.app.take(), `counter reqs_total{a="1"} 4`, `counter reqs_total{a="1"} 3`, "gauge temp 5", "gauge temp 6", "gauge temp 6")

	// Served as OpenMetrics with _created: a newer _created is a reset
	// even though the counter grew.
	e.SetOpenMetrics(true)
	reqs.SetCreated(`a="1"`, float64(env.now.Unix()-3600))
	reqs.Add(`a="1"`, 1)
	if err := scrape(tl); err != nil {
		t.Fatal(err)
	}
	e.Restart(float64(env.now.Unix() + 5))
	reqs.Add(`a="1"`, 6)
	if err := scrape(tl); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "OpenMetrics", tl.app.take(), `counter reqs_total{a="1"} 1`, `counter reqs_total{a="1"} 6`, "gauge temp 6", "gauge temp 6")

	e.FailNext(1)
	if err := scrape(tl); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want the HTTP 500 named", err)
	}
	// The body limit applies to the decompressed body.
	small := env.loop(t, target.Target{URL: url, Labels: labels.FromStrings("job", "small"), Timeout: 5 * time.Second, Interval: 10 * time.Second, Limits: target.Limits{BodySize: 10}})
	if err := scrape(small); !errors.Is(err, errBodySizeLimit) {
		t.Fatalf("err = %v, want body size limit", err)
	}
}

// TestManagerSync: Sync starts a loop per target, each scraping within its
// first interval (on a synctest bubble's clock); a removed target's loop
// stops and releases its state; a reconfigured one hands its state to the
// next loop, which reclassifies every series.
func TestManagerSync(t *testing.T) {
	synctest.Test(t, testManagerSync)
}

func testManagerSync(t *testing.T) {
	e := exporter.New()
	g := e.Family("g", exporter.Gauge, "")
	g.Set("", 1)
	c := e.Family("c_total", exporter.Counter, "")
	c.Set("", 10)
	const addr = "app.test:9100"
	backend := &recBackend{}
	store := deltastore.New(deltastore.Config{})
	m := NewManager(Config{Store: store, Backend: backend, Transport: handlerTransport{e}, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const interval = 2 * time.Second
	tg := func(job string) target.Target {
		return target.Target{URL: "http://" + addr + "/metrics", Labels: labels.FromStrings("job", job), Interval: interval, Timeout: time.Second}
	}
	appOf := func(job string) *recAppender {
		t.Helper()
		var found *recAppender
		for _, a := range backend.appenders() {
			if a.target.Labels.Get("job") == job {
				found = a
			}
		}
		if found == nil {
			t.Fatalf("no appender for job %s", job)
		}
		return found
	}
	// waitFirst waits for the first scrape of each loop just started: it
	// comes within an interval.
	waitFirst := func(apps ...*recAppender) {
		t.Helper()
		time.Sleep(interval - time.Nanosecond)
		synctest.Wait()
		for _, a := range apps {
			if commits, _ := a.state(); commits != 1 {
				t.Fatalf("appender %d: %d scrapes in the first interval, want 1", a.id, commits)
			}
		}
	}
	m.Sync(ctx, []target.Target{tg("a"), tg("b")})
	if n := len(m.Targets()); n != 2 {
		t.Fatalf("%d targets, want 2", n)
	}
	a, b := appOf("a"), appOf("b")
	waitFirst(a, b)

	// a goes: its loop stops, its appender is closed, its state released.
	m.Sync(ctx, []target.Target{tg("b")})
	if _, closed := a.state(); !closed {
		t.Error("the removed target's appender was not closed")
	}
	if n := store.Len(); n != 2 {
		t.Errorf("store holds %d series after a went, want b's 2", n)
	}
	ts := m.Targets()
	if len(ts) != 1 || ts[0].Labels["job"] != "b" || ts[0].Health != "up" || ts[0].Series != 2 {
		t.Fatalf("targets after removal: %+v", ts)
	}
	problems := func() []Problem {
		return []Problem{{Object: "ServiceMonitor app/web", Reason: "secret app/creds not found"}}
	}
	for _, c := range []struct {
		url  string
		h    http.Handler
		want string
	}{
		{"/targets", m.TargetsHandler(PageInfo{Problems: problems}), `<td class="up">up</td>`},
		{"/targets", m.TargetsHandler(PageInfo{Problems: problems}), `<td>ServiceMonitor app/web</td><td class="down">secret app/creds not found</td>`},
		{"/api/v1/targets", m.APITargetsHandler(problems), `"health":"up"`},
		{"/api/v1/targets", m.APITargetsHandler(problems), `"rejectedMonitors":[{"object":"ServiceMonitor app/web","reason":"secret app/creds not found"}]`},
	} {
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, httptest.NewRequest("GET", c.url, nil))
		if body := rec.Body.String(); !strings.Contains(body, c.want) || !strings.Contains(body, addr) || strings.Contains(body, `job="a"`) {
			t.Errorf("%s: %s", c.url, body)
		}
	}

	// b's configuration changes (same URL and labels): a new loop with a new
	// appender, on the same delta state. Every series is classified again
	// under the new configuration, and the first scrape of the new loop sends
	// the counter's increase since the old loop's last scrape.
	b2 := tg("b")
	b2.MetricRelabel = mustRelabel(t, "- target_label: env\n  replacement: prod\n")
	c.Add("", 5)
	m.Sync(ctx, []target.Target{b2})
	if _, closed := b.state(); !closed {
		t.Error("the reconfigured target's old appender was not closed")
	}
	nb := appOf("b")
	if nb == b {
		t.Fatal("no new appender for the new configuration")
	}
	waitFirst(nb)
	cancel()
	m.Wait()
	var sum float64
	for _, p := range b.takePoints() {
		if p.Labels.Get(model.MetricNameLabel) == "c_total" {
			sum += p.Value
		}
	}
	for _, p := range nb.takePoints() {
		if p.Labels.Get(model.MetricNameLabel) != "c_total" {
			continue
		}
		if p.Labels.Get("env") != "prod" {
			t.Errorf("new loop's point %s lacks the new relabeling", p)
		}
		sum += p.Value
	}
	if !slices.ContainsFunc(nb.batch(0), func(p recPoint) bool { return p.Labels.Get(model.MetricNameLabel) == "c_total" }) {
		t.Error("the new loop's first scrape sent no increase of c_total: it took a baseline")
	}
	if sum != 5 {
		t.Errorf("the two loops sent %g of c_total's increase of 5", sum)
	}
	for _, s := range nb.series() {
		if s.Labels.Get("env") != "prod" || s.Verbatim {
			t.Errorf("series %s was not classified under the new configuration (verbatim %v)", fmtLabels(s.Labels), s.Verbatim)
		}
	}
	if n := len(nb.series()); n != 2 {
		t.Errorf("new appender got %d series, want 2", n)
	}
}

// TestLateTickSkipped: a tick that fires late, in the second of the
// target's previous scrape, is not scraped (its points would share that
// second's timestamp, and Datadog keeps one of them) and is counted; the
// next second's tick is. A new loop of the same target knows the second of
// the previous loop's last successful scrape.
func TestLateTickSkipped(t *testing.T) {
	e := newTestEnv(t, nil, t0.Add(50*time.Millisecond), nil)
	tg := target.Target{Interval: time.Second, Timeout: time.Second}
	tl := e.loop(t, tg)
	e.routes.set(tl.target.URL, "c_total 1\n", textCT)
	tl.scrapeOnce(context.Background())
	if st := tl.getStatus(); st.Health != "up" {
		t.Fatalf("scrape %s: %s", st.Health, st.LastError)
	}
	skipped := func() float64 { return metricValue(t, e.mgr.Metrics(), "nodescraper_scrapes_skipped_total") }
	if tl.due(t0.Add(900*time.Millisecond)) || skipped() != 1 {
		t.Fatalf("a tick in the scrape's second is due (skipped %g)", skipped())
	}
	if !tl.due(t0.Add(time.Second)) || skipped() != 1 {
		t.Fatalf("the next second's tick is not due (skipped %g)", skipped())
	}
	next := e.loop(t, tg)
	if next.due(t0.Add(999*time.Millisecond)) || !next.due(t0.Add(time.Second)) {
		t.Fatal("a new loop of the target scrapes in the second of the previous loop's last scrape")
	}
}

// TestClusterTargetScrapesAtOnce: a target of no node (Cluster), which this
// agent just took over from a Lease holder that is gone, is scraped as soon
// as its loop starts; a node's target waits for its phase in the interval.
func TestClusterTargetScrapesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := exporter.New()
		e.Family("c_total", exporter.Counter, "").Set("", 10)
		backend := &recBackend{}
		m := NewManager(Config{Store: deltastore.New(deltastore.Config{}), Backend: backend, Transport: handlerTransport{e}, Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const interval = time.Hour // a phase of 0 would be a 1 in 3.6e12 chance
		node := target.Target{URL: "http://node.test:9100/metrics", Labels: labels.FromStrings("job", "node"), Interval: interval, Timeout: time.Second}
		cluster := target.Target{URL: "http://api.test:443/metrics", Labels: labels.FromStrings("job", "api"), Interval: interval, Timeout: time.Second, Cluster: true, Term: "n1/4"}
		m.Sync(ctx, []target.Target{node, cluster})
		time.Sleep(time.Millisecond)
		synctest.Wait()
		for _, a := range backend.appenders() {
			commits, _ := a.state()
			if want := map[string]int{"api": 1, "node": 0}[a.target.Labels.Get("job")]; commits != want {
				t.Errorf("job %s: %d scrapes in the first millisecond, want %d", a.target.Labels.Get("job"), commits, want)
			}
		}
		m.Sync(ctx, nil)
	})
}
