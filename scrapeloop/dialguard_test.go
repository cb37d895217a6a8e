package scrapeloop

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"github.com/nodescraper/nodescraper/relabel/target"
)

// hostServer serves h on ip (a loopback address) and counts its requests.
type hostServer struct {
	url  string
	hits atomic.Int32
}

func serveOn(t *testing.T, ip string, h http.HandlerFunc) *hostServer {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hostServer{url: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func metricsHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }
}

func redirectTo(u string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, u, http.StatusFound) }
}

// forwardProxy is an HTTP proxy: it sends each request to the host its URL
// names, wherever that is.
func forwardProxy(w http.ResponseWriter, r *http.Request) {
	out, _ := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), r.Body)
	out.Header = r.Header.Clone()
	resp, err := (&http.Transport{}).RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// TestDialGuard: with the node's addresses set, no connection of a node
// target's scrape reaches another address: not through a redirect (to an
// address, to a name that resolves to one, to the node's own localhost or
// the cloud metadata address, here loopback stand-ins), not through a proxy
// (dialed only because it is the target's, then each hop checked), not
// through the OAuth2 token endpoint's redirect; a cluster target reaches its
// own host only. Without the set (--allow-other-addresses, and main before
// the check) the same redirect is followed to the other host.
func TestDialGuard(t *testing.T) {
	const node, pod, other, metadata, tokenHost, cluster, proxyIP = "127.0.3.1", "127.0.3.2", "127.0.3.3", "127.0.3.254", "127.0.3.5", "127.0.3.6", "127.0.3.7"
	otherHost := serveOn(t, other, metricsHandler("other_host_secret 1\n"))
	meta := serveOn(t, metadata, metricsHandler("metadata_credentials 1\n"))
	local := serveOn(t, "127.0.0.1", metricsHandler("node_localhost_admin 1\n"))
	_, localPort, _ := net.SplitHostPort(strings.TrimPrefix(local.url, "http://"))
	var podSrv *hostServer
	podSrv = serveOn(t, pod, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/other":
			redirectTo(otherHost.url+"/metrics")(w, r)
		case "/metadata":
			redirectTo(meta.url+"/latest/meta-data/")(w, r)
		case "/localhost":
			redirectTo("http://localhost:"+localPort+"/metrics")(w, r)
		case "/same":
			redirectTo(podSrv.url+"/metrics")(w, r)
		default:
			metricsHandler("up 1\n")(w, r)
		}
	})
	proxy := serveOn(t, proxyIP, forwardProxy)
	tokens := serveOn(t, tokenHost, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(w, r, otherHost.url+"/token", http.StatusTemporaryRedirect)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
	})
	clusterSrv := serveOn(t, cluster, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/node" {
			redirectTo(podSrv.url+"/metrics")(w, r)
			return
		}
		metricsHandler("apiserver_up 1\n")(w, r)
	})
	proxyURL, _ := url.Parse(proxy.url)
	viaProxy := &httpconfig.Config{FollowRedirects: true, EnableHTTP2: true, Proxy: httpconfig.Proxy{URL: proxyURL}}
	oauth := func(tokenURL string) *httpconfig.Config {
		return &httpconfig.Config{FollowRedirects: true, EnableHTTP2: true, OAuth2: &httpconfig.OAuth2{ClientID: "id", ClientSecret: "s", TokenURL: tokenURL}}
	}
	addrs := &target.NodeAddrs{}
	addrs.Replace([]string{node, pod, "node-a"})
	cases := []struct {
		name    string
		url     string
		http    *httpconfig.Config
		cluster bool
		open    bool   // no NodeAddrs: --allow-other-addresses
		err     string // "" succeeds
		reached *hostServer
	}{
		{name: "the pod", url: podSrv.url + "/metrics"},
		{name: "a redirect on the pod's host", url: podSrv.url + "/same"},
		{name: "a redirect to another host", url: podSrv.url + "/other", err: "connection to 127.0.3.3 refused: not an address of this node", reached: otherHost},
		{name: "a redirect to the metadata address", url: podSrv.url + "/metadata", err: "connection to 127.0.3.254 refused", reached: meta},
		{name: "a redirect to a name for the node's localhost", url: podSrv.url + "/localhost", err: "connection to localhost (127.0.0.1) refused", reached: local},
		{name: "an address no longer the node's", url: otherHost.url + "/metrics", err: "refused: not an address of this node", reached: otherHost},
		{name: "through the proxy", url: podSrv.url + "/metrics", http: viaProxy},
		{name: "through the proxy to another host", url: otherHost.url + "/metrics", http: viaProxy, err: "connection to 127.0.3.3 refused", reached: otherHost},
		{name: "through the proxy, redirected", url: podSrv.url + "/other", http: viaProxy, err: "connection to 127.0.3.3 refused", reached: otherHost},
		{name: "the token endpoint", url: podSrv.url + "/metrics", http: oauth(tokens.url + "/token")},
		{name: "the token endpoint, redirected", url: podSrv.url + "/metrics", http: oauth(tokens.url + "/away"), err: "connection to 127.0.3.3 refused: the target may only be reached at 127.0.3.5", reached: otherHost},
		{name: "a cluster target", url: clusterSrv.url + "/metrics", cluster: true},
		{name: "a cluster target redirected to a node address", url: clusterSrv.url + "/node", cluster: true, err: "connection to 127.0.3.2 refused: the target may only be reached at 127.0.3.6"},
		{name: "--allow-other-addresses follows the redirect", url: podSrv.url + "/other", open: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.reached != nil {
				c.reached.hits.Store(0)
			}
			env := newTestEnv(t, nil, t0, func(cfg *Config) {
				cfg.Transport = nil
				if !c.open {
					cfg.NodeAddrs = addrs
				}
			})
			tl := env.loop(t, target.Target{URL: c.url, HTTP: c.http, Cluster: c.cluster, Interval: 10 * time.Second, Timeout: 5 * time.Second})
			_, err := tl.fetch(context.Background(), new([]byte))
			switch {
			case c.err == "" && err != nil:
				t.Fatal(err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("err = %v, want %q", err, c.err)
			}
			if c.reached != nil && c.reached.hits.Load() != 0 {
				t.Errorf("%s was reached", c.reached.url)
			}
		})
	}
	if otherHost.hits.Load() == 0 {
		t.Error("with --allow-other-addresses the redirect did not reach the other host: the test proves nothing")
	}
}
