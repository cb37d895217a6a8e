package scrapeloop

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/deltastore"
	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
	"github.com/prometheus/prometheus/model/labels"
)

// blackHole accepts TCP connections on 127.0.0.1 and never answers: a hung
// token endpoint, target, TLS peer or proxy. close ends its goroutine and
// closes what it accepted.
type blackHole struct {
	ln       net.Listener
	accepted atomic.Int32 // connections accepted so far
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newBlackHole(t *testing.T) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.accepted.Add(1)
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *blackHole) addr() string { return b.ln.Addr().String() }

func (b *blackHole) close() {
	b.ln.Close()
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}

// tokenServer is an OAuth2 token endpoint on 127.0.0.1 that grants token
// for the client credentials id/secret, valid for expiresIn seconds.
func tokenServer(t *testing.T, token string, expiresIn int) (srv *httptest.Server, fetches *atomic.Int32) {
	t.Helper()
	fetches = new(atomic.Int32)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		id, secret, ok := r.BasicAuth()
		if err := r.ParseForm(); err != nil || !ok || id != "id" || secret != "secret" || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "read" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": expiresIn})
	}))
	t.Cleanup(srv.Close)
	return srv, fetches
}

func oauth2Config(tokenURL string) *httpconfig.Config {
	return &httpconfig.Config{EnableHTTP2: true, FollowRedirects: true,
		OAuth2: &httpconfig.OAuth2{ClientID: "id", ClientSecret: "secret", TokenURL: tokenURL, Scopes: []string{"read"}}}
}

// TestOAuth2Token: the token is fetched with the client credentials, sent
// to the target, and reused across scrapes until it is about to expire
// (oauth2.Token.Valid keeps a 10 s margin); it is not sent along a redirect
// to another host.
func TestOAuth2Token(t *testing.T) {
	var leaked atomic.Value // an Authorization header seen on another host
	var reached atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		leaked.Store(r.Header.Get("Authorization"))
		w.Write([]byte("up 1\n"))
	}))
	defer other.Close()
	_, otherPort, _ := net.SplitHostPort(other.Listener.Addr().String())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0k" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/away" {
			// localhost is 127.0.0.1 too, but another host by name.
			http.Redirect(w, r, "http://localhost:"+otherPort+"/metrics", http.StatusFound)
			return
		}
		w.Write([]byte("up 1\n"))
	}))
	defer srv.Close()
	cases := []struct {
		name      string
		expiresIn int
		path      string
		fetches   int32 // token fetches for 3 scrapes
	}{
		{"long-lived token reused", 3600, "/metrics", 1},
		{"token within the expiry margin fetched again", 5, "/metrics", 3},
		{"no token to another host", 3600, "/away", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tokens, fetches := tokenServer(t, "t0k", c.expiresIn)
			leaked.Store("")
			env := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.Transport = nil })
			tl := env.loop(t, target.Target{URL: srv.URL + c.path, Interval: 10 * time.Second, Timeout: 5 * time.Second, HTTP: oauth2Config(tokens.URL + "/token")})
			for range 3 {
				env.now = env.now.Add(10 * time.Second)
				if _, err := tl.scrape(context.Background(), env.now); err != nil {
					t.Fatal(err)
				}
			}
			if n := fetches.Load(); n != c.fetches {
				t.Errorf("%d token fetches for 3 scrapes, want %d", n, c.fetches)
			}
			if v := leaked.Load().(string); v != "" {
				t.Errorf("the token went along the redirect to another host: %q", v)
			}
			if n := reached.Swap(0); (c.path == "/away") != (n == 3) {
				t.Errorf("the other host got %d of 3 scrapes", n)
			}
		})
	}

	// A token endpoint that refuses the client: the scrape fails, naming it.
	tokens, _ := tokenServer(t, "t0k", 3600)
	env := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.Transport = nil })
	tl := env.loop(t, target.Target{URL: srv.URL + "/metrics", Interval: 10 * time.Second, Timeout: 5 * time.Second,
		HTTP: &httpconfig.Config{OAuth2: &httpconfig.OAuth2{ClientID: "id", ClientSecret: "wrong", TokenURL: tokens.URL + "/token"}}})
	_, err := tl.fetch(context.Background(), new([]byte))
	if err == nil || !strings.Contains(err.Error(), "oauth2 token fetch from "+tokens.URL+"/token") || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("err = %v, want the token fetch and its refusal named", err)
	}
}

// TestHungDependencies: whatever a scrape waits on that never answers (the
// target, its TLS handshake, its proxy's CONNECT, the OAuth2 token endpoint
// directly or over TLS), the scrape fails within its timeout, naming what
// hung where that is known.
func TestHungDependencies(t *testing.T) {
	const timeout = 500 * time.Millisecond
	hole := newBlackHole(t)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("up 1\n")) }))
	defer ok.Close()
	proxy, _ := url.Parse("http://" + hole.addr())
	insecure := httpconfig.TLS{InsecureSkipVerify: true}
	cases := []struct {
		name string
		url  string
		http *httpconfig.Config
		want string // in the error
	}{
		{"target never answers", "http://" + hole.addr() + "/metrics", nil, "Client.Timeout exceeded"},
		{"TLS handshake never completes", "https://" + hole.addr() + "/metrics", &httpconfig.Config{TLS: insecure, EnableHTTP2: true}, "Client.Timeout exceeded"},
		{"proxy CONNECT never answered", "https://127.0.0.1:9/metrics", &httpconfig.Config{TLS: insecure, Proxy: httpconfig.Proxy{URL: proxy}, EnableHTTP2: true}, "Client.Timeout exceeded"},
		{"OAuth2 token endpoint never answers", ok.URL + "/metrics", oauth2Config("http://" + hole.addr() + "/token"), "oauth2 token fetch from http://" + hole.addr() + "/token"},
		{"OAuth2 token endpoint's TLS handshake never completes", ok.URL + "/metrics", func() *httpconfig.Config {
			h := oauth2Config("https://" + hole.addr() + "/token")
			h.OAuth2.TLS = insecure
			return h
		}(), "oauth2 token fetch from https://" + hole.addr() + "/token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.Transport = nil })
			tl := env.loop(t, target.Target{URL: c.url, Interval: time.Second, Timeout: timeout, HTTP: c.http})
			start := time.Now()
			_, err := tl.scrape(context.Background(), env.now)
			took := time.Since(start)
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
			if err == nil || !strings.Contains(err.Error(), "scrape "+c.url) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to name the target and %q", err, c.want)
			}
			// Slack for a loaded CI machine (-race, kube-apiservers of
			// other packages' tests beside it): what is checked is that
			// the timeout ends the wait, where a hang would last until a
			// 30 s dial or TLS timeout, or forever.
			if took > timeout+2*time.Second {
				t.Errorf("the scrape took %s, its timeout is %s", took, timeout)
			}
		})
	}
}

// TestShutdownDuringHungTokenFetch: a loop whose scrape waits on a token
// endpoint that never answers stops as soon as it is cancelled, well within
// the scrape's timeout, for a restart (Sync) as for the agent's shutdown
// (Wait).
func TestShutdownDuringHungTokenFetch(t *testing.T) {
	const timeout = 3 * time.Second
	hole := newBlackHole(t)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("up 1\n")) }))
	defer ok.Close()
	m := NewManager(Config{Store: deltastore.New(deltastore.Config{}), Backend: &recBackend{}, Logger: slog.New(slog.DiscardHandler)})
	defer m.cfg.Transport.(*http.Transport).CloseIdleConnections()
	tg := func(job string) target.Target {
		return target.Target{URL: ok.URL + "/metrics", Labels: labels.FromStrings("job", job), Interval: timeout, Timeout: timeout,
			HTTP: oauth2Config("http://" + hole.addr() + "/token")}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// waitFetches waits until the n-th token fetch has reached the endpoint.
	waitFetches := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(3 * timeout); hole.accepted.Load() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d token fetches, want %d", hole.accepted.Load(), n)
			}
		}
		time.Sleep(50 * time.Millisecond) // the request is written and waiting
	}
	m.Sync(ctx, []target.Target{tg("a")})
	waitFetches(1)
	for _, c := range []struct {
		name string
		stop func()
	}{
		// a's loop stops, b's starts and hangs in its own fetch.
		{"restart (Sync)", func() { m.Sync(ctx, []target.Target{tg("b")}) }},
		{"shutdown (Wait)", func() { cancel(); m.Wait() }},
	} {
		start := time.Now()
		c.stop()
		if took := time.Since(start); took > timeout/3 {
			t.Errorf("%s: took %s while a token fetch hung (scrape timeout %s)", c.name, took, timeout)
		}
		waitFetches(2)
	}
	if n := hole.accepted.Load(); n != 2 {
		t.Errorf("%d token fetches, want 2 (one per loop)", n)
	}
}
