package main

import (
	"errors"
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
		{name: "trusted namespaces", args: append([]string{"--dry-run", "--trusted-namespaces", "monitoring, kube-system"}, base...),
			env: map[string]string{"NODESCRAPER_SERVICE_ACCOUNT_DIR": "/tmp/sa"},
			check: func(c *config) string {
				if got := fmt.Sprintf("%v %s", splitList(c.trustedNamespaces), c.serviceAccountDir); got != "[monitoring kube-system] /tmp/sa" {
					return got
				}
				return ""
			}},
		{name: "trusted namespaces from env, default directory", args: append([]string{"--dry-run"}, base...),
			env: map[string]string{"NODESCRAPER_TRUSTED_NAMESPACES": "monitoring"},
			check: func(c *config) string {
				if got := fmt.Sprint(c.trustedNamespaces, " ", c.serviceAccountDir); got != "monitoring /var/run/secrets/kubernetes.io/serviceaccount" {
					return got
				}
				return ""
			}},
		{name: "bad trusted namespace", args: append([]string{"--dry-run", "--trusted-namespaces", "monitoring,Kube_System"}, base...),
			err: `--trusted-namespaces: "Kube_System" is not a namespace name (lowercase letters, digits and '-')`},
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
		{name: "rename into a reserved tag", args: append([]string{"--dry-run", "--rename-labels", "device=disk, environment=env"}, base...),
			err: `--rename-labels "device=disk, environment=env": "environment=env": env is a tag the agent owns (host, env, service, version, kube_*, ...), which no label sets`},
		{name: "bad bool env", args: append([]string{"--dry-run"}, base...), env: map[string]string{"NODESCRAPER_REPORT_SERIES": "maybe"}, err: `NODESCRAPER_REPORT_SERIES="maybe": not true or false`},
		{name: "no key", args: base, err: "no Datadog API key: set DD_API_KEY or DD_API_KEY_FILE (or use --dry-run)"},
		{name: "empty key file", args: base, env: map[string]string{"DD_API_KEY_FILE": emptyKey}, err: "DD_API_KEY_FILE " + emptyKey + ": file is empty"},
		{name: "missing key file", args: base, env: map[string]string{"DD_API_KEY_FILE": dir + "/nope"}, err: "DD_API_KEY_FILE: open " + dir + "/nope: no such file or directory"},
		{name: "interval too short", args: append([]string{"--dry-run", "--scrape-interval", "500ms"}, base...), err: "--scrape-interval 500ms: must be at least 1s"},
		{name: "timeout above interval", args: append([]string{"--dry-run", "--scrape-interval", "5s", "--scrape-timeout", "6s"}, base...), err: "--scrape-timeout 6s: must be positive and at most --scrape-interval 5s"},
		{name: "bad compression", args: append([]string{"--dry-run", "--compression", "lz4"}, base...), err: `--compression "lz4": want zstd, gzip or none`},
		{name: "http url refused", args: append([]string{"--dry-run", "--dd-url", "http://intake.obs:8129"}, base...),
			err: `--dd-url "http://intake.obs:8129": plain http would send the Datadog API key and every series unencrypted; use https://, or pass --allow-insecure-datadog-url (env NODESCRAPER_ALLOW_INSECURE_DATADOG_URL=true) for an intake you trust on the path`},
		{name: "http url allowed by env", args: append([]string{"--dry-run", "--dd-url", "http://intake.obs:8129"}, base...),
			env: map[string]string{"NODESCRAPER_ALLOW_INSECURE_DATADOG_URL": "true"},
			check: func(c *config) string {
				if !c.allowInsecureURL || c.apiURL() != "http://intake.obs:8129" {
					return fmt.Sprintf("allowed %v, URL %s", c.allowInsecureURL, c.apiURL())
				}
				return ""
			}},
		{name: "v3 series to Datadog's site by default", args: append([]string{"--dry-run", "--dd-site", "datadoghq.com"}, base...),
			check: func(c *config) string { return wantSeries(c, true, "https://api.datadoghq.com") }},
		{name: "v2 series to another URL by default", args: append([]string{"--dry-run", "--dd-url", "http://127.0.0.1:1", "--allow-insecure-datadog-url"}, base...),
			check: func(c *config) string { return wantSeries(c, false, "http://127.0.0.1:1") }},
		{name: "v3 series forced by env", args: append([]string{"--dry-run", "--dd-url", "http://127.0.0.1:1", "--allow-insecure-datadog-url"}, base...),
			env:   map[string]string{"DD_USE_V3_API_SERIES_ENABLED": "true"},
			check: func(c *config) string { return wantSeries(c, true, "http://127.0.0.1:1") }},
		{name: "v2 series forced by flag", args: append([]string{"--dry-run", "--dd-site", "datadoghq.com", "--use-v3-api-series", "false"}, base...),
			env:   map[string]string{"DD_USE_V3_API_SERIES_ENABLED": "true"},
			check: func(c *config) string { return wantSeries(c, false, "https://api.datadoghq.com") }},
		{name: "bad v3 series setting", args: append([]string{"--dry-run", "--use-v3-api-series", "sometimes"}, base...),
			err: `--use-v3-api-series: v3 series setting "sometimes": want datadog_only, true or false (or 1, t, yes, on / 0, f, no, off)`},
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

// wantSeries checks the series API chosen for the URL in use.
func wantSeries(c *config, v3 bool, url string) string {
	if c.seriesV3() != v3 || c.apiURL() != url {
		return fmt.Sprintf("v3 %v for %s (--use-v3-api-series %q), want v3 %v for %s", c.seriesV3(), c.apiURL(), c.useV3Series, v3, url)
	}
	return ""
}

func TestHelpMentionsEverySetting(t *testing.T) {
	var b strings.Builder
	_, err := parseConfig([]string{"--help"}, func(string) string { return "" }, &b)
	if err == nil {
		t.Fatal("--help returned no error")
	}
	for _, s := range []string{"DD_API_KEY", "DD_API_KEY_FILE", "DD_SITE", "NODE_NAME", "KUBECONFIG", "-static-targets", "-dry-run", "-listen", "-state-dir", "NODESCRAPER_CHECKPOINT_INTERVAL", "NODESCRAPER_CHECKPOINT_MAX_AGE", "NODESCRAPER_SERIES_STALE_AFTER", "NODESCRAPER_MAX_SERIES",
		"DD_CHECKS_TAG_CARDINALITY", "DD_APP_KEY_FILE", "NODESCRAPER_METADATA_MAX_NAMES", "-report-series", "-service-checks", "-include-labels", "-exclude-labels", "-rename-labels",
		"-use-v3-api-series", "DD_USE_V3_API_SERIES_ENABLED", "/api/intake/metrics/v3/series"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("--help does not mention %s", s)
		}
	}
}

// validConfig is a resolved configuration that validate accepts: the
// defaults of local mode with a key.
func validConfig() *config {
	c := &config{
		nodeName: "n1", staticTargets: "t.yaml", sdRole: "EndpointSlice", apiKey: "k", site: "datadoghq.com",
		stateDir: "/st", interval: 30 * time.Second, timeout: 10 * time.Second, flushInterval: 5 * time.Second,
		compression: "zstd", logLevel: "info", logFormat: "text", endpointAccess: "localhost",
		checkpointInterval: time.Minute, checkpointMaxAge: time.Hour, seriesStaleAfter: time.Hour, maxSeries: 1000,
		memoryLimit: "auto", gcPercent: defaultGCPercent, tagCardinality: "low", metadataInterval: time.Hour, metadataMaxNames: 10_000,
		queueMaxBytes: "64MiB", spoolMaxBytes: "512MiB", sendConcurrency: 8, shutdownFlush: 10 * time.Second,
	}
	c.limits.Samples, c.limits.Labels, c.limits.LabelNameLength, c.limits.LabelValueLength, c.limits.BodySize = 1, 1, 1, 1, 1
	return c
}

// TestValidate: each invalid setting is refused with an error naming it, and
// validate reads nothing but the config (no files, no environment).
func TestValidate(t *testing.T) {
	ok := func(name string, change func(c *config)) {
		t.Helper()
		c := validConfig()
		change(c)
		if err := c.validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := func(setting string, change func(c *config)) {
		t.Helper()
		c := validConfig()
		change(c)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), setting) {
			t.Errorf("%s: err = %v, want one naming %s", setting, err, setting)
		}
	}
	ok("valid", func(c *config) {})
	ok("no limits", func(c *config) {
		c.limits.Samples, c.limits.Labels, c.limits.LabelNameLength, c.limits.LabelValueLength, c.limits.BodySize = -1, -1, -1, -1, -1
	})
	ok("dry run needs no key or state", func(c *config) { c.dryRun, c.apiKey, c.stateDir = true, "", "" })
	ok("no spool", func(c *config) { c.spoolMaxBytes = "0" })
	ok("checkpoints only at shutdown", func(c *config) { c.checkpointInterval = 0 })
	ok("Kubernetes mode", func(c *config) { c.staticTargets, c.sdRole = "", "Endpoints" })
	ok("a local intake, allowed", func(c *config) { c.ddURL, c.allowInsecureURL = "http://127.0.0.1:8129", true })
	ok("endpoint access kubernetes", func(c *config) { c.endpointAccess = "kubernetes" })
	ok("endpoint access open, local listener on ::1", func(c *config) { c.endpointAccess, c.localListen = "open", "[::1]:9106" })
	ok("https needs no allowance", func(c *config) { c.ddURL = "https://dd-proxy.internal" })
	ok("v3 series forced", func(c *config) { c.useV3Series = "On" })
	ok("trusted namespaces", func(c *config) { c.trustedNamespaces = "monitoring, kube-system," })

	bad("--node-name", func(c *config) { c.nodeName, c.staticTargets = "", "" })
	bad("--service-discovery-role", func(c *config) { c.sdRole = "Pod" })
	bad("--trusted-namespaces", func(c *config) { c.trustedNamespaces = "monitoring,kube system" })
	bad("--scrape-interval", func(c *config) { c.interval = 999 * time.Millisecond })
	bad("--scrape-timeout", func(c *config) { c.timeout = 0 })
	bad("--scrape-timeout", func(c *config) { c.timeout = -time.Second })
	bad("--scrape-timeout", func(c *config) { c.timeout = 31 * time.Second })
	bad("--checkpoint-interval", func(c *config) { c.checkpointInterval = time.Millisecond })
	bad("--checkpoint-max-age", func(c *config) { c.checkpointMaxAge = 0 })
	bad("--series-stale-after", func(c *config) { c.seriesStaleAfter = 59 * time.Second })
	bad("--max-series", func(c *config) { c.maxSeries = 0 })
	bad("--sample-limit", func(c *config) { c.limits.Samples = 0 })
	bad("--label-limit", func(c *config) { c.limits.Labels = -2 })
	bad("--label-name-length-limit", func(c *config) { c.limits.LabelNameLength = 0 })
	bad("--label-value-length-limit", func(c *config) { c.limits.LabelValueLength = 0 })
	bad("--body-size-limit", func(c *config) { c.limits.BodySize = 0 })
	bad(`--memory-limit "NaN"`, func(c *config) { c.memoryLimit = "NaN" })
	bad(`--memory-limit "1.5"`, func(c *config) { c.memoryLimit = "1.5" })
	bad("--gc-percent 0", func(c *config) { c.gcPercent = 0 })
	bad("--state-dir", func(c *config) { c.stateDir = "" })
	bad(`--queue-max-bytes "NaN"`, func(c *config) { c.queueMaxBytes = "NaN" })
	bad(`--queue-max-bytes "-1MiB"`, func(c *config) { c.queueMaxBytes = "-1MiB" })
	bad(`--queue-max-bytes "Inf"`, func(c *config) { c.queueMaxBytes = "Inf" })
	bad(`--queue-max-bytes "0.5"`, func(c *config) { c.queueMaxBytes = "0.5" })
	bad(`--spool-max-bytes "NaN"`, func(c *config) { c.spoolMaxBytes = "NaN" })
	bad(`--spool-max-bytes "1e30"`, func(c *config) { c.spoolMaxBytes = "1e30" })
	bad(`--spool-max-bytes "1KiB"`, func(c *config) { c.spoolMaxBytes = "1KiB" })
	bad("--send-concurrency", func(c *config) { c.sendConcurrency = 257 })
	bad("--shutdown-flush-timeout", func(c *config) { c.shutdownFlush = 0 })
	bad("--flush-interval", func(c *config) { c.flushInterval = 0 })
	bad("--tag-cardinality", func(c *config) { c.tagCardinality = "medium" })
	bad("--rename-labels", func(c *config) { c.renameLabels = "a=" })
	bad("--metadata-interval", func(c *config) { c.metadataInterval = 59 * time.Second })
	bad("--metadata-max-names", func(c *config) { c.metadataMaxNames = 0 })
	bad("--compression", func(c *config) { c.compression = "lz4" })
	bad("--log-level", func(c *config) { c.logLevel = "trace" })
	bad("--log-format", func(c *config) { c.logFormat = "xml" })
	bad("--dd-url", func(c *config) { c.ddURL = "ftp://intake" })
	bad("--endpoint-access", func(c *config) { c.endpointAccess = "public" })
	bad("--local-listen", func(c *config) { c.localListen = "10.0.0.1:9105" })
	bad("--local-listen", func(c *config) { c.localListen = "localhost" })
	bad("--allow-insecure-datadog-url", func(c *config) { c.ddURL = "http://127.0.0.1:8129" })
	bad("--dd-site", func(c *config) { c.site = "" })
	bad("--use-v3-api-series", func(c *config) { c.useV3Series = "v3" })
	bad("--use-v3-api-series", func(c *config) { c.useV3Series, c.ddURL = "datadog_only", "https://[::1" })
	bad("DD_API_KEY_FILE", func(c *config) { c.apiKey, c.keyFromFile, c.apiKeyFile = "", true, "/k" })
	bad("DD_API_KEY", func(c *config) { c.apiKey = "" })
}

// TestResolve: what resolve fills in from the environment and the node.
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	targets := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(targets, []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	host := func() (string, error) { return "host-1", nil }
	noHost := func() (string, error) { return "", errors.New("no uts") }

	c := &config{staticTargets: targets, interval: 5 * time.Second, ddURL: "http://127.0.0.1:8129/", appKeyFile: dir + "/none"}
	if err := c.resolve(env(map[string]string{"DD_API_KEY": " k \n", "DD_APP_KEY": "app"}), host); err != nil {
		t.Fatal(err)
	}
	if c.nodeName != "host-1" || c.timeout != 5*time.Second || c.ddURL != "http://127.0.0.1:8129" || c.apiKey != "k" || c.appKeyFile != "" || c.keyFromFile {
		t.Errorf("resolved %+v", c)
	}
	c = &config{staticTargets: targets, interval: time.Minute, timeout: 3 * time.Second, nodeName: "n"}
	if err := c.resolve(env(nil), noHost); err != nil || c.timeout != 3*time.Second || c.nodeName != "n" {
		t.Errorf("explicit settings changed: %+v, %v", c, err)
	}
	c = &config{interval: time.Minute}
	if err := c.resolve(env(nil), noHost); err != nil || c.nodeName != "" {
		t.Errorf("Kubernetes mode took a node name: %q, %v", c.nodeName, err)
	}
	c = &config{staticTargets: targets, interval: time.Minute}
	if err := c.resolve(env(nil), noHost); err == nil || !strings.Contains(err.Error(), "--node-name") {
		t.Errorf("unknown hostname: err = %v", err)
	}
	c = &config{staticTargets: targets, interval: time.Minute, nodeName: "n", appKeyFile: dir + "/none"}
	if err := c.resolve(env(nil), host); err == nil || !strings.Contains(err.Error(), "--dd-app-key-file") {
		t.Errorf("missing app key file: err = %v", err)
	}
}
