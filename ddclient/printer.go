package ddclient

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
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

// Points decodes b's points. It is meant for the dry run and tests, not the
// hot path.
func (b *Batch) Points() ([]Point, error) {
	out := make([]Point, 0, b.Len())
	for i := range b.ends {
		var s wireSeries
		if err := json.Unmarshal(b.entry(i), &s); err != nil {
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

// Printer writes points in a readable form instead of sending them (dry run).
type Printer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPrinter returns a Printer writing to w.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w} }

// Submit prints b's points, one line each, and resets b.
func (p *Printer) Submit(b *Batch) {
	points, err := b.Points()
	b.Reset()
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
