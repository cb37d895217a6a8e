package ddclient

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
)

// reportNames are Prometheus' per-target report series (scrape/scrape.go),
// sent as gauges named <namespace>.<name> with the target's tags.
var reportNames = [...]string{
	"up",
	"scrape_duration_seconds",
	"scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling",
	"scrape_series_added",
}

// healthCheck is the service check of every target, as Datadog's
// OpenMetrics check sends it: OK when a scrape succeeds, CRITICAL with the
// error otherwise.
const healthCheck = "openmetrics.health"

// checkSink takes the health service checks of appenders; the Client and
// the Printer are ones.
type checkSink interface {
	addCheck(c datadogV1.ServiceCheck)
}

// reportState is what an appender needs for its target's reports.
type reportState struct {
	heads [len(reportNames)][]byte
	names [len(reportNames)]string
	// checkName and checkTags are the service check's name and tags: the
	// target's tags and endpoint:<scrape URL>, as the OpenMetrics check's
	// tag_by_endpoint gives it.
	checkName string
	checkTags []string
}

func (a *appender) initReport(t *target.Target) {
	r := &reportState{checkName: metricName(a.mp.Namespace, healthCheck)}
	for i, n := range reportNames {
		r.names[i] = metricName(a.mp.Namespace, n)
		r.heads[i] = a.head(metric{name: r.names[i], typ: Gauge})
	}
	// a.tail holds the target's tags as JSON strings, each led by a comma,
	// then `]}`.
	if list := a.tail[:len(a.tail)-1]; len(list) > 1 {
		_ = json.Unmarshal(append([]byte{'['}, list[1:]...), &r.checkTags)
	}
	r.checkTags = append(r.checkTags, "endpoint:"+t.URL)
	a.report = r
}

// Report implements scrapeloop.Reporter: the report series (when
// Mapping.ReportSeries) and the health service check (when the sink takes
// checks).
func (a *appender) Report(r *scrapeloop.Report) {
	if a.mp.ReportSeries {
		up := 0.0
		if r.Err == nil {
			up = 1
		}
		values := [len(reportNames)]float64{up, r.Duration.Seconds(), float64(r.Samples), float64(r.PostRelabel), float64(r.SeriesAdded)}
		for i, v := range values {
			a.appendReport(i, r.Start.UnixMilli(), v)
		}
		a.Commit()
	}
	if cs, ok := a.out.(checkSink); ok {
		c := datadogV1.NewServiceCheck(a.report.checkName, a.mp.Host, datadogV1.SERVICECHECKSTATUS_OK, a.report.checkTags)
		c.SetTimestamp(r.Start.Unix())
		if r.Err != nil {
			c.SetStatus(datadogV1.SERVICECHECKSTATUS_CRITICAL)
			// The agent's words only: what the target wrote stays on the node.
			c.SetMessage(cutRunes(scrapeloop.PublicError(r.Err), maxCheckMessage))
		}
		cs.addCheck(*c)
	}
}

// maxCheckMessage is the longest service check message Datadog keeps.
const maxCheckMessage = 500

func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := 0; k < n-1; k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i] + "…"
}

// appendReport encodes report point i (reportNames) with the target's tags.
func (a *appender) appendReport(i int, tsMs int64, v float64) {
	if a.buf == nil {
		a.buf = a.out.acquire()
	}
	if a.buf.w != nil {
		a.appendReportV3(i, tsMs/1000, v)
		return
	}
	head := a.report.heads[i]
	if sec := tsMs / 1000; sec != a.tsSec {
		a.tsSec = sec
		a.tsText = strconv.AppendInt(a.tsText[:0], sec, 10)
	}
	bf := a.buf
	b := bf.b
	if len(bf.ends) > 0 {
		b = append(b, ',')
	}
	start := len(b)
	b = append(b, head...)
	b = append(b, a.tsText...)
	b = append(b, `,"value":`...)
	b = appendValue(b, v)
	b = append(b, a.mid...)
	bf.b = a.appendTail(b, true)
	a.finish(start)
}
