package scrapeloop

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
)

// authLog is a loopback server that records the Authorization header of
// each request by path.
type authLog struct {
	mu   sync.Mutex
	seen map[string][]string
	url  string
}

func startAuthServer(t *testing.T, ip string, h func(w http.ResponseWriter, r *http.Request)) *authLog {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	a := &authLog{seen: map[string][]string{}, url: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen[r.URL.Path] = append(a.seen[r.URL.Path], r.Header.Get("Authorization"))
		a.mu.Unlock()
		h(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *authLog) got(path string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen[path]...)
}

// TestOwnTokenRedirects scrapes through real redirects on loopback: a
// target on 127.0.0.1 whose /metrics redirects to another host,
// 127.0.0.2. The agent's own token (read from its file, which is rotated
// between scrapes as the kubelet does) reaches the target's host, on the
// same host after a redirect too, and never the other host.
func TestOwnTokenRedirects(t *testing.T) {
	metrics := func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("up 1\n")) }
	other := startAuthServer(t, "127.0.0.2", metrics)
	tgt := startAuthServer(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.url+"/metrics", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/metrics", http.StatusFound)
		default:
			metrics(w, r)
		}
	})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	writeToken := func(tok string) {
		// The kubelet's atomic writer swaps a symlinked directory; a rename
		// is the same for a reader.
		if err := os.WriteFile(tokenFile+".new", []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tokenFile+".new", tokenFile); err != nil {
			t.Fatal(err)
		}
	}
	scrape := func(l *loop) error {
		_, err := l.fetch(context.Background(), new([]byte))
		return err
	}
	newTarget := func(path string, own bool) *loop {
		tl := newTestLoop(t, target.Target{})
		tg := tl.target
		tg.URL, tg.Timeout, tg.OwnCredentials = tgt.url+path, 5*time.Second, own
		tg.HTTP = &httpconfig.Config{FollowRedirects: true, Authorization: &httpconfig.Authorization{Type: "Bearer", CredentialsFile: tokenFile}}
		l, err := newLoop(tl.cfg, tg)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	writeToken("tok-1")
	here := newTarget("/here", true)
	if err := scrape(here); err != nil {
		t.Fatal(err)
	}
	writeToken("tok-2")
	if err := scrape(here); err != nil {
		t.Fatal(err)
	}
	if got := tgt.got("/metrics"); len(got) != 2 || got[0] != "Bearer tok-1" || got[1] != "Bearer tok-2" {
		t.Errorf("same-host redirect of one loop: the target saw %q, want the token as rotated, [Bearer tok-1 Bearer tok-2]", got)
	}

	for _, own := range []bool{true, false} {
		if err := scrape(newTarget("/away", own)); err != nil {
			t.Fatal(err)
		}
	}
	if got := tgt.got("/away"); len(got) != 2 || got[0] != "Bearer tok-2" || got[1] != "Bearer tok-2" {
		t.Errorf("the target saw %q on /away, want the token twice", got)
	}
	if got := other.got("/metrics"); len(got) != 2 || got[0] != "" || got[1] != "" {
		t.Errorf("the host redirected to saw Authorization %q, want none (two requests)", got)
	}
}

// TestOwnTokenOnlyToItsHost: a redirect to a subdomain of the target's host
// carries a scrape class's credentials file, as in Prometheus, but never the
// agent's own token. No resolver here answers for subdomains, so the hops
// are made by hand.
func TestOwnTokenOnlyToItsHost(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	var sent string
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		sent = r.Header.Get("Authorization")
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	hop := func(urls ...string) *http.Request {
		var prev *http.Request
		for _, u := range urls {
			r := &http.Request{Method: http.MethodGet, URL: mustURL(t, u), Header: http.Header{}}
			if prev != nil {
				r.Response = &http.Response{Request: prev}
			}
			prev = r
		}
		return prev
	}
	cases := []struct {
		hops []string
		own  bool
		want string
	}{
		{[]string{"https://node.example:10250/metrics"}, true, "Bearer tok"},
		{[]string{"https://node.example:10250/metrics", "https://node.example:10255/metrics"}, true, "Bearer tok"},
		{[]string{"https://node.example:10250/metrics", "https://evil.node.example/metrics"}, true, ""},
		{[]string{"https://node.example:10250/metrics", "https://evil.node.example/metrics"}, false, "Bearer tok"},
		{[]string{"https://node.example:10250/metrics", "https://evil.example/metrics", "https://node.example/metrics"}, true, ""},
		{[]string{"https://node.example:10250/metrics", "https://other.example/metrics"}, false, ""},
	}
	for _, c := range cases {
		rt := &fileAuthTransport{typ: "Bearer", file: tokenFile, own: c.own, base: base}
		sent = "unset"
		if _, err := rt.RoundTrip(hop(c.hops...)); err != nil {
			t.Fatal(err)
		}
		if sent != c.want {
			t.Errorf("hops %v, own %v: sent Authorization %q, want %q", c.hops, c.own, sent, c.want)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
