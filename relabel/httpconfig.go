package relabel

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
)

// fieldError locates an error in a monitor's spec.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// at prefixes err's field path with field.
func at(field string, err error) error {
	if err == nil {
		return nil
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return &fieldError{field: field + "." + fe.field, err: fe.err}
	}
	return &fieldError{field: field, err: err}
}

// resolver reads a monitor's Secrets and ConfigMaps, in its namespace, and
// checks the files it names (see checkFile).
type resolver struct {
	store      Store
	ns         string
	allowFiles bool
	// trusted: ns is one of Settings.TrustedNamespaces.
	trusted bool
	saDir   string // Settings.ServiceAccountDir
	// proxies and tokens: Settings.AllowedProxyURLs and AllowedTokenURLs.
	proxies, tokens []*url.URL
}

func (r *resolver) secret(sel corev1.SecretKeySelector) (string, error) {
	if r.store == nil {
		return "", fmt.Errorf("secret %s/%s: no secret store", r.ns, sel.Name)
	}
	b, err := r.store.SecretKey(r.ns, sel.Name, sel.Key)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (r *resolver) secretOrConfigMap(sel monitoringv1.SecretOrConfigMap) (string, error) {
	switch {
	case sel.Secret != nil:
		return r.secret(*sel.Secret)
	case sel.ConfigMap != nil:
		if r.store == nil {
			return "", fmt.Errorf("configmap %s/%s: no configmap store", r.ns, sel.ConfigMap.Name)
		}
		return r.store.ConfigMapKey(r.ns, sel.ConfigMap.Name, sel.ConfigMap.Key)
	}
	return "", nil
}

// safeTLS resolves TLS settings that name Secrets and ConfigMaps (the
// caller has validated their shape), checking the material as the Operator
// does: the CA must be a PEM certificate, a client certificate and key from
// Secrets a matching pair.
func (r *resolver) safeTLS(c *monitoringv1.SafeTLSConfig) (httpconfig.TLS, error) {
	var out httpconfig.TLS
	ca, err := r.secretOrConfigMap(c.CA)
	if err != nil {
		return out, at("ca", err)
	}
	cert, err := r.secretOrConfigMap(c.Cert)
	if err != nil {
		return out, at("cert", err)
	}
	var key string
	if c.KeySecret != nil {
		if key, err = r.secret(*c.KeySecret); err != nil {
			return out, at("keySecret", err)
		}
	}
	if ca != "" {
		block, _ := pem.Decode([]byte(ca))
		if block == nil {
			return out, at("ca", errors.New("failed to decode PEM block"))
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return out, at("ca", fmt.Errorf("failed to parse certificate: %w", err))
		}
	}
	if cert != "" && key != "" {
		if _, err := tls.X509KeyPair([]byte(cert), []byte(key)); err != nil {
			return out, at("cert", err)
		}
	}
	out.CA, out.Cert, out.Key = ca, cert, httpconfig.Secret(key)
	if c.ServerName != nil {
		out.ServerName = *c.ServerName
	}
	if c.InsecureSkipVerify != nil {
		out.InsecureSkipVerify = *c.InsecureSkipVerify
	}
	if out.MinVersion, err = tlsVersion(c.MinVersion); err != nil {
		return out, at("minVersion", err)
	}
	if out.MaxVersion, err = tlsVersion(c.MaxVersion); err != nil {
		return out, at("maxVersion", err)
	}
	return out, nil
}

var tlsVersions = map[monitoringv1.TLSVersion]uint16{
	monitoringv1.TLSVersion10: tls.VersionTLS10, monitoringv1.TLSVersion11: tls.VersionTLS11,
	monitoringv1.TLSVersion12: tls.VersionTLS12, monitoringv1.TLSVersion13: tls.VersionTLS13,
}

func tlsVersion(v *monitoringv1.TLSVersion) (uint16, error) {
	if v == nil {
		return 0, nil
	}
	tv, ok := tlsVersions[*v]
	if !ok {
		return 0, fmt.Errorf("unknown TLS version %q", *v)
	}
	return tv, nil
}

// endpointTLS resolves a ServiceMonitor endpoint's TLS settings merged with
// its scrape class: the class's files fill the CA, certificate and key the
// endpoint leaves unset.
func (r *resolver) endpointTLS(ep *monitoringv1.TLSConfig, class *scrapeClass) (httpconfig.TLS, error) {
	if ep == nil {
		if class.tls == nil {
			return httpconfig.TLS{}, nil
		}
		return classTLS(class.tls)
	}
	if err := ep.Validate(); err != nil {
		return httpconfig.TLS{}, err
	}
	for _, f := range []struct {
		name, v string
		kind    fileKind
	}{{"caFile", ep.CAFile, fileCA}, {"certFile", ep.CertFile, fileOther}, {"keyFile", ep.KeyFile, fileOther}} {
		if err := r.checkFile(f.name, f.v, f.kind); err != nil {
			return httpconfig.TLS{}, err
		}
	}
	out, err := r.safeTLS(&ep.SafeTLSConfig)
	if err != nil {
		return out, err
	}
	out.CAFile, out.CertFile, out.KeyFile = ep.CAFile, ep.CertFile, ep.KeyFile
	if c := class.tls; c != nil {
		if out.CAFile == "" && ep.CA == (monitoringv1.SecretOrConfigMap{}) {
			out.CAFile = c.CAFile
		}
		if out.CertFile == "" && ep.Cert == (monitoringv1.SecretOrConfigMap{}) {
			out.CertFile = c.CertFile
		}
		if out.KeyFile == "" && ep.KeySecret == nil {
			out.KeyFile = c.KeyFile
		}
	}
	return out, nil
}

// podEndpointTLS is endpointTLS for a PodMonitor endpoint, whose TLS settings
// cannot name files; an empty TLS section counts as unset, as in the Operator.
func (r *resolver) podEndpointTLS(ep *monitoringv1.SafeTLSConfig, class *scrapeClass) (httpconfig.TLS, error) {
	if ep == nil || isZeroSafeTLS(ep) {
		return r.endpointTLS(nil, class)
	}
	return r.endpointTLS(&monitoringv1.TLSConfig{SafeTLSConfig: *ep}, class)
}

func isZeroSafeTLS(c *monitoringv1.SafeTLSConfig) bool {
	return c.CA == (monitoringv1.SecretOrConfigMap{}) && c.Cert == (monitoringv1.SecretOrConfigMap{}) &&
		c.KeySecret == nil && c.ServerName == nil && c.InsecureSkipVerify == nil && c.MinVersion == nil && c.MaxVersion == nil
}

// classTLS converts a scrape class's TLS settings, which name only files.
func classTLS(c *monitoringv1.TLSConfig) (httpconfig.TLS, error) {
	out := httpconfig.TLS{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}
	if c.ServerName != nil {
		out.ServerName = *c.ServerName
	}
	if c.InsecureSkipVerify != nil {
		out.InsecureSkipVerify = *c.InsecureSkipVerify
	}
	var err error
	if out.MinVersion, err = tlsVersion(c.MinVersion); err != nil {
		return out, err
	}
	out.MaxVersion, err = tlsVersion(c.MaxVersion)
	return out, err
}

func (r *resolver) proxy(p monitoringv1.ProxyConfig) (httpconfig.Proxy, error) {
	var out httpconfig.Proxy
	if err := p.Validate(); err != nil {
		return out, err
	}
	if p.ProxyURL != nil && *p.ProxyURL != "" {
		u, err := url.Parse(*p.ProxyURL)
		if err != nil {
			return out, at("proxyUrl", err)
		}
		if !allowedURL(r.proxies, u, false) {
			return out, at("proxyUrl", fmt.Errorf("%s is not a proxy the operator allows (--allowed-proxy-urls, chart monitors.allowedProxyURLs)", u.Redacted()))
		}
		out.URL = u
	}
	if p.NoProxy != nil {
		out.NoProxy = *p.NoProxy
	}
	if p.ProxyFromEnvironment != nil {
		out.FromEnvironment = *p.ProxyFromEnvironment
	}
	if len(p.ProxyConnectHeader) > 0 {
		names := make([]string, 0, len(p.ProxyConnectHeader))
		for k := range p.ProxyConnectHeader {
			names = append(names, k)
		}
		sort.Strings(names)
		out.ConnectHeader = map[string][]httpconfig.Secret{}
		for _, k := range names {
			vals := make([]httpconfig.Secret, 0, len(p.ProxyConnectHeader[k]))
			for i, sel := range p.ProxyConnectHeader[k] {
				v, err := r.secret(sel)
				if err != nil {
					return out, at(fmt.Sprintf("proxyConnectHeader[%s][%d]", k, i), err)
				}
				vals = append(vals, httpconfig.Secret(v))
			}
			out.ConnectHeader[k] = vals
		}
	}
	return out, nil
}

func (r *resolver) oauth2(o *monitoringv1.OAuth2) (*httpconfig.OAuth2, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	id, err := r.secretOrConfigMap(o.ClientID)
	if err != nil {
		return nil, at("clientId", err)
	}
	secret, err := r.secret(o.ClientSecret)
	if err != nil {
		return nil, at("clientSecret", err)
	}
	if u, err := url.Parse(string(o.TokenURL)); err != nil {
		return nil, at("tokenUrl", err)
	} else if !allowedURL(r.tokens, u, true) {
		return nil, at("tokenUrl", fmt.Errorf("%s is not a token endpoint the operator allows (--allowed-token-urls, chart monitors.allowedTokenURLs)", u.Redacted()))
	}
	out := &httpconfig.OAuth2{
		ClientID:       id,
		ClientSecret:   httpconfig.Secret(secret),
		TokenURL:       string(o.TokenURL),
		Scopes:         o.Scopes,
		EndpointParams: o.EndpointParams,
	}
	if out.Proxy, err = r.proxy(o.ProxyConfig); err != nil {
		return nil, err
	}
	if o.TLSConfig != nil {
		if out.TLS, err = r.safeTLS(o.TLSConfig); err != nil {
			return nil, at("tlsConfig", err)
		}
	}
	return out, nil
}

func (r *resolver) basicAuth(b *monitoringv1.BasicAuth) (*httpconfig.BasicAuth, error) {
	user, err := r.secret(b.Username)
	if err != nil {
		return nil, at("username", err)
	}
	pass, err := r.secret(b.Password)
	if err != nil {
		return nil, at("password", err)
	}
	return &httpconfig.BasicAuth{Username: user, Password: httpconfig.Secret(pass)}, nil
}

// authorization resolves the endpoint's authorization, or the scrape
// class's when the endpoint sets none.
func (r *resolver) authorization(ep *monitoringv1.SafeAuthorization, class *scrapeClass) (*httpconfig.Authorization, error) {
	if ep == nil || (ep.Type == "" && ep.Credentials == nil) {
		if class.authz == nil {
			return nil, nil
		}
		return &httpconfig.Authorization{Type: authType(class.authz.Type), CredentialsFile: class.authz.CredentialsFile}, nil
	}
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	out := &httpconfig.Authorization{Type: authType(ep.Type)}
	if ep.Credentials.Name != "" {
		v, err := r.secret(*ep.Credentials)
		if err != nil {
			return nil, at("credentials", err)
		}
		out.Credentials = httpconfig.Secret(v)
	}
	return out, nil
}

func authType(t string) string {
	if t = strings.TrimSpace(t); t == "" {
		return "Bearer"
	}
	return t
}

// httpClient resolves the HTTP settings every monitor endpoint has, then
// applies Prometheus' own checks and normalisation of them (a bearer token
// becomes an Authorization of type Bearer; at most one way to
// authenticate).
func (r *resolver) httpClient(h *monitoringv1.HTTPConfigWithoutTLS, proxy monitoringv1.ProxyConfig, tlsCfg httpconfig.TLS, tokenFile string, class *scrapeClass) (httpconfig.Config, error) {
	out := httpconfig.Config{FollowRedirects: true, EnableHTTP2: true, TLS: tlsCfg}
	if err := h.Validate(); err != nil {
		return out, err
	}
	if h.FollowRedirects != nil {
		out.FollowRedirects = *h.FollowRedirects
	}
	if h.EnableHTTP2 != nil {
		out.EnableHTTP2 = *h.EnableHTTP2
	}
	var err error
	if out.Proxy, err = r.proxy(proxy); err != nil {
		return out, err
	}
	if h.OAuth2 != nil {
		if out.OAuth2, err = r.oauth2(h.OAuth2); err != nil {
			return out, at("oauth2", err)
		}
	}
	var token httpconfig.Secret
	//lint:ignore SA1019 deprecated, but the Operator still serves it
	if s := h.BearerTokenSecret; s != nil && s.Name != "" {
		v, err := r.secret(*s)
		if err != nil {
			return out, at("bearerTokenSecret", err)
		}
		token = httpconfig.Secret(v)
	}
	if h.BasicAuth != nil {
		if out.BasicAuth, err = r.basicAuth(h.BasicAuth); err != nil {
			return out, at("basicAuth", err)
		}
	}
	if out.Authorization, err = r.authorization(h.Authorization, class); err != nil {
		return out, at("authorization", err)
	}
	// What Prometheus refuses when loading the configuration the Operator
	// writes (the Operator does not check combinations with a scrape class).
	bearer := token != "" || tokenFile != ""
	switch {
	case token != "" && tokenFile != "":
		return out, errors.New("at most one of bearerTokenSecret and bearerTokenFile may be set")
	case bearer && (out.BasicAuth != nil || out.OAuth2 != nil):
		return out, errors.New("at most one of basicAuth, oauth2 and a bearer token may be set")
	case bearer && out.Authorization != nil:
		return out, errors.New("authorization (possibly from the scrape class) is not compatible with a bearer token")
	case out.Authorization != nil && (out.BasicAuth != nil || out.OAuth2 != nil):
		return out, errors.New("at most one of basicAuth, oauth2 and authorization (possibly from the scrape class) may be set")
	case out.OAuth2 != nil && out.BasicAuth != nil:
		return out, errors.New("at most one of basicAuth and oauth2 may be set")
	case out.OAuth2 != nil && out.OAuth2.ClientID == "":
		return out, at("oauth2.clientId", errors.New("empty client id"))
	}
	if bearer {
		out.Authorization = &httpconfig.Authorization{Type: "Bearer", Credentials: token, CredentialsFile: tokenFile}
	}
	if a := out.Authorization; a != nil && strings.EqualFold(a.Type, "basic") {
		return out, errors.New(`authorization type cannot be set to "basic", use basicAuth instead`)
	}
	r.ownPaths(&out)
	return out, nil
}

// parseAllowed parses the operator's allowed proxy or token URLs: each an
// absolute http(s) URL.
func parseAllowed(raw []string) ([]*url.URL, error) {
	out := make([]*url.URL, 0, len(raw))
	for _, s := range raw {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q: want an http or https URL with a host", s)
		}
		out = append(out, u)
	}
	return out, nil
}

// allowedURL reports whether u is one of allowed: the same scheme, host and
// port (the scheme's default port when none is given), and with path set,
// the allowed one's path or one below it (segment by segment: /oauth does
// not allow /oauth2).
func allowedURL(allowed []*url.URL, u *url.URL, path bool) bool {
	for _, a := range allowed {
		if !strings.EqualFold(a.Scheme, u.Scheme) || !strings.EqualFold(a.Hostname(), u.Hostname()) || portOf(a) != portOf(u) {
			continue
		}
		ap, up := strings.TrimSuffix(a.EscapedPath(), "/"), u.EscapedPath()
		if !path || up == ap || strings.HasPrefix(up, ap+"/") {
			return true
		}
	}
	return false
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}
