package scrapeloop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/nodescraper/nodescraper/relabel"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// httpClient builds the client of a target from its HTTP settings (TLS,
// proxy, HTTP/2, redirects, OAuth2) and sets the per-request credentials
// (Authorization, basic auth) on req, which the loop reuses for every scrape.
// Targets without special settings share base.
func httpClient(ctx context.Context, base http.RoundTripper, h *relabel.HTTPConfig, req *http.Request) (*http.Client, error) {
	c := &http.Client{Transport: base}
	if h == nil {
		return c, nil
	}
	if !h.FollowRedirects {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	custom := h.TLS != (relabel.TLSConfig{}) || h.Proxy.URL != nil || h.Proxy.FromEnvironment || !h.EnableHTTP2
	if custom {
		bt, ok := base.(*http.Transport)
		if !ok {
			return nil, errors.New("TLS or proxy settings need an *http.Transport")
		}
		t := bt.Clone()
		cfg, err := tlsConfig(h.TLS)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		t.TLSClientConfig = cfg
		t.ForceAttemptHTTP2 = h.EnableHTTP2
		if !h.EnableHTTP2 {
			t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		switch {
		case h.Proxy.URL != nil:
			t.Proxy = http.ProxyURL(h.Proxy.URL)
			if len(h.Proxy.ConnectHeader) > 0 {
				hdr := http.Header{}
				for k, vs := range h.Proxy.ConnectHeader {
					for _, v := range vs {
						hdr.Add(k, string(v))
					}
				}
				t.ProxyConnectHeader = hdr
			}
		case h.Proxy.FromEnvironment:
			t.Proxy = http.ProxyFromEnvironment
		default:
			t.Proxy = nil
		}
		c.Transport = t
	}
	switch {
	case h.Authorization != nil:
		cred := string(h.Authorization.Credentials)
		if f := h.Authorization.CredentialsFile; f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("authorization credentials: %w", err)
			}
			cred = strings.TrimSpace(string(b))
		}
		typ := h.Authorization.Type
		if typ == "" {
			typ = "Bearer"
		}
		req.Header.Set("Authorization", typ+" "+cred)
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
		tokenClient, err := httpClient(ctx, base, &relabel.HTTPConfig{TLS: o.TLS, Proxy: o.Proxy, EnableHTTP2: true, FollowRedirects: true}, req.Clone(ctx))
		if err != nil {
			return nil, fmt.Errorf("oauth2 token client: %w", err)
		}
		src := cc.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, tokenClient))
		c.Transport = &oauth2.Transport{Source: oauth2.ReuseTokenSource(nil, src), Base: c.Transport}
	}
	return c, nil
}

func tlsConfig(t relabel.TLSConfig) (*tls.Config, error) {
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

// appendHTTPKey appends everything of h that changes how a target is
// scraped, secrets included (the key is never shown), so a rotated secret
// restarts the target's loop with the new credentials.
func appendHTTPKey(b []byte, h *relabel.HTTPConfig) []byte {
	if h == nil {
		return b
	}
	return fmt.Appendf(b, "\x00%t|%t|%#v|%#v|%#v|%q|%q|%q|%q|%q|%q|%q|%t|%d|%d|%v|%s|%t|%v",
		h.FollowRedirects, h.EnableHTTP2, h.Authorization, h.BasicAuth, oauthKey(h.OAuth2),
		h.TLS.CA, h.TLS.Cert, string(h.TLS.Key), h.TLS.CAFile, h.TLS.CertFile, h.TLS.KeyFile, h.TLS.ServerName,
		h.TLS.InsecureSkipVerify, h.TLS.MinVersion, h.TLS.MaxVersion, h.Proxy.URL, h.Proxy.NoProxy, h.Proxy.FromEnvironment, h.Proxy.ConnectHeader)
}

func oauthKey(o *relabel.OAuth2) string {
	if o == nil {
		return ""
	}
	return fmt.Sprintf("%q|%q|%q|%q|%v|%v", o.ClientID, string(o.ClientSecret), o.TokenURL, o.Scopes, o.EndpointParams, appendHTTPKey(nil, &relabel.HTTPConfig{TLS: o.TLS, Proxy: o.Proxy}))
}
