package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	targets := filepath.Join(dir, "t.yaml")
	keyFile := filepath.Join(dir, "key")
	emptyKey := filepath.Join(dir, "empty")
	for f, s := range map[string]string{targets: "[]", keyFile: " secret-from-file\n", emptyKey: "\n"} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"--static-targets", targets, "--node-name", "n1"}
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		err   string
		check func(*config) string
	}{
		{name: "key from env", args: base, env: map[string]string{"DD_API_KEY": "k"},
			check: func(c *config) string {
				if c.apiKey != "k" || c.apiURL() != "https://api.datadoghq.com" || c.timeout.String() != "10s" || c.host() != "n1" {
					return "unexpected defaults"
				}
				return ""
			}},
		{name: "key from file, site, cluster", args: append([]string{"--cluster-name", "prod"}, base...),
			env: map[string]string{"DD_API_KEY_FILE": keyFile, "DD_SITE": "datadoghq.eu"},
			check: func(c *config) string {
				if c.apiKey != "secret-from-file" || c.apiURL() != "https://api.datadoghq.eu" || c.host() != "n1-prod" {
					return "got key " + c.apiKey + " url " + c.apiURL() + " host " + c.host()
				}
				return ""
			}},
		{name: "node name from env", args: []string{"--static-targets", targets, "--dry-run"}, env: map[string]string{"NODE_NAME": "from-env"},
			check: func(c *config) string {
				if c.nodeName != "from-env" {
					return "node " + c.nodeName
				}
				return ""
			}},
		{name: "dry run needs no key", args: append([]string{"--dry-run"}, base...)},
		{name: "Datadog tags and health defaults", args: append([]string{"--dry-run", "--cluster-name", "eu1"}, base...),
			check: func(c *config) string {
				m := c.mapping()
				if m.Cardinality != ddclient.LowCardinality || !m.ReportSeries || !c.serviceChecks || m.ClusterName != "eu1" || c.metadataInterval != 24*time.Hour {
					return fmt.Sprintf("got %+v, service checks %v, metadata every %s", m, c.serviceChecks, c.metadataInterval)
				}
				return ""
			}},
		{name: "Datadog tag options", args: append([]string{"--dry-run", "--include-labels", "a, b", "--exclude-labels", "c", "--rename-labels", "x=y, p=q", "--report-series=false"}, base...),
			env: map[string]string{"DD_CHECKS_TAG_CARDINALITY": "orchestrator", "NODESCRAPER_SERVICE_CHECKS": "false", "DD_APP_KEY": "app"},
			check: func(c *config) string {
				m := c.mapping()
				if m.Cardinality != ddclient.OrchestratorCardinality || m.ReportSeries || c.serviceChecks || c.appKey != "app" ||
					fmt.Sprint(m.IncludeLabels, m.ExcludeLabels, m.RenameLabels) != "[a b] [c] map[p:q x:y]" {
					return fmt.Sprintf("got %+v, service checks %v, app key %q", m, c.serviceChecks, c.appKey)
				}
				return ""
			}},
		{name: "bad cardinality", args: append([]string{"--dry-run", "--tag-cardinality", "medium"}, base...), err: `--tag-cardinality: tag cardinality "medium": want low, orchestrator or high`},
		{name: "bad rename", args: append([]string{"--dry-run", "--rename-labels", "a"}, base...), err: `--rename-labels "a": "a" is not old=new`},
		{name: "bad bool env", args: append([]string{"--dry-run"}, base...), env: map[string]string{"NODESCRAPER_REPORT_SERIES": "maybe"}, err: `NODESCRAPER_REPORT_SERIES="maybe": not true or false`},
		{name: "no key", args: base, err: "no Datadog API key: set DD_API_KEY or DD_API_KEY_FILE (or use --dry-run)"},
		{name: "empty key file", args: base, env: map[string]string{"DD_API_KEY_FILE": emptyKey}, err: "DD_API_KEY_FILE " + emptyKey + ": file is empty"},
		{name: "missing key file", args: base, env: map[string]string{"DD_API_KEY_FILE": dir + "/nope"}, err: "DD_API_KEY_FILE: open " + dir + "/nope: no such file or directory"},
		{name: "interval too short", args: append([]string{"--dry-run", "--scrape-interval", "500ms"}, base...), err: "--scrape-interval 500ms: must be at least 1s"},
		{name: "timeout above interval", args: append([]string{"--dry-run", "--scrape-interval", "5s", "--scrape-timeout", "6s"}, base...), err: "--scrape-timeout 6s: must be positive and at most --scrape-interval 5s"},
		{name: "bad compression", args: append([]string{"--dry-run", "--compression", "lz4"}, base...), err: `--compression "lz4": want zstd, gzip or none`},
		{name: "bad url", args: append([]string{"--dry-run", "--dd-url", "api.datadoghq.com"}, base...), err: `--dd-url "api.datadoghq.com": want an http:// or https:// URL`},
		{name: "missing targets file", args: []string{"--dry-run", "--static-targets", dir + "/none.yaml"}, err: "--static-targets: stat " + dir + "/none.yaml: no such file or directory"},
		{name: "bad log level", args: append([]string{"--dry-run", "--log-level", "loud"}, base...), err: `--log-level "loud": want debug, info, warn or error`},
		{name: "delta state defaults", args: append([]string{"--dry-run"}, base...),
			check: func(c *config) string {
				if c.checkpointInterval != time.Minute || c.checkpointMaxAge != time.Hour || c.seriesStaleAfter != time.Hour || c.maxSeries != 2_000_000 || c.stateDir != "/var/lib/nodescraper" {
					return fmt.Sprintf("got %s %s %s %d %s", c.checkpointInterval, c.checkpointMaxAge, c.seriesStaleAfter, c.maxSeries, c.stateDir)
				}
				return ""
			}},
		{name: "delta state from env, flag wins", args: append([]string{"--dry-run", "--max-series", "7"}, base...),
			env: map[string]string{"NODESCRAPER_CHECKPOINT_INTERVAL": "0", "NODESCRAPER_CHECKPOINT_MAX_AGE": "10m",
				"NODESCRAPER_SERIES_STALE_AFTER": "90s", "NODESCRAPER_MAX_SERIES": "1000", "NODESCRAPER_STATE_DIR": "/st"},
			check: func(c *config) string {
				if c.checkpointInterval != 0 || c.checkpointMaxAge != 10*time.Minute || c.seriesStaleAfter != 90*time.Second || c.maxSeries != 7 || c.stateDir != "/st" {
					return fmt.Sprintf("got %s %s %s %d %s", c.checkpointInterval, c.checkpointMaxAge, c.seriesStaleAfter, c.maxSeries, c.stateDir)
				}
				return ""
			}},
		{name: "bad duration in env", args: append([]string{"--dry-run"}, base...), env: map[string]string{"NODESCRAPER_CHECKPOINT_INTERVAL": "often"},
			err: `NODESCRAPER_CHECKPOINT_INTERVAL="often": not a duration (e.g. 60s, 5m)`},
		{name: "bad integer in env", args: append([]string{"--dry-run"}, base...), env: map[string]string{"NODESCRAPER_MAX_SERIES": "1e6"},
			err: `NODESCRAPER_MAX_SERIES="1e6": not an integer`},
		{name: "checkpoint interval too short", args: append([]string{"--dry-run", "--checkpoint-interval", "100ms"}, base...),
			err: "--checkpoint-interval 100ms: want 0 (only at shutdown) or at least 1s"},
		{name: "max age", args: append([]string{"--dry-run", "--checkpoint-max-age", "0s"}, base...), err: "--checkpoint-max-age 0s: must be positive"},
		{name: "stale after below the interval", args: append([]string{"--dry-run", "--scrape-interval", "1m", "--series-stale-after", "90s"}, base...),
			err: "--series-stale-after 1m30s: must be at least twice --scrape-interval 1m0s, or series are dropped between scrapes"},
		{name: "max series", args: append([]string{"--dry-run", "--max-series", "0"}, base...), err: "--max-series 0: must be positive"},
		{name: "empty state dir", args: append([]string{"--state-dir", ""}, base...), env: map[string]string{"DD_API_KEY": "k"},
			err: "--state-dir (NODESCRAPER_STATE_DIR) is empty: the delta state needs a directory on the node"},
		{name: "sending defaults", args: append([]string{"--dry-run"}, base...),
			check: func(c *config) string {
				if c.queueBytes() != 64<<20 || c.spoolBytes() != 512<<20 || c.sendConcurrency != 8 || c.shutdownFlush != 10*time.Second {
					return fmt.Sprintf("got %d %d %d %s", c.queueBytes(), c.spoolBytes(), c.sendConcurrency, c.shutdownFlush)
				}
				return ""
			}},
		{name: "sending from env, flag wins", args: append([]string{"--dry-run", "--send-concurrency", "3"}, base...),
			env: map[string]string{"NODESCRAPER_QUEUE_MAX_BYTES": "16MiB", "NODESCRAPER_SPOOL_MAX_BYTES": "0", "NODESCRAPER_SEND_CONCURRENCY": "20",
				"NODESCRAPER_SHUTDOWN_FLUSH_TIMEOUT": "20s"},
			check: func(c *config) string {
				if c.queueBytes() != 16<<20 || c.spoolBytes() != 0 || c.sendConcurrency != 3 || c.shutdownFlush != 20*time.Second {
					return fmt.Sprintf("got %d %d %d %s", c.queueBytes(), c.spoolBytes(), c.sendConcurrency, c.shutdownFlush)
				}
				return ""
			}},
		{name: "bad queue size", args: append([]string{"--dry-run", "--queue-max-bytes", "lots"}, base...), err: `--queue-max-bytes "lots": want a size such as 512MiB`},
		{name: "NaN queue size", args: append([]string{"--dry-run", "--queue-max-bytes", "NaN"}, base...), err: `--queue-max-bytes "NaN": want a size such as 512MiB`},
		{name: "NaN memory limit", args: append([]string{"--dry-run", "--memory-limit", "NaN"}, base...), err: `--memory-limit "NaN": want auto, off, or a size such as 512MiB`},
		{name: "half a byte", args: append([]string{"--dry-run", "--spool-max-bytes", "0.5"}, base...), err: `--spool-max-bytes "0.5": not a whole number of bytes`},
		{name: "spool too small", args: append([]string{"--dry-run", "--spool-max-bytes", "100KiB"}, base...), err: `--spool-max-bytes "100KiB": at least 1MiB, or 0 for no spool`},
		{name: "no senders", args: append([]string{"--dry-run", "--send-concurrency", "0"}, base...), err: "--send-concurrency 0: want 1 to 256"},
		{name: "no shutdown flush", args: append([]string{"--dry-run", "--shutdown-flush-timeout", "0s"}, base...), err: "--shutdown-flush-timeout 0s: must be positive"},
		{name: "stray argument", args: append([]string{"--dry-run", "extra"}, base...), err: `unexpected argument "extra" (all settings are flags)`},
		{name: "unknown flag", args: []string{"--api-key", "x"}, err: "flag provided but not defined: -api-key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			getenv := func(k string) string { return c.env[k] }
			cfg, err := parseConfig(c.args, getenv, io.Discard)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				if msg := c.check(cfg); msg != "" {
					t.Fatal(msg)
				}
			}
		})
	}
}

func TestHelpMentionsEverySetting(t *testing.T) {
	var b strings.Builder
	_, err := parseConfig([]string{"--help"}, func(string) string { return "" }, &b)
	if err == nil {
		t.Fatal("--help returned no error")
	}
	for _, s := range []string{"DD_API_KEY", "DD_API_KEY_FILE", "DD_SITE", "NODE_NAME", "KUBECONFIG", "-static-targets", "-dry-run", "-listen", "-state-dir", "NODESCRAPER_CHECKPOINT_INTERVAL", "NODESCRAPER_CHECKPOINT_MAX_AGE", "NODESCRAPER_SERIES_STALE_AFTER", "NODESCRAPER_MAX_SERIES",
		"DD_CHECKS_TAG_CARDINALITY", "DD_APP_KEY_FILE", "-report-series", "-service-checks", "-include-labels", "-exclude-labels", "-rename-labels"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("--help does not mention %s", s)
		}
	}
}
