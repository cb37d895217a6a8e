package relabel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"
)

// The conformance cases are goldens of Prometheus-Operator's config generator
// (testdata/conformance/SOURCES.txt). Every case is run; the tables below say
// where the agent deliberately differs, and the test checks that the
// difference is exactly that.

// versionGaps lists cases generated for an old Prometheus, for which the
// Operator leaves out options that Prometheus version lacks (the agent
// implements Prometheus 3). For them the test requires that exactly these
// options differ, and the relabel chains still match rule by rule.
var versionGaps = map[string][]string{
	// body_size_limit needs Prometheus 2.28.
	"BodySizeLimits_enforce_v2.27.0": {"body_size_limit"},
	// keep_dropped_targets needs Prometheus 2.47.
	"KeepDroppedTargetsNotAddedInConfig": {"keep_dropped_targets"},
	// label_limit needs Prometheus 2.27.
	"LabelLimits_Limit2000_v2.26.0_enforceLimit1000": {"label_limit"},
	"LabelLimits_Limit500_v2.26.0_enforceLimit1000":  {"label_limit"},
	"LabelLimits_NoLimit_v2.26.0_enforceLimit1000":   {"label_limit"},
	// Before Prometheus 2.45 there are no global limits: a limit set only on
	// the Prometheus resource is not applied.
	"SampleLimits_GlobalLimit1000_Enforce-1-2.21": {"sample_limit"},
	// target_limit needs Prometheus 2.21.
	"TargetLimits-1_Versionv2.15.0":               {"target_limit"},
	"TargetLimits2000_Versionv2.15.0_Enforce1000": {"target_limit"},
	"TargetLimits500_Versionv2.15.0_Enforce1000":  {"target_limit"},
	// enable_http2 needs Prometheus 2.35.
	"ServiceMonitorEndpointEnableHttp2_EnableHTTP2False_v2.34.0": {"http.enable_http2"},
	// follow_redirects needs Prometheus 2.26.
	"ServiceMonitorEndpointFollowRedirects_FollowRedirectFalse_v2.25.0": {"http.follow_redirects"},
	// fallback_scrape_protocol needs Prometheus 3.0.
	"SettingScrapeFallbackProtocolInServiceMonitor_OldVersion": {"fallback_scrape_protocol"},
	// scrape_protocols needs Prometheus 2.49.
	"SettingScrapeProtocolsInServiceMonitor_OldVersion": {"scrape_protocols"},
	// Before Prometheus 2.45 the enforced limit is written into every job,
	// and the Prometheus resource's own (lower) limit is not applied.
	"SampleLimits_GlobalLimit1000_Enforce2000-2.21": {"sample_limit"},
	// convert_classic_histograms_to_nhcb needs Prometheus 3.0.0 (a 3.0.0
	// release candidate sorts before it).
	"NativeHistogramConfigAlwaysScrapeClassicHistograms":                         {"native.convert_nhcb"},
	"native-histograms__NativeHistogramConfigMissConvertClassicHistogramsToNHCB": {"native.convert_nhcb"},
	// scrape_native_histograms needs Prometheus 3.8; with it the default
	// negotiation puts protobuf first.
	"NativeHistogramConfigMissScrapeNativeHistograms": {"native.scrape", "scrape_protocols"},
	// Prometheus 2.44 has no native histogram options at all.
	"NativeHistogramConfigWithMissALL": {"native.always_scrape_classic", "native.bucket_limit", "native.convert_nhcb", "native.min_bucket_factor"},
	// native_histogram_min_bucket_factor needs 2.50, convert 3.0.
	"native-histograms__NativeHistogramConfigWithMissNativeHistogramMinBucketFactor": {"native.convert_nhcb", "native.min_bucket_factor"},
}

// notTaken lists cases whose feature the agent does not take, and the
// options that differ because of it. The relabel chain must still equal the
// golden's up to the sharding rules.
var notTaken = map[string]struct {
	reason  string
	options []string
}{
	"ShardingRelabelConfigs_with_retention_2_shards": {reason: sharding},
	"ShardingRelabelConfigs_with_retention_3_shards": {reason: sharding},
	"ShardingRelabelConfigs_without_retention":       {reason: sharding},
	// With pod topology labels the zone comes from a pod label.
	"TopologySharding_PodTopologyLabels_ServiceMonitor_4shards_2zones":        {reason: topology},
	"TopologySharding_PodTopologyLabels_ServiceMonitor_6shards_3zones":        {reason: topology},
	"TopologySharding_PodTopologyLabels_ServiceMonitor_attach_metadata_false": {reason: topology},
	// Otherwise the Operator forces node metadata to read the node's zone.
	"TopologySharding_ServiceMonitor_4shards_2zones":              {reason: topology, options: []string{"sd.attach_node"}},
	"TopologySharding_ServiceMonitor_6shards_3zones":              {reason: topology, options: []string{"sd.attach_node"}},
	"TopologySharding_ServiceMonitor_force_attach_metadata_false": {reason: topology, options: []string{"sd.attach_node"}},
	"TopologySharding_ServiceMonitor_force_attach_metadata_nil":   {reason: topology, options: []string{"sd.attach_node"}},
}

const (
	sharding = "sharding across Prometheus replicas: a node's agent is the only scraper of its node (one shard)"
	topology = "topology sharding across zones: a node's agent is the only scraper of its node (one shard)"
)

type conformanceCase struct {
	name     string
	prom     *monitoringv1.Prometheus
	monitors []*monitoringv1.ServiceMonitor // in the Operator's order (sorted keys)
	expected expectedConfig
}

// upstreamInput is an upstream/*.input.json.
type upstreamInput struct {
	PrometheusSpec  monitoringv1.PrometheusSpec             `json:"prometheusSpec"`
	ServiceMonitors map[string]*monitoringv1.ServiceMonitor `json:"serviceMonitors"`
	Shards          int                                     `json:"shards"`
}

// syntheticInput is a synthetic/S*.input.json: one monitor and the fields
// of the Prometheus spec that differ from the base spec.
type syntheticInput struct {
	PrometheusVersion string                       `json:"prometheusVersion"`
	Overrides         json.RawMessage              `json:"prometheusSpecOverrides"`
	ServiceMonitor    *monitoringv1.ServiceMonitor `json:"serviceMonitor"`
}

type expectedConfig struct {
	Global expectedGlobal           `yaml:"global"`
	Jobs   []map[string]interface{} `yaml:"serviceMonitorJobs"`
}

type expectedGlobal struct {
	ScrapeInterval        string   `yaml:"scrape_interval"`
	ScrapeTimeout         string   `yaml:"scrape_timeout"`
	ScrapeProtocols       []string `yaml:"scrape_protocols"`
	SampleLimit           int64    `yaml:"sample_limit"`
	TargetLimit           int64    `yaml:"target_limit"`
	LabelLimit            int64    `yaml:"label_limit"`
	LabelNameLengthLimit  int64    `yaml:"label_name_length_limit"`
	LabelValueLengthLimit int64    `yaml:"label_value_length_limit"`
	KeepDroppedTargets    int64    `yaml:"keep_dropped_targets"`
	BodySizeLimit         string   `yaml:"body_size_limit"`
}

// expectedJob is one scrape job of a golden, as Prometheus reads it.
type expectedJob struct {
	JobName                        string                  `yaml:"job_name"`
	HonorLabels                    bool                    `yaml:"honor_labels"`
	HonorTimestamps                *bool                   `yaml:"honor_timestamps"`
	TrackTimestampsStaleness       bool                    `yaml:"track_timestamps_staleness"`
	SD                             []expectedSD            `yaml:"kubernetes_sd_configs"`
	ScrapeInterval                 string                  `yaml:"scrape_interval"`
	ScrapeTimeout                  string                  `yaml:"scrape_timeout"`
	MetricsPath                    string                  `yaml:"metrics_path"`
	Params                         map[string][]string     `yaml:"params"`
	Scheme                         string                  `yaml:"scheme"`
	SampleLimit                    int64                   `yaml:"sample_limit"`
	TargetLimit                    int64                   `yaml:"target_limit"`
	LabelLimit                     int64                   `yaml:"label_limit"`
	LabelNameLengthLimit           int64                   `yaml:"label_name_length_limit"`
	LabelValueLengthLimit          int64                   `yaml:"label_value_length_limit"`
	KeepDroppedTargets             int64                   `yaml:"keep_dropped_targets"`
	BodySizeLimit                  string                  `yaml:"body_size_limit"`
	ScrapeProtocols                []string                `yaml:"scrape_protocols"`
	FallbackScrapeProtocol         string                  `yaml:"fallback_scrape_protocol"`
	ScrapeNativeHistograms         *bool                   `yaml:"scrape_native_histograms"`
	NativeHistogramBucketLimit     int64                   `yaml:"native_histogram_bucket_limit"`
	NativeHistogramMinBucketFactor float64                 `yaml:"native_histogram_min_bucket_factor"`
	AlwaysScrapeClassicHistograms  *bool                   `yaml:"always_scrape_classic_histograms"`
	ScrapeClassicHistograms        *bool                   `yaml:"scrape_classic_histograms"`
	ConvertClassicToNHCB           bool                    `yaml:"convert_classic_histograms_to_nhcb"`
	RelabelConfigs                 []*promrelabel.Config   `yaml:"relabel_configs"`
	MetricRelabelConfigs           []*promrelabel.Config   `yaml:"metric_relabel_configs"`
	HTTP                           config.HTTPClientConfig `yaml:",inline"`
}

type expectedSD struct {
	Role       string `yaml:"role"`
	Namespaces struct {
		Names []string `yaml:"names"`
	} `yaml:"namespaces"`
	Selectors []struct {
		Role  string `yaml:"role"`
		Label string `yaml:"label"`
	} `yaml:"selectors"`
	AttachMetadata struct {
		Node bool `yaml:"node"`
	} `yaml:"attach_metadata"`
}

const conformanceDir = "testdata/conformance/servicemonitor"

func loadConformanceCases(t *testing.T) []conformanceCase {
	t.Helper()
	var cases []conformanceCase
	for _, dir := range []string{"upstream", "synthetic"} {
		files, err := filepath.Glob(filepath.Join(conformanceDir, dir, "*.input.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".input.json")
			c := conformanceCase{name: name, prom: &monitoringv1.Prometheus{}}
			c.prom.Namespace, c.prom.Name = "default", "test"
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if dir == "upstream" {
				var in upstreamInput
				if err := json.Unmarshal(data, &in); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				c.prom.Spec = in.PrometheusSpec
				for _, k := range sortedKeys(in.ServiceMonitors) {
					c.monitors = append(c.monitors, in.ServiceMonitors[k])
				}
			} else {
				var in syntheticInput
				if err := json.Unmarshal(data, &in); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				c.prom.Spec.Version = "v" + in.PrometheusVersion
				if err := json.Unmarshal(in.Overrides, &c.prom.Spec); err != nil {
					t.Fatalf("%s: overrides: %v", f, err)
				}
				c.monitors = []*monitoringv1.ServiceMonitor{in.ServiceMonitor}
			}
			exp, err := os.ReadFile(filepath.Join(conformanceDir, dir, name+".expected.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			// The Operator's config reloader expands $(SHARD) to the
			// shard's index before Prometheus reads the file; the agent
			// is shard 0 of 1.
			exp = []byte(strings.ReplaceAll(string(exp), "$(SHARD)", "0"))
			if err := yaml.Unmarshal(exp, &c.expected); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			cases = append(cases, c)
		}
	}
	return cases
}

func TestConformance(t *testing.T) {
	cases := loadConformanceCases(t)
	if len(cases) != 108 {
		t.Fatalf("found %d conformance cases, want 98 upstream + 10 synthetic", len(cases))
	}
	stores := loadStores(t)
	var exact, gaps, prefix int
	seenGaps, seenNotTaken := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := SettingsFromPrometheus(c.prom)
			if err != nil {
				t.Fatal(err)
			}
			g, err := NewGenerator(s)
			if err != nil {
				t.Fatal(err)
			}
			store := stores[c.name]
			var jobs []*Job
			for _, sm := range c.monitors {
				m, err := g.ServiceMonitor(sm, store)
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, m.Jobs...)
			}
			if len(jobs) != len(c.expected.Jobs) {
				t.Fatalf("%d jobs, golden has %d", len(jobs), len(c.expected.Jobs))
			}
			nt, skipSharding := notTaken[c.name]
			var diffs []string
			for i, raw := range c.expected.Jobs {
				exp := decodeExpectedJob(t, raw)
				j := jobs[i]
				if j.Name != exp.JobName {
					t.Fatalf("job %d: name %q, golden %q", i, j.Name, exp.JobName)
				}
				ours, theirs := j.RelabelConfigs, exp.RelabelConfigs
				if skipSharding {
					ours, theirs = withoutSharding(ours), withoutSharding(theirs)
				}
				if d := diffRules(ours, theirs); d != "" {
					t.Errorf("job %s relabel_configs:\n%s", j.Name, d)
				}
				if d := diffRules(j.MetricRelabelConfigs, exp.MetricRelabelConfigs); d != "" {
					t.Errorf("job %s metric_relabel_configs:\n%s", j.Name, d)
				}
				want := expectedOptions(t, exp, c.expected.Global, store)
				got := jobOptions(j)
				for _, k := range sortedKeys(want) {
					if got[k] != want[k] {
						diffs = append(diffs, k)
						if !slices.Contains(versionGaps[c.name], k) && !skipSharding {
							t.Errorf("job %s: %s = %q, golden %q", j.Name, k, got[k], want[k])
						}
					}
				}
				for k := range got {
					if _, ok := want[k]; !ok {
						t.Errorf("job %s: option %s not derived from the golden", j.Name, k)
					}
				}
			}
			slices.Sort(diffs)
			diffs = slices.Compact(diffs)
			switch {
			case skipSharding:
				seenNotTaken[c.name] = true
				if !slices.Equal(diffs, nt.options) {
					t.Errorf("options differing %v, want exactly %v (%s)", diffs, nt.options, nt.reason)
				}
				prefix++
			case versionGaps[c.name] != nil:
				seenGaps[c.name] = true
				if !slices.Equal(diffs, versionGaps[c.name]) {
					t.Errorf("options differing %v, want exactly the version gap %v", diffs, versionGaps[c.name])
				}
				gaps++
			default:
				exact++
			}
		})
	}
	for name := range versionGaps {
		if !seenGaps[name] {
			t.Errorf("versionGaps lists %q, which is not a case", name)
		}
	}
	for name := range notTaken {
		if !seenNotTaken[name] {
			t.Errorf("notTaken lists %q, which is not a case", name)
		}
	}
	t.Logf("conformance: %d cases: %d exact (chains and options), %d exact but for options their Prometheus version lacks, %d not taken (sharding; chains equal up to the sharding rules)",
		len(cases), exact, gaps, prefix)
}

func decodeExpectedJob(t *testing.T, raw map[string]interface{}) *expectedJob {
	t.Helper()
	b, err := yaml.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	exp := &expectedJob{HTTP: config.DefaultHTTPClientConfig}
	if err := yaml.UnmarshalStrict(b, exp); err != nil {
		t.Fatalf("golden job: %v", err)
	}
	// Prometheus validates (and normalises) the inlined HTTP settings of a
	// scrape job when it loads it.
	if err := exp.HTTP.Validate(); err != nil {
		t.Fatalf("golden job %s: %v", exp.JobName, err)
	}
	return exp
}

// withoutSharding cuts a chain at the Operator's sharding rules.
func withoutSharding(cfgs []*promrelabel.Config) []*promrelabel.Config {
	for i, c := range cfgs {
		if c.TargetLabel == "__tmp_current_shard" || c.TargetLabel == "__tmp_topology" || c.TargetLabel == "__tmp_hash" {
			return cfgs[:i]
		}
	}
	return cfgs
}

func diffRules(got, want []*promrelabel.Config) string {
	var b strings.Builder
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = ruleString(got[i])
			if got[i].NameValidationScheme != model.UTF8Validation {
				g += " (name validation not UTF-8)"
			}
		}
		if i < len(want) {
			w = ruleString(want[i])
		}
		if g != w {
			fmt.Fprintf(&b, "  rule %d:\n    got  %s\n    want %s\n", i, g, w)
		}
	}
	return b.String()
}

func ruleString(c *promrelabel.Config) string {
	src := make([]string, len(c.SourceLabels))
	for i, l := range c.SourceLabels {
		src[i] = string(l)
	}
	return fmt.Sprintf("action=%s source=%q sep=%q regex=%q mod=%d target=%q repl=%q",
		c.Action, src, c.Separator, c.Regex.String(), c.Modulus, c.TargetLabel, c.Replacement)
}

// expectedOptions derives the settings Prometheus applies to a golden job:
// the job's own values, else the global section, else Prometheus' defaults.
func expectedOptions(t *testing.T, e *expectedJob, g expectedGlobal, store Store) map[string]string {
	t.Helper()
	o := map[string]string{}
	if len(e.SD) != 1 {
		t.Fatalf("%s: %d kubernetes_sd_configs", e.JobName, len(e.SD))
	}
	sd := e.SD[0]
	o["sd.role"] = sd.Role
	o["sd.namespaces"] = strings.Join(sd.Namespaces.Names, ",")
	var sels []string
	for _, s := range sd.Selectors {
		sels = append(sels, s.Role+":"+s.Label)
	}
	o["sd.selectors"] = strings.Join(sels, ";")
	o["sd.attach_node"] = strconv.FormatBool(sd.AttachMetadata.Node)

	interval := parseDur(t, e.ScrapeInterval, parseDur(t, g.ScrapeInterval, time.Minute))
	o["interval"] = interval.String()
	o["timeout"] = parseDur(t, e.ScrapeTimeout, min(parseDur(t, g.ScrapeTimeout, 10*time.Second), interval)).String()
	o["scheme"] = or(e.Scheme, "http")
	o["metrics_path"] = or(e.MetricsPath, "/metrics")
	o["params"] = fmt.Sprint(e.Params)
	o["honor_labels"] = strconv.FormatBool(e.HonorLabels)
	o["honor_timestamps"] = strconv.FormatBool(e.HonorTimestamps == nil || *e.HonorTimestamps)
	o["track_timestamps_staleness"] = strconv.FormatBool(e.TrackTimestampsStaleness)
	o["enable_compression"] = "true"
	limit := func(job, global int64) string {
		if job != 0 {
			return strconv.FormatInt(job, 10)
		}
		return strconv.FormatInt(global, 10)
	}
	o["sample_limit"] = limit(e.SampleLimit, g.SampleLimit)
	o["target_limit"] = limit(e.TargetLimit, g.TargetLimit)
	o["label_limit"] = limit(e.LabelLimit, g.LabelLimit)
	o["label_name_length_limit"] = limit(e.LabelNameLengthLimit, g.LabelNameLengthLimit)
	o["label_value_length_limit"] = limit(e.LabelValueLengthLimit, g.LabelValueLengthLimit)
	o["keep_dropped_targets"] = limit(e.KeepDroppedTargets, g.KeepDroppedTargets)
	o["body_size_limit"] = limit(parseBytes(t, e.BodySizeLimit), parseBytes(t, g.BodySizeLimit))
	native := e.ScrapeNativeHistograms != nil && *e.ScrapeNativeHistograms
	protocols := e.ScrapeProtocols
	if protocols == nil {
		protocols = g.ScrapeProtocols
	}
	if protocols == nil {
		protocols = []string{"OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText1.0.0", "PrometheusText0.0.4"}
		if native {
			protocols = append([]string{"PrometheusProto"}, protocols...)
		}
	}
	o["scrape_protocols"] = strings.Join(protocols, ",")
	o["fallback_scrape_protocol"] = e.FallbackScrapeProtocol
	o["native.scrape"] = strconv.FormatBool(native)
	o["native.bucket_limit"] = strconv.FormatInt(e.NativeHistogramBucketLimit, 10)
	o["native.min_bucket_factor"] = strconv.FormatFloat(e.NativeHistogramMinBucketFactor, 'g', -1, 64)
	classic := e.AlwaysScrapeClassicHistograms
	if classic == nil {
		classic = e.ScrapeClassicHistograms
	}
	o["native.always_scrape_classic"] = strconv.FormatBool(classic != nil && *classic)
	o["native.convert_nhcb"] = strconv.FormatBool(e.ConvertClassicToNHCB)
	httpOptions(o, fromPromHTTP(t, &e.HTTP, store))
	return o
}

// fromPromHTTP maps Prometheus' HTTP client settings onto the agent's type;
// TLS files the Operator wrote from Secrets and ConfigMaps
// (/etc/prometheus/certs/<0 secret|1 configmap>_<ns>_<name>_<key>) are
// replaced by the values they hold.
func fromPromHTTP(t *testing.T, h *config.HTTPClientConfig, store Store) HTTPConfig {
	t.Helper()
	out := HTTPConfig{FollowRedirects: h.FollowRedirects, EnableHTTP2: h.EnableHTTP2,
		TLS: fromPromTLS(t, h.TLSConfig, store), Proxy: fromPromProxy(h.ProxyConfig)}
	if a := h.Authorization; a != nil {
		out.Authorization = &Authorization{Type: a.Type, Credentials: Secret(a.Credentials), CredentialsFile: a.CredentialsFile}
	}
	if b := h.BasicAuth; b != nil {
		out.BasicAuth = &BasicAuth{Username: b.Username, Password: Secret(b.Password)}
	}
	if o := h.OAuth2; o != nil {
		out.OAuth2 = &OAuth2{ClientID: o.ClientID, ClientSecret: Secret(o.ClientSecret), TokenURL: o.TokenURL,
			Scopes: o.Scopes, EndpointParams: o.EndpointParams, TLS: fromPromTLS(t, o.TLSConfig, store), Proxy: fromPromProxy(o.ProxyConfig)}
	}
	return out
}

func fromPromTLS(t *testing.T, c config.TLSConfig, store Store) TLSConfig {
	t.Helper()
	out := TLSConfig{CA: c.CA, Cert: c.Cert, Key: Secret(c.Key), CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile,
		ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: uint16(c.MinVersion), MaxVersion: uint16(c.MaxVersion)}
	asset := func(file *string) string {
		rest, ok := strings.CutPrefix(*file, "/etc/prometheus/certs/")
		if !ok {
			return ""
		}
		*file = ""
		p := strings.SplitN(rest, "_", 4)
		if len(p) != 4 {
			t.Fatalf("TLS asset %q: want <from>_<ns>_<name>_<key>", rest)
		}
		var v string
		var err error
		if p[0] == "0" {
			var b []byte
			b, err = store.SecretKey(p[1], p[2], p[3])
			v = string(b)
		} else {
			v, err = store.ConfigMapKey(p[1], p[2], p[3])
		}
		if err != nil {
			t.Fatalf("TLS asset %q: %v", rest, err)
		}
		return v
	}
	if v := asset(&out.CAFile); v != "" {
		out.CA = v
	}
	if v := asset(&out.CertFile); v != "" {
		out.Cert = v
	}
	if v := asset(&out.KeyFile); v != "" {
		out.Key = Secret(v)
	}
	return out
}

func fromPromProxy(p config.ProxyConfig) ProxyConfig {
	out := ProxyConfig{URL: p.ProxyURL.URL, NoProxy: p.NoProxy, FromEnvironment: p.ProxyFromEnvironment}
	if len(p.ProxyConnectHeader) > 0 {
		out.ConnectHeader = map[string][]Secret{}
		for k, vs := range p.ProxyConnectHeader {
			for _, v := range vs {
				out.ConnectHeader[k] = append(out.ConnectHeader[k], Secret(v))
			}
		}
	}
	return out
}

// jobOptions flattens a job's settings with the keys expectedOptions uses.
func jobOptions(j *Job) map[string]string {
	o := map[string]string{}
	o["sd.role"] = string(j.SD.Role)
	o["sd.namespaces"] = strings.Join(j.SD.Namespaces, ",")
	var sels []string
	for _, s := range j.SD.Selectors {
		sels = append(sels, string(s.Role)+":"+s.Label)
	}
	o["sd.selectors"] = strings.Join(sels, ";")
	o["sd.attach_node"] = strconv.FormatBool(j.SD.AttachNodeMetadata)
	s := &j.Scrape
	o["interval"] = s.Interval.String()
	o["timeout"] = s.Timeout.String()
	o["scheme"] = s.Scheme
	o["metrics_path"] = s.MetricsPath
	o["params"] = fmt.Sprint(map[string][]string(s.Params))
	o["honor_labels"] = strconv.FormatBool(s.HonorLabels)
	o["honor_timestamps"] = strconv.FormatBool(s.HonorTimestamps)
	o["track_timestamps_staleness"] = strconv.FormatBool(s.TrackTimestampsStaleness)
	o["enable_compression"] = strconv.FormatBool(s.EnableCompression)
	o["sample_limit"] = strconv.FormatInt(s.Limits.Samples, 10)
	o["target_limit"] = strconv.FormatInt(s.Limits.Targets, 10)
	o["label_limit"] = strconv.FormatInt(s.Limits.Labels, 10)
	o["label_name_length_limit"] = strconv.FormatInt(s.Limits.LabelNameLength, 10)
	o["label_value_length_limit"] = strconv.FormatInt(s.Limits.LabelValueLength, 10)
	o["keep_dropped_targets"] = strconv.FormatInt(s.Limits.KeepDroppedTargets, 10)
	o["body_size_limit"] = strconv.FormatInt(s.Limits.BodySize, 10)
	o["scrape_protocols"] = strings.Join(s.ScrapeProtocols, ",")
	o["fallback_scrape_protocol"] = s.FallbackProtocol
	n := s.NativeHistograms
	o["native.scrape"] = strconv.FormatBool(n.Scrape)
	o["native.bucket_limit"] = strconv.FormatInt(n.BucketLimit, 10)
	o["native.min_bucket_factor"] = strconv.FormatFloat(n.MinBucketFactor, 'g', -1, 64)
	o["native.always_scrape_classic"] = strconv.FormatBool(n.AlwaysScrapeClassic)
	o["native.convert_nhcb"] = strconv.FormatBool(n.ConvertClassicToNHCB)
	httpOptions(o, j.HTTP)
	return o
}

func httpOptions(o map[string]string, h HTTPConfig) {
	o["http.follow_redirects"] = strconv.FormatBool(h.FollowRedirects)
	o["http.enable_http2"] = strconv.FormatBool(h.EnableHTTP2)
	o["http.authorization"] = ""
	if a := h.Authorization; a != nil {
		o["http.authorization"] = fmt.Sprintf("type=%s credentials=%s file=%s", a.Type, string(a.Credentials), a.CredentialsFile)
	}
	o["http.basic_auth"] = ""
	if b := h.BasicAuth; b != nil {
		o["http.basic_auth"] = b.Username + ":" + string(b.Password)
	}
	o["http.oauth2"] = ""
	if a := h.OAuth2; a != nil {
		o["http.oauth2"] = fmt.Sprintf("id=%s secret=%s url=%s scopes=%q params=%v", a.ClientID, string(a.ClientSecret), a.TokenURL, a.Scopes, a.EndpointParams)
		tlsOptions(o, "http.oauth2.tls.", a.TLS)
		proxyOptions(o, "http.oauth2.proxy.", a.Proxy)
	}
	tlsOptions(o, "http.tls.", h.TLS)
	proxyOptions(o, "http.proxy.", h.Proxy)
}

func tlsOptions(o map[string]string, p string, c TLSConfig) {
	o[p+"ca"] = c.CA
	o[p+"cert"] = c.Cert
	o[p+"key"] = string(c.Key)
	o[p+"files"] = c.CAFile + "|" + c.CertFile + "|" + c.KeyFile
	o[p+"server_name"] = c.ServerName
	o[p+"insecure_skip_verify"] = strconv.FormatBool(c.InsecureSkipVerify)
	o[p+"versions"] = fmt.Sprint(c.MinVersion, c.MaxVersion)
}

func proxyOptions(o map[string]string, p string, c ProxyConfig) {
	o[p+"url"] = ""
	if c.URL != nil {
		o[p+"url"] = c.URL.String()
	}
	o[p+"no_proxy"] = c.NoProxy
	o[p+"from_environment"] = strconv.FormatBool(c.FromEnvironment)
	var hs []string
	for k, vs := range c.ConnectHeader {
		for _, v := range vs {
			hs = append(hs, k+"="+string(v))
		}
	}
	sort.Strings(hs)
	o[p+"connect_header"] = strings.Join(hs, ",")
}

func parseDur(t *testing.T, s string, def time.Duration) time.Duration {
	t.Helper()
	if s == "" {
		return def
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

func parseBytes(t *testing.T, s string) int64 {
	t.Helper()
	if s == "" {
		return 0
	}
	// Prometheus' units.Base2Bytes: KB and KiB alike are 1024.
	mult := map[string]int64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	for _, u := range []string{"KB", "MB", "GB", "TB", "B"} {
		if n, ok := strings.CutSuffix(s, u); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("byte size %q: %v", s, err)
			}
			return v * mult[u]
		}
	}
	t.Fatalf("byte size %q", s)
	return 0
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// loadStores reads testdata/conformance/stores.yaml.
func loadStores(t *testing.T) map[string]Store {
	t.Helper()
	data, err := os.ReadFile("testdata/conformance/stores.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]struct {
		Secrets    map[string]map[string]string `yaml:"secrets"`
		ConfigMaps map[string]map[string]string `yaml:"configMaps"`
	}
	if err := yaml.UnmarshalStrict(data, &raw); err != nil {
		t.Fatal(err)
	}
	value := func(v string) string {
		if f, ok := strings.CutPrefix(v, "@"); ok {
			b, err := os.ReadFile(filepath.Join("testdata/tls", f))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		return v
	}
	out := map[string]Store{}
	for name, r := range raw {
		s := MapStore{Secrets: map[string]map[string][]byte{}, ConfigMaps: map[string]map[string]string{}}
		for obj, kv := range r.Secrets {
			s.Secrets[obj] = map[string][]byte{}
			for k, v := range kv {
				s.Secrets[obj][k] = []byte(value(v))
			}
		}
		for obj, kv := range r.ConfigMaps {
			s.ConfigMaps[obj] = map[string]string{}
			for k, v := range kv {
				s.ConfigMaps[obj][k] = value(v)
			}
		}
		out[name] = s
	}
	return out
}
