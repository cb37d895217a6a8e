package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nodescraper/nodescraper/ddclient"
	"github.com/nodescraper/nodescraper/relabel"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"k8s.io/apimachinery/pkg/util/validation"
)

// config is everything the agent is told at start.
type config struct {
	nodeName      string
	clusterName   string
	kubeconfig    string
	staticTargets string
	// Kubernetes mode: which monitors to take, and what targets may be.
	monitorSelector   string
	monitorNamespaces string
	monitorNSSelector string
	sdRole            string
	allowOtherAddrs   bool
	// clusterLease is the namespace/name of the Lease electing the agent
	// that scrapes the targets of no node; empty: none does.
	clusterLease                          string
	leaseDuration, leaseRenew, leaseRetry time.Duration
	// The agent's own service-account token and CA: which namespaces'
	// monitors may use them, and where the agent reads them.
	trustedNamespaces string // comma-separated
	allowedProxyURLs  string // comma-separated
	allowedTokenURLs  string // comma-separated
	serviceAccountDir string
	apiKey            string
	apiKeyFile        string
	keyFromFile       bool // the key was read from apiKeyFile (DD_API_KEY unset): it is read again when it changes
	site              string
	ddURL             string
	allowInsecureURL  bool   // --dd-url may be http://: the API key goes unencrypted
	useV3Series       string // datadog_only, or a boolean: see ddclient.UseV3Series
	listen            string
	stateDir          string
	interval          time.Duration
	timeout           time.Duration
	namespace         string
	flushInterval     time.Duration
	compression       string
	dryRun            bool
	logLevel          string
	logFormat         string
	showVersion       bool

	// endpointAccess says who may read /metrics, /targets, /api/v1/targets
	// (and pprof): localhost, kubernetes or open; see endpoint.go.
	endpointAccess string
	localListen    string // localhost mode, --listen a non-loopback IP: the loopback listener

	// Delta state: see package deltastore.
	checkpointInterval time.Duration
	checkpointMaxAge   time.Duration
	seriesStaleAfter   time.Duration
	maxSeries          int

	// Per-target limits where a target (monitor) sets none; see target.Limits.
	limits target.Limits
	// The operator's caps over monitors, as the Prometheus resource's
	// enforced* fields: see relabel.Settings.
	caps monitorCaps
	// Bytes in flight and per-target and per-namespace series budgets.
	budgets scrapeBudgets
	// memoryLimit is the Go runtime's soft memory limit: "auto" (from the
	// container's cgroup), "off", or a size such as 512MiB.
	memoryLimit string
	// gcPercent is the garbage collector's GOGC (GOGC wins when set).
	gcPercent int
	// pprof serves /debug/pprof on the endpoint.
	pprof bool

	// Datadog tags, health and metadata: see package ddclient.
	tagCardinality   string // low, orchestrator or high
	includeLabels    string // comma-separated
	excludeLabels    string
	renameLabels     string // old=new,...
	reportSeries     bool
	serviceChecks    bool
	appKey           string
	appKeyFile       string
	metadataInterval time.Duration
	metadataMaxNames int

	// Sending: see package ddclient.
	queueMaxBytes   string // memory bound of unsent points
	spoolMaxBytes   string // disk spool bound under the state directory
	sendConcurrency int
	shutdownFlush   time.Duration
}

const usageHead = `nodescraper scrapes the Prometheus targets of the node it runs on and sends
them to Datadog: counters as deltas (state kept on the node), gauges as is.

Usage:
  nodescraper [flags]

Local mode (no cluster): scrape the targets listed in a Prometheus file_sd file
  DD_API_KEY=... nodescraper --static-targets targets.yaml
  nodescraper --static-targets targets.yaml --dry-run     # print, send nothing

Kubernetes mode: run as a DaemonSet (see charts/nodescraper) with NODE_NAME set
from the downward API; targets come from ServiceMonitors and PodMonitors.

Most flags can also be set through the environment variable shown with them.
The Datadog API key is read from DD_API_KEY or from the file DD_API_KEY_FILE,
never from a flag (flags show up in the process list); likewise the optional
application key (for metric metadata) from DD_APP_KEY or DD_APP_KEY_FILE.

Flags:
`

// parseConfig reads flags, with environment variables as defaults, then
// resolves what the settings leave to the environment (resolve) and checks
// the result (validate).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("nodescraper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := &envDefaults{getenv: getenv}
	c.placeFlags(fs, e)
	c.stateAndLimitFlags(fs, e)
	c.caps.flags(fs, e)
	c.budgets.flags(fs, e)
	c.datadogFlags(fs, e)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, e.err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (all settings are flags)", fs.Arg(0))
	}
	if c.showVersion {
		return c, nil
	}
	if err := c.resolve(getenv, os.Hostname); err != nil {
		return nil, err
	}
	return c, c.validate()
}

// envDefaults reads the environment variables that are the flags' defaults.
type envDefaults struct {
	getenv func(string) string
	err    error // the first variable that did not parse, named
}

// str is the variable name, or def when it is unset.
func (e *envDefaults) str(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envDefaults) duration(name string, def time.Duration) time.Duration {
	return envParse(e.getenv, name, def, time.ParseDuration, "a duration (e.g. 60s, 5m)", &e.err)
}

func (e *envDefaults) int(name string, def int) int {
	return envParse(e.getenv, name, def, strconv.Atoi, "an integer", &e.err)
}

func (e *envDefaults) bool(name string, def bool) bool {
	return envParse(e.getenv, name, def, strconv.ParseBool, "true or false", &e.err)
}

// placeFlags are where the agent runs, where its targets come from, where it
// sends and where it keeps its state.
func (c *config) placeFlags(fs *flag.FlagSet, e *envDefaults) {
	env := e.str
	fs.StringVar(&c.nodeName, "node-name", env("NODE_NAME", ""), "name of this node; the Datadog host and, in Kubernetes mode, whose pods are scraped (env NODE_NAME; required in Kubernetes mode, the hostname in local mode)")
	fs.StringVar(&c.clusterName, "cluster-name", env("DD_CLUSTER_NAME", ""), "cluster name; the host becomes <node>-<cluster> as the Datadog Agent reports it (env DD_CLUSTER_NAME)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", env("KUBECONFIG", ""), "kubeconfig file; empty means in-cluster credentials (env KUBECONFIG)")
	fs.StringVar(&c.staticTargets, "static-targets", env("NODESCRAPER_STATIC_TARGETS", ""), "Prometheus file_sd file (JSON or YAML) of targets to scrape instead of Kubernetes discovery; re-read on change (env NODESCRAPER_STATIC_TARGETS)")
	fs.StringVar(&c.monitorSelector, "monitor-selector", env("NODESCRAPER_MONITOR_SELECTOR", ""), "label selector of the ServiceMonitors and PodMonitors to take, e.g. team=a,tier!=dev; empty takes all (env NODESCRAPER_MONITOR_SELECTOR)")
	fs.StringVar(&c.monitorNamespaces, "monitor-namespaces", env("NODESCRAPER_MONITOR_NAMESPACES", ""), "comma-separated namespaces whose monitors are taken; empty means all (env NODESCRAPER_MONITOR_NAMESPACES)")
	fs.StringVar(&c.monitorNSSelector, "monitor-namespace-selector", env("NODESCRAPER_MONITOR_NAMESPACE_SELECTOR", ""), "label selector of the namespaces whose monitors are taken; empty means all (env NODESCRAPER_MONITOR_NAMESPACE_SELECTOR)")
	fs.StringVar(&c.sdRole, "service-discovery-role", env("NODESCRAPER_SERVICE_DISCOVERY_ROLE", "EndpointSlice"), "role for ServiceMonitors that set none: EndpointSlice or Endpoints (env NODESCRAPER_SERVICE_DISCOVERY_ROLE)")
	fs.BoolVar(&c.allowOtherAddrs, "allow-other-addresses", false, "scrape targets whose relabeled address is not one of this node's pods or the node itself (off: a monitor cannot aim the agent at another host); never another node's endpoints")
	fs.StringVar(&c.clusterLease, "cluster-lease", env("NODESCRAPER_CLUSTER_LEASE", ""), "namespace/name of the Lease that elects the one agent scraping the targets of no node (the API server of a managed cluster, selectorless Services to external addresses), reported without a host and tagged with the cluster name; empty: every agent lists them as dropped (env NODESCRAPER_CLUSTER_LEASE)")
	fs.DurationVar(&c.leaseDuration, "cluster-lease-duration", e.duration("NODESCRAPER_CLUSTER_LEASE_DURATION", 15*time.Second), "how long the Lease holds without renewal; another agent takes over within this plus the retry period of the holder's loss: keep it under the targets' scrape interval (env NODESCRAPER_CLUSTER_LEASE_DURATION)")
	fs.DurationVar(&c.leaseRenew, "cluster-lease-renew-deadline", e.duration("NODESCRAPER_CLUSTER_LEASE_RENEW_DEADLINE", 10*time.Second), "the holder stops scraping when it could not renew for this long (env NODESCRAPER_CLUSTER_LEASE_RENEW_DEADLINE)")
	fs.DurationVar(&c.leaseRetry, "cluster-lease-retry-period", e.duration("NODESCRAPER_CLUSTER_LEASE_RETRY_PERIOD", 2*time.Second), "how often agents try to take or renew the Lease (env NODESCRAPER_CLUSTER_LEASE_RETRY_PERIOD)")
	fs.StringVar(&c.trustedNamespaces, "trusted-namespaces", env("NODESCRAPER_TRUSTED_NAMESPACES", ""), "comma-separated namespaces whose monitors may authenticate with the agent's own service-account token and CA ("+relabel.ServiceAccountTokenPath+" as bearerTokenFile, "+relabel.ServiceAccountCAPath+" as tlsConfig.caFile), as kube-prometheus' do; the token goes only to this node's addresses and the API server's (env NODESCRAPER_TRUSTED_NAMESPACES)")
	fs.StringVar(&c.allowedProxyURLs, "allowed-proxy-urls", env("NODESCRAPER_ALLOWED_PROXY_URLS", ""), "comma-separated proxies (http[s]://host:port) a monitor's proxyUrl may name; a monitor naming another is rejected, and the target's own address is still checked at every hop (env NODESCRAPER_ALLOWED_PROXY_URLS)")
	fs.StringVar(&c.allowedTokenURLs, "allowed-token-urls", env("NODESCRAPER_ALLOWED_TOKEN_URLS", ""), "comma-separated OAuth2 token endpoints (http[s]://host[:port][/path]) a monitor's oauth2.tokenUrl may name, itself or a path below; a monitor naming another is rejected (env NODESCRAPER_ALLOWED_TOKEN_URLS)")
	fs.StringVar(&c.serviceAccountDir, "service-account-dir", env("NODESCRAPER_SERVICE_ACCOUNT_DIR", relabel.DefaultServiceAccountDir), "directory the agent reads its own service-account token and CA from when a monitor names their standard paths (env NODESCRAPER_SERVICE_ACCOUNT_DIR)")
	fs.StringVar(&c.apiKeyFile, "dd-api-key-file", env("DD_API_KEY_FILE", ""), "file holding the Datadog API key (env DD_API_KEY_FILE; or set DD_API_KEY)")
	fs.StringVar(&c.site, "dd-site", env("DD_SITE", "datadoghq.com"), "Datadog site, e.g. datadoghq.eu, us5.datadoghq.com (env DD_SITE)")
	fs.StringVar(&c.ddURL, "dd-url", env("DD_URL", ""), "Datadog API base URL; overrides --dd-site, e.g. a proxy https://dd-proxy.internal; http:// only with --allow-insecure-datadog-url (env DD_URL)")
	fs.BoolVar(&c.allowInsecureURL, "allow-insecure-datadog-url", e.bool("NODESCRAPER_ALLOW_INSECURE_DATADOG_URL", false), "accept an http:// --dd-url, e.g. a local intake http://127.0.0.1:8129: the API key and every series then travel unencrypted (env NODESCRAPER_ALLOW_INSECURE_DATADOG_URL)")
	fs.StringVar(&c.useV3Series, "use-v3-api-series", env("DD_USE_V3_API_SERIES_ENABLED", ddclient.SeriesV3Auto), "send series as v3 columnar payloads to /api/intake/metrics/v3/series (the Datadog Agent's use_v3_api.series.enabled): datadog_only sends v3 to Datadog's sites and v2 (/api/v2/series) to any other --dd-url (a proxy, Observability Pipelines); true or false force it for the URL in use (env DD_USE_V3_API_SERIES_ENABLED)")
	fs.StringVar(&c.listen, "listen", env("NODESCRAPER_LISTEN", "127.0.0.1:9105"), "address of the node-local endpoint: /healthz and /readyz for anyone; /metrics, /targets, /api/v1/targets as --endpoint-access says (env NODESCRAPER_LISTEN)")
	fs.StringVar(&c.endpointAccess, "endpoint-access", env("NODESCRAPER_ENDPOINT_ACCESS", accessLocalhost), "who may read /metrics, /targets, /api/v1/targets and /debug/pprof (they show every namespace's targets): localhost (only connections to a loopback address: --listen's own when it is loopback or a wildcard, else a second listener, --local-listen), kubernetes (a bearer token the API server authenticates (TokenReview) and authorizes to get the path as a non-resource URL (SubjectAccessReview)), or open (anyone who reaches --listen) (env NODESCRAPER_ENDPOINT_ACCESS)")
	fs.StringVar(&c.localListen, "local-listen", env("NODESCRAPER_LOCAL_LISTEN", ""), "with --endpoint-access localhost and --listen on a non-loopback IP (e.g. the node's, with hostNetwork): the loopback address serving every path; default 127.0.0.1:<port of --listen> (env NODESCRAPER_LOCAL_LISTEN)")
	fs.StringVar(&c.stateDir, "state-dir", env("NODESCRAPER_STATE_DIR", "/var/lib/nodescraper"), "directory on the node for the delta state checkpoint (env NODESCRAPER_STATE_DIR)")
}

// stateAndLimitFlags bound the delta state, each scrape and the agent's
// memory, and set the default scrape interval.
func (c *config) stateAndLimitFlags(fs *flag.FlagSet, e *envDefaults) {
	env, envDuration, envInt := e.str, e.duration, e.int
	fs.DurationVar(&c.checkpointInterval, "checkpoint-interval", envDuration("NODESCRAPER_CHECKPOINT_INTERVAL", time.Minute), "how often the delta state is checkpointed to --state-dir besides at shutdown; bounds what a killed agent counts twice; 0 = only at shutdown (env NODESCRAPER_CHECKPOINT_INTERVAL)")
	fs.DurationVar(&c.checkpointMaxAge, "checkpoint-max-age", envDuration("NODESCRAPER_CHECKPOINT_MAX_AGE", time.Hour), "an older checkpoint is not restored: counters restart from baselines instead of one delta spanning the outage (env NODESCRAPER_CHECKPOINT_MAX_AGE)")
	fs.DurationVar(&c.seriesStaleAfter, "series-stale-after", envDuration("NODESCRAPER_SERIES_STALE_AFTER", time.Hour), "delta state of a series absent from its target's scrapes is kept this long (a series that comes back within it continues from the kept value), then dropped; must be at least twice every scrape interval (env NODESCRAPER_SERIES_STALE_AFTER)")
	fs.IntVar(&c.maxSeries, "max-series", envInt("NODESCRAPER_MAX_SERIES", 2_000_000), "most series the agent holds over all targets (about 100 bytes each, delta state included); new ones beyond it are refused and counted per target (env NODESCRAPER_MAX_SERIES)")
	fs.Int64Var(&c.limits.Samples, "sample-limit", int64(envInt("NODESCRAPER_SAMPLE_LIMIT", scrapeloop.DefaultSamples)), "most samples per scrape of a target that sets none (a monitor's sampleLimit); a scrape over it fails; -1 = no limit (env NODESCRAPER_SAMPLE_LIMIT)")
	fs.Int64Var(&c.limits.Labels, "label-limit", int64(envInt("NODESCRAPER_LABEL_LIMIT", scrapeloop.DefaultLabels)), "most labels per series, target labels included, where a target sets none; -1 = no limit (env NODESCRAPER_LABEL_LIMIT)")
	fs.Int64Var(&c.limits.LabelNameLength, "label-name-length-limit", int64(envInt("NODESCRAPER_LABEL_NAME_LENGTH_LIMIT", scrapeloop.DefaultLabelNameLength)), "longest label name in bytes where a target sets none; -1 = no limit (env NODESCRAPER_LABEL_NAME_LENGTH_LIMIT)")
	fs.Int64Var(&c.limits.LabelValueLength, "label-value-length-limit", int64(envInt("NODESCRAPER_LABEL_VALUE_LENGTH_LIMIT", scrapeloop.DefaultLabelValueLength)), "longest label value in bytes where a target sets none (values over Datadog's 200-character tag limit are shortened with a hash); -1 = no limit (env NODESCRAPER_LABEL_VALUE_LENGTH_LIMIT)")
	fs.Int64Var(&c.limits.BodySize, "body-size-limit", int64(envInt("NODESCRAPER_BODY_SIZE_LIMIT", scrapeloop.DefaultBodySize)), "largest uncompressed response body in bytes where a target sets none; -1 = no limit (env NODESCRAPER_BODY_SIZE_LIMIT)")
	fs.IntVar(&c.gcPercent, "gc-percent", envInt("NODESCRAPER_GC_PERCENT", defaultGCPercent), "the garbage collector's target heap growth over the live heap, as GOGC (which wins when set); the agent allocates little once its tables are built, so a low value costs little CPU and keeps RSS near the live heap (env NODESCRAPER_GC_PERCENT)")
	fs.StringVar(&c.memoryLimit, "memory-limit", env("NODESCRAPER_MEMORY_LIMIT", "auto"), "the Go runtime's soft memory limit: auto (90% of the container's cgroup limit; GOMEMLIMIT wins when set), off, or a size like 512MiB (env NODESCRAPER_MEMORY_LIMIT)")
	fs.DurationVar(&c.interval, "scrape-interval", 30*time.Second, "default scrape interval")
	fs.DurationVar(&c.timeout, "scrape-timeout", 0, "default scrape timeout (default min(10s, interval))")
}

// datadogFlags say what is sent to Datadog and how, and how the agent logs.
func (c *config) datadogFlags(fs *flag.FlagSet, e *envDefaults) {
	env, envDuration, envInt, envBool := e.str, e.duration, e.int, e.bool
	fs.StringVar(&c.tagCardinality, "tag-cardinality", env("DD_CHECKS_TAG_CARDINALITY", "low"), "Kubernetes tags sent, as the Datadog Agent's checks: low (no pod_name), orchestrator (adds pod_name, kube_ownerref_name) or high (adds container_id) (env DD_CHECKS_TAG_CARDINALITY)")
	fs.StringVar(&c.includeLabels, "include-labels", env("NODESCRAPER_INCLUDE_LABELS", ""), "comma-separated Prometheus labels that are the only ones sent as tags (le and quantile always are); empty sends all (env NODESCRAPER_INCLUDE_LABELS)")
	fs.StringVar(&c.excludeLabels, "exclude-labels", env("NODESCRAPER_EXCLUDE_LABELS", ""), "comma-separated Prometheus labels never sent as tags (env NODESCRAPER_EXCLUDE_LABELS)")
	fs.StringVar(&c.renameLabels, "rename-labels", env("NODESCRAPER_RENAME_LABELS", ""), "comma-separated old=new renames of Prometheus labels as tags; new may not be a tag the agent owns (host, env, service, version, kube_*, ...) (env NODESCRAPER_RENAME_LABELS)")
	fs.BoolVar(&c.reportSeries, "report-series", envBool("NODESCRAPER_REPORT_SERIES", true), "send Prometheus' per-target up, scrape_duration_seconds, scrape_samples_scraped, scrape_samples_post_metric_relabeling and scrape_series_added as gauges (env NODESCRAPER_REPORT_SERIES)")
	fs.BoolVar(&c.serviceChecks, "service-checks", envBool("NODESCRAPER_SERVICE_CHECKS", true), "send each target's <namespace>.openmetrics.health service check after every scrape (env NODESCRAPER_SERVICE_CHECKS)")
	fs.StringVar(&c.appKeyFile, "dd-app-key-file", env("DD_APP_KEY_FILE", ""), "file holding a Datadog application key, read again on each use; with it (or DD_APP_KEY) HELP and UNIT are sent as metric metadata (env DD_APP_KEY_FILE)")
	fs.DurationVar(&c.metadataInterval, "metadata-interval", envDuration("NODESCRAPER_METADATA_INTERVAL", 24*time.Hour), "how often each metric's metadata is sent again (env NODESCRAPER_METADATA_INTERVAL)")
	fs.IntVar(&c.metadataMaxNames, "metadata-max-names", envInt("NODESCRAPER_METADATA_MAX_NAMES", ddclient.DefaultMetadataMaxNames), "most metric names whose metadata is held for sending (and 1KiB of HELP and UNIT text each on average); past it the least recently seen are evicted and counted, and their metadata may be sent again (env NODESCRAPER_METADATA_MAX_NAMES)")
	fs.StringVar(&c.namespace, "metric-namespace", env("NODESCRAPER_METRIC_NAMESPACE", ""), "prefix of Datadog metric names, <namespace>.<name> (env NODESCRAPER_METRIC_NAMESPACE)")
	fs.DurationVar(&c.flushInterval, "flush-interval", 5*time.Second, "how often points are sent to Datadog")
	fs.StringVar(&c.compression, "compression", "zstd", "payload compression: zstd, gzip or none")
	fs.StringVar(&c.queueMaxBytes, "queue-max-bytes", env("NODESCRAPER_QUEUE_MAX_BYTES", "64MiB"), "memory held by points waiting to be sent (open batches, payloads queued, in flight or awaiting a retry); past it payloads go to the disk spool (env NODESCRAPER_QUEUE_MAX_BYTES)")
	fs.StringVar(&c.spoolMaxBytes, "spool-max-bytes", env("NODESCRAPER_SPOOL_MAX_BYTES", "512MiB"), "disk spool under --state-dir/spool for payloads past --queue-max-bytes and those unsent at shutdown, sent oldest first when Datadog answers again (also by the next agent); past it the oldest are dropped and counted; 0 = no spool (env NODESCRAPER_SPOOL_MAX_BYTES)")
	fs.IntVar(&c.sendConcurrency, "send-concurrency", envInt("NODESCRAPER_SEND_CONCURRENCY", 8), "most POSTs to Datadog in flight at once (env NODESCRAPER_SEND_CONCURRENCY)")
	fs.DurationVar(&c.shutdownFlush, "shutdown-flush-timeout", envDuration("NODESCRAPER_SHUTDOWN_FLUSH_TIMEOUT", 10*time.Second), "at shutdown, how long to keep sending before the rest goes to the spool; keep it under the pod's termination grace period (env NODESCRAPER_SHUTDOWN_FLUSH_TIMEOUT)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "print the series that would be sent, readable, instead of sending them")
	fs.StringVar(&c.logLevel, "log-level", env("NODESCRAPER_LOG_LEVEL", "info"), "debug, info, warn or error (env NODESCRAPER_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&c.pprof, "enable-pprof", false, "serve Go's profiles under /debug/pprof on the node-local endpoint")
	fs.BoolVar(&c.showVersion, "version", false, "print the version and exit")
}

// envParse returns the environment variable name parsed, or def when it is
// unset. The first value that does not parse is kept in *errp, naming it.
func envParse[T any](getenv func(string) string, name string, def T, parse func(string) (T, error), what string, errp *error) T {
	v := getenv(name)
	if v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil && *errp == nil {
		*errp = fmt.Errorf("%s=%q: not %s", name, v, what)
	}
	return x
}

// resolve fills in what the flags leave to the environment and the node:
// the keys from DD_API_KEY and DD_APP_KEY (DD_APP_KEY wins over
// --dd-app-key-file, as DD_API_KEY does over DD_API_KEY_FILE), the node name
// from the hostname in local mode, the scrape timeout's default, --dd-url
// without a trailing slash. It checks that the files named exist and reads
// the API key file. It is the only step that looks outside the flags:
// validate then checks c alone.
func (c *config) resolve(getenv func(string) string, hostname func() (string, error)) error {
	c.apiKey = strings.TrimSpace(getenv("DD_API_KEY"))
	c.appKey = strings.TrimSpace(getenv("DD_APP_KEY"))
	if c.nodeName == "" && c.staticTargets != "" {
		h, err := hostname()
		if err != nil {
			return fmt.Errorf("--node-name (NODE_NAME) is empty and the hostname is unknown: %v", err)
		}
		c.nodeName = h
	}
	if c.timeout == 0 {
		c.timeout = min(10*time.Second, c.interval)
	}
	c.ddURL = strings.TrimSuffix(c.ddURL, "/")
	if c.appKey != "" {
		c.appKeyFile = ""
	}
	if c.appKeyFile != "" && !c.dryRun {
		if _, err := os.Stat(c.appKeyFile); err != nil {
			return fmt.Errorf("--dd-app-key-file: %v", err)
		}
	}
	if c.staticTargets != "" {
		if _, err := os.Stat(c.staticTargets); err != nil {
			return fmt.Errorf("--static-targets: %v", err)
		}
	}
	if c.apiKey == "" && c.apiKeyFile != "" && !c.dryRun {
		c.keyFromFile = true
		b, err := os.ReadFile(c.apiKeyFile)
		if err != nil {
			return fmt.Errorf("DD_API_KEY_FILE: %v", err)
		}
		c.apiKey = strings.TrimSpace(string(b))
	}
	return nil
}

// validate checks the resolved settings without reading anything outside c;
// it returns the first problem, one line naming the setting.
func (c *config) validate() error {
	for _, check := range []func() error{c.validateDiscovery, c.validateScrape, c.validateSending, c.validateDatadog, c.validateEndpoint} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *config) validateDiscovery() error {
	if c.nodeName == "" {
		// resolve takes the hostname in local mode
		return errors.New("--node-name (NODE_NAME) is required in Kubernetes mode: only this node's pods are scraped")
	}
	if c.sdRole != "EndpointSlice" && c.sdRole != "Endpoints" {
		return fmt.Errorf("--service-discovery-role %q: want EndpointSlice or Endpoints", c.sdRole)
	}
	if c.clusterLease != "" {
		if _, _, err := c.lease(); err != nil {
			return err
		}
		if !(c.leaseDuration > c.leaseRenew && c.leaseRenew > c.leaseRetry && c.leaseRetry > 0) {
			return fmt.Errorf("--cluster-lease-duration %s, --cluster-lease-renew-deadline %s, --cluster-lease-retry-period %s: want duration > renew deadline > retry period > 0", c.leaseDuration, c.leaseRenew, c.leaseRetry)
		}
	}
	// A misspelt namespace would trust nothing, silently.
	for _, ns := range splitList(c.trustedNamespaces) {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			return fmt.Errorf("--trusted-namespaces: %q is not a namespace name (lowercase letters, digits and '-')", ns)
		}
	}
	return nil
}

// lease splits --cluster-lease into the Lease's namespace and name.
func (c *config) lease() (ns, name string, err error) {
	ns, name, ok := strings.Cut(c.clusterLease, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("--cluster-lease %q: want namespace/name", c.clusterLease)
	}
	return ns, name, nil
}

// validateScrape checks the scrape schedule, the delta state and the limits.
func (c *config) validateScrape() error {
	if c.interval < time.Second {
		// Datadog keeps one point per series and second.
		return fmt.Errorf("--scrape-interval %s: must be at least 1s", c.interval)
	}
	if c.timeout <= 0 || c.timeout > c.interval {
		return fmt.Errorf("--scrape-timeout %s: must be positive and at most --scrape-interval %s", c.timeout, c.interval)
	}
	if c.checkpointInterval != 0 && c.checkpointInterval < time.Second {
		return fmt.Errorf("--checkpoint-interval %s: want 0 (only at shutdown) or at least 1s", c.checkpointInterval)
	}
	if c.checkpointMaxAge <= 0 {
		return fmt.Errorf("--checkpoint-max-age %s: must be positive", c.checkpointMaxAge)
	}
	if c.seriesStaleAfter < 2*c.interval {
		return fmt.Errorf("--series-stale-after %s: must be at least twice --scrape-interval %s, or series are dropped between scrapes", c.seriesStaleAfter, c.interval)
	}
	if c.maxSeries <= 0 {
		return fmt.Errorf("--max-series %d: must be positive", c.maxSeries)
	}
	for _, l := range []struct {
		flag string
		v    int64
	}{
		{"--sample-limit", c.limits.Samples}, {"--label-limit", c.limits.Labels},
		{"--label-name-length-limit", c.limits.LabelNameLength}, {"--label-value-length-limit", c.limits.LabelValueLength},
		{"--body-size-limit", c.limits.BodySize},
	} {
		if l.v == 0 || l.v < -1 {
			return fmt.Errorf("%s %d: want a positive number, or -1 for no limit", l.flag, l.v)
		}
	}
	if err := c.caps.validate(); err != nil {
		return err
	}
	if err := c.budgets.validate(c.maxSeries); err != nil {
		return err
	}
	if c.gcPercent < 1 {
		return fmt.Errorf("--gc-percent %d: want 1 or more (GOGC=off is not offered: the heap would grow until the memory limit)", c.gcPercent)
	}
	if _, err := parseMemoryLimit(c.memoryLimit); err != nil {
		return fmt.Errorf("--memory-limit %q: %v", c.memoryLimit, err)
	}
	if c.stateDir == "" && !c.dryRun {
		return errors.New("--state-dir (NODESCRAPER_STATE_DIR) is empty: the delta state needs a directory on the node")
	}
	return nil
}

// validateSending checks the bounds and timing of sending to Datadog.
func (c *config) validateSending() error {
	if _, err := parseSize(c.queueMaxBytes); err != nil {
		return fmt.Errorf("--queue-max-bytes %q: %v", c.queueMaxBytes, err)
	}
	if n, err := parseSize(c.spoolMaxBytes); err != nil && c.spoolMaxBytes != "0" {
		return fmt.Errorf("--spool-max-bytes %q: %v", c.spoolMaxBytes, err)
	} else if err == nil && n < 1<<20 {
		return fmt.Errorf("--spool-max-bytes %q: at least 1MiB, or 0 for no spool", c.spoolMaxBytes)
	}
	if c.sendConcurrency < 1 || c.sendConcurrency > 256 {
		return fmt.Errorf("--send-concurrency %d: want 1 to 256", c.sendConcurrency)
	}
	if c.shutdownFlush <= 0 {
		return fmt.Errorf("--shutdown-flush-timeout %s: must be positive", c.shutdownFlush)
	}
	if c.flushInterval <= 0 {
		return fmt.Errorf("--flush-interval %s: must be positive", c.flushInterval)
	}
	return nil
}

// validateDatadog checks the naming, tagging, wire, logging and key settings.
func (c *config) validateDatadog() error {
	if _, err := ddclient.ParseCardinality(c.tagCardinality); err != nil {
		return fmt.Errorf("--tag-cardinality: %v", err)
	}
	if _, err := parseRenames(c.renameLabels); err != nil {
		return fmt.Errorf("--rename-labels %q: %v", c.renameLabels, err)
	}
	if c.metadataMaxNames <= 0 {
		return fmt.Errorf("--metadata-max-names %d: must be positive", c.metadataMaxNames)
	}
	if c.metadataInterval < time.Minute {
		return fmt.Errorf("--metadata-interval %s: at least 1m (each metric name is one API call)", c.metadataInterval)
	}
	switch c.compression {
	case "zstd", "gzip", "none":
	default:
		return fmt.Errorf("--compression %q: want zstd, gzip or none", c.compression)
	}
	switch c.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", c.logFormat)
	}
	if c.ddURL != "" && !strings.HasPrefix(c.ddURL, "http://") && !strings.HasPrefix(c.ddURL, "https://") {
		return fmt.Errorf("--dd-url %q: want an http:// or https:// URL", c.ddURL)
	}
	if strings.HasPrefix(c.ddURL, "http://") && !c.allowInsecureURL {
		return fmt.Errorf("--dd-url %q: plain http would send the Datadog API key and every series unencrypted; use https://, or pass --allow-insecure-datadog-url (env NODESCRAPER_ALLOW_INSECURE_DATADOG_URL=true) for an intake you trust on the path", c.ddURL)
	}
	if c.site == "" {
		return errors.New("--dd-site (DD_SITE) is empty")
	}
	if _, err := ddclient.UseV3Series(c.useV3Series, c.apiURL()); err != nil {
		return fmt.Errorf("--use-v3-api-series: %v", err)
	}
	switch {
	case c.dryRun:
		return nil
	case c.keyFromFile && c.apiKey == "":
		return fmt.Errorf("DD_API_KEY_FILE %s: file is empty", c.apiKeyFile)
	case c.apiKey == "":
		return errors.New("no Datadog API key: set DD_API_KEY or DD_API_KEY_FILE (or use --dry-run)")
	}
	return nil
}

// apiURL is the Datadog API base URL.
func (c *config) apiURL() string {
	if c.ddURL != "" {
		return c.ddURL
	}
	return "https://api." + c.site
}

// seriesV3 says whether series go to the API URL as v3 payloads
// (--use-v3-api-series, checked by validate).
func (c *config) seriesV3() bool {
	v3, _ := ddclient.UseV3Series(c.useV3Series, c.apiURL())
	return v3
}

// apiKeyFileToWatch is the key file the client reads again when it changes:
// only when the key came from it.
func (c *config) apiKeyFileToWatch() string {
	if c.keyFromFile {
		return c.apiKeyFile
	}
	return ""
}

// queueBytes and spoolBytes are the sending bounds, checked by validate;
// spoolBytes is 0 for no spool.
func (c *config) queueBytes() int {
	n, _ := parseSize(c.queueMaxBytes)
	return int(n)
}

func (c *config) spoolBytes() int64 {
	n, _ := parseSize(c.spoolMaxBytes)
	return n
}

// mapping is the Datadog naming and tagging the settings ask for (checked
// by validate).
func (c *config) mapping() ddclient.Mapping {
	card, _ := ddclient.ParseCardinality(c.tagCardinality)
	renames, _ := parseRenames(c.renameLabels)
	return ddclient.Mapping{
		Namespace: c.namespace, Host: c.host(), Cardinality: card, ClusterName: c.clusterName,
		IncludeLabels: splitList(c.includeLabels), ExcludeLabels: splitList(c.excludeLabels), RenameLabels: renames,
		ReportSeries: c.reportSeries,
	}
}

// splitList reads a comma-separated list, ignoring blanks.
func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseRenames reads old=new,... pairs. A new name that is a tag the agent
// owns (ddclient.ReservedTag) is refused: a target's label value cannot set
// it, so the rename would only ever send exported_<new>.
func parseRenames(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range splitList(s) {
		old, nw, ok := strings.Cut(f, "=")
		old, nw = strings.TrimSpace(old), strings.TrimSpace(nw)
		if !ok || old == "" || nw == "" {
			return nil, fmt.Errorf("%q is not old=new", f)
		}
		if ddclient.ReservedTag(nw) {
			return nil, fmt.Errorf("%q: %s is a tag the agent owns (host, env, service, version, kube_*, ...), which no label sets", f, nw)
		}
		out[old] = nw
	}
	return out, nil
}

// host is the Datadog host name of this node.
func (c *config) host() string {
	if c.clusterName != "" {
		return c.nodeName + "-" + c.clusterName
	}
	return c.nodeName
}
