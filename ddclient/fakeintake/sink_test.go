package fakeintake

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"
)

// newTestSink returns a sink checking every modelEvery-th payload with the
// model, and the payloads it accepted.
func newTestSink(t *testing.T, modelEvery int) (*Sink, func() [][]SinkSeries) {
	t.Helper()
	var mu sync.Mutex
	var got [][]SinkSeries
	sink, err := NewSink(SinkConfig{
		Config:     Config{APIKeys: []string{testKey}, Now: func() time.Time { return testNow }},
		ModelEvery: modelEvery,
		OnAccept: func(at time.Time, s []SinkSeries) {
			if !at.Equal(testNow) {
				t.Errorf("OnAccept at %v, want the intake's clock %v", at, testNow)
			}
			mu.Lock()
			defer mu.Unlock()
			got = append(got, s)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	return sink, func() [][]SinkSeries {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func serveSink(s *Sink, h http.Header, body []byte) int {
	req := httptest.NewRequest(http.MethodPost, SeriesPath, bytes.NewReader(body))
	req.Header = h
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w.Code
}

func TestSinkModelAndPlainPathsAgree(t *testing.T) {
	sink, got := newTestSink(t, 2)
	raw := benchPayload(3)
	for range 2 { // the first through the model, the second plain
		if code := serveSink(sink, jsonHeaders("zstd1"), compress(t, "zstd1", raw)); code != http.StatusAccepted {
			t.Fatalf("valid zstd1 payload: status %d, want 202", code)
		}
	}
	g := got()
	if len(g) != 2 || len(g[0]) != 3 || !reflect.DeepEqual(g[0], g[1]) {
		t.Fatalf("model and plain decoding differ or are incomplete:\n%+v\n%+v", g[0], g[1])
	}
	if s := g[0][1]; s.Metric != "bench.metric_1.count" || s.Host != "node-a" || s.Interval != 15 || len(s.Tags) != 10 || s.Points[0] != (SinkPoint{testNow.Unix(), 1}) {
		t.Errorf("series = %+v", s)
	}
	st := sink.Stats()
	if st.Accepted != 2 || st.Series != 6 || st.Points != 6 || st.Encodings["zstd1"] != 2 || sink.ModelChecked() != 1 {
		t.Errorf("stats = %+v, model checked %d; want 2 accepted payloads of 3 series, 1 model-checked", st, sink.ModelChecked())
	}
	if n := len(sink.in.Series()); n != 0 {
		t.Errorf("sink retained %d series, want none", n)
	}
}

func TestSinkRefuses(t *testing.T) {
	ts := testNow.Unix()
	for _, modelEvery := range []int{1, 1000} { // every payload through the model; all but the first plain
		sink, got := newTestSink(t, modelEvery)
		if modelEvery > 1 && serveSink(sink, jsonHeaders(""), benchPayload(1)) != http.StatusAccepted {
			t.Fatal("first payload refused")
		}
		bad := jsonHeaders("")
		bad.Set(APIKeyHeader, "wrong")
		if code := serveSink(sink, bad, benchPayload(1)); code != http.StatusForbidden {
			t.Errorf("ModelEvery %d, wrong key: status %d, want 403", modelEvery, code)
		}
		for _, body := range []string{
			`{"series":[{"metric":"x","type":1,"points":[{"timestamp":` + strconv.FormatInt(ts, 10) + `,"value":1}]}]}`, // count without interval
			`{"series":[{"metric":"x","type":3,"points":[{"timestamp":1,"value":1}]}]}`,                                 // too old
			`{"series":[{"metric":"x","type":7,"points":[{"timestamp":` + strconv.FormatInt(ts, 10) + `,"value":1}]}]}`, // no such type
			`{"series":[{"metric":"x","type":3,"points":[]}]}`,
			`{"series":[{"metric":"x","type":3,"tags":[""],"points":[{"timestamp":` + strconv.FormatInt(ts, 10) + `,"value":1}]}]}`,
			`{"series":[{"metric":"x","type":3,"points":[{"value":1}]}]}`,
			`{"series":[{"type":3,"points":[{"timestamp":` + strconv.FormatInt(ts, 10) + `,"value":1}]}]}`,
			`{"series":[{"metric":"x","type":3,"resources":[{"name":"h"}],"points":[{"timestamp":` + strconv.FormatInt(ts, 10) + `,"value":1}]}]}`,
			`{"serie":[]}`,
		} {
			if code := serveSink(sink, jsonHeaders(""), []byte(body)); code != http.StatusBadRequest {
				t.Errorf("ModelEvery %d: %s: status %d, want 400", modelEvery, body, code)
			}
		}
		if n := len(got()); n != min(modelEvery-1, 1) {
			t.Errorf("ModelEvery %d: %d payloads accepted, want %d", modelEvery, n, min(modelEvery-1, 1))
		}
	}
}
