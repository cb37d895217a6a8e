// Package relabel turns Prometheus-Operator monitors into scrape jobs and
// discovered label sets into scrape targets, the way the Operator and
// Prometheus do.
//
// A Generator (NewGenerator, or SettingsFromPrometheus for the settings a
// Prometheus resource carries) turns each ServiceMonitor endpoint and
// PodMonitor podMetricsEndpoint into a Job: the Operator's exact
// relabel_configs and metric_relabel_configs as
// github.com/prometheus/prometheus/model/relabel configs, the scrape options
// Prometheus would apply (defaults, the agent's settings and enforced limits
// resolved), the Kubernetes SD settings the informer emulates, and the HTTP
// client settings (sub-package httpconfig) with Secret and ConfigMap values
// read through a Store in the monitor's namespace. A monitor the Operator
// would reject yields an *Error naming the monitor, endpoint and field.
// Job.Target (Populate) then applies a job's chain and Prometheus' target
// rules (job, instance, scheme, path, params, per-target interval and
// timeout; __meta_* and __tmp* dropped) to a label set from discovery and
// gives the result the job's settings: a target.Target (sub-package target,
// the one type discovery hands the scraper).
//
// Files: a monitor may not name files of the agent's container (its
// bearerTokenFile, tlsConfig caFile/certFile/keyFile could send the agent's
// files to a target), with one exception: a monitor in one of
// Settings.TrustedNamespaces (flag --trusted-namespaces, chart value
// monitors.trustedNamespaces) may name the agent's own service-account token
// as its bearerTokenFile and the agent's CA as its tlsConfig.caFile, at their
// standard paths (ServiceAccountTokenPath, ServiceAccountCAPath), as
// kube-prometheus' monitors do for the kubelet, the API server and
// kube-rbac-proxy. The agent reads them from Settings.ServiceAccountDir; the
// token is read again at every scrape, as it rotates. A monitor elsewhere
// that names them is rejected with a reason naming the flag. Jobs and
// targets that send the token are marked OwnCredentials: discovery keeps
// them only at this node's addresses and the API server's, and the scraper
// sends the token to no other host, not after a redirect either.
// Settings.AllowFileReferences (no flag) lifts the refusal for every file.
//
// The chains and options are checked rule by rule against the Operator's
// goldens (testdata/conformance: 108 ServiceMonitor cases, 55 PodMonitor
// cases). They keep the Operator's sharding rules for one shard, $(SHARD)
// expanded to 0 as its config reloader does: the agent is its node's only
// scraper. Options follow Prometheus 3; goldens made for older Prometheus
// versions differ only by the options those versions lack.
//
// Jobs are read-only and share rules and compiled regexes with each other
// (see ruleCache); do not modify them.
//
// Written, not generated through the Operator's own generator
// (prometheus-operator v0.93.0 pkg/prometheus) used as a library. That would
// give exactness for free, but measured with 200 ServiceMonitors of two
// endpoints (small mains, CGO_ENABLED=0, stripped): 28.1 MB of binary against
// 13.5 MB, and 22.6 MB added to the agent against 0.2 MB (100 modules
// against 30: alertmanager, thanos, cloud SDKs); 24 MB resident before doing
// anything against 10 MB; a 79-102 MB resident peak to generate and parse
// the YAML into usable chains against 14 MB, and 440-660 MB against 30 MB
// for 2,000 monitors. Its output is YAML to re-parse, with TLS material as
// file paths and Secrets read through its own client-backed store. On a
// DaemonSet that weight is paid on every node; the conformance suite gives
// the exactness instead.
package relabel
