package ddclient

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
	"github.com/nodescraper/nodescraper/scrapeloop/exposition"
	"github.com/prometheus/prometheus/model/labels"
)

const testAppKey = "fedcba9876543210fedcba9876543210fedcba98"

// exporter serves body on 127.0.0.1 until down is set, then 503.
func exporter(t *testing.T, body string, down *atomic.Bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/metrics"
}

// runTarget scrapes target through a real scrape manager into c until the
// returned stop is called.
func runTarget(t *testing.T, c *Client, tg target.Target) (stop func()) {
	t.Helper()
	store := deltastore.New(deltastore.Config{Logger: slog.New(slog.DiscardHandler)})
	tr := &http.Transport{}
	mgr := scrapeloop.NewManager(scrapeloop.Config{Store: store, Backend: c, Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan []target.Target, 1)
	updates <- []target.Target{tg}
	done := make(chan struct{})
	go func() {
		defer close(done)
		mgr.Run(ctx, updates)
	}()
	stopClient := run(t, c)
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			tr.CloseIdleConnections()
			stopClient()
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestTargetDownIsReported scrapes a real exporter on 127.0.0.1 through
// the scrape manager and the client into the stand-in intake: while it
// answers, up is 1 and the health check OK; when it fails, up is 0 and the
// check CRITICAL with the scrape's error, both with the target's tags.
func TestTargetDownIsReported(t *testing.T) {
	in := startIntake(t, nil)
	c := newTestClient(t, in.URL, func(cfg *Config) {
		cfg.Mapping = Mapping{Namespace: "app", Host: "node-1", ReportSeries: true}
		cfg.ServiceChecks = true
	})
	var down atomic.Bool
	url := exporter(t, "# TYPE req counter\nreq_total 1\ng 2\n", &down)
	tg := target.Target{
		URL: url, Interval: time.Second, Timeout: 500 * time.Millisecond, HonorTimestamps: true,
		Labels:     labels.FromStrings("job", "app", "instance", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics"), "namespace", "prod"),
		Discovered: labels.FromStrings(meta+"namespace", "prod", meta+"pod_name", "app-1"),
	}
	runTarget(t, c, tg)
	const check = "app.openmetrics.health"
	waitIntake(t, in, "up 1 and an OK check", 10*time.Second, func(in *fakeintake.Intake) bool {
		p, ok := in.Last("app.up", "job:app")
		checks := in.ServiceChecks(check, "job:app", "endpoint:"+url, "kube_namespace:prod")
		return ok && p.Value == 1 && len(checks) > 0 && checks[len(checks)-1].Status == datadogV1.SERVICECHECKSTATUS_OK
	})
	for _, name := range []string{"app.scrape_duration_seconds", "app.scrape_samples_scraped", "app.scrape_samples_post_metric_relabeling", "app.scrape_series_added"} {
		p, ok := in.Last(name, "job:app", "kube_namespace:prod", "host:node-1")
		if !ok || p.Type != datadogV2.METRICINTAKETYPE_GAUGE {
			t.Errorf("%s: %+v (found %v), want a gauge with the target's tags", name, p, ok)
		}
	}
	if p, _ := in.Last("app.scrape_samples_scraped", "job:app"); p.Value != 2 {
		t.Errorf("scrape_samples_scraped %v, want 2", p.Value)
	}
	down.Store(true)
	waitIntake(t, in, "up 0 and a CRITICAL check", 10*time.Second, func(in *fakeintake.Intake) bool {
		p, ok := in.Last("app.up", "job:app")
		checks := in.ServiceChecks(check, "job:app")
		return ok && p.Value == 0 && len(checks) > 0 && checks[len(checks)-1].Status == datadogV1.SERVICECHECKSTATUS_CRITICAL
	})
	checks := in.ServiceChecks(check, "job:app")
	last := checks[len(checks)-1]
	if !strings.Contains(last.Message, "503 Service Unavailable") || last.Host != "node-1" || !last.HasTags("instance:"+tg.Labels.Get("instance"), "endpoint:"+url) {
		t.Errorf("critical check %+v, want the scrape's error, host and the target's tags", last)
	}
	if last.HasTags("namespace:prod") || last.HasTags("pod_name:app-1") {
		t.Errorf("check tags %q: namespace repeats kube_namespace; pod_name is not low cardinality", last.Tags)
	}
}

// TestReportSeriesSwitch: without Mapping.ReportSeries and ServiceChecks
// nothing of the kind is sent.
func TestReportSeriesSwitch(t *testing.T) {
	in := startIntake(t, nil)
	c := newTestClient(t, in.URL, nil)
	var down atomic.Bool
	url := exporter(t, "g 2\n", &down)
	runTarget(t, c, target.Target{URL: url, Interval: time.Second, Timeout: 500 * time.Millisecond, Labels: labels.FromStrings("job", "off")})
	waitIntake(t, in, "g twice", 10*time.Second, func(in *fakeintake.Intake) bool { return len(in.Points("g")) >= 2 })
	if _, ok := in.Last("up"); ok || len(in.ServiceChecks("")) != 0 {
		t.Errorf("report series or checks sent while switched off: metrics %q, checks %d", in.Metrics(), len(in.ServiceChecks("")))
	}
}

// TestMetadataReachesIntake: the HELP and UNIT of what a target exposes
// reach the intake's metadata endpoint with the application key, once per
// Datadog metric name, after the metric exists there.
func TestMetadataReachesIntake(t *testing.T) {
	body := "# TYPE lat histogram\n# HELP lat Request latency.\n" +
		`lat_bucket{le="1"} 1` + "\n" + `lat_bucket{le="+Inf"} 2` + "\nlat_sum 0.5\nlat_count 2\n" +
		"# HELP mem_bytes Resident memory.\n# TYPE mem_bytes gauge\nmem_bytes 100\n" +
		"# TYPE plain gauge\nplain 1\n"
	for _, c := range []struct {
		name   string
		appKey string
		want   map[string][2]string // metric → unit, description
	}{
		{name: "with app key", appKey: testAppKey, want: map[string][2]string{
			"lat.sum":    {"", "Request latency."}, // text format: no # UNIT, and lat has no unit suffix
			"lat.bucket": {"", "Request latency."},
			"lat.count":  {"", "Request latency."},
			"mem_bytes":  {"byte", "Resident memory."},
		}},
		{name: "wrong app key", appKey: "wrong"},
		{name: "no app key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				in := startMemIntake(t, func(cfg *fakeintake.Config) { cfg.AppKeys = []string{testAppKey} })
				cl := newMemClient(t, in, func(cfg *Config) {
					cfg.AppKey = c.appKey
					cfg.MetadataDelay = 30 * time.Millisecond
				})
				stop := run(t, cl)
				defer stop()
				s := newScraper(t, cl, appTarget("app-1"), prom)
				for _, ts := range scrapeTimes(3) {
					s.scrape(body, ts)
				}
				if c.want == nil {
					time.Sleep(300 * time.Millisecond)
					synctest.Wait()
					if n := len(in.Metadata("")); n != 0 {
						t.Fatalf("%d metadata edits accepted", n)
					}
					if c.appKey != "" && in.Stats().Rejected[fakeintake.ReasonInvalidAppKey] == 0 {
						t.Errorf("a wrong key was not tried: %+v", in.Stats())
					}
					return
				}
				waitIntake(t, in, "metadata", 10*time.Second, func(in *fakeintake.Intake) bool { return len(in.Metadata("")) >= len(c.want) })
				time.Sleep(100 * time.Millisecond) // nothing sent twice
				synctest.Wait()
				got := map[string][2]string{}
				for _, m := range in.Metadata("") {
					if _, dup := got[m.Metric]; dup {
						t.Errorf("metadata of %s sent twice", m.Metric)
					}
					got[m.Metric] = [2]string{m.Metadata.GetUnit(), m.Metadata.GetDescription()}
					if want := map[bool]string{true: "count", false: "gauge"}[m.Metric != "mem_bytes"]; m.Metadata.GetType() != want {
						t.Errorf("%s type %q, want %q", m.Metric, m.Metadata.GetType(), want)
					}
				}
				for m, w := range c.want {
					if got[m] != w {
						t.Errorf("%s: unit, description %q, want %q", m, got[m], w)
					}
				}
				if _, ok := got["plain"]; ok {
					t.Error("metadata sent for a metric without HELP or unit")
				}
			})
		})
	}
}

// TestMetadataFor is the unit rule: # UNIT, else the name's base-unit
// suffix, for the metrics measured in it; only Datadog's unit names.
func TestMetadataFor(t *testing.T) {
	for _, c := range []struct {
		family, unit string
		typ          MetricType
		role         exposition.Role
		want         string
	}{
		{"http_request_duration_seconds", "", Count, exposition.RoleSum, "second"},
		{"http_request_duration_seconds", "", Count, exposition.RoleCount, ""},
		{"http_request_duration_seconds", "", Count, exposition.RoleBucket, ""},
		{"rpc_latency_seconds", "", Gauge, exposition.RoleQuantile, "second"},
		{"process_cpu_seconds_total", "", Count, exposition.RoleValue, "second"},
		{"node_memory_bytes", "", Gauge, exposition.RoleValue, "byte"},
		{"temp", "celsius", Gauge, exposition.RoleValue, ""}, // no such Datadog unit name
		{"cache_hit_ratio", "", Gauge, exposition.RoleValue, "fraction"},
		{"x", "bytes", Gauge, exposition.RoleValue, "byte"},
		{"requests_total", "", Count, exposition.RoleValue, ""},
	} {
		s := &scrapeloop.Series{Family: []byte(c.family), Unit: []byte(c.unit), Role: c.role}
		md, ok := metadataFor(metric{name: "m", typ: c.typ}, s)
		if md.GetUnit() != c.want || ok != (c.want != "") {
			t.Errorf("%s unit %q role %v: unit %q (send %v), want %q", c.family, c.unit, c.role, md.GetUnit(), ok, c.want)
		}
		if want := map[MetricType]string{Count: "count", Gauge: "gauge"}[c.typ]; md.GetType() != want {
			t.Errorf("%s: type %q, want %q", c.family, md.GetType(), want)
		}
	}
}

// TestReservedTagsOnce sends, through the client to the intake, series of a
// pod with unified service tags whose target and scraped labels also use
// env, service and version (and namespace, pod, container), at each
// cardinality and both honor_labels settings: no series carries two values
// of a reserved tag, the unified service tags win, and the Kubernetes tags
// are exactly the Agent's table for that cardinality.
func TestReservedTagsOnce(t *testing.T) {
	body := "# TYPE build_info gauge\n" +
		`build_info{version="go1.22",service="billing",env="dev"} 1` + "\n" +
		`build_info{version="1.4.2",namespace="shop",pod="cart-6b7f9c8d4-x2x9z"} 1` + "\n" +
		`kube_pod_info{namespace="other",pod="p1",container="c1"} 1` + "\n" +
		"plain 1\n"
	ust := map[string]string{"env": "prod", "service": "cart-api", "version": "1.4.2"}
	table := agentPodTags()
	for _, card := range []Cardinality{LowCardinality, OrchestratorCardinality, HighCardinality} {
		for _, honor := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/honor_labels=%v", card, honor), func(t *testing.T) {
				in := startIntake(t, nil)
				c := newTestClient(t, in.URL, func(cfg *Config) {
					cfg.Mapping = Mapping{Host: "node-1", Cardinality: card, ClusterName: "eu1", ReportSeries: true}
				})
				tg := &target.Target{
					URL: "http://10.1.2.3:8080/metrics", Interval: 15 * time.Second, HonorLabels: honor,
					Labels: labels.FromStrings("job", "cart", "instance", "10.1.2.3:8080", "namespace", "shop",
						"pod", "cart-6b7f9c8d4-x2x9z", "container", "server", "service", "cart", "env", "staging"),
					Discovered: labels.FromMap(agentPod),
				}
				s := newScraper(t, c, tg, prom)
				ts := scrapeTimes(1)[0]
				s.scrape(body, ts)
				s.app.(scrapeloop.Reporter).Report(&scrapeloop.Report{Start: time.UnixMilli(ts), Samples: 4, PostRelabel: 4})
				if err := drain(t, c, 10*time.Second); err != nil {
					t.Fatal(err)
				}
				series := in.Series()
				if len(series) != 4+len(reportNames) {
					t.Fatalf("%d series at the intake", len(series))
				}
				kube := map[string]bool{}
				for _, tag := range table[card] {
					kube[tag] = true
				}
				for _, sr := range series {
					seen := map[string][]string{}
					found := 0
					for _, tag := range sr.Tags {
						k, v, _ := strings.Cut(tag, ":")
						seen[k] = append(seen[k], v)
						if kube[tag] {
							found++
						}
					}
					for _, k := range unifiedServiceTags {
						if len(seen[k]) != 1 || seen[k][0] != ust[k] {
							t.Errorf("%s %q: %s values %q, want only %q", sr.Metric, sr.Tags, k, seen[k], ust[k])
						}
					}
					for _, k := range []string{"kube_namespace", "pod_name", "kube_container_name"} {
						if len(seen[k]) > 1 {
							t.Errorf("%s %q: %s twice", sr.Metric, sr.Tags, k)
						}
					}
					if found != len(table[card]) {
						t.Errorf("%s %q: %d of the %d Kubernetes tags of %s cardinality", sr.Metric, sr.Tags, found, len(table[card]), card)
					}
					if card == LowCardinality && (len(seen["pod_name"]) > 0 || len(seen["container_id"]) > 0) {
						t.Errorf("%s %q: orchestrator or high tags at low cardinality", sr.Metric, sr.Tags)
					}
				}
			})
		}
	}
}
