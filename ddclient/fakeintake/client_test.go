package fakeintake

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadog"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

// officialClient returns Datadog's own Go client aimed at s, and a context
// carrying key.
func officialClient(t *testing.T, s *Server, key string) (*datadog.APIClient, context.Context) {
	cfg := datadog.NewConfiguration()
	cfg.HTTPClient = newClient(t, 0)
	ctx := context.WithValue(context.Background(), datadog.ContextServerIndex, 1)
	ctx = context.WithValue(ctx, datadog.ContextServerVariables, map[string]string{
		"protocol": "http",
		"name":     strings.TrimPrefix(s.URL, "http://"),
	})
	ctx = context.WithValue(ctx, datadog.ContextAPIKeys, map[string]datadog.APIKey{"apiKeyAuth": {Key: key}})
	return datadog.NewAPIClient(cfg), ctx
}

// TestOfficialClient checks the intake against a real sender: the requests
// of datadog-api-client-go are accepted and its answers decode.
func TestOfficialClient(t *testing.T) {
	s := startIntake(t, nil)
	client, ctx := officialClient(t, s, testKey)
	api := datadogV2.NewMetricsApi(client)
	// zstd1 needs cgo in this client, so only the pure-Go encodings here.
	for i, enc := range []datadogV2.MetricContentEncoding{"", datadogV2.METRICCONTENTENCODING_GZIP, datadogV2.METRICCONTENTENCODING_DEFLATE} {
		body := datadogV2.MetricPayload{Series: []datadogV2.MetricSeries{{
			Metric:    "system.load.1",
			Type:      datadogV2.METRICINTAKETYPE_UNSPECIFIED.Ptr(),
			Points:    []datadogV2.MetricPoint{{Timestamp: datadog.PtrInt64(testNow.Unix() - int64(i)), Value: datadog.PtrFloat64(0.7)}},
			Resources: []datadogV2.MetricResource{{Name: datadog.PtrString("dummyhost"), Type: datadog.PtrString("host")}},
		}}}
		opts := datadogV2.NewSubmitMetricsOptionalParameters()
		if enc != "" {
			opts = opts.WithContentEncoding(enc)
		}
		resp, r, err := api.SubmitMetrics(ctx, body, *opts)
		if err != nil {
			t.Fatalf("SubmitMetrics(%q): %v", enc, err)
		}
		if r.StatusCode != http.StatusAccepted || len(resp.GetErrors()) != 0 || resp.UnparsedObject != nil {
			t.Errorf("SubmitMetrics(%q): %d %+v, want 202 without errors", enc, r.StatusCode, resp)
		}
	}
	st := s.Stats()
	if st.Encodings["identity"] != 1 || st.Encodings["gzip"] != 1 || st.Encodings["deflate"] != 1 {
		t.Errorf("Encodings = %v, want one of each", st.Encodings)
	}
	if got := s.Sum("system.load.1", "host:dummyhost"); got < 2.0999 || got > 2.1001 {
		t.Errorf("Sum = %v, want 3 × 0.7", got)
	}

	valid, r, err := datadogV1.NewAuthenticationApi(client).Validate(ctx)
	if err != nil || r.StatusCode != http.StatusOK || !valid.GetValid() {
		t.Errorf("Validate: %v, %+v, want 200 valid", err, valid)
	}
	badClient, badCtx := officialClient(t, s, "wrong")
	_, r, err = datadogV1.NewAuthenticationApi(badClient).Validate(badCtx)
	if err == nil || r == nil || r.StatusCode != http.StatusForbidden {
		t.Errorf("Validate with a wrong key: %v, want a 403 error", err)
	}
}
