package ddclient

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promrelabel "github.com/prometheus/prometheus/model/relabel"
)

const (
	prom = exposition.FormatPrometheus
	om   = exposition.FormatOpenMetrics
)

// testTS is a point's timestamp in the mapping tests (Unix milliseconds).
var testTS = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()

// renameRule renames the series matching regex to replacement ($1 is the
// first group), as a metric_relabel_configs replace rule on __name__.
func renameRule(regex, replacement string) *promrelabel.Config {
	return &promrelabel.Config{
		Action: promrelabel.Replace, SourceLabels: model.LabelNames{model.MetricNameLabel}, Separator: ";",
		Regex: promrelabel.MustNewRegexp(regex), TargetLabel: model.MetricNameLabel, Replacement: replacement,
		NameValidationScheme: model.UTF8Validation,
	}
}

// TestMappingRules checks every naming rule of DESIGN.md "Datadog output"
// (Datadog's OpenMetrics V2 check) end to end: exposition text through the
// parser and the appender, decoded as datadogV2.MetricPayload.
func TestMappingRules(t *testing.T) {
	cases := []struct {
		name    string
		format  exposition.Format
		body    string
		mapping Mapping
		relabel []*promrelabel.Config
		cluster bool // a target of no node (target.Target.Cluster)
		want    []string
	}{
		{
			name:   "counter foo_total → foo.count, a count with the scrape interval",
			format: prom,
			body:   "# TYPE foo counter\nfoo_total{code=\"200\"} 3\n",
			want:   []string{"foo.count count/15 [code:200] = 3"},
		},
		{
			name:   "counter foo without _total → foo.count",
			format: prom,
			body:   "# TYPE foo counter\nfoo{code=\"200\"} 3\n",
			want:   []string{"foo.count count/15 [code:200] = 3"},
		},
		{
			name:   "counter whose family is declared with _total → foo.count",
			format: prom,
			body:   "# TYPE foo_total counter\nfoo_total 3\n",
			want:   []string{"foo.count count/15 [] = 3"},
		},
		{
			name:   "OpenMetrics counter: _created is not sent",
			format: om,
			body:   "# TYPE foo counter\nfoo_total{code=\"200\"} 3\nfoo_created{code=\"200\"} 1.7e9\n# EOF\n",
			want:   []string{"foo.count count/15 [code:200] = 3"},
		},
		{
			name:   "histogram: _bucket → .bucket with upper_bound, +Inf skipped, _sum and _count counts",
			format: prom,
			body: "# TYPE h histogram\n" +
				"h_bucket{method=\"get\",le=\"0.1\"} 1\nh_bucket{method=\"get\",le=\"1\"} 2\nh_bucket{method=\"get\",le=\"+Inf\"} 3\n" +
				"h_sum{method=\"get\"} 4.5\nh_count{method=\"get\"} 3\n",
			want: []string{
				"h.bucket count/15 [method:get upper_bound:0.1] = 1",
				"h.bucket count/15 [method:get upper_bound:1] = 2",
				"h.count count/15 [method:get] = 3",
				"h.sum count/15 [method:get] = 4.5",
			},
		},
		{
			name:   "OpenMetrics histogram: _created is not sent",
			format: om,
			body: "# TYPE h histogram\n" +
				"h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\nh_created 1.7e9\n# EOF\n",
			want: []string{
				"h.bucket count/15 [upper_bound:0.5] = 1",
				"h.count count/15 [] = 2",
				"h.sum count/15 [] = 0.7",
			},
		},
		{
			name:   "summary: quantile → .quantile gauge with a quantile tag, _sum and _count counts",
			format: prom,
			body: "# TYPE s summary\n" +
				"s{quantile=\"0.5\"} 0.2\ns{quantile=\"0.99\"} 0.9\ns_sum 10\ns_count 20\n",
			want: []string{
				"s.count count/15 [] = 20",
				"s.quantile gauge [quantile:0.5] = 0.2",
				"s.quantile gauge [quantile:0.99] = 0.9",
				"s.sum count/15 [] = 10",
			},
		},
		{
			name:   "OpenMetrics summary: _created is not sent",
			format: om,
			body: "# TYPE s summary\n" +
				"s{quantile=\"0.5\",op=\"r\"} 0.2\ns_sum{op=\"r\"} 10\ns_count{op=\"r\"} 20\ns_created{op=\"r\"} 1.7e9\n# EOF\n",
			want: []string{
				"s.count count/15 [op:r] = 20",
				"s.quantile gauge [op:r quantile:0.5] = 0.2",
				"s.sum count/15 [op:r] = 10",
			},
		},
		{
			name:   "gauge → the sample's name, a gauge without interval",
			format: prom,
			body:   "# TYPE temp gauge\ntemp{room=\"lab\"} 21.5\n",
			want:   []string{"temp gauge [room:lab] = 21.5"},
		},
		{
			name:   "untyped (no # TYPE, or untyped) → gauge",
			format: prom,
			body:   "free_bytes 7\n# TYPE x untyped\nx 1\n",
			want:   []string{"free_bytes gauge [] = 7", "x gauge [] = 1"},
		},
		{
			name:   "OpenMetrics unknown → gauge",
			format: om,
			body:   "# TYPE u unknown\nu 1\n# EOF\n",
			want:   []string{"u gauge [] = 1"},
		},
		{
			name:   "OpenMetrics info, stateset and gaugehistogram → gauges named as sampled",
			format: om,
			body: "# TYPE build info\nbuild_info{version=\"1.2\"} 1\n" +
				"# TYPE state stateset\nstate{state=\"a\"} 1\nstate{state=\"b\"} 0\n" +
				"# TYPE q gaugehistogram\nq_bucket{le=\"1\"} 2\nq_bucket{le=\"+Inf\"} 3\nq_gcount 3\nq_gsum 4\n# EOF\n",
			want: []string{
				"build_info gauge [exported_version:1.2] = 1", // a unified service tag's name: tagRules rule 5
				"q_bucket gauge [le:+Inf] = 3",
				"q_bucket gauge [le:1] = 2",
				"q_gcount gauge [] = 3",
				"q_gsum gauge [] = 4",
				"state gauge [state:a] = 1",
				"state gauge [state:b] = 0",
			},
		},
		{
			name:    "namespace prefix on every metric",
			format:  prom,
			body:    "# TYPE foo counter\nfoo_total 1\n# TYPE temp gauge\ntemp 2\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
			mapping: Mapping{Namespace: "app"},
			want: []string{
				"app.foo.count count/15 [] = 1",
				"app.h.bucket count/15 [upper_bound:1] = 1",
				"app.h.count count/15 [] = 1",
				"app.h.sum count/15 [] = 1",
				"app.temp gauge [] = 2",
			},
		},
		{
			name:    "characters Datadog does not allow in metric names become _",
			format:  prom,
			body:    "# TYPE job:req:rate5m gauge\njob:req:rate5m 1\n{\"weird-name é\",a=\"b\"} 2\n",
			mapping: Mapping{Namespace: "my-ns"},
			want: []string{
				"my_ns.job_req_rate5m gauge [] = 1",
				"my_ns.weird_name___ gauge [a:b] = 2",
			},
		},
		{
			name:    "host resource",
			format:  prom,
			body:    "temp 2\n",
			mapping: Mapping{Host: "node-1-prod"},
			want:    []string{"temp gauge host=node-1-prod [] = 2"},
		},
		{
			name:    "a target of no node: no host, the cluster tags of a Datadog cluster check",
			format:  prom,
			body:    "temp 2\n",
			mapping: Mapping{Host: "node-1-prod", ClusterName: "prod"},
			cluster: true,
			want:    []string{"temp gauge [cluster_name:prod kube_cluster_name:prod] = 2"},
		},
		{
			name:    "a node's target with a cluster name: host and kube_cluster_name",
			format:  prom,
			body:    "temp 2\n",
			mapping: Mapping{Host: "node-1-prod", ClusterName: "prod"},
			want:    []string{"temp gauge host=node-1-prod [kube_cluster_name:prod] = 2"},
		},
		{
			name:   "a relabeling that renamed the series: named after its new name",
			format: prom,
			body: "# TYPE foo counter\nfoo_total 1\n# TYPE temp gauge\ntemp 2\n" +
				"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n" +
				"# TYPE s summary\ns{quantile=\"0.5\"} 5\ns_sum 6\ns_count 7\n",
			relabel: []*promrelabel.Config{
				renameRule("foo_total", "bar_total"),
				renameRule("temp", "room_temp"),
				renameRule("(h_.*|s|s_.*)", "app_$1"),
			},
			want: []string{
				"app_h.bucket count/15 [upper_bound:1] = 1",
				"app_h.count count/15 [] = 1",
				"app_h.sum count/15 [] = 3",
				"app_s.count count/15 [] = 7",
				"app_s.quantile gauge [quantile:0.5] = 5",
				"app_s.sum count/15 [] = 6",
				"bar.count count/15 [] = 1",
				"room_temp gauge [] = 2",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := newCaptureSink()
			target := &target.Target{URL: "http://10.0.0.1/metrics", Interval: 15 * time.Second, MetricRelabel: c.relabel, Cluster: c.cluster}
			s := newScraper(t, mappedBackend{sink, c.mapping}, target, c.format)
			s.scrape(c.body, testTS)
			got := renderAll(sink.series(t))
			if !slices.Equal(got, c.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(c.want, "\n\t"))
			}
			for _, ser := range sink.series(t) {
				if len(ser.Points) != 1 || ser.Points[0].GetTimestamp() != testTS/1000 {
					t.Errorf("%s: points %+v, want one at %d s", ser.Metric, ser.Points, testTS/1000)
				}
			}
		})
	}
}

// TestMetricFor checks the mapping function itself on every type and role
// combination it distinguishes.
func TestMetricFor(t *testing.T) {
	drop := metric{kind: scrapeloop.KindDrop}
	count := func(name string) metric { return metric{name: name, typ: Count, kind: scrapeloop.KindCounter} }
	gauge := func(name string) metric { return metric{name: name, typ: Gauge, kind: scrapeloop.KindGauge} }
	bucket := func(name string) metric {
		return metric{name: name, typ: Count, kind: scrapeloop.KindCounter, bucket: true}
	}
	cases := []struct {
		family, sample string
		typ            exposition.MetricType
		role           exposition.Role
		le             string
		want           metric
	}{
		{"foo", "foo_total", exposition.TypeCounter, exposition.RoleTotal, "", count("foo.count")},
		{"foo", "foo", exposition.TypeCounter, exposition.RoleTotal, "", count("foo.count")},
		{"foo", "foo_created", exposition.TypeCounter, exposition.RoleCreated, "", drop},
		{"h", "h_bucket", exposition.TypeHistogram, exposition.RoleBucket, "0.25", bucket("h.bucket")},
		{"h", "h_bucket", exposition.TypeHistogram, exposition.RoleBucket, "+Inf", drop},
		{"h", "h_bucket", exposition.TypeHistogram, exposition.RoleBucket, "", drop},
		{"h", "h_sum", exposition.TypeHistogram, exposition.RoleSum, "", count("h.sum")},
		{"h", "h_count", exposition.TypeHistogram, exposition.RoleCount, "", count("h.count")},
		{"h", "h_created", exposition.TypeHistogram, exposition.RoleCreated, "", drop},
		{"s", "s", exposition.TypeSummary, exposition.RoleQuantile, "", gauge("s.quantile")},
		{"s", "s_sum", exposition.TypeSummary, exposition.RoleSum, "", count("s.sum")},
		{"s", "s_count", exposition.TypeSummary, exposition.RoleCount, "", count("s.count")},
		{"s", "s_created", exposition.TypeSummary, exposition.RoleCreated, "", drop},
		{"s", "s", exposition.TypeSummary, exposition.RoleValue, "", gauge("s")},
		{"g", "g", exposition.TypeGauge, exposition.RoleValue, "", gauge("g")},
		{"u", "u", exposition.TypeUnknown, exposition.RoleValue, "", gauge("u")},
		{"i", "i_info", exposition.TypeInfo, exposition.RoleValue, "", gauge("i_info")},
		{"st", "st", exposition.TypeStateset, exposition.RoleValue, "", gauge("st")},
		{"q", "q_bucket", exposition.TypeGaugeHistogram, exposition.RoleBucket, "1", gauge("q_bucket")},
		{"q", "q_gcount", exposition.TypeGaugeHistogram, exposition.RoleGCount, "", gauge("q_gcount")},
		{"q", "q_gsum", exposition.TypeGaugeHistogram, exposition.RoleGSum, "", gauge("q_gsum")},
		// Renamed by relabeling: the family no longer matches the name.
		{"foo", "bar_total", exposition.TypeCounter, exposition.RoleTotal, "", count("bar.count")},
		{"h", "app_h_bucket", exposition.TypeHistogram, exposition.RoleBucket, "1", bucket("app_h.bucket")},
		{"h", "app_h_sum", exposition.TypeHistogram, exposition.RoleSum, "", count("app_h.sum")},
		{"h", "app_h_count", exposition.TypeHistogram, exposition.RoleCount, "", count("app_h.count")},
		{"h", "hx_sum", exposition.TypeHistogram, exposition.RoleSum, "", count("hx.sum")},
		{"h", "latency", exposition.TypeHistogram, exposition.RoleSum, "", count("latency.sum")},
		{"s", "app_s", exposition.TypeSummary, exposition.RoleQuantile, "", gauge("app_s.quantile")},
		{"", "h_sum", exposition.TypeHistogram, exposition.RoleSum, "", count("h.sum")},
	}
	m := &Mapping{}
	for _, c := range cases {
		if got := m.metricFor(c.family, c.sample, c.typ, c.role, c.le); got != c.want {
			t.Errorf("metricFor(%q, %q, %v, %v, %q) = %+v, want %+v", c.family, c.sample, c.typ, c.role, c.le, got, c.want)
		}
	}
	ns := &Mapping{Namespace: "kube"}
	if got := ns.metricFor("foo", "foo_total", exposition.TypeCounter, exposition.RoleTotal, ""); got.name != "kube.foo.count" {
		t.Errorf("with a namespace: %q, want kube.foo.count", got.name)
	}
}

func TestMetricName(t *testing.T) {
	cases := []struct{ ns, name, want string }{
		{"", "plain_name.ok", "plain_name.ok"},
		{"", "job:rate:5m", "job_rate_5m"},
		{"", "dash-and space", "dash_and_space"},
		{"", "é", "__"}, // one '_' per byte of a non-ASCII rune
		{"ns", "foo", "ns.foo"},
		{"my-ns", "a:b", "my_ns.a_b"},
	}
	for _, c := range cases {
		if got := metricName(c.ns, c.name); got != c.want {
			t.Errorf("metricName(%q, %q) = %q, want %q", c.ns, c.name, got, c.want)
		}
	}
	for c := 0; c < 256; c++ {
		s := metricName("", string([]byte{byte(c)}))
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
		if want := map[bool]string{true: string([]byte{byte(c)}), false: "_"}[ok]; s != want {
			t.Errorf("metricName of byte %#x = %q, want %q", c, s, want)
		}
	}
}

// longValue is n bytes of a repeated text, distinct per seed.
func longValue(seed string, n int) string {
	s := strings.Repeat(seed+"-", n/(len(seed)+1)+1)
	return s[:n]
}

// equivTarget is a target whose labels need every encoding path: JSON
// escapes, non-ASCII, invalid UTF-8 (no scraped label can carry it: the
// parser refuses it), values long enough to be shortened, and clashes with
// the sample labels of equivBody.
func equivTarget(honor bool) *target.Target {
	return &target.Target{
		URL:      "http://10.0.0.7:8080/metrics",
		Interval: 30 * time.Second,
		Labels: labels.FromStrings(
			"job", "api",
			"instance", "10.0.0.7:8080",
			"namespace", "prod",
			"pod", "api-7d9f-x2x",
			"quoted", `say "hi" \ there`+"\n\ttab",
			"utf", "ünïcødé ✓ 日本",
			"bad_utf8", "bad \xff\xfe bytes",
			"build", longValue("build-0123456789abcdef", 260),
		),
		HonorLabels: honor,
		Discovered: labels.FromMap(map[string]string{
			meta + "namespace":                        "prod",
			meta + "service_name":                     "api",
			meta + "pod_name":                         "api-7d9f-x2x",
			meta + "pod_container_name":               "server",
			meta + "pod_controller_kind":              "ReplicaSet",
			meta + "pod_controller_name":              "api-7d9f",
			meta + "pod_label_pod_template_hash":      "7d9f",
			meta + "pod_label_tags_datadoghq_com_env": "prod",
		}),
	}
}

// plainTarget is a target whose labels all make plain tags, so that the
// series of equivBody without escapes or long values are plain too.
func plainTarget(honor bool) *target.Target {
	t := equivTarget(honor)
	t.Labels = labels.FromStrings("job", "api", "instance", "10.0.0.7:8080", "namespace", "prod", "pod", "api-7d9f-x2x")
	return t
}

// equivBody has counters, a histogram, a summary and gauges whose labels
// clash with the target's (job, pod), need JSON escapes, are non-ASCII, and
// are long: ASCII, and multi-byte runes so that the cut falls inside a rune.
var equivBody = "# TYPE http_requests counter\n" +
	`http_requests_total{code="200",job="scraped",path="/a\"b\\c\nd"} 5` + "\n" +
	`http_requests_total{code="500",job="scraped",path="/"} 1` + "\n" +
	`http_requests_total{job="scraped",code="201",path="/x",zone="a"} 2` + "\n" +
	`http_requests_total{code="202", path="/y",job="scraped"} 3` + "\n" +
	`http_requests_total{code="203",path="/z",job="scraped",pod="p",zone="b"} 4` + "\n" +
	"# TYPE lat histogram\n" +
	`lat_bucket{pod="sample-pod",le="0.1"} 1` + "\n" +
	`lat_bucket{pod="sample-pod",le="1"} 2` + "\n" +
	`lat_bucket{pod="sample-pod",le="+Inf"} 3` + "\n" +
	`lat_sum{pod="sample-pod"} 0.35` + "\n" +
	`lat_count{pod="sample-pod"} 3` + "\n" +
	"# TYPE lat2 histogram\n" +
	`lat2_bucket{le="0.5",zone="a",path="/q"} 1` + "\n" +
	`lat2_bucket{zone="a",le="1",path="/q"} 2` + "\n" +
	"# TYPE rpc summary\n" +
	`rpc{quantile="0.5",namespace="other"} 0.01` + "\n" +
	`rpc_sum{namespace="other"} 2` + "\n" +
	`rpc_count{namespace="other"} 200` + "\n" +
	"# TYPE g gauge\n" +
	`g{long="` + longValue("x", 300) + `",utf="ünïcødé ✓ 日本"} 7` + "\n" +
	`g{long="` + longValue("x", 300) + `y",utf="ünïcødé ✓ 日本"} 8` + "\n" +
	`g{runes="` + strings.Repeat("日", 70) + `"} 9` + "\n" +
	`g{runes="a` + strings.Repeat("日", 70) + `"} 10` + "\n" +
	`g{runes="ab` + strings.Repeat("日", 70) + `"} 11` + "\n" +
	`g{exactly="` + longValue("e", MaxTagLength-len("exactly:")) + `"} 12` + "\n" +
	`g{one_more="` + longValue("e", MaxTagLength-len("one_more:")+1) + `"} 13` + "\n" +
	"no_labels 14\n"

// TestVerbatimEqualsKept checks that a verbatim series (encoded per point
// from the parser's labels through a shape) produces the same payload, as
// decoded into datadogV2.MetricPayload, as the same series forced
// non-verbatim (its final labels kept encoded): with exported_ renames, with
// honor_labels omissions, histogram buckets (le first, inside, last), JSON
// escapes, invalid UTF-8, long values, and label text that is compact (the
// appender copies it in runs) or not. Only the order of the tags may differ.
func TestVerbatimEqualsKept(t *testing.T) {
	for _, tc := range []struct {
		honor, plain bool
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		honor := tc.honor
		target := equivTarget
		if tc.plain {
			target = plainTarget
		}
		t.Run(fmt.Sprintf("honor_labels=%v/plain_target=%v", honor, tc.plain), func(t *testing.T) {
			mp := Mapping{Namespace: "svc", Host: "node-1"}
			verb, kept := newCaptureSink(), newCaptureSink()
			sv := newScraper(t, mappedBackend{verb, mp}, target(honor), prom)
			sk := newScraper(t, mappedBackend{kept, mp}, target(honor), prom)
			sk.nonVerbatim = true
			for i := range 3 {
				sv.scrape(equivBody, testTS+int64(i)*30_000)
				sk.scrape(equivBody, testTS+int64(i)*30_000)
			}
			// Both paths were taken: every series of sv is verbatim, none of sk.
			for raw, c := range sv.refs {
				if c.kind != scrapeloop.KindDrop && c.ref&storedBit != 0 {
					t.Errorf("series %s was not verbatim", raw)
				}
			}
			for raw, c := range sk.refs {
				if c.kind != scrapeloop.KindDrop && c.ref&storedBit == 0 {
					t.Errorf("series %s was verbatim although forced not to be", raw)
				}
			}
			if honor && (sv.omitted == 0 || sv.exported != 0) || !honor && (sv.exported == 0 || sv.omitted != 0) {
				t.Fatalf("series with exported bits %d, omitted bits %d: the test does not exercise them", sv.exported, sv.omitted)
			}
			// Series without escapes take the path that copies their label
			// text, whatever the target's labels hold (its tags are encoded
			// once); the others are encoded label by label.
			plain := 0
			for _, c := range sv.refs {
				if c.kind != scrapeloop.KindDrop && c.ref&plainBit != 0 {
					plain++
				}
			}
			if plain < 8 || plain == len(sv.refs) {
				t.Fatalf("%d plain series of %d: the test does not exercise both paths", plain, len(sv.refs))
			}
			gv, gk := verb.series(t), kept.series(t)
			if len(gv) == 0 || len(gv) != len(gk) {
				t.Fatalf("%d verbatim series, %d kept", len(gv), len(gk))
			}
			orderDiffers := false
			for i := range gv {
				if !slices.Equal(gv[i].Tags, gk[i].Tags) {
					orderDiffers = true
				}
			}
			if !orderDiffers {
				t.Error("tags came in the same order on both paths: the test does not show order is free")
			}
			nv, nk := normalize(gv), normalize(gk)
			if !reflect.DeepEqual(nv, nk) {
				rv, rk := renderAll(gv), renderAll(gk)
				for i := range max(len(rv), len(rk)) {
					a, b := at(rv, i), at(rk, i)
					if a != b {
						t.Errorf("series %d:\nverbatim %s\nkept     %s", i, a, b)
					}
				}
				if !t.Failed() {
					t.Errorf("payloads differ beyond their rendering:\n%+v\n%+v", nv, nk)
				}
			}
			if a, b := metricValue(t, verb.set, "nodescraper_dd_tags_shortened_total"), metricValue(t, kept.set, "nodescraper_dd_tags_shortened_total"); a == 0 || b == 0 {
				t.Errorf("shortened tags: verbatim %v, kept %v", a, b)
			}
		})
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<none>"
}

// wantTag is a tag as Datadog should get it: name:value, or when longer
// than MaxTagLength its first bytes (up to a rune start) + "~" + the xxhash
// of the whole tag in 16 hex digits; invalid UTF-8 as U+FFFD.
func wantTag(name, value string) string {
	tag := name + ":" + value
	if len(tag) > MaxTagLength {
		cut := MaxTagLength - 17
		for !utf8.RuneStart(tag[cut]) {
			cut--
		}
		tag = fmt.Sprintf("%s~%016x", tag[:cut], xxhash.Sum64String(tag))
	}
	var b strings.Builder
	for i := 0; i < len(tag); {
		r, n := utf8.DecodeRuneInString(tag[i:])
		b.WriteRune(r) // RuneError for each invalid byte
		i += n
	}
	return b.String()
}

// TestTagSet checks that each series carries exactly the target labels, the
// series' labels and the target's Kubernetes tags: no tag missing, none
// extra, none twice, whatever their order.
func TestTagSet(t *testing.T) {
	for _, honor := range []bool{false, true} {
		for _, nonVerbatim := range []bool{false, true} {
			t.Run(fmt.Sprintf("honor_labels=%v/nonverbatim=%v", honor, nonVerbatim), func(t *testing.T) {
				sink := newCaptureSink()
				target := equivTarget(honor)
				s := newScraper(t, sink, target, prom)
				s.nonVerbatim = nonVerbatim
				s.scrape(equivBody, testTS)
				// The tag rules (tagRules) at the default, low cardinality:
				// namespace and pod repeat kube_namespace and pod_name.
				rules := newTagRules(&Mapping{}, target)
				var kube []string
				for _, kt := range rules.kube {
					kube = append(kube, wantTag(kt.name, kt.value))
				}
				if len(kube) != 7 {
					t.Fatalf("kube tags %q", kube)
				}
				// One decoded series per sample, in input order.
				got := sink.series(t)
				var p exposition.Parser
				p.Reset([]byte(equivBody), prom)
				i := 0
				for p.Next() {
					if p.Type() == exposition.TypeHistogram && p.Role() == exposition.RoleBucket && string(p.Series()) == `lat_bucket{pod="sample-pod",le="+Inf"}` {
						continue // sent as lat.count
					}
					final := s.final[string(p.Series())]
					var want []string
					final.Range(func(l labels.Label) {
						switch {
						case l.Name == model.MetricNameLabel:
						case l.Name == model.BucketLabel && p.Role() == exposition.RoleBucket:
							want = append(want, wantTag("upper_bound", l.Value))
						default:
							if name, ok := rules.label(l.Name, l.Value); ok {
								want = append(want, wantTag(name, l.Value))
							}
						}
					})
					want = append(want, kube...)
					// The target's labels are there (unless honor_labels let a
					// scraped one win, or a rule drops them), the scraped ones
					// too, exported_ when they clashed.
					target.Labels.Range(func(l labels.Label) {
						name, sent := rules.label(l.Name, l.Value)
						if sent && (!honor || final.Get(l.Name) == l.Value) {
							if !slices.Contains(want, wantTag(name, l.Value)) {
								t.Errorf("%s: target label %s missing from %q", p.Series(), l.Name, want)
							}
						}
					})
					if slices.Contains(want, "namespace:prod") || slices.Contains(want, "pod:api-7d9f-x2x") {
						t.Errorf("%s: a target label repeating a Kubernetes tag in %q", p.Series(), want)
					}
					if i >= len(got) {
						t.Fatalf("only %d series sent", len(got))
					}
					tags := got[i].Tags
					i++
					if g, w := slices.Sorted(slices.Values(tags)), slices.Sorted(slices.Values(want)); !slices.Equal(g, w) {
						t.Errorf("%s: tags\n%q\nwant\n%q", p.Series(), g, w)
					}
					if len(slices.Compact(slices.Sorted(slices.Values(tags)))) != len(tags) {
						t.Errorf("%s: a tag twice in %q", p.Series(), tags)
					}
					for _, tag := range tags {
						if utf8.RuneCountInString(tag) > MaxTagLength || !utf8.ValidString(tag) {
							t.Errorf("%s: tag %q: %d runes, valid UTF-8 %v", p.Series(), tag, utf8.RuneCountInString(tag), utf8.ValidString(tag))
						}
					}
				}
				if i != len(got) {
					t.Errorf("%d series sent, %d expected", len(got), i)
				}
			})
		}
	}
}

// TestKubeTagsShortened checks that the Kubernetes tags obey the tag length
// rule too: a pod name may have 253 characters.
func TestKubeTagsShortened(t *testing.T) {
	sink := mappedBackend{newCaptureSink(), Mapping{Cardinality: OrchestratorCardinality}}
	long := longValue("statefulset-with-a-very-long-name", 253)
	target := &target.Target{Interval: 15 * time.Second, Discovered: labels.FromStrings(meta+"pod_name", long, meta+"namespace", "ns")}
	s := newScraper(t, sink, target, prom)
	s.scrape("up 1\n", testTS)
	got := sink.series(t)
	if len(got) != 1 {
		t.Fatalf("%d series", len(got))
	}
	want := []string{"kube_namespace:ns", wantTag("pod_name", long)}
	if g := slices.Sorted(slices.Values(got[0].Tags)); !slices.Equal(g, want) {
		t.Errorf("tags %q, want %q", g, want)
	}
}

// TestForgetReusesKeptSeries checks that a kept (non-verbatim) series'
// slot, freed by Forget, serves a new series with its own tags.
func TestForgetReusesKeptSeries(t *testing.T) {
	sink := newCaptureSink()
	target := &target.Target{Interval: 15 * time.Second, Labels: labels.FromStrings("job", "j")}
	s := newScraper(t, sink, target, prom)
	s.nonVerbatim = true
	// As in the loop, a series that went away is forgotten at the end of
	// the scrape, after the new ones were added.
	s.scrape("a{x=\"1\"} 1\nb{y=\"2\"} 2\n", testTS)
	s.scrape("b{y=\"2\"} 3\nc{z=\"3\"} 4\n", testTS+15_000) // c added, then a forgotten
	s.scrape("c{z=\"3\"} 5\nd 6\n", testTS+30_000)          // d takes a's slot, then b forgotten
	app := s.app.(*appender)
	if len(app.stored) != 3 || len(app.free) != 1 {
		t.Errorf("%d kept series slots, %d free; want 3 (at most 3 live at once) and 1", len(app.stored), len(app.free))
	}
	want := []string{
		"a gauge [job:j x:1] = 1",
		"b gauge [job:j y:2] = 2",
		"b gauge [job:j y:2] = 3",
		"c gauge [job:j z:3] = 4",
		"c gauge [job:j z:3] = 5",
		"d gauge [job:j] = 6",
	}
	if got := renderAll(sink.series(t)); !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
