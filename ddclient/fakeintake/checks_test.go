package fakeintake

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

const testAppKey = "fedcba9876543210fedcba9876543210fedcba98"

func sendTo(t *testing.T, s *Server, method, path string, h http.Header, body string) answer {
	t.Helper()
	a, err := send(t, newClient(t, 0), method, s.URL+path, h, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

func TestCheckRun(t *testing.T) {
	ts := testNow.Unix()
	ok := fmt.Sprintf(`{"check":"app.openmetrics.health","host_name":"node-1","status":0,"tags":["endpoint:http://a/metrics"],"timestamp":%d}`, ts)
	cases := []struct {
		name   string
		h      http.Header
		method string
		body   string
		status int
		reason Reason
		want   string
	}{
		{name: "accepted", body: "[" + ok + "]", status: http.StatusAccepted},
		{name: "no timestamp", body: `[{"check":"a.b","host_name":"h","status":2,"tags":[],"message":"down"}]`, status: http.StatusAccepted},
		{name: "no key", h: http.Header{"Content-Type": {"application/json"}}, body: "[" + ok + "]", status: 403, reason: ReasonMissingAPIKey, want: "Forbidden"},
		{name: "GET", method: http.MethodGet, status: 405, reason: ReasonMethod, want: "use POST"},
		{name: "an object, not a list", body: ok, status: 400, reason: ReasonUndecodable, want: "not a list of ServiceCheck"},
		{name: "empty list", body: `[]`, status: 400, reason: ReasonInvalid, want: "no service checks"},
		{name: "status 4", body: `[{"check":"a","host_name":"h","status":4,"tags":[]}]`, status: 400, reason: ReasonUndecodable, want: "status 4 is not one of"},
		{name: "no check", body: `[{"host_name":"h","status":0,"tags":[]}]`, status: 400, reason: ReasonUndecodable, want: "required field check missing"},
		{name: "no tags", body: `[{"check":"a","host_name":"h","status":0}]`, status: 400, reason: ReasonUndecodable, want: "required field tags missing"},
		{name: "name starts with a digit", body: `[{"check":"1a","host_name":"h","status":0,"tags":[]}]`, status: 400, reason: ReasonInvalid, want: "must start with a letter"},
		{name: "name with a dash", body: `[{"check":"a-b","host_name":"h","status":0,"tags":[]}]`, status: 400, reason: ReasonInvalid, want: `has '-'`},
		{name: "long name", body: `[{"check":"` + strings.Repeat("a", 201) + `","host_name":"h","status":0,"tags":[]}]`, status: 400, reason: ReasonInvalid, want: "201 characters"},
		{name: "empty host", body: `[{"check":"a","host_name":"","status":0,"tags":[]}]`, status: 400, reason: ReasonInvalid, want: "host_name is empty"},
		{name: "long message", body: `[{"check":"a","host_name":"h","status":2,"tags":[],"message":"` + strings.Repeat("é", 501) + `"}]`, status: 400, reason: ReasonInvalid, want: "message of 501 characters"},
		{name: "too old", body: fmt.Sprintf(`[{"check":"a","host_name":"h","status":0,"tags":[],"timestamp":%d}]`, ts-601), status: 400, reason: ReasonTimestamp, want: "the limit is 10m0s"},
		{name: "unknown field", body: `[{"check":"a","host_name":"h","status":0,"tags":[],"hostname":"x"}]`, status: 400, reason: ReasonInvalid, want: "unknown fields"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startIntake(t, nil)
			h := c.h
			if h == nil {
				h = jsonHeaders("")
			}
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			a := sendTo(t, s, method, CheckRunPath, h, c.body)
			if c.status == http.StatusAccepted {
				if a.status != c.status || !strings.Contains(a.body, `"status":"ok"`) {
					t.Fatalf("answer %d %s, want 202 {\"status\":\"ok\"}", a.status, a.body)
				}
				if got := s.ServiceChecks(""); len(got) != 1 || s.Stats().ServiceChecks != 1 {
					t.Fatalf("stored %+v", got)
				}
				return
			}
			if a.status != c.status || !strings.Contains(strings.Join(a.errors, "\n"), c.want) {
				t.Errorf("answer %d %q, want %d with %q", a.status, a.errors, c.status, c.want)
			}
			if st := s.Stats(); st.Rejected[c.reason] == 0 || st.ServiceChecks != 0 {
				t.Errorf("stats %+v, want a %s refusal and no check stored", st, c.reason)
			}
		})
	}
}

// TestCheckRunStored checks what a query sees: the message of an OK check
// is dropped (as Datadog does), the sender's timestamp or the intake's.
func TestCheckRunStored(t *testing.T) {
	s := startIntake(t, nil)
	body := `[{"check":"a.health","host_name":"h","status":0,"tags":["x:1"],"message":"fine"},` +
		`{"check":"a.health","host_name":"h","status":2,"tags":["x:1","y:2"],"message":"connection refused","timestamp":1636629000}]`
	if a := sendTo(t, s, http.MethodPost, CheckRunPath, jsonHeaders(""), body); a.status != http.StatusAccepted {
		t.Fatalf("answer %d %s", a.status, a.body)
	}
	got := s.ServiceChecks("a.health", "x:1")
	if len(got) != 2 || got[0].Message != "" || got[0].Timestamp != testNow.Unix() ||
		got[1].Status != datadogV1.SERVICECHECKSTATUS_CRITICAL || got[1].Message != "connection refused" || got[1].Timestamp != 1636629000 {
		t.Errorf("stored %+v", got)
	}
	if got := s.ServiceChecks("a.health", "y:2"); len(got) != 1 {
		t.Errorf("tag filter: %+v", got)
	}
}

func TestMetadata(t *testing.T) {
	h := func(app string) http.Header {
		h := jsonHeaders("")
		if app != "" {
			h.Set(AppKeyHeader, app)
		}
		return h
	}
	cases := []struct {
		name, metric, app, method, body string
		status                          int
		reason                          Reason
		want                            string
	}{
		{name: "accepted", metric: "app.lat.sum", app: testAppKey, body: `{"type":"count","unit":"second","description":"Latency."}`, status: 200},
		{name: "no app key", metric: "app.lat.sum", body: `{"type":"count"}`, status: 403, reason: ReasonMissingAppKey, want: "Forbidden"},
		{name: "wrong app key", metric: "app.lat.sum", app: "nope", body: `{"type":"count"}`, status: 403, reason: ReasonInvalidAppKey, want: "Forbidden"},
		{name: "POST", metric: "app.lat.sum", app: testAppKey, method: http.MethodPost, body: `{}`, status: 405, reason: ReasonMethod, want: "use PUT"},
		{name: "bad type", metric: "app.lat.sum", app: testAppKey, body: `{"type":"counter"}`, status: 400, reason: ReasonInvalid, want: `type "counter" is not one of`},
		{name: "bad unit", metric: "app.lat.sum", app: testAppKey, body: `{"unit":"seconds"}`, status: 400, reason: ReasonInvalid, want: `unit "seconds" is not a Datadog unit`},
		{name: "bad per_unit", metric: "app.lat.sum", app: testAppKey, body: `{"per_unit":"furlong"}`, status: 400, reason: ReasonInvalid, want: `per_unit "furlong"`},
		{name: "wrong JSON type", metric: "app.lat.sum", app: testAppKey, body: `{"unit":5}`, status: 400, reason: ReasonUndecodable, want: "not a MetricMetadata"},
		{name: "unknown field", metric: "app.lat.sum", app: testAppKey, body: `{"units":"second"}`, status: 400, reason: ReasonInvalid, want: "unknown fields"},
		{name: "unknown metric", metric: "app.never", app: testAppKey, body: `{"type":"gauge"}`, status: 404, reason: ReasonUnknownMetric, want: "not found"},
		{name: "bad name", metric: "app-x", app: testAppKey, body: `{"type":"gauge"}`, status: 400, reason: ReasonInvalid, want: "metric name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startIntake(t, func(cfg *Config) { cfg.AppKeys = []string{testAppKey} })
			series := fmt.Sprintf(`{"series":[{"metric":"app.lat.sum","type":1,"interval":15,"points":[{"timestamp":%d,"value":1}]}]}`, testNow.Unix())
			if a := post(t, s, jsonHeaders(""), []byte(series)); a.status != http.StatusAccepted {
				t.Fatalf("series: %d %s", a.status, a.body)
			}
			method := c.method
			if method == "" {
				method = http.MethodPut
			}
			a := sendTo(t, s, method, MetadataPathPrefix+c.metric, h(c.app), c.body)
			if c.status == http.StatusOK {
				md := s.Metadata(c.metric)
				if a.status != 200 || len(md) != 1 || md[0].Metadata.GetUnit() != "second" || !strings.Contains(a.body, `"unit":"second"`) {
					t.Fatalf("answer %d %s, stored %+v", a.status, a.body, md)
				}
				return
			}
			if a.status != c.status || !strings.Contains(strings.Join(a.errors, "\n"), c.want) {
				t.Errorf("answer %d %q, want %d with %q", a.status, a.errors, c.status, c.want)
			}
			if st := s.Stats(); st.Rejected[c.reason] == 0 || st.MetadataUpdates != 0 {
				t.Errorf("stats %+v, want a %s refusal and no edit stored", st, c.reason)
			}
		})
	}
}

// TestOfficialClientChecksAndMetadata sends through datadog-api-client-go's
// ServiceChecksApi and MetricsApi, whose requests the intake must take.
func TestOfficialClientChecksAndMetadata(t *testing.T) {
	s := startIntake(t, func(cfg *Config) { cfg.AppKeys = []string{testAppKey} })
	client, ctx := officialClient(t, s, testKey)
	body := datadogV2.MetricPayload{Series: []datadogV2.MetricSeries{{
		Metric: "app.up", Type: datadogV2.METRICINTAKETYPE_GAUGE.Ptr(),
		Points: []datadogV2.MetricPoint{{Timestamp: datadog.PtrInt64(testNow.Unix()), Value: datadog.PtrFloat64(1)}},
	}}}
	if _, _, err := datadogV2.NewMetricsApi(client).SubmitMetrics(ctx, body, *datadogV2.NewSubmitMetricsOptionalParameters()); err != nil {
		t.Fatal(err)
	}
	check := datadogV1.NewServiceCheck("app.openmetrics.health", "node-1", datadogV1.SERVICECHECKSTATUS_CRITICAL, []string{"endpoint:x"})
	check.SetMessage("connection refused")
	resp, r, err := datadogV1.NewServiceChecksApi(client).SubmitServiceCheck(ctx, []datadogV1.ServiceCheck{*check})
	if err != nil || r.StatusCode != http.StatusAccepted || resp.GetStatus() != "ok" {
		t.Fatalf("SubmitServiceCheck: %v %+v", err, resp)
	}
	if got := s.ServiceChecks("app.openmetrics.health", "endpoint:x"); len(got) != 1 || got[0].Message != "connection refused" {
		t.Errorf("checks %+v", got)
	}
	appCtx := context.WithValue(ctx, datadog.ContextAPIKeys, map[string]datadog.APIKey{"apiKeyAuth": {Key: testKey}, "appKeyAuth": {Key: testAppKey}})
	md := datadogV1.MetricMetadata{Type: datadog.PtrString("gauge"), Description: datadog.PtrString("Target up."), Unit: datadog.PtrString("unit")}
	got, r, err := datadogV1.NewMetricsApi(client).UpdateMetricMetadata(appCtx, "app.up", md)
	if err != nil || r.StatusCode != http.StatusOK || got.GetDescription() != "Target up." {
		t.Fatalf("UpdateMetricMetadata: %v %+v", err, got)
	}
	// Without the application key Datadog answers 403.
	if _, r, err = datadogV1.NewMetricsApi(client).UpdateMetricMetadata(ctx, "app.up", md); err == nil || r.StatusCode != http.StatusForbidden {
		t.Errorf("without an application key: %v, want 403", err)
	}
	if n := len(s.Metadata("app.up")); n != 1 {
		t.Errorf("%d edits stored, want 1", n)
	}
}
