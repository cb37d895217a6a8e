package scrapeloop

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/target"
)

// rawResponder is a loopback HTTP server whose next answer the test sets:
// either a normal one, or raw bytes written on the hijacked connection,
// which is then closed (a server that dies mid-body, or lies about it).
type rawResponder struct {
	srv *httptest.Server

	mu   sync.Mutex
	body string // the normal answer's body
	ct   string
	raw  func(body string) string // non-nil: the raw answer for body
}

func newRawResponder(t *testing.T) *rawResponder {
	t.Helper()
	rr := &rawResponder{}
	rr.srv = httptest.NewServer(http.HandlerFunc(rr.serve)) // 127.0.0.1
	t.Cleanup(rr.srv.Close)
	return rr
}

func (rr *rawResponder) set(body, ct string, raw func(string) string) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.body, rr.ct, rr.raw = body, ct, raw
}

func (rr *rawResponder) serve(w http.ResponseWriter, _ *http.Request) {
	rr.mu.Lock()
	body, ct, raw := rr.body, rr.ct, rr.raw
	rr.mu.Unlock()
	if raw == nil {
		w.Header().Set("Content-Type", ct)
		_, _ = w.Write([]byte(body))
		return
	}
	conn, bw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	_, _ = bw.WriteString(raw(body))
	_ = bw.Flush()
}

// cutAtLine is body without its last n lines: cut at a line boundary.
func cutAtLine(body string, n int) string {
	lines := strings.SplitAfter(body, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines[:len(lines)-n], "")
}

func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.String()
}

const rawHeader = "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"

// TestIncompleteBodyFailsScrape answers one scrape of a target with a body
// that is provably incomplete, over real loopback HTTP. The scrape fails with
// an error naming the target and the reason, counted under that reason in
// nodescraper_scrape_incomplete_bodies_total and in the scrape errors; no
// point is handed on and the delta state is as before, so the next good
// scrape's deltas are the increase since the last good one. Bodies that are
// not provably incomplete (an unframed text body cut at a line boundary)
// are taken.
func TestIncompleteBodyFailsScrape(t *testing.T) {
	text := func(a, b int) string {
		return fmt.Sprintf("# TYPE a counter\na_total %d\n# TYPE b counter\nb_total %d\n", a, b)
	}
	om := func(a, b int) string {
		return fmt.Sprintf("# TYPE a counter\na_total %d\n# TYPE b counter\nb_total %d\n# EOF\n", a, b)
	}
	cases := []struct {
		name   string
		body   func(a, b int) string
		ct     string
		raw    func(body string) string // nil: a normal answer of body (changed by mangle)
		mangle func(body string) string
		reason string // "" when the scrape must be taken
	}{
		{name: "Content-Length larger than the body (cut at a line)", body: text, ct: textCT, reason: "content_length",
			raw: func(body string) string {
				return fmt.Sprintf(rawHeader+"Content-Length: %d\r\n\r\n%s", textCT, len(body), cutAtLine(body, 2))
			}},
		{name: "Content-Length larger than the body (cut within a line)", body: text, ct: textCT, reason: "content_length",
			raw: func(body string) string {
				return fmt.Sprintf(rawHeader+"Content-Length: %d\r\n\r\n%s", textCT, len(body), body[:len(body)-2])
			}},
		{name: "gzip body shorter than its Content-Length", body: text, ct: textCT, reason: "content_length",
			raw: func(body string) string {
				z := gzipped(body)
				return fmt.Sprintf(rawHeader+"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", textCT, len(z), z[:len(z)-10])
			}},
		{name: "chunked stream without its last chunk", body: text, ct: textCT, reason: "chunked",
			raw: func(body string) string {
				part := cutAtLine(body, 2)
				return fmt.Sprintf(rawHeader+"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", textCT, len(part), part)
			}},
		{name: "chunked stream cut within a chunk", body: text, ct: textCT, reason: "chunked",
			raw: func(body string) string {
				return fmt.Sprintf(rawHeader+"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s", textCT, len(body), cutAtLine(body, 2))
			}},
		{name: "gzip stream cut, framing intact", body: text, ct: textCT, reason: "gzip",
			raw: func(body string) string {
				z := gzipped(body)
				z = z[:len(z)-10]
				return fmt.Sprintf(rawHeader+"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", textCT, len(z), z)
			}},
		{name: "OpenMetrics without # EOF", body: om, ct: omCT, reason: "no_eof",
			mangle: func(body string) string { return strings.TrimSuffix(body, "# EOF\n") }},
		{name: "OpenMetrics cut at a line boundary", body: om, ct: omCT, reason: "no_eof",
			mangle: func(body string) string { return cutAtLine(body, 2) }},
		{name: "unframed text body cut within a line", body: text, ct: textCT, reason: "unterminated_line",
			raw: func(body string) string {
				return fmt.Sprintf(rawHeader+"Connection: close\r\n\r\n%s", textCT, body[:len(body)-2])
			}},
		{name: "unframed text body cut at a line boundary is taken", body: text, ct: textCT,
			raw: func(body string) string {
				return fmt.Sprintf(rawHeader+"Connection: close\r\n\r\n%s", textCT, cutAtLine(body, 2))
			}},
		{name: "framed text body without a final newline is taken", body: text, ct: textCT,
			mangle: func(body string) string { return strings.TrimSuffix(body, "\n") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rr := newRawResponder(t)
			env := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.Transport = nil })
			url := rr.srv.URL + "/metrics"
			tl := env.loop(t, target.Target{URL: url, Interval: 10 * time.Second, Timeout: 5 * time.Second})
			scrape := func(a, b int, broken bool) Status {
				t.Helper()
				body := c.body(a, b)
				switch {
				case broken && c.raw != nil:
					rr.set(body, c.ct, c.raw)
				case broken:
					rr.set(c.mangle(body), c.ct, nil)
				default:
					rr.set(body, c.ct, nil)
				}
				env.now = env.now.Add(10 * time.Second)
				tl.scrapeOnce(context.Background())
				return tl.getStatus()
			}
			scrape(100, 1000, false) // baselines
			scrape(110, 1010, false)
			wantLines(t, "good scrapes", tl.app.take(), "counter a_total 10", "counter b_total 10")
			st := scrape(150, 1050, true)
			got := tl.app.take()
			errors := metricValue(t, env.mgr.Metrics(), "nodescraper_scrape_errors_total")
			if c.reason == "" {
				if st.Health != "up" || errors != 0 {
					t.Fatalf("scrape failed (%s, %g errors counted), want it taken", st.LastError, errors)
				}
				if len(got) == 0 {
					t.Fatal("the scrape taken handed on no point")
				}
			} else {
				if st.Health != "down" || !strings.Contains(st.LastError, url) || !strings.Contains(st.LastError, c.reason) ||
					!strings.Contains(st.LastError, "incomplete body") {
					t.Errorf("status %s %q, want down with an error naming %s and %q", st.Health, st.LastError, url, c.reason)
				}
				counted := metricValue(t, env.mgr.Metrics(), `nodescraper_scrape_incomplete_bodies_total{reason="`+c.reason+`"}`)
				if errors != 1 || counted != 1 {
					t.Errorf("counted %g scrape errors and %g incomplete bodies (%s), want 1 and 1", errors, counted, c.reason)
				}
				wantLines(t, "broken scrape", got)
			}
			// The next good scrape's deltas: against the last good scrape
			// when the broken one failed; the taken one's series that were
			// missing kept their state.
			scrape(160, 1060, false)
			want := []string{"counter a_total 50", "counter b_total 50"}
			if c.reason == "" {
				all := append(got, tl.app.take()...)
				var sum [2]float64
				for _, line := range all {
					var v float64
					if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err != nil {
						t.Fatal(err)
					}
					sum[map[bool]int{true: 0, false: 1}[strings.Contains(line, "a_total")]] += v
				}
				if sum != [2]float64{50, 50} {
					t.Fatalf("deltas %v sum to %v, want the true increase 50, 50", all, sum)
				}
				return
			}
			wantLines(t, "next good scrape", tl.app.take(), want...)
		})
	}
}
