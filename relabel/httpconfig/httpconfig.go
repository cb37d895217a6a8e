package httpconfig

import "net/url"

// Config is how a job's scrapes connect.
type Config struct {
	FollowRedirects bool
	EnableHTTP2     bool
	// At most one of Authorization, BasicAuth and OAuth2 is set; a bearer
	// token (file) is an Authorization of type Bearer, as in Prometheus.
	Authorization *Authorization
	BasicAuth     *BasicAuth
	OAuth2        *OAuth2
	TLS           TLS
	Proxy         Proxy
}

// Secret is a credential; it prints as "<secret>" so that logs and the
// targets page never show it.
type Secret string

func (Secret) String() string { return "<secret>" }

// MarshalText keeps secrets out of JSON and YAML dumps.
func (s Secret) MarshalText() ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	return []byte("<secret>"), nil
}

// Authorization sends "Authorization: <Type> <credentials>".
type Authorization struct {
	Type            string
	Credentials     Secret
	CredentialsFile string // only from a scrape class or an allowed bearerTokenFile
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username string
	Password Secret
}

// OAuth2 is the client-credentials flow.
type OAuth2 struct {
	ClientID       string
	ClientSecret   Secret
	TokenURL       string
	Scopes         []string
	EndpointParams map[string]string
	TLS            TLS
	Proxy          Proxy
}

// TLS holds PEM material read from Secrets and ConfigMaps, or file names
// (scrape classes, or monitors when file references are allowed).
type TLS struct {
	CA, Cert                  string
	Key                       Secret
	CAFile, CertFile, KeyFile string
	ServerName                string
	InsecureSkipVerify        bool
	MinVersion, MaxVersion    uint16 // crypto/tls versions; 0 is Go's default
}

// Proxy is the proxy to reach targets through.
type Proxy struct {
	URL             *url.URL
	NoProxy         string
	FromEnvironment bool
	// ConnectHeader is sent on CONNECT; values are read from Secrets.
	ConnectHeader map[string][]Secret
}
