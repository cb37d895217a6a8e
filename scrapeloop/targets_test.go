package scrapeloop

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/internal/exporter"
	"github.com/nodescraper/nodescraper/relabel/target"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/prometheus/model/labels"
)

// endpointEnv is a manager scraping real targets on 127.0.0.1, with its
// targets page and API served over real HTTP.
type endpointEnv struct {
	mgr    *Manager
	base   string // http://127.0.0.1:port of the endpoint
	client *http.Client
	logs   *countingHandler

	upURL, downURL string
	targets        []target.Target // what discovery sent
}

// The pools of the test's target set.
const (
	poolA = "serviceMonitor/shop/web/0"
	poolB = "podMonitor/shop/worker"
)

// newEndpointEnv starts: in pool A one healthy target (an exporter) and one
// failing one (HTTP 503); in pool B one target refused at loop creation
// (interval 500ms) and two relabeling drops; in pool A one dropped as not on
// this node, and a duplicate of the healthy target from pool B.
func newEndpointEnv(t *testing.T, keepDropped int) *endpointEnv {
	t.Helper()
	e := exporter.New()
	e.Family("g", exporter.Gauge, "").Set("", 1)
	up, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not today", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)

	logs := &countingHandler{}
	m := NewManager(Config{
		Store:              deltastore.New(deltastore.Config{Logger: slog.New(slog.DiscardHandler)}),
		Backend:            &recBackend{},
		Logger:             slog.New(logs),
		KeepDroppedTargets: keepDropped,
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		m.Wait()
		m.cfg.Transport.(*http.Transport).CloseIdleConnections()
	})
	disc := func(pod, addr string) labels.Labels {
		return labels.FromStrings("__address__", addr, "__meta_kubernetes_namespace", "shop", "__meta_kubernetes_pod_name", pod)
	}
	env := &endpointEnv{mgr: m, logs: logs, upURL: "http://" + up.Addr() + "/metrics", downURL: down.URL + "/metrics"}
	upTarget := target.Target{URL: env.upURL, Labels: labels.FromStrings("instance", up.Addr(), "job", "web"), Interval: time.Second, Timeout: 900 * time.Millisecond,
		Discovered: disc("web-1", up.Addr()), Source: "ServiceMonitor shop/web", Pool: poolA}
	// The same target from another monitor. Of two, the smaller key runs:
	// keys differ first in the Source, whose length comes first, so the
	// longer one is dropped.
	dup := upTarget
	dup.Source, dup.Pool = "PodMonitor shop/worker-metrics", poolB
	env.targets = []target.Target{
		upTarget,
		{URL: env.downURL, Labels: labels.FromStrings("instance", strings.TrimPrefix(down.URL, "http://"), "job", "web"), Interval: time.Second, Timeout: 900 * time.Millisecond,
			Discovered: disc("web-2", strings.TrimPrefix(down.URL, "http://")), Source: "ServiceMonitor shop/web", Pool: poolA},
		{URL: "http://127.0.0.1:9/metrics", Labels: labels.FromStrings("instance", "127.0.0.1:9", "job", "worker"), Interval: 500 * time.Millisecond, Timeout: 100 * time.Millisecond,
			Discovered: disc("worker-1", "127.0.0.1:9"), Source: "PodMonitor shop/worker", Pool: poolB},
		{Discovered: disc("db-1", "127.0.0.2:5432"), Source: "PodMonitor shop/worker", Pool: poolB, Drop: target.Drop{Reason: target.DroppedByRelabeling}},
		{Discovered: disc("db-2", "127.0.0.3:5432"), Source: "PodMonitor shop/worker", Pool: poolB, Drop: target.Drop{Reason: target.DroppedByRelabeling}},
		{URL: "http://10.9.9.9:80/metrics", Discovered: disc("elsewhere", "10.9.9.9:80"), Source: "ServiceMonitor shop/web", Pool: poolA,
			Drop: target.Drop{Reason: target.DroppedNotOnNode, Detail: "10.9.9.9 is not an address of this node"}},
		dup,
	}
	m.Sync(ctx, env.targets)

	problems := func() []Problem {
		return []Problem{{Object: "ServiceMonitor shop/broken", Reason: `secret shop/creds: key "token" not found`}}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/targets", m.APITargetsHandler(problems))
	mux.Handle("GET /targets", m.TargetsHandler(PageInfo{Node: "node-7", Version: "v1.2.3-test", Started: time.Now().Add(-90 * time.Minute), APIPath: "/api/v1/targets", Problems: problems}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	env.base = srv.URL
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	env.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}

	// Both running targets scraped at least once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		health := map[string]string{}
		for _, s := range m.Targets() {
			health[s.URL] = s.Health
		}
		if health[env.upURL] == "up" && health[env.downURL] == "down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets not scraped within 10s: %v", health)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return env
}

func (e *endpointEnv) get(t *testing.T, path string) (string, http.Header) {
	t.Helper()
	resp, err := e.client.Get(e.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b), resp.Header
}

// TestTargetsAPIQueries: ?state and ?scrapePool select as Prometheus' API
// does; droppedTargetCounts counts every pool whatever scrapePool says.
func TestTargetsAPIQueries(t *testing.T) {
	env := newEndpointEnv(t, 0)
	allDropped := map[string]int{poolA: 1, poolB: 4} // B: refused, 2 by relabeling, the duplicate
	cases := []struct {
		query         string
		active        []string // scrape URLs
		droppedPools  map[string]int
		counts        map[string]int // nil: the field is null
		rejectedCount int
	}{
		{"", []string{env.upURL, env.downURL}, allDropped, allDropped, 1},
		{"?state=any", []string{env.upURL, env.downURL}, allDropped, allDropped, 1},
		{"?state=active", []string{env.upURL, env.downURL}, nil, nil, 1},
		{"?state=Active", []string{env.upURL, env.downURL}, nil, nil, 1},
		{"?state=dropped", nil, allDropped, allDropped, 1},
		{"?state=nonsense", nil, nil, nil, 1},
		{"?scrapePool=" + poolA, []string{env.upURL, env.downURL}, map[string]int{poolA: 1}, allDropped, 1},
		{"?scrapePool=" + poolB + "&state=dropped", nil, map[string]int{poolB: 4}, allDropped, 1},
		{"?scrapePool=" + poolB + "&state=active", nil, nil, nil, 1},
		{"?scrapePool=nope", nil, nil, allDropped, 1},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			body, h := env.get(t, "/api/v1/targets"+c.query)
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var resp struct {
				Status string `json:"status"`
				Data   struct {
					Active              []struct{ ScrapeURL string }      `json:"activeTargets"`
					Dropped             []struct{ ScrapePool string }     `json:"droppedTargets"`
					DroppedTargetCounts map[string]int                    `json:"droppedTargetCounts"`
					Rejected            []struct{ Object, Reason string } `json:"rejectedMonitors"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Status != "success" {
				t.Errorf("status %q", resp.Status)
			}
			var active []string
			for _, a := range resp.Data.Active {
				active = append(active, a.ScrapeURL)
			}
			slices.Sort(active)
			want := slices.Sorted(slices.Values(c.active))
			if !slices.Equal(active, want) {
				t.Errorf("active %v, want %v", active, want)
			}
			pools := map[string]int{}
			for _, d := range resp.Data.Dropped {
				pools[d.ScrapePool]++
			}
			if len(pools) != len(c.droppedPools) || (len(pools) > 0 && !reflect.DeepEqual(pools, c.droppedPools)) {
				t.Errorf("dropped per pool %v, want %v", pools, c.droppedPools)
			}
			if !reflect.DeepEqual(resp.Data.DroppedTargetCounts, c.counts) {
				t.Errorf("droppedTargetCounts %v, want %v", resp.Data.DroppedTargetCounts, c.counts)
			}
			if len(resp.Data.Rejected) != c.rejectedCount {
				t.Errorf("rejected monitors %v", resp.Data.Rejected)
			}
			// Empty lists are [], not null, as in Prometheus.
			for _, k := range []string{`"activeTargets":[`, `"droppedTargets":[`} {
				if !strings.Contains(body, k) {
					t.Errorf("body lacks %s: %s", k, body)
				}
			}
		})
	}
}

// TestTargetsAPIPrometheusTypes decodes /api/v1/targets into the Prometheus
// client's own types, and checks that every JSON field of Prometheus' server
// types (web/api/v1 Target, DroppedTarget, TargetDiscovery, read from the
// Prometheus module's source) is there, filled.
func TestTargetsAPIPrometheusTypes(t *testing.T) {
	env := newEndpointEnv(t, 0)
	body, _ := env.get(t, "/api/v1/targets")

	var resp struct {
		Status string               `json:"status"`
		Data   promv1.TargetsResult `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("into the Prometheus client's TargetsResult: %v", err)
	}
	byURL := map[string]promv1.ActiveTarget{}
	for _, a := range resp.Data.Active {
		byURL[a.ScrapeURL] = a
	}
	down, ok := byURL[env.downURL]
	if !ok {
		t.Fatalf("no active target %s in %+v", env.downURL, resp.Data.Active)
	}
	// Every field of the failing target is set (lastError included).
	v := reflect.ValueOf(down)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("failing target: %s is empty", v.Type().Field(i).Name)
		}
	}
	if down.Health != promv1.HealthBad || !strings.Contains(down.LastError, "503") {
		t.Errorf("failing target: health %q, lastError %q", down.Health, down.LastError)
	}
	if down.ScrapePool != poolA || down.DiscoveredLabels["__meta_kubernetes_pod_name"] != "web-2" || down.Labels["job"] != "web" {
		t.Errorf("failing target: %+v", down)
	}
	if d := time.Since(down.LastScrape); d < 0 || d > time.Minute {
		t.Errorf("lastScrape %s", down.LastScrape)
	}
	up := byURL[env.upURL]
	if up.Health != promv1.HealthGood || up.LastError != "" || up.LastScrapeDuration <= 0 || up.LastScrapeDuration > 1 {
		t.Errorf("healthy target: %+v", up)
	}
	if len(resp.Data.Dropped) != 5 {
		t.Errorf("%d dropped targets, want 5", len(resp.Data.Dropped))
	}
	for _, d := range resp.Data.Dropped {
		if d.DiscoveredLabels["__address__"] == "" {
			t.Errorf("dropped target without discovered labels: %+v", d)
		}
	}

	// The server side's fields, by their JSON names.
	fields := prometheusJSONFields(t, "Target", "DroppedTarget", "TargetDiscovery")
	var raw struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range fields["TargetDiscovery"] {
		if filled(raw.Data[f]) == "" {
			t.Errorf("data.%s missing or empty", f)
		}
	}
	var active, dropped []map[string]json.RawMessage
	if err := json.Unmarshal(raw.Data["activeTargets"], &active); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw.Data["droppedTargets"], &dropped); err != nil {
		t.Fatal(err)
	}
	for _, a := range active {
		if filled(a["scrapeUrl"]) != strconv.Quote(env.downURL) {
			continue
		}
		for _, f := range fields["Target"] {
			if filled(a[f]) == "" {
				t.Errorf("failing active target: %s missing or empty", f)
			}
		}
		if s := filled(a["scrapeInterval"]); s != `"1s"` {
			t.Errorf("scrapeInterval %s, want Prometheus' \"1s\"", s)
		}
		if s := filled(a["scrapeTimeout"]); s != `"900ms"` {
			t.Errorf("scrapeTimeout %s, want Prometheus' \"900ms\"", s)
		}
	}
	for _, d := range dropped {
		for _, f := range fields["DroppedTarget"] {
			if filled(d[f]) == "" {
				t.Errorf("dropped target %s: %s missing or empty", d["discoveredLabels"], f)
			}
		}
		if filled(d["dropReason"]) == "" {
			t.Errorf("dropped target %s: no dropReason", d["discoveredLabels"])
		}
	}
}

// filled returns the JSON value unless it is absent or empty.
func filled(v json.RawMessage) string {
	switch s := strings.TrimSpace(string(v)); s {
	case "", "null", `""`, "{}", "[]", "0":
		return ""
	default:
		return s
	}
}

// prometheusJSONFields reads the named struct types of Prometheus'
// web/api/v1/api.go, in the Prometheus module this one builds with, and
// returns their JSON field names.
func prometheusJSONFields(t *testing.T, types ...string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	if err != nil {
		t.Fatalf("locating the Prometheus module: %v", err)
	}
	file := filepath.Join(strings.TrimSpace(string(out)), "web", "api", "v1", "api.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || !slices.Contains(types, ts.Name.Name) {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return true
		}
		for _, fl := range st.Fields.List {
			if fl.Tag == nil {
				continue
			}
			tag, _ := strconv.Unquote(fl.Tag.Value)
			name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
			if name != "" && name != "-" {
				fields[ts.Name.Name] = append(fields[ts.Name.Name], name)
			}
		}
		return false
	})
	for _, ty := range types {
		if len(fields[ty]) == 0 {
			t.Fatalf("no JSON fields of %s in %s", ty, file)
		}
	}
	return fields
}

// TestRefusedTargetIsDropped: a target whose settings a loop refuses is a
// dropped target with the reason, logged once however often Sync sees it.
func TestRefusedTargetIsDropped(t *testing.T) {
	env := newEndpointEnv(t, 0)
	env.mgr.Sync(context.Background(), env.targets) // the same set again
	ds, _ := env.mgr.Dropped()
	var got []DroppedTarget
	for _, d := range ds {
		if d.Reason == target.DroppedRefused {
			got = append(got, d)
		}
	}
	if len(got) != 1 || got[0].URL != "http://127.0.0.1:9/metrics" || got[0].Pool != poolB ||
		!strings.Contains(got[0].Detail, "interval 500ms must be at least 1s") || got[0].Discovered.Get("__meta_kubernetes_pod_name") != "worker-1" {
		t.Fatalf("refused targets: %+v", got)
	}
	if n := env.logs.count("cannot scrape target"); n != 1 {
		t.Errorf("refusal logged %d times over two Syncs, want once", n)
	}
	for _, s := range env.mgr.Targets() {
		if s.URL == got[0].URL {
			t.Errorf("the refused target runs: %+v", s)
		}
	}
}

// TestKeepDroppedTargets: past the bound a pool's dropped targets are
// counted, not kept.
func TestKeepDroppedTargets(t *testing.T) {
	env := newEndpointEnv(t, 2)
	ds, counts := env.mgr.Dropped()
	per := map[string]int{}
	for _, d := range ds {
		per[d.Pool]++
	}
	if per[poolA] != 1 || per[poolB] != 2 || counts[poolA] != 1 || counts[poolB] != 4 {
		t.Errorf("kept %v, counted %v; want A 1/1, B 2/4", per, counts)
	}
	body, _ := env.get(t, "/targets")
	if !strings.Contains(body, "Showing 3 of 5") {
		t.Errorf("page does not say it shows 3 of 5 dropped targets")
	}
}

// TestTargetsPage reads the HTML page over HTTP.
func TestTargetsPage(t *testing.T) {
	env := newEndpointEnv(t, 0)
	cases := []struct {
		query      string
		want, not  []string
		wantTarget []string // data-health of the listed targets, in order
	}{
		{"", []string{
			`<strong id="node">node-7</strong>`, `<span id="version">v1.2.3-test</span>`, `<span id="uptime">1h30m`,
			`<section class="pool" data-pool="` + poolA + `"><h2>` + poolA + ` <small>(1/2 up)</small>`,
			`<a href="` + env.upURL + `">`, `<a href="` + env.downURL + `">`, `server returned HTTP status 503`,
			`<a href="?" class="on">all (2)</a>`, `up (1)`, `down (1)`,
			`<details id="dropped"><summary>Dropped targets (5)</summary>`,
			`<td>` + poolB + `</td><td>refused setting</td><td>target http://127.0.0.1:9/metrics: interval 500ms must be at least 1s`,
			`<td>` + poolB + `</td><td>relabeling</td>`, `__meta_kubernetes_pod_name=&#34;db-1&#34;`,
			`<td>` + poolA + `</td><td>not on this node</td><td>10.9.9.9 is not an address of this node`,
			`<td>` + poolB + `</td><td>duplicate</td><td>the same target (URL and labels) runs from ServiceMonitor shop/web<br>`,
			`<section id="rejected">`, `<td>ServiceMonitor shop/broken</td><td class="down">secret shop/creds: key &#34;token&#34; not found</td>`,
			`<a href="/api/v1/targets">`,
		}, []string{`<details id="dropped" open`, `<script`, `<link`, ` src=`, `@import`, `url(`}, []string{"up", "down"}},
		{"?health=up", []string{`<a href="?health=up" class="on">up (1)</a>`}, []string{`server returned HTTP status 503`}, []string{"up"}},
		{"?health=down", []string{`server returned HTTP status 503`, `(1/2 up)`}, nil, []string{"down"}},
		{"?health=bogus", []string{`<a href="?" class="on">`}, nil, []string{"up", "down"}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			body, h := env.get(t, "/targets"+c.query)
			if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %s", w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(body, n) {
					t.Errorf("page has %s", n)
				}
			}
			var health []string
			for _, part := range strings.Split(body, `<tr class="target" data-health="`)[1:] {
				hv, _, _ := strings.Cut(part, `"`)
				health = append(health, hv)
			}
			slices.Sort(health)
			want := slices.Sorted(slices.Values(c.wantTarget))
			if !slices.Equal(health, want) {
				t.Errorf("targets listed by health %v, want %v", health, want)
			}
			if t.Failed() {
				t.Log(body)
			}
		})
	}
}

// TestPoolMetrics: per-pool series follow the pools' targets and go with
// the pool; durations are Prometheus histograms with le buckets.
func TestPoolMetrics(t *testing.T) {
	env := newEndpointEnv(t, 0)
	set := env.mgr.Metrics()
	for _, c := range []struct {
		name string
		want float64 // -1: present, any value
	}{
		{`nodescraper_scrape_pool_targets{pool="` + poolA + `",health="up"}`, 1},
		{`nodescraper_scrape_pool_targets{pool="` + poolA + `",health="down"}`, 1},
		{`nodescraper_scrape_pool_targets{pool="` + poolA + `",health="unknown"}`, 0},
		{`nodescraper_scrape_pool_dropped_targets{pool="` + poolB + `",reason="relabeling"}`, 2},
		{`nodescraper_scrape_pool_dropped_targets{pool="` + poolB + `",reason="refused setting"}`, 1},
		{`nodescraper_scrape_pool_dropped_targets{pool="` + poolB + `",reason="duplicate"}`, 1},
		{`nodescraper_scrape_pool_dropped_targets{pool="` + poolA + `",reason="not on this node"}`, 1},
		{`nodescraper_scrape_pool_duration_seconds_bucket{pool="` + poolA + `",le="+Inf"}`, -1},
		{`nodescraper_scrape_duration_seconds_bucket{le="+Inf"}`, -1},
	} {
		got := metricValue(t, set, c.name)
		if (c.want < 0 && got < 1) || (c.want >= 0 && got != c.want) {
			t.Errorf("%s = %g, want %g", c.name, got, c.want)
		}
	}
	scrapes := metricValue(t, set, `nodescraper_scrape_pool_scrapes_total{pool="`+poolA+`"}`)
	failures := metricValue(t, set, `nodescraper_scrape_pool_scrape_failures_total{pool="`+poolA+`"}`)
	if scrapes < 2 || failures < 1 || failures >= scrapes {
		t.Errorf("pool A: %g scrapes, %g failures; want both targets' scrapes and the failing one's failures", scrapes, failures)
	}
	var b strings.Builder
	set.WritePrometheus(&b)
	if strings.Contains(b.String(), "vmrange") {
		t.Error("a histogram still has vmrange buckets")
	}

	// Pool A's targets go: its series go with them.
	env.mgr.Sync(context.Background(), env.targets[2:5])
	b.Reset()
	set.WritePrometheus(&b)
	if strings.Contains(b.String(), `pool="`+poolA+`"`) {
		t.Errorf("pool A's series stay after its targets went:\n%s", b.String())
	}
}

// countingHandler counts log records by message.
type countingHandler struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgs == nil {
		h.msgs = map[string]int{}
	}
	h.msgs[r.Message]++
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.msgs[msg]
}

// TestMetricsHelp: every metric of the manager, per-pool ones included, has
// HELP text.
func TestMetricsHelp(t *testing.T) {
	env := newEndpointEnv(t, 0)
	help := env.mgr.MetricsHelp()
	names := append(env.mgr.Metrics().ListMetricNames(), poolTargetsName, poolDroppedName)
	(&loop{cfg: env.mgr.cfg}).countIncomplete(incompleteGzip) // created on first use
	names = append(names, env.mgr.Metrics().ListMetricNames()...)
	for _, name := range names {
		family, _, _ := strings.Cut(name, "{")
		if help[family] == "" {
			t.Errorf("%s has no HELP text", family)
		}
	}
}
