package exporter

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Type is a metric family type as written in "# TYPE".
type Type string

// Family types.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
	Summary   Type = "summary"
	Untyped   Type = "untyped"
)

// Exporter holds metric families and renders them on every scrape.
// It is safe for concurrent use.
type Exporter struct {
	mu          sync.Mutex
	fams        []*Family
	byName      map[string]*Family
	startTime   float64 // process_start_time_seconds, 0 = not exposed
	openMetrics bool
	scrapes     int
	failNext    int           // answer the next n scrapes with 500
	delay       time.Duration // delay every scrape (timeouts)
	perScrape   float64       // added to every counter before each scrape is rendered
}

// New returns an empty exporter.
func New() *Exporter {
	return &Exporter{byName: map[string]*Family{}}
}

// Family is one metric family. Series are addressed by their label set written
// as in the exposition format without braces, e.g. `code="200",method="get"`.
type Family struct {
	e       *Exporter
	name    string
	typ     Type
	help    string
	buckets []float64 // histogram upper bounds, ascending, without +Inf
	series  map[string]*series
}

type series struct {
	value   float64
	buckets []float64 // cumulative counts per bucket (histogram)
	sum     float64
	count   float64
	quant   map[string]float64 // summary quantiles
	created float64            // OpenMetrics _created, seconds; 0 = none
}

// Family returns the family called name, creating it. buckets are histogram
// upper bounds (ignored for other types).
func (e *Exporter) Family(name string, typ Type, help string, buckets ...float64) *Family {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.byName[name]; ok {
		return f
	}
	b := append([]float64(nil), buckets...)
	sort.Float64s(b)
	f := &Family{e: e, name: name, typ: typ, help: help, buckets: b, series: map[string]*series{}}
	e.fams = append(e.fams, f)
	e.byName[name] = f
	return f
}

func (f *Family) get(lbls string) *series {
	s, ok := f.series[lbls]
	if !ok {
		s = &series{buckets: make([]float64, len(f.buckets))}
		f.series[lbls] = s
	}
	return s
}

// Set sets the value of a counter, gauge or untyped series.
func (f *Family) Set(lbls string, v float64) {
	f.e.mu.Lock()
	f.get(lbls).value = v
	f.e.mu.Unlock()
}

// Add adds v to a counter, gauge or untyped series.
func (f *Family) Add(lbls string, v float64) {
	f.e.mu.Lock()
	f.get(lbls).value += v
	f.e.mu.Unlock()
}

// Value returns the current value of a series (counter, gauge, untyped) or the
// count of a histogram or summary series.
func (f *Family) Value(lbls string) float64 {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	s := f.get(lbls)
	if f.typ == Histogram || f.typ == Summary {
		return s.count
	}
	return s.value
}

// Observe records one observation in a histogram or summary series.
func (f *Family) Observe(lbls string, v float64) {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	s := f.get(lbls)
	s.sum += v
	s.count++
	for i, ub := range f.buckets {
		if v <= ub {
			s.buckets[i]++
		}
	}
}

// SetQuantile sets a summary quantile's current value.
func (f *Family) SetQuantile(lbls string, q, v float64) {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	s := f.get(lbls)
	if s.quant == nil {
		s.quant = map[string]float64{}
	}
	s.quant[formatFloat(q)] = v
}

// SetCreated sets the series' OpenMetrics _created time (seconds).
func (f *Family) SetCreated(lbls string, sec float64) {
	f.e.mu.Lock()
	f.get(lbls).created = sec
	f.e.mu.Unlock()
}

// Delete removes a series (it disappears from the next scrape).
func (f *Family) Delete(lbls string) {
	f.e.mu.Lock()
	delete(f.series, lbls)
	f.e.mu.Unlock()
}

// Restart simulates a restart of the exporting process: every counter,
// histogram and summary goes back to zero and process_start_time_seconds
// (when exposed) becomes startTime.
func (e *Exporter) Restart(startTime float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.fams {
		if f.typ == Gauge || f.typ == Untyped {
			continue
		}
		for _, s := range f.series {
			s.value, s.sum, s.count = 0, 0, 0
			for i := range s.buckets {
				s.buckets[i] = 0
			}
			if s.created != 0 {
				s.created = startTime
			}
		}
	}
	if e.startTime != 0 {
		e.startTime = startTime
	}
}

// SetStartTime exposes process_start_time_seconds with the given value.
func (e *Exporter) SetStartTime(sec float64) {
	e.mu.Lock()
	e.startTime = sec
	e.mu.Unlock()
}

// SetOpenMetrics makes the exporter answer in OpenMetrics 1.0 text.
func (e *Exporter) SetOpenMetrics(on bool) {
	e.mu.Lock()
	e.openMetrics = on
	e.mu.Unlock()
}

// AddPerScrape makes every scrape first add v to every counter series, so
// that each scrape sees exactly v more than the one before: a test can then
// tell lost points from their count.
func (e *Exporter) AddPerScrape(v float64) {
	e.mu.Lock()
	e.perScrape = v
	e.mu.Unlock()
}

// FailNext makes the next n scrapes answer 500.
func (e *Exporter) FailNext(n int) {
	e.mu.Lock()
	e.failNext = n
	e.mu.Unlock()
}

// SetDelay delays every scrape's answer by d.
func (e *Exporter) SetDelay(d time.Duration) {
	e.mu.Lock()
	e.delay = d
	e.mu.Unlock()
}

// Scrapes returns how many scrapes were answered with 200 (or cut short
// during their delay: a scrape counts when its answer is rendered).
func (e *Exporter) Scrapes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.scrapes
}

// ServeHTTP renders the families.
func (e *Exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	delay := e.delay
	if e.failNext > 0 {
		e.failNext--
		e.mu.Unlock()
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	if e.perScrape != 0 {
		for _, f := range e.fams {
			if f.typ == Counter {
				for _, s := range f.series {
					s.value += e.perScrape
				}
			}
		}
	}
	body, ct := e.render()
	e.scrapes++
	e.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", ct)
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(body)
		_ = zw.Close()
		return
	}
	_, _ = w.Write(body)
}

// Render returns the current exposition and its content type.
func (e *Exporter) Render() ([]byte, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.render()
}

func (e *Exporter) render() ([]byte, string) {
	var b bytes.Buffer
	om := e.openMetrics
	if e.startTime != 0 {
		fmt.Fprintf(&b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n")
		fmt.Fprintf(&b, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %s\n", formatFloat(e.startTime))
	}
	for _, f := range e.fams {
		name := f.name
		typ := f.typ
		if om && typ == Untyped {
			typ = "unknown"
		}
		if om && f.typ == Counter {
			name = strings.TrimSuffix(name, "_total")
		}
		if f.help != "" {
			fmt.Fprintf(&b, "# HELP %s %s\n", name, f.help)
		}
		fmt.Fprintf(&b, "# TYPE %s %s\n", name, typ)
		keys := make([]string, 0, len(f.series))
		for k := range f.series {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s := f.series[k]
			switch f.typ {
			case Histogram:
				for i, ub := range f.buckets {
					writeSample(&b, name+"_bucket", k, `le="`+formatFloat(ub)+`"`, s.buckets[i])
				}
				writeSample(&b, name+"_bucket", k, `le="+Inf"`, s.count)
				writeSample(&b, name+"_sum", k, "", s.sum)
				writeSample(&b, name+"_count", k, "", s.count)
			case Summary:
				qs := make([]string, 0, len(s.quant))
				for q := range s.quant {
					qs = append(qs, q)
				}
				sort.Strings(qs)
				for _, q := range qs {
					writeSample(&b, name, k, `quantile="`+q+`"`, s.quant[q])
				}
				writeSample(&b, name+"_sum", k, "", s.sum)
				writeSample(&b, name+"_count", k, "", s.count)
			case Counter:
				sample := f.name
				if om {
					sample = name + "_total"
				}
				writeSample(&b, sample, k, "", s.value)
			default:
				writeSample(&b, name, k, "", s.value)
			}
			if om && s.created != 0 && (f.typ == Counter || f.typ == Histogram || f.typ == Summary) {
				writeSample(&b, name+"_created", k, "", s.created)
			}
		}
	}
	if om {
		b.WriteString("# EOF\n")
		return b.Bytes(), "application/openmetrics-text; version=1.0.0; charset=utf-8"
	}
	return b.Bytes(), "text/plain; version=0.0.4; charset=utf-8"
}

func writeSample(b *bytes.Buffer, name, lbls, extra string, v float64) {
	b.WriteString(name)
	if lbls != "" || extra != "" {
		b.WriteByte('{')
		b.WriteString(lbls)
		if lbls != "" && extra != "" {
			b.WriteByte(',')
		}
		b.WriteString(extra)
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Server is an exporter listening on a TCP address.
type Server struct {
	srv *http.Server
	ln  net.Listener
	// running counts the serving goroutine and each connection's, which
	// runs its requests' handlers: Close waits for all of them.
	running sync.WaitGroup
}

// Listen serves e at addr (e.g. "127.0.0.1:0") under /metrics until Close;
// /healthz answers ok, /scrapes the number of scrapes answered (Scrapes),
// and POST /fail fails every later scrape.
func (e *Exporter) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("exporter listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", e)
	// Probes and test harnesses read these without counting as a scrape.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/scrapes", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, e.Scrapes()) })
	// POST /fail: every later scrape answers 500, so /scrapes stops moving
	// and a harness reads the final truth without racing a scrape in flight.
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, _ *http.Request) {
		e.FailNext(math.MaxInt)
		fmt.Fprintln(w, e.Scrapes())
	})
	s := &Server{ln: ln}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ConnState: s.track}
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// track counts a connection from its acceptance to the end of its
// goroutine. The server calls it with StateNew on the serving goroutine,
// before the connection's goroutine starts, so the count never rises from
// zero while Close waits; StateClosed comes last on the connection's
// goroutine, after its handlers have returned. (A hijacked connection is
// counted until it is hijacked; no handler here hijacks one.)
func (s *Server) track(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.running.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.running.Done()
	}
}

// Close stops the server and waits for its connections to end: their
// handlers have returned (a delayed answer ends at once: its request's
// context is cancelled when the connection closes).
func (s *Server) Close() error {
	err := s.srv.Close()
	s.running.Wait()
	return err
}
