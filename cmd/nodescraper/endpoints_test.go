package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/internal/exporter"
)

// TestEndpoints runs the agent in-process (local mode, dry run) over real
// loopback HTTP and reads each of its endpoints. The file_sd file holds a
// healthy target, a failing one (HTTP 503), an entry that is no valid target
// and one whose interval the agent refuses: the first two run, the other two
// are dropped targets with their reasons, and the rest of the file loads.
func TestEndpoints(t *testing.T) {
	e := exporter.New()
	e.Family("things_total", exporter.Counter, "Things.").Set("", 1)
	up, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	downAddr := strings.TrimPrefix(down.URL, "http://")

	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.yaml")
	file := fmt.Sprintf(`
- targets: [%q, %q, "127.0.0.1:1/not-an-address"]
  labels: {team: core}
- targets: ["127.0.0.1:2"]
  labels: {__scrape_interval__: 500ms, __scrape_timeout__: 100ms}
`, up.Addr(), downAddr)
	if err := os.WriteFile(targets, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, pprofOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("pprof=%v", pprofOn), func(t *testing.T) {
			args := []string{"--static-targets", targets, "--node-name", "node-ep", "--dry-run", "--listen", "127.0.0.1:0",
				"--state-dir", filepath.Join(t.TempDir(), "state"), "--scrape-interval", "1s"}
			if pprofOn {
				args = append(args, "--enable-pprof")
			}
			c, err := parseConfig(args, func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ready := make(chan string, 1)
			done := make(chan error, 1)
			logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
			go func() { done <- run(ctx, c, io.Discard, logger, ready) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			base := "http://" + <-ready
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			get := func(path string) (int, string, string) {
				t.Helper()
				resp, err := client.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
			}

			// Both running targets scraped.
			upURL, downURL := "http://"+up.Addr()+"/metrics", down.URL+"/metrics"
			for deadline := time.Now().Add(15 * time.Second); ; {
				_, _, body := get("/api/v1/targets?state=active")
				var r struct {
					Data struct {
						Active []struct{ ScrapeURL, Health string } `json:"activeTargets"`
					} `json:"data"`
				}
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err)
				}
				health := map[string]string{}
				for _, a := range r.Data.Active {
					health[a.ScrapeURL] = a.Health
				}
				if health[upURL] == "up" && health[downURL] == "down" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("targets not scraped within 15s: %s", body)
				}
				time.Sleep(50 * time.Millisecond)
			}

			pprofStatus := http.StatusNotFound
			if pprofOn {
				pprofStatus = http.StatusOK
			}
			cases := []struct {
				path, contentType string
				status            int
				want              []string
				wantRe            []string
			}{
				{"/healthz", "", http.StatusOK, []string{"ok"}, nil},
				{"/readyz", "", http.StatusOK, []string{"ok"}, nil},
				{"/targets", "text/html; charset=utf-8", http.StatusOK, []string{
					`<strong id="node">node-ep</strong>`, `<span id="version">` + buildVersion() + `</span>`,
					`<section class="pool" data-pool="static">`, `(1/2 up)`, `server returned HTTP status 503`,
					`<td>static</td><td>invalid target</td><td>group 0 target 2 (&#34;127.0.0.1:1/not-an-address&#34;)`,
					`<td>static</td><td>refused setting</td><td>target http://127.0.0.1:2/metrics: interval 500ms must be at least 1s`,
				}, []string{`<span id="uptime">\d`}},
				{"/targets?health=down", "text/html; charset=utf-8", http.StatusOK, []string{downURL}, nil},
				{"/api/v1/targets", "application/json", http.StatusOK, []string{
					`"status":"success"`, `"scrapeUrl":"` + upURL + `"`, `"health":"up"`, `"health":"down"`,
					`"dropReason":"invalid target"`, `"dropReason":"refused setting"`, `"droppedTargetCounts":{"static":2}`,
					`"__meta_filepath":"` + targets + `"`, `"scrapeInterval":"1s"`, `"scrapeTimeout":"1s"`,
				}, nil},
				{"/api/v1/targets?state=dropped&scrapePool=static", "application/json", http.StatusOK, []string{`"activeTargets":[]`, `"dropReason":"refused setting"`}, nil},
				{"/metrics", "text/plain; version=0.0.4; charset=utf-8", http.StatusOK, []string{
					"# HELP nodescraper_scrapes_total Scrapes of all targets",
					"# TYPE nodescraper_scrape_duration_seconds histogram",
					`nodescraper_scrape_pool_targets{pool="static",health="up"} 1`,
					`nodescraper_scrape_pool_targets{pool="static",health="down"} 1`,
					`nodescraper_scrape_pool_dropped_targets{pool="static",reason="invalid target"} 1`,
					`nodescraper_scrape_pool_dropped_targets{pool="static",reason="refused setting"} 1`,
					`nodescraper_static_targets_invalid 1`,
				}, []string{
					`nodescraper_scrape_duration_seconds_bucket\{le="[0-9.e+-]+"\} \d+`,
					`nodescraper_scrape_pool_duration_seconds_bucket\{pool="static",le="\+Inf"\} \d+`,
					`nodescraper_scrape_pool_scrape_failures_total\{pool="static"\} [1-9]`,
				}},
				{"/debug/pprof/", "", pprofStatus, nil, nil},
				{"/debug/pprof/cmdline", "", pprofStatus, nil, nil},
			}
			for _, tc := range cases {
				status, ct, body := get(tc.path)
				if status != tc.status {
					t.Errorf("GET %s: status %d, want %d", tc.path, status, tc.status)
					continue
				}
				if tc.contentType != "" && ct != tc.contentType {
					t.Errorf("GET %s: Content-Type %q, want %q", tc.path, ct, tc.contentType)
				}
				for _, w := range tc.want {
					if !strings.Contains(body, w) {
						t.Errorf("GET %s lacks %s", tc.path, w)
					}
				}
				for _, re := range tc.wantRe {
					if !regexp.MustCompile(re).MatchString(body) {
						t.Errorf("GET %s does not match %s", tc.path, re)
					}
				}
				if tc.path == "/metrics" {
					checkSelfMetrics(t, body)
				}
			}
		})
	}
}

// checkSelfMetrics: every family of the agent's own metrics has HELP text,
// and no histogram has VictoriaMetrics' vmrange buckets.
func checkSelfMetrics(t *testing.T, body string) {
	t.Helper()
	families := 0
	for line := range strings.SplitSeq(body, "\n") {
		name, ok := strings.CutPrefix(line, "# HELP nodescraper_")
		if !ok {
			continue
		}
		families++
		if !strings.Contains(name, " ") {
			t.Errorf("no HELP text for nodescraper_%s", name)
		}
	}
	if families < 10 {
		t.Errorf("only %d nodescraper_ families with HELP lines", families)
	}
	if strings.Contains(body, "vmrange") {
		t.Error("/metrics has vmrange histogram buckets")
	}
}
