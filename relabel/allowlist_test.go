package relabel

import (
	"strings"
	"testing"
)

// A proxy or token endpoint is a host of the monitor author's choosing: only
// those the operator lists are taken (issue 26: proxyUrl and oauth2.tokenUrl
// reached any host).
func TestProxyAndTokenAllowlist(t *testing.T) {
	s := Settings{
		AllowedProxyURLs: []string{"http://proxy.corp:3128"},
		AllowedTokenURLs: []string{"https://idp.corp/oauth2/"},
	}
	store := MapStore{Secrets: map[string]map[string][]byte{"ns1/auth": {"secret": []byte("s")}}}
	oauth := func(url string) string {
		return "selector: {}\nendpoints: [{port: web, oauth2: {clientId: {secret: {name: auth, key: secret}}, clientSecret: {name: auth, key: secret}, tokenUrl: '" + url + "'}}]"
	}
	for _, c := range []struct {
		name, spec, err string
	}{
		{name: "listed proxy", spec: "selector: {}\nendpoints: [{port: web, proxyUrl: 'http://proxy.corp:3128'}]"},
		{name: "listed proxy with a path", spec: "selector: {}\nendpoints: [{port: web, proxyUrl: 'http://proxy.corp:3128/x'}]"},
		{name: "other proxy", spec: "selector: {}\nendpoints: [{port: web, proxyUrl: 'http://169.254.169.254:80'}]", err: "endpoints[0].proxyUrl: http://169.254.169.254:80 is not a proxy the operator allows"},
		{name: "proxy on another port", spec: "selector: {}\nendpoints: [{port: web, proxyUrl: 'http://proxy.corp:8080'}]", err: "--allowed-proxy-urls"},
		{name: "proxy of another scheme", spec: "selector: {}\nendpoints: [{port: web, proxyUrl: 'https://proxy.corp:3128'}]", err: "--allowed-proxy-urls"},
		{name: "proxy from the environment", spec: "selector: {}\nendpoints: [{port: web, proxyFromEnvironment: true}]"},
		{name: "listed token URL", spec: oauth("https://idp.corp/oauth2/token")},
		{name: "token URL at the default port", spec: oauth("https://idp.corp:443/oauth2/token")},
		{name: "token URL beside the listed path", spec: oauth("https://idp.corp/oauth2x/token"), err: "endpoints[0].oauth2.tokenUrl: https://idp.corp/oauth2x/token is not a token endpoint the operator allows"},
		{name: "token URL of another host", spec: oauth("http://127.0.0.1:8080/token"), err: "--allowed-token-urls"},
		{name: "token URL with credentials in it", spec: oauth("https://user:pw@evil/token"), err: "https://user:xxxxx@evil/token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewGenerator(s)
			if err != nil {
				t.Fatal(err)
			}
			_, err = g.ServiceMonitor(sm(t, c.spec), store)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("err = %v, want one containing %q", err, c.err)
			}
		})
	}
	for _, bad := range []string{"proxy:3128", "ftp://x", "/path"} {
		if _, err := NewGenerator(Settings{AllowedProxyURLs: []string{bad}}); err == nil {
			t.Errorf("allowed proxy URL %q accepted", bad)
		}
	}
}
