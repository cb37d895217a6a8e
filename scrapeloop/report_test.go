package scrapeloop

import (
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
)

// TestReport checks the report each scrape hands a Reporter appender, as
// Prometheus' report series count: samples read, left after metric
// relabeling, series added, duration and the error.
func TestReport(t *testing.T) {
	e := newTestEnv(t, nil, t0, nil)
	tl := e.loop(t, target.Target{MetricRelabel: mustRelabel(t, `
- source_labels: [__name__]
  regex: drop_me
  action: drop
`)})
	body := "# TYPE c counter\nc_total 1\ng 2\ndrop_me 3\n"
	type want struct {
		samples, post, added int
		err                  string
	}
	steps := []struct {
		body string
		fail bool
		want want
	}{
		{body: body, want: want{samples: 3, post: 2, added: 2}},
		{body: body, want: want{samples: 3, post: 2, added: 0}},
		{body: body + "h 4\n", want: want{samples: 4, post: 3, added: 1}},
		{body: "g{ 1\n", want: want{samples: 0, err: "scrape http://127.0.0.1:1/metrics:"}},
		{fail: true, want: want{err: "no body for"}},
	}
	for i, st := range steps {
		if st.fail {
			e.routes.mu.Lock()
			delete(e.routes.bodies, tl.target.URL)
			e.routes.mu.Unlock()
			e.now = e.now.Add(tl.target.Interval)
			tl.scrapeOnce(t.Context())
		} else {
			tl.scrapeStatus(t, st.body)
		}
		tl.app.mu.Lock()
		reps := tl.app.reports
		tl.app.mu.Unlock()
		if len(reps) != i+1 {
			t.Fatalf("step %d: %d reports", i, len(reps))
		}
		r := reps[i]
		switch {
		case st.want.err != "":
			if r.Err == nil || !strings.Contains(r.Err.Error(), st.want.err) {
				t.Errorf("step %d: error %v, want one with %q", i, r.Err, st.want.err)
			}
		case r.Err != nil || r.Samples != st.want.samples || r.PostRelabel != st.want.post || r.SeriesAdded != st.want.added:
			t.Errorf("step %d: report %+v, want %+v", i, r, st.want)
		}
		if !r.Start.Equal(e.now) || r.Duration < 0 || r.Duration > time.Second {
			t.Errorf("step %d: start %v duration %v, want the scrape's (%v)", i, r.Start, r.Duration, e.now)
		}
	}
}
