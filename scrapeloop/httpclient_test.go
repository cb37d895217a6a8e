package scrapeloop

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
)

// TestTargetHTTPSettings scrapes a TLS server that demands credentials, with
// each kind of setting a monitor can carry.
func TestTargetHTTPSettings(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/metrics", http.StatusFound)
			return
		}
		user, pass, basic := r.BasicAuth()
		if r.Header.Get("Authorization") != "Bearer s3cret" && !(basic && user == "u" && pass == "p") {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("up 1\n"))
	}))
	defer srv.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	tlsOK := httpconfig.TLS{CA: ca, ServerName: "example.com"} // httptest's certificate names example.com
	cases := []struct {
		name string
		path string
		http *httpconfig.Config
		err  string
	}{
		{name: "bearer over verified TLS", http: &httpconfig.Config{TLS: tlsOK, Authorization: &httpconfig.Authorization{Credentials: "s3cret"}}},
		{name: "basic auth", http: &httpconfig.Config{TLS: tlsOK, BasicAuth: &httpconfig.BasicAuth{Username: "u", Password: "p"}}},
		{name: "wrong token", http: &httpconfig.Config{TLS: tlsOK, Authorization: &httpconfig.Authorization{Credentials: "nope"}}, err: "401"},
		{name: "unknown CA", http: &httpconfig.Config{Authorization: &httpconfig.Authorization{Credentials: "s3cret"}}, err: "certificate"},
		{name: "insecure skip verify", http: &httpconfig.Config{TLS: httpconfig.TLS{InsecureSkipVerify: true}, Authorization: &httpconfig.Authorization{Credentials: "s3cret"}}},
		{name: "redirect not followed", path: "/redirect", http: &httpconfig.Config{TLS: tlsOK, Authorization: &httpconfig.Authorization{Credentials: "s3cret"}}, err: "302"},
		{name: "redirect followed", path: "/redirect", http: &httpconfig.Config{TLS: tlsOK, FollowRedirects: true, Authorization: &httpconfig.Authorization{Credentials: "s3cret"}}},
		{name: "bad CA", http: &httpconfig.Config{TLS: httpconfig.TLS{CA: "junk"}}, err: "CA: no PEM certificate found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			if path == "" {
				path = "/metrics"
			}
			tl := newTestLoop(t, target.Target{})
			tg := tl.target
			tg.URL, tg.HTTP, tg.Timeout = srv.URL+path, c.http, 5*time.Second
			l, err := newLoop(tl.cfg, tg)
			if err == nil {
				_, err = l.fetch(context.Background(), new([]byte))
			}
			if c.err == "" && err != nil {
				t.Fatal(err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err = %v, want it to contain %q", err, c.err)
			}
		})
	}
	// A rotated secret is a different target: its loop restarts.
	a := target.Target{URL: "https://x", HTTP: &httpconfig.Config{Authorization: &httpconfig.Authorization{Credentials: "old"}}}
	b := a
	b.HTTP = &httpconfig.Config{Authorization: &httpconfig.Authorization{Credentials: "new"}}
	if a.Key() == b.Key() {
		t.Fatal("a rotated credential does not change the target key")
	}
}
