package ddclient

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV1"
	"github.com/VictoriaMetrics/metrics"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/nodescraper/nodescraper/scrapeloop"
)

// Point is one decoded point with its series description.
type Point struct {
	Desc
	Timestamp int64 // seconds
	Value     float64
}

type wireSeries struct {
	Metric    string   `json:"metric"`
	Type      int32    `json:"type"`
	Interval  int64    `json:"interval"`
	Tags      []string `json:"tags"`
	Resources []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"resources"`
	Points []struct {
		Timestamp int64   `json:"timestamp"`
		Value     float64 `json:"value"`
	} `json:"points"`
}

// decodePoints decodes the entries of bf. It is meant for the dry run and
// tests, not the hot path.
func decodePoints(bf *buffer) ([]Point, error) {
	out := make([]Point, 0, bf.points())
	for i := range bf.points() {
		var s wireSeries
		if err := json.Unmarshal(bf.entry(i), &s); err != nil {
			return out, fmt.Errorf("entry %d: %w", i, err)
		}
		d := Desc{Metric: s.Metric, Type: MetricType(s.Type), Interval: s.Interval, Tags: s.Tags}
		for _, r := range s.Resources {
			if r.Type == "host" {
				d.Host = r.Name
			}
		}
		for _, p := range s.Points {
			out = append(out, Point{Desc: d, Timestamp: p.Timestamp, Value: p.Value})
		}
	}
	return out, nil
}

// Printer writes points in a readable form instead of sending them (dry
// run): a scrape loop backend like Client.
type Printer struct {
	mu      sync.Mutex
	w       io.Writer
	mapping Mapping
	enc     *encodeMetrics
}

// NewPrinter returns a Printer writing to w.
func NewPrinter(w io.Writer, m Mapping) *Printer {
	return &Printer{w: w, mapping: m, enc: newEncodeMetrics(metrics.NewSet())}
}

// NewAppender implements scrapeloop.Backend.
func (p *Printer) NewAppender(t *target.Target) (scrapeloop.Appender, error) {
	return newAppender(p, &p.mapping, t), nil
}

func (p *Printer) counters() *encodeMetrics { return p.enc }
func (p *Printer) maxEntry() int            { return MaxUncompressedBytes - len(payloadOpen) - len(payloadClose) }

// seriesV3 implements sink: the dry run prints what it decodes from v2.
func (p *Printer) seriesV3() bool { return false }

func (p *Printer) acquire() *buffer {
	bf := &buffer{seal: MaxUncompressedBytes / 2, limit: MaxUncompressedBytes - len(payloadClose)}
	bf.reset(time.Now())
	return bf
}

func (p *Printer) full(bf *buffer) *buffer {
	p.release(bf)
	return p.acquire()
}

// release prints bf's points, one line each, sorted.
func (p *Printer) release(bf *buffer) {
	points, err := decodePoints(bf)
	lines := make([]string, 0, len(points)+1)
	if err != nil {
		lines = append(lines, "# undecodable entry: "+err.Error())
	}
	for _, pt := range points {
		tags := append([]string(nil), pt.Tags...)
		sort.Strings(tags)
		extra := ""
		if pt.Interval > 0 {
			extra += fmt.Sprintf(" interval=%ds", pt.Interval)
		}
		if pt.Host != "" {
			extra += " host=" + pt.Host
		}
		lines = append(lines, fmt.Sprintf("%s %-5s %g @%s%s [%s]", pt.Metric, pt.Type, pt.Value,
			time.Unix(pt.Timestamp, 0).UTC().Format(time.TimeOnly), extra, strings.Join(tags, " ")))
	}
	sort.Strings(lines)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range lines {
		fmt.Fprintln(p.w, l)
	}
}

// addCheck implements checkSink: the dry run prints each health check.
func (p *Printer) addCheck(c datadogV1.ServiceCheck) {
	status := map[datadogV1.ServiceCheckStatus]string{0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}[c.Status]
	tags := append([]string(nil), c.Tags...)
	sort.Strings(tags)
	line := fmt.Sprintf("%s check %s @%s host=%s [%s]", c.Check, status,
		time.Unix(c.GetTimestamp(), 0).UTC().Format(time.TimeOnly), c.HostName, strings.Join(tags, " "))
	if m := c.GetMessage(); m != "" {
		line += " " + m
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, line)
}
