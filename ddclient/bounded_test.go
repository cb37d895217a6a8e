package ddclient

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

// TestShapesFollowTheirSeries: a target that exposes new metric names at
// every scrape (and drops the previous ones) leaves its appender holding
// only the shapes of the series it still has, for verbatim and kept
// series alike; a released shape's place serves a new name with its own
// name; a shape shared by two series outlives the first to go. Without the
// bound the appender held every name it ever met.
func TestShapesFollowTheirSeries(t *testing.T) {
	for _, nonVerbatim := range []bool{false, true} {
		t.Run(fmt.Sprintf("nonVerbatim=%v", nonVerbatim), func(t *testing.T) {
			sink := newCaptureSink()
			tg := &target.Target{Interval: 15 * time.Second, Labels: labels.FromStrings("job", "j")}
			s := newScraper(t, sink, tg, prom)
			s.nonVerbatim = nonVerbatim
			app := s.app.(*appender)
			const names, scrapes = 1200, 8
			for k := range scrapes {
				var b strings.Builder
				b.WriteString("# TYPE stable gauge\nstable{a=\"1\"} 1\nstable{a=\"2\"} 2\n")
				for i := range names {
					fmt.Fprintf(&b, "# HELP churn_%d_%d A name of scrape %d.\nchurn_%d_%d{a=\"x\"} %d\n", k, i, k, k, i, i)
				}
				s.scrape(b.String(), testTS+int64(k)*15_000)
				if got := len(app.shapeIdx); got != names+1 {
					t.Fatalf("scrape %d: %d shapes held, want %d (the scrape's names and stable)", k, got, names+1)
				}
			}
			if n := len(app.shapes); n > 2*names+2 {
				t.Errorf("%d shapes allocated for %d live at most", n, 2*names+1)
			}
			// One of stable's series goes: its shape stays for the other.
			s.scrape("# TYPE stable gauge\nstable{a=\"2\"} 3\nlate 4\n", testTS+scrapes*15_000)
			s.scrape("# TYPE stable gauge\nstable{a=\"2\"} 5\nlate 6\n", testTS+(scrapes+1)*15_000)
			if got := len(app.shapeIdx); got != 2 {
				t.Errorf("%d shapes held, want 2 (stable, late)", got)
			}
			got := renderAll(sink.series(t))
			for _, w := range []string{
				fmt.Sprintf("churn_%d_%d gauge [a:x job:j] = %d", scrapes-1, names-1, names-1),
				"stable gauge [a:2 job:j] = 5",
				"late gauge [job:j] = 6",
			} {
				if !slices.Contains(got, w) {
					t.Errorf("no series %q", w)
				}
			}
			if n := len(got); n != scrapes*(names+2)+4 {
				t.Errorf("%d series sent, want %d", n, scrapes*(names+2)+4)
			}
			if v := metricValue(t, sink.set, "nodescraper_dd_metric_shapes_evicted_total"); v != scrapes*names {
				t.Errorf("shapes evicted %v, want %d", v, scrapes*names)
			}
			if v := metricValue(t, sink.set, "nodescraper_dd_metric_shapes"); v != 2 {
				t.Errorf("shapes gauge %v, want 2", v)
			}
			s.app.Close()
			if v := metricValue(t, sink.set, "nodescraper_dd_metric_shapes"); v != 0 {
				t.Errorf("shapes gauge %v after Close, want 0", v)
			}
		})
	}
}

// TestMetadataCacheBound: the metadata cache holds at most its names and
// their bytes, evicts the least recently met first and counts it; a name
// met again is kept; an unchanged name keeps its schedule, a changed one is
// due again.
func TestMetadataCacheBound(t *testing.T) {
	set := metrics.NewSet()
	evicted := set.NewCounter("evicted")
	c := newMetaCache(100, evicted)
	md := func(help string) datadogV1.MetricMetadata {
		var m datadogV1.MetricMetadata
		m.SetType("gauge")
		m.SetDescription(help)
		return m
	}
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 1000 {
		c.observe(fmt.Sprintf("m%d", i), md("help"), t0)
		if i%10 == 0 {
			c.observe("m0", md("help"), t0.Add(time.Hour)) // met often: kept
		}
	}
	if c.len() != 100 || evicted.Get() != 900 {
		t.Fatalf("%d names held, %d evicted; want 100, 900", c.len(), evicted.Get())
	}
	if st := c.get("m0"); st == nil || !st.next.Equal(t0) {
		t.Errorf("m0, met every 10 names, evicted or rescheduled: %+v", st)
	}
	if c.get("m900") != nil || c.get("m901") == nil || c.get("m999") == nil {
		t.Error("not the least recently met names evicted")
	}
	c.observe("m999", md("new help"), t0.Add(time.Hour))
	if st := c.get("m999"); !st.next.Equal(t0.Add(time.Hour)) {
		t.Errorf("changed metadata not due again: %v", st.next)
	}
	// Bytes: 10 KiB of HELP per name fits about 9 names in 100 KiB.
	long := strings.Repeat("h", 10<<10)
	for i := range 50 {
		c.observe(fmt.Sprintf("long%d", i), md(long), t0)
	}
	if c.bytes > c.maxBytes || c.len() > 10 {
		t.Errorf("%d names, %d bytes held; bound %d bytes", c.len(), c.bytes, c.maxBytes)
	}
	// The list and the map agree.
	n := 0
	for st := c.oldest; st != nil; st = st.newer {
		if c.byName[st.name] != st {
			t.Fatalf("%s in the list, not the map", st.name)
		}
		n++
	}
	if n != c.len() {
		t.Errorf("list of %d, map of %d", n, c.len())
	}
	// A single name larger than the whole bound is kept alone.
	c.observe("huge", md(strings.Repeat("h", 200<<10)), t0)
	if c.len() != 1 || c.get("huge") == nil {
		t.Errorf("%d names held after a huge one", c.len())
	}
}
