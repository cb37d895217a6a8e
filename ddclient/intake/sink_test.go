package intake

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

func TestSinkChecksAndRetainsNothing(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var gotAt time.Time
	sink, err := NewSink(Config{APIKeys: []string{testKey}, Now: func() time.Time { return testNow }},
		func(at time.Time, p *datadogV2.MetricPayload) {
			mu.Lock()
			defer mu.Unlock()
			gotAt = at
			for _, s := range p.Series {
				got = append(got, s.Metric)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	serve := func(h http.Header, body []byte) int {
		req := httptest.NewRequest(http.MethodPost, SeriesPath, bytes.NewReader(body))
		req.Header = h
		w := httptest.NewRecorder()
		sink.ServeHTTP(w, req)
		return w.Code
	}
	raw := benchPayload(3)
	if code := serve(jsonHeaders("zstd1"), compress(t, "zstd1", raw)); code != http.StatusAccepted {
		t.Fatalf("valid zstd1 payload: status %d, want 202", code)
	}
	bad := jsonHeaders("")
	bad.Set(APIKeyHeader, "wrong")
	if code := serve(bad, raw); code != http.StatusForbidden {
		t.Errorf("wrong key: status %d, want 403", code)
	}
	if code := serve(jsonHeaders(""), []byte(`{"series":[{"metric":"x","type":1,"points":[{"timestamp":1,"value":1}]}]}`)); code != http.StatusBadRequest {
		t.Errorf("count without interval, old timestamp: status %d, want 400", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || !gotAt.Equal(testNow) {
		t.Errorf("callback saw %q at %v, want the 3 series of the accepted payload at %v", got, gotAt, testNow)
	}
	st := sink.Stats()
	if st.Accepted != 1 || st.Series != 3 || st.Points != 3 || st.RejectedTotal() != 2 || st.Encodings["zstd1"] != 1 {
		t.Errorf("stats = %+v, want 1 accepted (3 series, 3 points, zstd1) and 2 rejected", st)
	}
	if n := len(sink.in.Series()); n != 0 {
		t.Errorf("sink retained %d series, want none", n)
	}
}
