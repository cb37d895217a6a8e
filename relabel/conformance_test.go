package relabel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	// PodMonitors: label_name_length_limit needs Prometheus 2.27,
	// enable_http2 2.35, follow_redirects 2.26, fallback_scrape_protocol
	// 3.0, scrape_protocols 2.49.
	"pm/LabelNameLengthLimits_Limit-1_Enforc1000_v2.26.0":               {"label_name_length_limit"},
	"pm/LabelNameLengthLimits_Limit2000_Enforce1000_v2.26.0":            {"label_name_length_limit"},
	"pm/LabelNameLengthLimits_Limit500_Enforce1000_v2.26.0":             {"label_name_length_limit"},
	"pm/PodMonitorEndpointEnableHttp2_EnableHTTP2False_v2.34.0":         {"http.enable_http2"},
	"pm/PodMonitorEndpointFollowRedirects_FollowRedirectsFalse_v2.25.0": {"http.follow_redirects"},
	"pm/SettingScrapeFallbackProtocolInPodMonitor_OldVersion":           {"fallback_scrape_protocol"},
	"pm/SettingScrapeProtocolsInPodMonitor_OldVersion":                  {"scrape_protocols"},
	// body_size_limit needs Prometheus 2.28.
	"sm/BodySizeLimits_enforce_v2.27.0": {"body_size_limit"},
	// keep_dropped_targets needs Prometheus 2.47.
	"sm/KeepDroppedTargetsNotAddedInConfig": {"keep_dropped_targets"},
	// label_limit needs Prometheus 2.27.
	"sm/LabelLimits_Limit2000_v2.26.0_enforceLimit1000": {"label_limit"},
	"sm/LabelLimits_Limit500_v2.26.0_enforceLimit1000":  {"label_limit"},
	"sm/LabelLimits_NoLimit_v2.26.0_enforceLimit1000":   {"label_limit"},
	// Before Prometheus 2.45 there are no global limits: a limit set only on
	// the Prometheus resource is not applied.
	"sm/SampleLimits_GlobalLimit1000_Enforce-1-2.21": {"sample_limit"},
	// target_limit needs Prometheus 2.21.
	"sm/TargetLimits-1_Versionv2.15.0":               {"target_limit"},
	"sm/TargetLimits2000_Versionv2.15.0_Enforce1000": {"target_limit"},
	"sm/TargetLimits500_Versionv2.15.0_Enforce1000":  {"target_limit"},
	// enable_http2 needs Prometheus 2.35.
	"sm/ServiceMonitorEndpointEnableHttp2_EnableHTTP2False_v2.34.0": {"http.enable_http2"},
	// follow_redirects needs Prometheus 2.26.
	"sm/ServiceMonitorEndpointFollowRedirects_FollowRedirectFalse_v2.25.0": {"http.follow_redirects"},
	// fallback_scrape_protocol needs Prometheus 3.0.
	"sm/SettingScrapeFallbackProtocolInServiceMonitor_OldVersion": {"fallback_scrape_protocol"},
	// scrape_protocols needs Prometheus 2.49.
	"sm/SettingScrapeProtocolsInServiceMonitor_OldVersion": {"scrape_protocols"},
	// Before Prometheus 2.45 the enforced limit is written into every job,
	// and the Prometheus resource's own (lower) limit is not applied.
	"sm/SampleLimits_GlobalLimit1000_Enforce2000-2.21": {"sample_limit"},
	// convert_classic_histograms_to_nhcb needs Prometheus 3.0.0 (a 3.0.0
	// release candidate sorts before it).
	"sm/NativeHistogramConfigAlwaysScrapeClassicHistograms":                         {"native.convert_nhcb"},
	"sm/native-histograms__NativeHistogramConfigMissConvertClassicHistogramsToNHCB": {"native.convert_nhcb"},
	// scrape_native_histograms needs Prometheus 3.8; with it the default
	// negotiation puts protobuf first.
	"sm/NativeHistogramConfigMissScrapeNativeHistograms": {"native.scrape", "scrape_protocols"},
	// Prometheus 2.44 has no native histogram options at all.
	"sm/NativeHistogramConfigWithMissALL": {"native.always_scrape_classic", "native.bucket_limit", "native.convert_nhcb", "native.min_bucket_factor"},
	// native_histogram_min_bucket_factor needs 2.50, convert 3.0.
	"sm/native-histograms__NativeHistogramConfigWithMissNativeHistogramMinBucketFactor": {"native.convert_nhcb", "native.min_bucket_factor"},
}

// notTaken lists cases whose feature the agent does not take, and the
// options that differ because of it. The relabel chain must still equal the
// golden's up to the sharding rules.
var notTaken = map[string]struct {
	reason  string
	options []string
}{
	// A Prometheus agent in DaemonSet mode restricts pod discovery to its
	// node with a field selector and has no sharding rules; the agent
	// restricts discovery to its node in the informer and keeps the
	// server's single-shard rules.
	"pm/PromAgentDaemonSetPodMonitorConfig":                           {reason: "Prometheus agent DaemonSet mode", options: []string{"sd.selectors"}},
	"pm/TopologySharding_PodMonitor_4shards_2zones":                   {reason: topology, options: []string{"sd.attach_node"}},
	"pm/TopologySharding_PodTopologyLabels_PodMonitor_4shards_2zones": {reason: topology},
	"sm/ShardingRelabelConfigs_with_retention_2_shards":               {reason: sharding},
	"sm/ShardingRelabelConfigs_with_retention_3_shards":               {reason: sharding},
	"sm/ShardingRelabelConfigs_without_retention":                     {reason: sharding},
	// With pod topology labels the zone comes from a pod label.
	"sm/TopologySharding_PodTopologyLabels_ServiceMonitor_4shards_2zones":        {reason: topology},
	"sm/TopologySharding_PodTopologyLabels_ServiceMonitor_6shards_3zones":        {reason: topology},
	"sm/TopologySharding_PodTopologyLabels_ServiceMonitor_attach_metadata_false": {reason: topology},
	// Otherwise the Operator forces node metadata to read the node's zone.
	"sm/TopologySharding_ServiceMonitor_4shards_2zones":              {reason: topology, options: []string{"sd.attach_node"}},
	"sm/TopologySharding_ServiceMonitor_6shards_3zones":              {reason: topology, options: []string{"sd.attach_node"}},
	"sm/TopologySharding_ServiceMonitor_force_attach_metadata_false": {reason: topology, options: []string{"sd.attach_node"}},
	"sm/TopologySharding_ServiceMonitor_force_attach_metadata_nil":   {reason: topology, options: []string{"sd.attach_node"}},
}

const (
	sharding = "sharding across Prometheus replicas: a node's agent is the only scraper of its node (one shard)"
	topology = "topology sharding across zones: a node's agent is the only scraper of its node (one shard)"
)

type conformanceCase struct {
	key      string // "sm/<name>" or "pm/<name>"
	prom     *monitoringv1.Prometheus
	sms      []*monitoringv1.ServiceMonitor // in the Operator's order (sorted keys)
	pms      []*monitoringv1.PodMonitor
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

// podMonitorInput is a podmonitor/*.input.json, captured at the entry of
// the Operator's appendPodMonitorConfigs (SOURCES.txt).
type podMonitorInput struct {
	Namespace   string                              `json:"prometheusNamespace"`
	Name        string                              `json:"prometheusName"`
	Spec        monitoringv1.CommonPrometheusFields `json:"prometheusSpec"`
	PodMonitors map[string]*monitoringv1.PodMonitor `json:"podMonitors"`
}

type expectedConfig struct {
	Global expectedGlobal           `yaml:"global"`
	Jobs   []map[string]interface{} `yaml:"serviceMonitorJobs"`
	// ScrapeConfigs is every job of a full golden (podmonitor/).
	ScrapeConfigs []map[string]interface{} `yaml:"scrape_configs"`
}

type expectedGlobal struct {
	ScrapeInterval  string         `yaml:"scrape_interval"`
	ScrapeTimeout   string         `yaml:"scrape_timeout"`
	ScrapeProtocols []string       `yaml:"scrape_protocols"`
	Limits          expectedLimits `yaml:",inline"`
}

// expectedLimits are the limits a job or the global section may set.
type expectedLimits struct {
	SampleLimit           int64  `yaml:"sample_limit"`
	TargetLimit           int64  `yaml:"target_limit"`
	LabelLimit            int64  `yaml:"label_limit"`
	LabelNameLengthLimit  int64  `yaml:"label_name_length_limit"`
	LabelValueLengthLimit int64  `yaml:"label_value_length_limit"`
	KeepDroppedTargets    int64  `yaml:"keep_dropped_targets"`
	BodySizeLimit         string `yaml:"body_size_limit"`
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
	Limits                         expectedLimits          `yaml:",inline"`
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
		Field string `yaml:"field"`
	} `yaml:"selectors"`
	AttachMetadata struct {
		Node bool `yaml:"node"`
	} `yaml:"attach_metadata"`
}

const conformanceDir = "testdata/conformance"

func loadConformanceCases(t *testing.T) []conformanceCase {
	t.Helper()
	var cases []conformanceCase
	for _, dir := range []string{"servicemonitor/upstream", "servicemonitor/synthetic", "podmonitor"} {
		files, err := filepath.Glob(filepath.Join(conformanceDir, dir, "*.input.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".input.json")
			c := conformanceCase{key: "sm/" + name, prom: &monitoringv1.Prometheus{}}
			c.prom.Namespace, c.prom.Name = "default", "test"
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			expFile := filepath.Join(conformanceDir, dir, name+".expected.yaml")
			switch dir {
			case "servicemonitor/upstream":
				var in upstreamInput
				if err := json.Unmarshal(data, &in); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				c.prom.Spec = in.PrometheusSpec
				for _, k := range sortedKeys(in.ServiceMonitors) {
					c.sms = append(c.sms, in.ServiceMonitors[k])
				}
			case "servicemonitor/synthetic":
				var in syntheticInput
				if err := json.Unmarshal(data, &in); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				c.prom.Spec.Version = "v" + in.PrometheusVersion
				if err := json.Unmarshal(in.Overrides, &c.prom.Spec); err != nil {
					t.Fatalf("%s: overrides: %v", f, err)
				}
				c.sms = []*monitoringv1.ServiceMonitor{in.ServiceMonitor}
			default:
				var in podMonitorInput
				if err := json.Unmarshal(data, &in); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				c.key = "pm/" + name
				c.prom.Namespace, c.prom.Name, c.prom.Spec.CommonPrometheusFields = in.Namespace, in.Name, in.Spec
				for _, k := range sortedKeys(in.PodMonitors) {
					c.pms = append(c.pms, in.PodMonitors[k])
				}
				expFile = filepath.Join(conformanceDir, dir, name+".golden")
			}
			exp, err := os.ReadFile(expFile)
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
			for _, j := range c.expected.ScrapeConfigs {
				if n, _ := j["job_name"].(string); strings.HasPrefix(n, "podMonitor/") {
					c.expected.Jobs = append(c.expected.Jobs, j)
				}
			}
			cases = append(cases, c)
		}
	}
	return cases
}

func TestConformance(t *testing.T) {
	cases := loadConformanceCases(t)
	if len(cases) != 108+55 {
		t.Fatalf("found %d conformance cases, want 98 upstream + 10 synthetic ServiceMonitor cases and 55 PodMonitor cases", len(cases))
	}
	stores := loadStores(t)
	var exact, gaps, prefix, failed [2]int
	seenGaps, seenNotTaken := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		kind := 0
		if c.pms != nil {
			kind = 1
		}
		seenGaps[c.key], seenNotTaken[c.key] = true, true
		t.Run(c.key, func(t *testing.T) {
			bucket := &exact[kind]
			defer func() {
				if t.Failed() {
					bucket = &failed[kind]
				}
				*bucket++
			}()
			s, err := SettingsFromPrometheus(c.prom)
			if err != nil {
				t.Fatal(err)
			}
			// What an operator would list for the cases' proxies and token
			// endpoints (Prometheus has no such allowance).
			s.AllowedProxyURLs = []string{"http://proxy:3128", "http://no-proxy.com"}
			s.AllowedTokenURLs = []string{"http://test.url"}
			g, err := NewGenerator(s)
			if err != nil {
				t.Fatal(err)
			}
			store := stores[c.key]
			var jobs []*Job
			for _, sm := range c.sms {
				m, err := g.ServiceMonitor(sm, store)
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, m.Jobs...)
			}
			for _, pm := range c.pms {
				m, err := g.PodMonitor(pm, store)
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, m.Jobs...)
			}
			if len(jobs) != len(c.expected.Jobs) {
				t.Fatalf("%d jobs, golden has %d", len(jobs), len(c.expected.Jobs))
			}
			nt, skipSharding := notTaken[c.key]
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
						if !slices.Contains(versionGaps[c.key], k) && !skipSharding {
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
				bucket = &prefix[kind]
				if !slices.Equal(diffs, nt.options) {
					t.Errorf("options differing %v, want exactly %v (%s)", diffs, nt.options, nt.reason)
				}
			case versionGaps[c.key] != nil:
				bucket = &gaps[kind]
				if !slices.Equal(diffs, versionGaps[c.key]) {
					t.Errorf("options differing %v, want exactly the version gap %v", diffs, versionGaps[c.key])
				}
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
	for i, kind := range []string{"ServiceMonitor", "PodMonitor"} {
		t.Logf("%s conformance: %d cases: %d exact (chains and options), %d exact but for options their Prometheus version lacks, %d not taken (chains equal up to the sharding rules); %d failed",
			kind, exact[i]+gaps[i]+prefix[i]+failed[i], exact[i], gaps[i], prefix[i], failed[i])
	}
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
