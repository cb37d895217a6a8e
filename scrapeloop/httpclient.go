package scrapeloop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// httpClient builds the client of a target from its HTTP settings (TLS,
// proxy, HTTP/2, redirects, OAuth2) and sets the per-request credentials
// (Authorization, basic auth) on req, which the loop reuses for every scrape.
// Targets without special settings share base. closeIdle closes the idle
// connections of the transports made for this target alone (base stays
// open for the others): call it when the target's loop stops.
//
// Everything a scrape waits on runs under the scrape request's context, so
// the target's timeout bounds it and a stopping loop ends it: dialing, DNS,
// the proxy's CONNECT and the TLS handshake in net/http, and the OAuth2 token
// fetch in oauth2Transport. TLS files and material are read here, once per
// loop; a rotated Secret is a new target key and so a new loop. A
// credentials file is read at each scrape (fileAuthTransport); ownToken says
// it is the agent's own service-account token (target.Target.OwnCredentials).
func httpClient(base http.RoundTripper, r reach, h *httpconfig.Config, ownToken bool, req *http.Request) (c *http.Client, closeIdle func(), err error) {
	c = &http.Client{Transport: base}
	var own []*http.Transport
	closeIdle = func() {
		for _, t := range own {
			t.CloseIdleConnections()
		}
	}
	if h == nil {
		h = &httpconfig.Config{FollowRedirects: true, EnableHTTP2: true}
	}
	if !h.FollowRedirects {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	rt, t, err := transport(base, h.TLS, h.Proxy, h.EnableHTTP2, r)
	if err != nil {
		return nil, nil, err
	}
	if t != nil {
		own = append(own, t)
	}
	c.Transport = rt
	switch {
	case h.Authorization != nil:
		typ := h.Authorization.Type
		if typ == "" {
			typ = "Bearer"
		}
		if f := h.Authorization.CredentialsFile; f != "" {
			c.Transport = &fileAuthTransport{typ: typ, file: f, own: ownToken, base: c.Transport}
			break
		}
		// net/http drops it on a redirect to another host.
		req.Header.Set("Authorization", typ+" "+string(h.Authorization.Credentials))
	case h.BasicAuth != nil:
		req.SetBasicAuth(h.BasicAuth.Username, string(h.BasicAuth.Password))
	case h.OAuth2 != nil:
		o := h.OAuth2
		cc := &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: string(o.ClientSecret), TokenURL: o.TokenURL, Scopes: o.Scopes}
		if len(o.EndpointParams) > 0 {
			cc.EndpointParams = map[string][]string{}
			for k, v := range o.EndpointParams {
				cc.EndpointParams[k] = []string{v}
			}
		}
		// The token endpoint (one the operator allows) is the only host
		// the token client reaches, whatever the target's reach.
		tr := reach{}
		if r.on() {
			u, err := url.Parse(o.TokenURL)
			if err != nil {
				return nil, nil, fmt.Errorf("oauth2 token URL: %w", err)
			}
			tr.only = u.Hostname()
		}
		trt, tt, err := transport(base, o.TLS, o.Proxy, true, tr)
		if err != nil {
			return nil, nil, fmt.Errorf("oauth2 token client: %w", err)
		}
		if tt != nil {
			own = append(own, tt)
		}
		c.Transport = &oauth2Transport{cfg: cc, client: &http.Client{Transport: trt}, base: c.Transport, sem: make(chan struct{}, 1)}
	}
	return c, closeIdle, nil
}

// transport returns base, or a clone of it with the given TLS, proxy and
// HTTP/2 settings; own is the clone (nil when base is returned). base
// already checks a node target's dials (Config.NodeAddrs); a transport
// that reaches one host only (r.only), or goes through a proxy, is a clone
// with its own check (see reach).
func transport(base http.RoundTripper, tc httpconfig.TLS, p httpconfig.Proxy, http2 bool, r reach) (rt http.RoundTripper, own *http.Transport, err error) {
	if tc == (httpconfig.TLS{}) && p.URL == nil && !p.FromEnvironment && http2 && r.only == "" {
		return base, nil, nil
	}
	bt, ok := base.(*http.Transport)
	if !ok {
		return nil, nil, errors.New("TLS, proxy or address settings need an *http.Transport")
	}
	t := bt.Clone()
	cfg, err := tlsConfig(tc)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	t.TLSClientConfig = cfg
	t.ForceAttemptHTTP2 = http2
	if !http2 {
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	switch {
	case p.URL != nil:
		t.Proxy = http.ProxyURL(p.URL)
		if len(p.ConnectHeader) > 0 {
			hdr := http.Header{}
			for k, vs := range p.ConnectHeader {
				for _, v := range vs {
					hdr.Add(k, string(v))
				}
			}
			t.ProxyConnectHeader = hdr
		}
	case p.FromEnvironment:
		t.Proxy = http.ProxyFromEnvironment
	default:
		t.Proxy = nil
	}
	r.via = proxyHosts(p.URL, p.FromEnvironment)
	if r.only != "" || len(r.via) > 0 {
		return r.guard(t), t, nil
	}
	return t, t, nil
}

// oauth2Transport adds a client-credentials token to each request, fetching
// it with the request's context. oauth2.Transport over a TokenSource made
// from a long-lived context (as Prometheus' oauth2RoundTripper does) fetches
// under that context instead: a token endpoint that never answers holds the
// scrape, the loop's restart and the agent's shutdown until the token
// client's connection gives up, whatever the scrape's timeout. A token is
// reused until it is about to expire (oauth2.Token.Valid).
type oauth2Transport struct {
	cfg    *clientcredentials.Config
	client *http.Client // reaches the token endpoint, with its own TLS and proxy
	base   http.RoundTripper
	// sem is held while the token is read or fetched; waiting for it obeys
	// the request's context, as a mutex would not.
	sem chan struct{}
	tok *oauth2.Token
}

func (t *oauth2Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if crossHostRedirect(req) {
		// The token is for the target's host, not wherever it redirects to
		// (net/http drops Authorization headers there the same way).
		return t.base.RoundTrip(req)
	}
	tok, err := t.token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip closes the body, even on errors
		}
		return nil, err
	}
	r := req.Clone(req.Context()) // a RoundTripper must not modify the request
	tok.SetAuthHeader(r)
	return t.base.RoundTrip(r)
}

func (t *oauth2Transport) token(ctx context.Context) (*oauth2.Token, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &tokenError{url: t.cfg.TokenURL, err: ctx.Err()}
	}
	defer func() { <-t.sem }()
	if t.tok.Valid() {
		return t.tok, nil
	}
	tok, err := t.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, t.client))
	if err != nil {
		// A RetrieveError's text is the endpoint's whole answer.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			return nil, &tokenError{url: t.cfg.TokenURL, code: re.Response.StatusCode, err: errors.New("answered " + quoteShort(re.Body))}
		}
		return nil, &tokenError{url: t.cfg.TokenURL, err: err}
	}
	t.tok = tok
	return tok, nil
}

// crossHostRedirect says req follows a redirect to a host that is neither the
// original request's host nor a subdomain of it (the rule of net/http and of
// Prometheus' isCrossHostRedirect).
func crossHostRedirect(req *http.Request) bool {
	orig := req
	for orig.Response != nil && orig.Response.Request != nil {
		orig = orig.Response.Request
	}
	host := strings.ToLower(orig.URL.Hostname())
	for r := req; r.Response != nil && r.Response.Request != nil; r = r.Response.Request {
		if !domainOrSubdomain(strings.ToLower(r.URL.Hostname()), host) {
			return true
		}
	}
	return false
}

func domainOrSubdomain(sub, parent string) bool {
	if sub == parent {
		return true
	}
	// An IPv6 address (or its zone) is no one's subdomain.
	if strings.ContainsAny(sub, ":%") {
		return false
	}
	return strings.HasSuffix(sub, "."+parent)
}

func tlsConfig(t httpconfig.TLS) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: t.MinVersion, MaxVersion: t.MaxVersion}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	ca := []byte(t.CA)
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		ca = b
	}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("CA: no PEM certificate found")
		}
		cfg.RootCAs = pool
	}
	cert, key := []byte(t.Cert), []byte(string(t.Key))
	if t.CertFile != "" || t.KeyFile != "" {
		var err error
		if cert, err = os.ReadFile(t.CertFile); err != nil {
			return nil, err
		}
		if key, err = os.ReadFile(t.KeyFile); err != nil {
			return nil, err
		}
	}
	if len(cert) > 0 || len(key) > 0 {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
