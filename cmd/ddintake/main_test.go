package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  string
		code int
		want string
	}{
		{"no key", nil, "", 2, "no API key: set -api-key or DD_API_KEY"},
		{"bad fault", []string{"-api-key", "k", "-faults", "429,teapot"}, "", 2, `-faults: "teapot"`},
		{"bad hang", []string{"-api-key", "k", "-faults", "hang:soon"}, "", 2, `want hang:<positive duration>`},
		{"bad level", []string{"-api-key", "k", "-log-level", "loud"}, "", 2, `-log-level "loud"`},
		{"argument", []string{"-api-key", "k", "extra"}, "", 2, `unexpected argument "extra"`},
		{"help", []string{"-help"}, "", 0, "Usage:\n  DD_API_KEY=<any string> ddintake [flags]"},
		{"key from env", []string{"-listen", "256.0.0.1:1"}, "from-env", 1, "listen on 256.0.0.1:1"}, // got past the key check
		{"help hides the key", []string{"-help"}, "secret-key", 0, "-api-key string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := func(k string) string {
				if k == "DD_API_KEY" {
					return tc.env
				}
				return ""
			}
			code := run(context.Background(), tc.args, &stdout, &stderr, env)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr.String(), tc.code, tc.want)
			}
			if tc.env != "" && strings.Contains(stderr.String()+stdout.String(), tc.env) {
				t.Errorf("output shows the API key %q:\n%s", tc.env, stderr.String())
			}
		})
	}
}

// lockedBuffer collects stderr written by the intake's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRun starts the command on 127.0.0.1, sends it one good and one
// refused payload, and reads the summary it prints.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-listen", "127.0.0.1:0", "-summary-interval", "10ms", "-faults", "503"}, pw, &stderr,
			func(k string) string {
				if k == "DD_API_KEY" {
					return "demo-key"
				}
				return ""
			})
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("no output; stderr:\n%s", stderr.String())
	}
	first := lines.Text()
	url, _, ok := strings.Cut(strings.TrimPrefix(first, "ddintake: listening on "), " ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q does not name a loopback URL", first)
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	postSeries := func(key string) int {
		body := fmt.Sprintf(`{"series":[{"metric":"demo.up","type":3,"points":[{"timestamp":%d,"value":1}]}]}`, time.Now().Unix())
		req, _ := http.NewRequest(http.MethodPost, url+fakeintake.SeriesPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(fakeintake.APIKeyHeader, key)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, want := range []struct {
		key    string
		status int
	}{{"demo-key", 503}, {"demo-key", 202}, {"wrong", 403}} {
		if got := postSeries(want.key); got != want.status {
			t.Fatalf("post with key %q: %d, want %d", want.key, got, want.status)
		}
	}

	// Summaries come every 10ms, so the three requests may spread over
	// several; read until one shows them all (totals, not the +deltas).
	var out []string
	done := false
	for !done && lines.Scan() {
		l := lines.Text()
		out = append(out, l)
		done = strings.Contains(l, "payloads 1 (") && strings.Contains(l, "rejected 1 (") && strings.HasSuffix(l, "faults 1")
	}
	if !done {
		t.Fatalf("no summary shows 1 payload, 1 refusal and 1 fault:\n%s", strings.Join(out, "\n"))
	}
	for range 4 { // its detail lines: bytes, top metrics, reasons, the refusal
		if lines.Scan() {
			out = append(out, lines.Text())
		}
	}
	text := strings.Join(out, "\n")
	for _, want := range []string{
		"series 1 (",
		"points 1 (",
		"metrics 1  rejected",
		"bytes 88 B sent, 88 B decoded (identity 1)",
		"top metrics by points: demo.up 1",
		"rejects by reason: invalid_api_key 1",
		"403 invalid_api_key: Forbidden",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }() // drain the final summary
	if got := <-code; got != 0 {
		t.Errorf("exit code %d, stderr:\n%s", got, stderr.String())
	}
	if !strings.Contains(stderr.String(), "reason=invalid_api_key") {
		t.Errorf("stderr does not log the refusal:\n%s", stderr.String())
	}
}

func TestFormatSummary(t *testing.T) {
	at := time.Date(2026, 1, 2, 12, 0, 5, 0, time.UTC)
	prev := fakeintake.Stats{Accepted: 1, Series: 10, Points: 10, Rejected: map[fakeintake.Reason]int64{}}
	st := fakeintake.Stats{
		Accepted: 3, Series: 30, Points: 45, Metrics: 2, Faults: 1,
		CompressedBytes: 2048, UncompressedBytes: 3 << 20,
		Encodings:       map[string]int64{"zstd1": 2, "gzip": 1},
		DuplicatePoints: 4,
		Rejected:        map[fakeintake.Reason]int64{fakeintake.ReasonTimestamp: 2},
		LastRejects: []fakeintake.Reject{
			{Time: at.Add(-3 * time.Second), Status: 400, Reason: fakeintake.ReasonTimestamp, Message: "old one"},
			{Time: at.Add(-time.Second), Status: 400, Reason: fakeintake.ReasonTimestamp, Message: "new one"},
		},
	}
	top := []fakeintake.MetricCount{{Metric: "a.count", Series: 20, Points: 30}, {Metric: "b", Series: 10, Points: 15}}
	got := formatSummary(at, prev, st, top, 1, true)
	want := `[12:00:05] payloads 3 (+2)  series 30 (+20)  points 45 (+35)  metrics 2  rejected 2 (+2)  faults 1
  bytes 2.0 KiB sent, 3.0 MiB decoded (gzip 1, zstd1 2)  DUPLICATE points 4 (Datadog keeps one value per series and timestamp)
  top metrics by points: a.count 30, b 15
  rejects by reason: timestamp 2
  rejected 12:00:04 400 timestamp: new one
`
	if got != want {
		t.Errorf("formatSummary:\n%s\nwant:\n%s", got, want)
	}
	if got := formatSummary(at, st, st, top, 2, true); got != "[12:00:05] nothing new (payloads 3, rejected 2)\n" {
		t.Errorf("idle summary = %q", got)
	}
}
