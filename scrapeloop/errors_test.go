package scrapeloop

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
)

// TestErrorsQuoteLittle: what a target (or its token endpoint) writes
// reaches the scrape's error only as a short quote, and PublicError, the
// text that leaves the node (Datadog's service check), has none of it.
func TestErrorsQuoteLittle(t *testing.T) {
	// Longer than a quote: the whole of it never shows.
	const secret = "SecretAccessKey=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY/0123456789abcdefghijklmnopqrstuvwxyz"
	long := strings.Repeat("x", 100) + secret
	srv := serveOn(t, "127.0.3.20", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/status":
			w.Header().Set("Content-Type", "text/plain")
			// net/http writes the standard reason phrase; a raw status line
			// needs the connection.
			hj, _ := w.(http.Hijacker)
			c, buf, _ := hj.Hijack()
			_, _ = buf.WriteString("HTTP/1.1 500 " + secret + "\r\nContent-Length: 0\r\n\r\n")
			_ = buf.Flush()
			c.Close()
		case "/parse":
			_, _ = w.Write([]byte("ok 1\n" + secret + " {{{\n"))
		case "/label":
			_, _ = w.Write([]byte(`m{a="` + long + `"} 1` + "\n"))
		case "/token":
			http.Error(w, `{"error":"invalid_client","detail":"`+secret+`"}`, http.StatusUnauthorized)
		}
	})
	cases := []struct {
		name, path, public string
		http               *httpconfig.Config
		limits             target.Limits
	}{
		{name: "status text", path: "/status", public: "server returned HTTP status 500 Internal Server Error"},
		{name: "unparsable line", path: "/parse", public: "parse error: line 2 col"},
		{name: "label value over its limit", path: "/label", limits: target.Limits{LabelValueLength: 50}, public: "label value length limit exceeded"},
		{name: "token endpoint's refusal", path: "/metrics", public: "OAuth2 token fetch failed: HTTP status 401",
			http: &httpconfig.Config{OAuth2: &httpconfig.OAuth2{ClientID: "id", ClientSecret: "s", TokenURL: srv.url + "/token"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t, nil, t0, func(cfg *Config) { cfg.Transport = nil })
			tl := env.loop(t, target.Target{URL: srv.url + c.path, HTTP: c.http, Limits: c.limits, Interval: 10 * time.Second, Timeout: 5 * time.Second})
			env.now = env.now.Add(10 * time.Second)
			_, err := tl.scrape(context.Background(), env.now)
			if err == nil {
				t.Fatal("the scrape succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes the target's whole text: %v", err)
			}
			if !strings.Contains(err.Error(), "wJalrXUtn") && !strings.Contains(err.Error(), "xxxx") {
				t.Errorf("the error quotes nothing of the target's text to find it by: %v", err)
			}
			pub := PublicError(err)
			if !strings.HasPrefix(pub, c.public) || strings.Contains(pub, "Secret") || strings.Contains(pub, "xxx") {
				t.Errorf("PublicError = %q, want %q... and nothing the target wrote", pub, c.public)
			}
		})
	}
}
