package fakeintake

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testNow is the clock of every test intake: the docs example's timestamp,
// so testdata payloads are inside the accepted window.
var testNow = time.Unix(1636629071, 0)

const testKey = "0123456789abcdef0123456789abcdef"

// startIntake starts an intake on 127.0.0.1 with the test key and clock;
// mod may change the config first.
func startIntake(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		APIKeys: []string{testKey},
		Now:     func() time.Time { return testNow },
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Start("", cfg)
	if err != nil {
		t.Fatalf("start intake: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close intake: %v", err)
		}
	})
	return s
}

// testWriter sends the intake's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newClient returns an HTTP client whose idle connections close with the test.
func newClient(t *testing.T, timeout time.Duration) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// answer is what the intake replied.
type answer struct {
	status int
	errors []string
	header http.Header
	body   string
}

// jsonHeaders are the headers of a well-formed request; enc "" sends none.
func jsonHeaders(enc string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(APIKeyHeader, testKey)
	if enc != "" {
		h.Set("Content-Encoding", enc)
	}
	return h
}

func send(t *testing.T, c *http.Client, method, url string, h http.Header, body io.Reader) (answer, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header = h
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	var eb struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(b, &eb) == nil {
		a.errors = eb.Errors
	}
	return a, nil
}

// post sends body to the series endpoint and fails the test on a transport error.
func post(t *testing.T, s *Server, h http.Header, body []byte) answer {
	t.Helper()
	return postTo(t, s, SeriesPath, h, body)
}

// postTo sends body to path and fails the test on a transport error.
func postTo(t *testing.T, s *Server, path string, h http.Header, body []byte) answer {
	t.Helper()
	a, err := send(t, newClient(t, 0), http.MethodPost, s.URL+path, h, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	return a
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compress encodes b as the Content-Encoding enc would.
func compress(t testing.TB, enc string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch strings.ToLower(enc) {
	case "", "identity":
		return b
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "zstd", "zstd1":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		t.Fatalf("compress: unknown encoding %q", enc)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantRefused checks status, the counted reason and that the message
// contains want.
func wantRefused(t *testing.T, s *Server, a answer, status int, reason Reason, want string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status = %d, want %d (body %s)", a.status, status, a.body)
	}
	if len(a.errors) == 0 || !strings.Contains(strings.Join(a.errors, "\n"), want) {
		t.Errorf("errors = %q, want one containing %q", a.errors, want)
	}
	st := s.Stats()
	if st.Rejected[reason] == 0 {
		t.Errorf("Stats.Rejected = %v, want a count for %q", st.Rejected, reason)
	}
	if st.Accepted != 0 || st.Series != 0 {
		t.Errorf("refused payload was counted as accepted: %+v", st)
	}
}
