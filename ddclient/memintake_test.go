package ddclient

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nodescraper/nodescraper/ddclient/fakeintake"
)

// memTransport serves requests in memory through h, in the caller's
// goroutine: under testing/synctest a POST then takes no real time, and the
// intake's delays and hangs run on the bubble's clock, so the tests of
// backoff, concurrency and drain deadlines measure exact durations.
type memTransport struct{ h http.Handler }

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	sr := r.Clone(r.Context()) // the server's view of the request
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	sr.RequestURI = r.URL.RequestURI()
	sr.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, sr)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// startMemIntake is startIntake without a listener: clients reach it with
// newMemClient. Call it inside the synctest bubble.
func startMemIntake(t *testing.T, mod func(*fakeintake.Config)) *testIntake {
	t.Helper()
	in := newFakeIntake(t, mod)
	t.Cleanup(in.Close) // ends injected hangs
	return &testIntake{Intake: in, URL: "http://intake.invalid"}
}

// newMemClient is newTestClient posting to h in memory.
func newMemClient(t *testing.T, h http.Handler, mod func(*Config)) *Client {
	t.Helper()
	return newTestClient(t, "http://intake.invalid", func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: memTransport{h}}
		if mod != nil {
			mod(cfg)
		}
	})
}
