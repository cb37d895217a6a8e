package fakeintake

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

// Expected values below are worked out by hand from testdata/agent_like.json.
const (
	reqCount  = "nodescraper_demo.http_requests.count"
	queue     = "nodescraper_demo.queue_depth"
	bucket    = "nodescraper_demo.request_duration_seconds.bucket"
	agentPts  = 7
	agentSers = 5
)

func TestStoreQueries(t *testing.T) {
	s := startIntake(t, nil)
	if a := post(t, s, jsonHeaders("zstd1"), compress(t, "zstd1", readTestdata(t, "agent_like.json"))); a.status != http.StatusAccepted {
		t.Fatalf("got %d %s, want 202", a.status, a.body)
	}
	if got, want := s.Metrics(), []string{reqCount, queue, bucket}; !slices.Equal(got, want) {
		t.Errorf("Metrics() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		metric string
		tags   []string
		points int
		sum    float64
	}{
		{reqCount, nil, 4, 17},
		{reqCount, []string{"code:200"}, 3, 15},
		{reqCount, []string{"pod_name:web-0"}, 3, 10},
		{reqCount, []string{"code:200", "pod_name:web-0"}, 2, 8},
		{reqCount, []string{"host:node-b"}, 1, 7},             // host resource, as a Datadog query
		{reqCount, []string{"host:node-a", "code:500"}, 1, 2}, // resource and tag together
		{reqCount, []string{"code:404"}, 0, 0},
		{reqCount, []string{"code"}, 0, 0}, // a key alone is not a tag
		{queue, []string{"kube_namespace:shop"}, 2, 82.5},
		{"no.such.metric", nil, 0, 0},
	} {
		if got := s.Points(tc.metric, tc.tags...); len(got) != tc.points {
			t.Errorf("Points(%s, %q) has %d points, want %d: %+v", tc.metric, tc.tags, len(got), tc.points, got)
		}
		if got := s.Sum(tc.metric, tc.tags...); got != tc.sum {
			t.Errorf("Sum(%s, %q) = %v, want %v", tc.metric, tc.tags, got, tc.sum)
		}
	}

	// The gauge's later timestamp arrived first: Last goes by timestamp.
	last, ok := s.Last(queue)
	if !ok || last.Value != 42.5 || last.Timestamp != 1636629071 || last.Type != datadogV2.METRICINTAKETYPE_GAUGE ||
		last.Unit != "item" || last.Host() != "node-a" || last.Interval != 0 {
		t.Errorf("Last(queue) = %+v, %v; want 42.5 at 1636629071, gauge, unit item, host node-a, no interval", last, ok)
	}
	first := s.Points(reqCount, "code:200", "pod_name:web-0")[0]
	if first.Timestamp != 1636629056 || first.Value != 3 || first.Type != datadogV2.METRICINTAKETYPE_COUNT || first.Interval != 15 ||
		!slices.Equal(first.Tags, []string{"kube_namespace:shop", "pod_name:web-0", "code:200", "method:get"}) {
		t.Errorf("first point = %+v, want count 3 at 1636629056 with interval 15 and its four tags", first)
	}
	if _, ok := s.Last("no.such.metric"); ok {
		t.Error("Last of an unknown metric reported ok")
	}

	series := s.Series()
	if len(series) != agentSers || series[0].GetSourceTypeName() != "nodescraper" || series[4].Metadata == nil {
		t.Errorf("Series() = %d series (first source %q), want %d in arrival order with metadata kept",
			len(series), series[0].GetSourceTypeName(), agentSers)
	}
	series[0].Points[0].SetValue(1e9) // a copy: the store must not change
	if got := s.Sum(reqCount); got != 17 {
		t.Errorf("modifying Series() changed the store: Sum = %v", got)
	}

	st := s.Stats()
	if st.Accepted != 1 || st.Series != agentSers || st.Points != agentPts || st.Metrics != 3 || st.DuplicatePoints != 0 {
		t.Errorf("Stats = %+v, want 1 payload, %d series, %d points, 3 metrics, no duplicates", st, agentSers, agentPts)
	}
	top := s.TopMetrics(2)
	if len(top) != 2 || top[0] != (MetricCount{reqCount, 3, 4}) || top[1] != (MetricCount{queue, 1, 2}) {
		t.Errorf("TopMetrics(2) = %+v", top)
	}
}

func TestDuplicatePoints(t *testing.T) {
	s := startIntake(t, nil)
	body := readTestdata(t, "agent_like.json")
	for range 2 { // a retried payload that had in fact arrived
		if a := post(t, s, jsonHeaders(""), body); a.status != http.StatusAccepted {
			t.Fatalf("got %d %s, want 202", a.status, a.body)
		}
	}
	st := s.Stats()
	if st.DuplicatePoints != agentPts || st.Points != 2*agentPts {
		t.Errorf("DuplicatePoints = %d of %d points, want %d of %d", st.DuplicatePoints, st.Points, agentPts, 2*agentPts)
	}
	if got := s.Sum(reqCount); got != 34 {
		t.Errorf("Sum counts every received point: got %v, want 34", got)
	}
}

func TestEviction(t *testing.T) {
	s := startIntake(t, func(c *Config) { c.MaxStoredSeries = 2 })
	if a := post(t, s, jsonHeaders(""), readTestdata(t, "agent_like.json")); a.status != http.StatusAccepted {
		t.Fatalf("got %d %s, want 202", a.status, a.body)
	}
	series := s.Series()
	if len(series) != 2 || series[0].Metric != queue || series[1].Metric != bucket {
		t.Fatalf("kept %d series, want the last two (queue, bucket)", len(series))
	}
	if got := s.Metrics(); !slices.Equal(got, []string{queue, bucket}) {
		t.Errorf("Metrics() = %q after eviction", got)
	}
	if got := s.Points(reqCount); len(got) != 0 {
		t.Errorf("evicted metric still has points: %+v", got)
	}
	st := s.Stats()
	if st.EvictedSeries != 3 || st.Series != agentSers || st.Metrics != 3 {
		t.Errorf("Stats = %+v, want 3 evicted, %d counted, 3 metrics ever", st, agentSers)
	}
	// Points of evicted series no longer count as seen.
	if a := post(t, s, jsonHeaders(""), readTestdata(t, "agent_like.json")); a.status != http.StatusAccepted {
		t.Fatalf("got %d %s, want 202", a.status, a.body)
	}
	if got := s.Stats().DuplicatePoints; got != 0 {
		t.Errorf("DuplicatePoints = %d after the originals were evicted, want 0", got)
	}
}

func TestWaitForAndReset(t *testing.T) {
	s := startIntake(t, nil)
	done := make(chan error)
	go func() {
		done <- s.WaitFor(context.Background(), func(in *Intake) bool { return in.Sum(reqCount) >= 17 })
	}()
	if a := post(t, s, jsonHeaders(""), readTestdata(t, "agent_like.json")); a.status != http.StatusAccepted {
		t.Fatalf("got %d %s, want 202", a.status, a.body)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	s.Reset()
	if st := s.Stats(); st.Accepted != 0 || len(s.Series()) != 0 || len(s.Metrics()) != 0 || st.Metrics != 0 {
		t.Errorf("after Reset: stats %+v, %d series", st, len(s.Series()))
	}
}
