package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/nodescraper/nodescraper/internal/controlplane"
	"github.com/nodescraper/nodescraper/internal/exporter"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestTargetsPageInBrowser opens the agent's /targets page in headless
// Chromium and checks what a user sees there. The real binary runs in
// Kubernetes mode against a real control plane, where node-br holds three
// pods: web (an exporter: a healthy target), flaky (answers 503: a failing
// target) and batch, whose Service the ServiceMonitor "shop" selects and a
// relabeling of it drops (a target dropped by relabeling; a Service no
// monitor selects is not discovered at all). The ServiceMonitor "private"
// needs a Secret that does not exist: a rejected monitor. The test reads the
// page as rendered, opens the collapsed dropped targets, narrows the list
// with the health filter, and writes full-page screenshots as test
// artifacts ($NODESCRAPER_ARTIFACTS, else t.ArtifactDir: keep them with
// go test -artifacts).
func TestTargetsPageInBrowser(t *testing.T) {
	browser := chromiumPath(t) // before anything slow: a missing browser fails at once
	const ns, node = "shop", "node-br"
	const monitor, rejectedMonitor = "shop", "private"
	pool := fmt.Sprintf("serviceMonitor/%s/%s/0", ns, monitor) // the Operator's job name
	cp := controlplane.ForTest(t, controlplane.Config{})
	ctx := t.Context()
	if _, err := cp.CreateNode(ctx, node, netip.MustParseAddr("127.0.1.121"), nil); err != nil {
		t.Fatal(err)
	}

	web := exporter.New()
	web.Family("orders_total", exporter.Counter, "Orders.").Set(`state="paid"`, 7) // its one sample
	webAddr := servePod(t, "127.0.0.121", web)
	flakyAddr := servePod(t, "127.0.0.122", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	webURL, flakyURL := "http://"+webAddr+"/metrics", "http://"+flakyAddr+"/metrics"

	pods := []struct {
		name, ip, addr string
		scrape         string // the Service's label the monitor's relabeling drops on
	}{
		{"web", "127.0.0.121", webAddr, "yes"},
		{"flaky", "127.0.0.122", flakyAddr, "yes"},
		{"batch", "127.0.0.123", "127.0.0.123:9100", "no"}, // never scraped: nothing listens
	}
	for _, p := range pods {
		_, port, err := net.SplitHostPort(p.addr)
		if err != nil {
			t.Fatal(err)
		}
		var n int32
		if _, err := fmt.Sscan(port, &n); err != nil {
			t.Fatalf("port of %s: %v", p.addr, err)
		}
		pod := controlplane.Pod(ns, p.name+"-0", node, map[string]string{"app": p.name},
			corev1.ContainerPort{Name: "metrics", ContainerPort: n, Protocol: corev1.ProtocolTCP})
		if _, err := cp.CreatePod(ctx, pod, controlplane.PodStatus{IP: netip.MustParseAddr(p.ip)}); err != nil {
			t.Fatal(err)
		}
		svc := controlplane.Service(ns, p.name, map[string]string{"app": p.name}, controlplane.ServicePort("metrics", 80, "metrics"))
		svc.Labels = map[string]string{"app": p.name, "scrape": p.scrape}
		if err := cp.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	private := controlplane.ServiceMonitor(ns, rejectedMonitor, map[string]string{"app": "web"}, monitoringv1.Endpoint{Port: "metrics", Interval: "1s"})
	private.Spec.Endpoints[0].BasicAuth = &monitoringv1.BasicAuth{
		Username: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "user"},
		Password: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"},
	}
	if err := cp.Create(ctx,
		controlplane.ServiceMonitor(ns, monitor, nil, monitoringv1.Endpoint{Port: "metrics", Interval: "1s",
			RelabelConfigs: []monitoringv1.RelabelConfig{{Action: "drop", SourceLabels: []monitoringv1.LabelName{"__meta_kubernetes_service_label_scrape"}, Regex: "no"}}}),
		private,
	); err != nil {
		t.Fatal(err)
	}
	wantRejected := fmt.Sprintf("ServiceMonitor %s/%s", ns, rejectedMonitor)
	const wantReason = "secret shop/creds not found"

	agent := startAgent(t, "agent", []string{}, "--kubeconfig", cp.Kubeconfig, "--node-name", node, "--dry-run",
		"--state-dir", filepath.Join(t.TempDir(), "state"))
	version := agentVersion(t)

	// The page is read once the API says everything is in place: both
	// targets scraped, the drop and the rejection known.
	waitTargetsAPI(t, agent, func(s apiState) bool {
		return s.health[webURL] == "up" && s.health[flakyURL] == "down" && len(s.dropped) == 1 && len(s.rejected) == 1
	})

	chrome := newBrowser(t, browser)
	base := "http://" + agent.addr + "/targets"
	outDir := artifactDir(t)

	// All targets, the dropped ones collapsed.
	chrome.do(chromedp.Navigate(base))
	v := chrome.view()
	if v.Title != "nodescraper targets on "+node {
		t.Errorf("title %q", v.Title)
	}
	if v.Node != node || v.Version != version {
		t.Errorf("agent line says node %q, version %q; want %q, %q", v.Node, v.Version, node, version)
	}
	if !regexp.MustCompile(`^\d+(\.\d+)?(h|m|s)`).MatchString(v.Uptime) {
		t.Errorf("uptime %q is not a duration", v.Uptime)
	}
	if v.FilterOn != "all (2)" || !slices.Contains(v.Filters, "down (1)") || !slices.Contains(v.Filters, "up (1)") {
		t.Errorf("filter shows %q (current %q), want all (2), up (1), down (1) with all current", v.Filters, v.FilterOn)
	}
	checkPools(t, "all", v, pool, map[string]string{webURL: "up", flakyURL: "down"})
	checkRow(t, "healthy target", v.visibleTarget(webURL), "up", "1", `job="web"`, `namespace="shop"`, `pod="web-0"`, `service="web"`)
	checkRow(t, "failing target", v.visibleTarget(flakyURL), "down", "0", `pod="flaky-0"`, "server returned HTTP status 503")
	if len(v.Rejected) != 1 || !v.Rejected[0].Visible || len(v.Rejected[0].Cells) != 2 ||
		v.Rejected[0].Cells[0] != wantRejected || !strings.Contains(v.Rejected[0].Cells[1], wantReason) {
		t.Errorf("rejected monitors shown: %+v; want %s: …%s", v.Rejected, wantRejected, wantReason)
	}
	if !strings.Contains(v.RejectedHeading, "Rejected monitors (1)") {
		t.Errorf("rejected heading %q", v.RejectedHeading)
	}
	if v.DroppedOpen || v.DroppedSummary != "Dropped targets (1)" {
		t.Errorf("dropped targets: open %v, summary %q; want closed, \"Dropped targets (1)\"", v.DroppedOpen, v.DroppedSummary)
	}
	if len(v.Dropped) != 1 || v.Dropped[0].Visible || strings.Contains(v.Body, "relabeling") {
		t.Errorf("a collapsed dropped target is visible: %+v", v.Dropped)
	}

	// A click opens the dropped targets: the reason is visible.
	chrome.do(chromedp.Click(chromedp.CSS("details#dropped > summary")), chromedp.WaitVisible(chromedp.CSS("tr.dropped")))
	v = chrome.view()
	if !v.DroppedOpen || len(v.Dropped) != 1 {
		t.Fatalf("after the click: open %v, dropped rows %+v", v.DroppedOpen, v.Dropped)
	}
	d := v.Dropped[0]
	if len(d.Cells) != 4 {
		t.Fatalf("dropped target row has %d cells: %+v", len(d.Cells), d)
	}
	if !d.Visible || d.Reason != "relabeling" || d.Cells[0] != pool || d.Cells[1] != "relabeling" {
		t.Errorf("dropped target shown as %+v; want pool %s, reason relabeling", d, pool)
	}
	for _, l := range []string{`__meta_kubernetes_service_name="batch"`, `__meta_kubernetes_pod_name="batch-0"`, `__meta_kubernetes_service_label_scrape="no"`} {
		if !strings.Contains(d.Cells[3], l) {
			t.Errorf("dropped target's discovered labels lack %s: %s", l, d.Cells[3])
		}
	}
	chrome.screenshot(filepath.Join(outDir, "targets.png"))

	// The filter: "down" leaves only the failing target.
	chrome.clickToLoad(`#filter a[href="?health=down"]`)
	v = chrome.view()
	if !strings.HasSuffix(v.Location, "/targets?health=down") {
		t.Errorf("after clicking down: at %s", v.Location)
	}
	if v.FilterOn != "down (1)" {
		t.Errorf("current filter %q, want down (1)", v.FilterOn)
	}
	checkPools(t, "down", v, pool, map[string]string{flakyURL: "down"})
	checkRow(t, "failing target (down)", v.visibleTarget(flakyURL), "down", "0", "server returned HTTP status 503")
	if strings.Contains(v.Body, webURL) {
		t.Errorf("the healthy target %s is still shown under down", webURL)
	}
	if len(v.Rejected) != 1 || !v.Rejected[0].Visible {
		t.Errorf("the rejected monitor is not shown under down: %+v", v.Rejected)
	}
	chrome.screenshot(filepath.Join(outDir, "targets-down.png"))
}

// pageView is what the page shows, as the browser rendered it.
type pageView struct {
	Title           string    `json:"title"`
	Location        string    `json:"location"`
	Body            string    `json:"body"` // the visible text
	Node            string    `json:"node"`
	Version         string    `json:"version"`
	Uptime          string    `json:"uptime"`
	Filters         []string  `json:"filters"`
	FilterOn        string    `json:"filterOn"`
	Pools           []poolRow `json:"pools"`
	RejectedHeading string    `json:"rejectedHeading"`
	Rejected        []pageRow `json:"rejected"`
	DroppedOpen     bool      `json:"droppedOpen"`
	DroppedSummary  string    `json:"droppedSummary"`
	Dropped         []pageRow `json:"dropped"`
}

type poolRow struct {
	Pool    string    `json:"pool"`
	Heading string    `json:"heading"`
	Targets []pageRow `json:"targets"`
}

// pageRow is a table row: its data-* attribute, whether it is visible, the
// text of its cells.
type pageRow struct {
	Health  string   `json:"health"`
	Reason  string   `json:"reason"`
	Visible bool     `json:"visible"`
	Cells   []string `json:"cells"`
}

// readPage is the script that fills a pageView.
const readPage = `(() => {
  const text = sel => { const e = document.querySelector(sel); return e ? e.innerText.trim() : ""; };
  const rows = (root, sel) => [...root.querySelectorAll(sel)].map(r => ({
    health: r.dataset.health || "", reason: r.dataset.reason || "", visible: r.checkVisibility(),
    cells: [...r.cells].map(c => c.innerText.trim()),
  }));
  return {
    title: document.title, location: location.href, body: document.body.innerText,
    node: text("#node"), version: text("#version"), uptime: text("#uptime"),
    filters: [...document.querySelectorAll("#filter a")].map(a => a.innerText.trim()),
    filterOn: text("#filter a.on"),
    pools: [...document.querySelectorAll("section.pool")].map(s => ({
      pool: s.dataset.pool, heading: s.querySelector("h2").innerText.trim(), targets: rows(s, "tr.target"),
    })),
    rejectedHeading: text("#rejected h2"), rejected: rows(document, "#rejected tr.rejected"),
    droppedOpen: document.querySelector("details#dropped").open,
    droppedSummary: text("details#dropped > summary"), dropped: rows(document, "tr.dropped"),
  };
})()`

// visibleTarget is the visible target row whose endpoint is url.
func (v pageView) visibleTarget(url string) *pageRow {
	for _, p := range v.Pools {
		for i, r := range p.Targets {
			if r.Visible && len(r.Cells) > 0 && strings.HasPrefix(r.Cells[0], url) {
				return &p.Targets[i]
			}
		}
	}
	return nil
}

// checkPools: the page shows pool alone, with its up count of both targets,
// and exactly the target rows of want (URL → health), all visible.
func checkPools(t *testing.T, view string, v pageView, pool string, want map[string]string) {
	t.Helper()
	if len(v.Pools) != 1 || v.Pools[0].Pool != pool {
		t.Errorf("%s: pools %+v, want %s alone", view, v.Pools, pool)
		return
	}
	if p := v.Pools[0]; p.Heading != pool+" (1/2 up)" {
		t.Errorf("%s: pool heading %q, want %q", view, p.Heading, pool+" (1/2 up)")
	}
	got := map[string]string{}
	for _, r := range v.Pools[0].Targets {
		if !r.Visible {
			t.Errorf("%s: target row not visible: %+v", view, r)
		}
		if len(r.Cells) != 8 {
			t.Errorf("%s: target row has %d cells: %+v", view, len(r.Cells), r)
			continue
		}
		url, _, _ := strings.Cut(r.Cells[0], "\n")
		got[url] = r.Health
	}
	if !maps.Equal(got, want) {
		t.Errorf("%s: targets shown %v, want %v", view, got, want)
	}
}

// checkRow: the row is there, its state cell and data-health say health,
// its samples cell says samples, and its text has each of want.
func checkRow(t *testing.T, what string, r *pageRow, health, samples string, want ...string) {
	t.Helper()
	if r == nil {
		t.Errorf("%s: not shown", what)
		return
	}
	if r.Health != health || r.Cells[1] != health {
		t.Errorf("%s: health %q, state cell %q; want %s", what, r.Health, r.Cells[1], health)
	}
	if r.Cells[5] != samples {
		t.Errorf("%s: %s samples shown, want %s", what, r.Cells[5], samples)
	}
	text := strings.Join(r.Cells, " | ")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s: row lacks %s: %s", what, w, text)
		}
	}
	if health == "up" && r.Cells[7] != "" {
		t.Errorf("%s: error shown for a healthy target: %s", what, r.Cells[7])
	}
	if r.Cells[3] == "never" {
		t.Errorf("%s: never scraped: %s", what, text)
	}
}

// chromiumPath finds headless Chromium. Missing, the test fails: CI
// installs it (.ci/run), and a skipped browser test would hide a broken page.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium for the browser test (chromium, chromium-browser or google-chrome on PATH): " +
		"install it with `apt-get install --no-install-recommends chromium` (.ci/run does)")
	return ""
}

// browser is one headless Chromium with one tab, driven over the DevTools
// protocol; it stops with the test.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab's
	out syncBuffer      // the browser's output, shown when the test fails
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	b := &browser{t: t}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(&b.out),
	)
	tctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Close the browser and wait for its process and chromedp's
		// goroutines to end (goleak checks after the tests).
		cctx, cancel := context.WithTimeout(tctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("closing the browser: %v", err)
		}
		cancel()
		cancelTab()
		cancelAlloc()
		if t.Failed() {
			t.Logf("browser output:\n%s", b.out.String())
		}
	})
	// The first run starts the browser, for as long as tctx lives: no
	// deadline on it.
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("start %s: %v\n%s", path, err, b.out.String())
	}
	b.ctx = tctx
	return b
}

// do runs the actions, each step within 20 s.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// clickToLoad clicks the element sel selects and waits for the page it
// leads to.
func (b *browser) clickToLoad(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		b.t.Fatalf("browser: click %s: %v", sel, err)
	}
}

// view reads what the page shows.
func (b *browser) view() pageView {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[pageView](readPage))
	if err != nil {
		b.t.Fatalf("read the page: %v", err)
	}
	return v
}

// screenshot writes a full-page PNG to path.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// artifactDir is where the test's files go: $NODESCRAPER_ARTIFACTS (made
// if missing), else the test's artifact directory, which go test keeps
// with -artifacts (under -outputdir) and removes otherwise.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("NODESCRAPER_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("NODESCRAPER_ARTIFACTS: %v", err)
		}
		return d
	}
	return t.ArtifactDir()
}

// servePod serves h at a loopback "pod IP" until the test ends and returns
// its address.
func servePod(t *testing.T, ip string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// agentVersion is the version the agent binary reports.
func agentVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(agentBinary(t, raceEnabled), "--version").Output()
	if err != nil {
		t.Fatalf("nodescraper --version: %v", err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "nodescraper ")
	if !ok {
		t.Fatalf("nodescraper --version: %q", out)
	}
	return v
}

// apiState is what the agent's /api/v1/targets says: health by scrape URL,
// the dropped targets' reasons and the rejected monitors.
type apiState struct {
	health   map[string]string
	dropped  []string
	rejected []string
	body     string
}

// waitTargetsAPI polls the agent's /api/v1/targets until ok, for 30 s.
func waitTargetsAPI(t *testing.T, a *agentProc, ok func(apiState) bool) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	var s apiState
	for deadline := time.Now().Add(30 * time.Second); ; {
		s = apiState{health: map[string]string{}}
		if resp, err := client.Get("http://" + a.addr + "/api/v1/targets"); err == nil {
			var r struct {
				Data struct {
					Active []struct {
						ScrapeURL string `json:"scrapeUrl"`
						Health    string `json:"health"`
					} `json:"activeTargets"`
					Dropped []struct {
						Reason string `json:"dropReason"`
					} `json:"droppedTargets"`
					Rejected []struct {
						Object string `json:"object"`
					} `json:"rejectedMonitors"`
				} `json:"data"`
			}
			var b strings.Builder
			err = json.NewDecoder(io.TeeReader(resp.Body, &b)).Decode(&r)
			resp.Body.Close()
			s.body = b.String()
			if err == nil {
				for _, at := range r.Data.Active {
					s.health[at.ScrapeURL] = at.Health
				}
				for _, d := range r.Data.Dropped {
					s.dropped = append(s.dropped, d.Reason)
				}
				for _, rj := range r.Data.Rejected {
					s.rejected = append(s.rejected, rj.Object)
				}
				if ok(s) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/v1/targets not as expected within 30s: %s", s.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
