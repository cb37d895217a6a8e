package relabel

import (
	"errors"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/labels"
)

// TestOwnServiceAccountFiles: the agent's own token and CA, at their
// standard paths, are for monitors in trusted namespaces only (the monitors
// of sm are in ns1), are read from the configured directory, and mark the
// jobs that send the token; every other file stays refused.
func TestOwnServiceAccountFiles(t *testing.T) {
	const dir = "/tmp/sa"
	trusted := Settings{TrustedNamespaces: []string{"monitoring", "ns1"}, ServiceAccountDir: dir, AllowedProxyURLs: []string{"http://proxy:3128"}}
	untrusted := Settings{TrustedNamespaces: []string{"monitoring"}, ServiceAccountDir: dir}
	token, ca := "bearerTokenFile: "+ServiceAccountTokenPath, "tlsConfig: {caFile: "+ServiceAccountCAPath+", serverName: kubernetes}"
	kubelet := "selector: {}\nendpoints: [{port: web, scheme: https, " + token + ", " + ca + "}]"
	class := monitoringv1.ScrapeClass{Name: "own", Authorization: &monitoringv1.Authorization{CredentialsFile: ServiceAccountTokenPath},
		TLSConfig: &monitoringv1.TLSConfig{TLSFilesConfig: monitoringv1.TLSFilesConfig{CAFile: ServiceAccountCAPath}}}
	cases := []struct {
		name   string
		s      Settings
		spec   string
		field  string // of the rejection; "" for none
		err    string
		own    bool   // the job sends the agent's token
		cred   string // its credentials file
		caFile string
	}{
		{name: "token and CA in a trusted namespace", s: trusted, spec: kubelet, own: true, cred: dir + "/token", caFile: dir + "/ca.crt"},
		{name: "token in an untrusted namespace", s: untrusted, spec: "selector: {}\nendpoints: [{port: web, " + token + "}]",
			field: "bearerTokenFile", err: `namespace "ns1" is not one: add it to --trusted-namespaces (chart value monitors.trustedNamespaces)`},
		{name: "CA in an untrusted namespace", s: untrusted, spec: "selector: {}\nendpoints: [{port: web, " + ca + "}]",
			field: "tlsConfig.caFile", err: "--trusted-namespaces"},
		{name: "no namespace trusted", s: Settings{}, spec: kubelet, field: "bearerTokenFile", err: "--trusted-namespaces"},
		{name: "CA alone sends no token", s: trusted, spec: "selector: {}\nendpoints: [{port: web, " + ca + "}]", caFile: dir + "/ca.crt"},
		{name: "the path cleaned", s: trusted, spec: "selector: {}\nendpoints: [{port: web, bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/../serviceaccount/token}]",
			own: true, cred: dir + "/token"},
		{name: "another token file in a trusted namespace", s: trusted, spec: "selector: {}\nendpoints: [{port: web, bearerTokenFile: /etc/token}]",
			field: "bearerTokenFile", err: "file references are refused"},
		{name: "the token as a CA", s: trusted, spec: "selector: {}\nendpoints: [{port: web, tlsConfig: {caFile: " + ServiceAccountTokenPath + "}}]",
			field: "tlsConfig.caFile", err: "file references are refused"},
		{name: "the CA as a token", s: trusted, spec: "selector: {}\nendpoints: [{port: web, bearerTokenFile: " + ServiceAccountCAPath + "}]",
			field: "bearerTokenFile", err: "file references are refused"},
		{name: "a client certificate from the directory", s: trusted, spec: "selector: {}\nendpoints: [{port: web, tlsConfig: {certFile: " + ServiceAccountCAPath + ", keyFile: " + ServiceAccountTokenPath + "}}]",
			field: "tlsConfig.certFile", err: "file references are refused"},
		{name: "the token through a proxy", s: trusted, spec: "selector: {}\nendpoints: [{port: web, proxyUrl: 'http://proxy:3128', " + token + "}]",
			err: "not sent through a proxy"},
		{name: "file references allowed: the token counts as own", s: Settings{AllowFileReferences: true, ServiceAccountDir: dir}, spec: kubelet,
			own: true, cred: dir + "/token", caFile: dir + "/ca.crt"},
		{name: "file references allowed: another name in the directory", s: Settings{AllowFileReferences: true},
			spec: "selector: {}\nendpoints: [{port: web, bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/..data/token}]",
			own:  true, cred: "/var/run/secrets/kubernetes.io/serviceaccount/..data/token"},
		{name: "file references allowed: another file", s: Settings{AllowFileReferences: true}, spec: "selector: {}\nendpoints: [{port: web, bearerTokenFile: /etc/token}]",
			cred: "/etc/token"},
		{name: "a scrape class's token in any namespace", s: Settings{ScrapeClasses: []monitoringv1.ScrapeClass{class}, ServiceAccountDir: dir},
			spec: "selector: {}\nscrapeClass: own\nendpoints: [{port: web}]", own: true, cred: dir + "/token", caFile: dir + "/ca.crt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewGenerator(c.s)
			if err != nil {
				t.Fatal(err)
			}
			m, err := g.ServiceMonitor(sm(t, c.spec), nil)
			if c.err != "" {
				var e *Error
				if !errors.As(err, &e) || e.Field != c.field || !strings.Contains(e.Error(), c.err) {
					t.Fatalf("err = %v (field %q), want field %q and %q", err, fieldOf(err), c.field, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			j := m.Jobs[0]
			var cred string
			if a := j.HTTP.Authorization; a != nil {
				cred = a.CredentialsFile
			}
			if j.OwnCredentials != c.own || cred != c.cred || j.HTTP.TLS.CAFile != c.caFile {
				t.Errorf("own %v, credentials file %q, CA file %q; want %v, %q, %q", j.OwnCredentials, cred, j.HTTP.TLS.CAFile, c.own, c.cred, c.caFile)
			}
			tg, err := j.Target(labels.FromStrings("__address__", "10.0.0.1:10250", "__meta_kubernetes_endpoint_port_name", "web"))
			if err != nil {
				t.Fatal(err)
			}
			if tg.OwnCredentials != c.own {
				t.Errorf("target OwnCredentials %v, want %v", tg.OwnCredentials, c.own)
			}
		})
	}
}

func fieldOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
