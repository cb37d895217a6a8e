package filesd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel/target"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, file, want, err string
	}{
		{name: "yaml", file: `
- targets: ["127.0.0.1:9100", "127.0.0.2:9100"]
  labels: {team: a}
- targets: ["127.0.0.3:8443"]
  labels: {__scheme__: https, __metrics_path__: /m, job: app, __scrape_interval__: 10s}
`, want: `http://127.0.0.1:9100/metrics {instance="127.0.0.1:9100", job="static", team="a"} 30s 10s
http://127.0.0.2:9100/metrics {instance="127.0.0.2:9100", job="static", team="a"} 30s 10s
https://127.0.0.3:8443/m {instance="127.0.0.3:8443", job="app"} 10s 10s`},
		{name: "json", file: `[{"targets":["127.0.0.1:1"],"labels":{"__param_x":"y"}}]`,
			want: `http://127.0.0.1:1/metrics?x=y {instance="127.0.0.1:1", job="static"} 30s 10s`},
		{name: "empty list", file: `[]`, want: ``},
		// As in Prometheus' file_sd, an entry that is not a valid target
		// drops that target; the others load.
		{name: "bad target among good ones", file: `[{"targets":["127.0.0.1:1","127.0.0.1:1/x","127.0.0.1:2"]},{"targets":["127.0.0.1:3"]}]`,
			want: `http://127.0.0.1:1/metrics {instance="127.0.0.1:1", job="static"} 30s 10s
dropped (invalid target: group 0 target 1 ("127.0.0.1:1/x"): __address__ "127.0.0.1:1/x" is not a host:port) {__address__="127.0.0.1:1/x", __meta_filepath="f.yaml"}
http://127.0.0.1:2/metrics {instance="127.0.0.1:2", job="static"} 30s 10s
http://127.0.0.1:3/metrics {instance="127.0.0.1:3", job="static"} 30s 10s`},
		{name: "bad group settings drop the group's targets", file: `
- targets: ["127.0.0.1:1"]
  labels: {__scrape_interval__: often}
- targets: ["127.0.0.1:2"]
  labels: {__scheme__: ftp}
- targets: ["127.0.0.1:3"]
  labels: {__scrape_interval__: 5s, __scrape_timeout__: 6s}
- targets: ["127.0.0.1:4"]
`, want: `dropped (invalid target: group 0 target 0 ("127.0.0.1:1"): __scrape_interval__ "often": not a valid duration string: "often") {__address__="127.0.0.1:1", __meta_filepath="f.yaml", __scrape_interval__="often"}
dropped (invalid target: group 1 target 0 ("127.0.0.1:2"): __scheme__ "ftp": want http or https) {__address__="127.0.0.1:2", __meta_filepath="f.yaml", __scheme__="ftp"}
dropped (invalid target: group 2 target 0 ("127.0.0.1:3"): scrape timeout 6s greater than scrape interval 5s) {__address__="127.0.0.1:3", __meta_filepath="f.yaml", __scrape_interval__="5s", __scrape_timeout__="6s"}
http://127.0.0.1:4/metrics {instance="127.0.0.1:4", job="static"} 30s 10s`},
		// What Prometheus rejects the whole file for.
		{name: "typo in a field", file: `[{"target":["127.0.0.1:1"]}]`, err: `unknown field "target"`},
		{name: "null group", file: "- targets: [\"127.0.0.1:1\"]\n- null\n", err: `group 1 is empty`},
		{name: "not a list", file: `targets: [a]`, err: `cannot unmarshal`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parse(Config{Path: "f.yaml"}, []byte(c.file))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want it to contain %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, tg := range got {
				if tg.Source != "file f.yaml" || tg.Pool != "static" || tg.Discovered.Get("__meta_filepath") != "f.yaml" {
					t.Errorf("target %s: source %q, pool %q, discovered %s", tg.URL, tg.Source, tg.Pool, tg.Discovered)
				}
				if tg.Drop.Reason != "" {
					lines = append(lines, "dropped ("+string(tg.Drop.Reason)+": "+tg.Drop.Detail+") "+tg.Discovered.String())
					continue
				}
				lines = append(lines, tg.URL+" "+tg.Labels.String()+" "+tg.Interval.String()+" "+tg.Timeout.String())
			}
			if s := strings.Join(lines, "\n"); s != c.want {
				t.Fatalf("got\n%s\nwant\n%s", s, c.want)
			}
		})
	}
}

func TestRunReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "targets.yaml")
	write := func(s string) {
		// Write then rename, as a ConfigMap update or an editor would.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(`[{"targets":["127.0.0.1:1"]}]`)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []target.Target, 1)
	done := make(chan struct{})
	go func() { Run(ctx, Config{Path: path, Poll: 10 * time.Millisecond}, out); close(done) }()
	defer func() { cancel(); <-done }()
	next := func() []target.Target {
		select {
		case ts := <-out:
			return ts
		case <-time.After(5 * time.Second):
			t.Fatal("no target set within 5s")
			return nil
		}
	}
	if ts := next(); len(ts) != 1 || ts[0].URL != "http://127.0.0.1:1/metrics" {
		t.Fatalf("first set: %+v", ts)
	}
	write(`not yaml: [`) // broken: previous targets stay, nothing sent
	write(`[{"targets":["127.0.0.1:2","127.0.0.1:3"]}]`)
	if ts := next(); len(ts) != 2 {
		t.Fatalf("after change: %d targets, want 2", len(ts))
	}
	// One bad entry: the good one still loads, the bad one comes as dropped.
	write(`[{"targets":["127.0.0.1:4","127.0.0.1:5/x"]}]`)
	ts := next()
	if len(ts) != 2 || ts[0].URL != "http://127.0.0.1:4/metrics" || ts[0].Drop.Reason != "" ||
		ts[1].Drop.Reason != target.DroppedInvalid || ts[1].Discovered.Get("__address__") != "127.0.0.1:5/x" {
		t.Fatalf("with a bad entry: %+v", ts)
	}
}

// TestMetricsHelp: every metric of Run has HELP text.
func TestMetricsHelp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(path, []byte(`[{"targets":["127.0.0.1:1"]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []target.Target, 1)
	done := make(chan struct{})
	go func() { Run(ctx, Config{Path: path, Metrics: set, Poll: time.Hour}, out); close(done) }()
	<-out
	cancel()
	<-done
	help := MetricsHelp()
	names := set.ListMetricNames()
	if len(names) < 2 {
		t.Fatalf("metrics %v", names)
	}
	for _, name := range names {
		if help[name] == "" {
			t.Errorf("%s has no HELP text", name)
		}
	}
}
