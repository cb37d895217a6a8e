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

// Printer writes points in a readable form instead of sending them (dry run).
type Printer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPrinter returns a Printer writing to w.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w} }

type printed struct {
	Metric    string   `json:"metric"`
	Type      int      `json:"type"`
	Interval  int64    `json:"interval"`
	Tags      []string `json:"tags"`
	Resources []struct {
		Name string `json:"name"`
	} `json:"resources"`
	Points []struct {
		Timestamp int64   `json:"timestamp"`
		Value     float64 `json:"value"`
	} `json:"points"`
}

// Submit prints b's points, one line each, and resets b.
func (p *Printer) Submit(b *Batch) {
	lines := make([]string, 0, b.Len())
	for i := range b.ends {
		var s printed
		if err := json.Unmarshal(b.entry(i), &s); err != nil {
			lines = append(lines, fmt.Sprintf("# undecodable entry: %v", err))
			continue
		}
		tags := append([]string(nil), s.Tags...)
		sort.Strings(tags)
		host := ""
		if len(s.Resources) > 0 {
			host = " host=" + s.Resources[0].Name
		}
		interval := ""
		if s.Interval > 0 {
			interval = fmt.Sprintf(" interval=%ds", s.Interval)
		}
		for _, pt := range s.Points {
			lines = append(lines, fmt.Sprintf("%s %-5s %g @%s%s%s [%s]", s.Metric, MetricType(s.Type), pt.Value,
				time.Unix(pt.Timestamp, 0).UTC().Format(time.TimeOnly), interval, host, strings.Join(tags, " ")))
		}
	}
	b.Reset()
	sort.Strings(lines)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range lines {
		fmt.Fprintln(p.w, l)
	}
}
