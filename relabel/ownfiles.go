package relabel

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nodescraper/nodescraper/relabel/httpconfig"
)

// The agent's own service-account files, at the paths every pod has them:
// what kube-prometheus' monitors name (bearerTokenFile, tlsConfig.caFile) to
// reach the kubelet, the API server and kube-rbac-proxy sidecars as the
// scraper's service account.
const (
	DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	ServiceAccountTokenPath  = DefaultServiceAccountDir + "/token"
	ServiceAccountCAPath     = DefaultServiceAccountDir + "/ca.crt"
)

// trustHint is how the operator trusts a namespace, for rejection reasons.
const trustHint = "--trusted-namespaces (chart value monitors.trustedNamespaces)"

var errFileRef = errors.New("file references are refused (a monitor could send the agent's files to a target); " +
	"the only files a monitor may name are the agent's own service-account token and CA (" + ServiceAccountTokenPath + ", " +
	ServiceAccountCAPath + "), and only in the namespaces of " + trustHint)

// errOwnFileUntrusted rejects a monitor outside the trusted namespaces that
// names the agent's own token or CA.
func errOwnFileUntrusted(ns string) error {
	return fmt.Errorf("the agent's own service-account files are only for monitors in trusted namespaces, and namespace %q is not one: add it to %s", ns, trustHint)
}

// fileKind says which of the agent's own files a monitor's field may name.
type fileKind int

const (
	fileOther fileKind = iota // certFile, keyFile: never one of the agent's own
	fileToken                 // bearerTokenFile
	fileCA                    // tlsConfig.caFile
)

// checkFile checks a file a monitor names in field: the agent's own token
// or CA at its standard path in a trusted namespace, or any file when file
// references are allowed. The path is kept; ownPaths later points the
// standard paths at the agent's service-account directory.
func (r *resolver) checkFile(field, path string, kind fileKind) error {
	if path == "" {
		return nil
	}
	own := (kind == fileToken && filepath.Clean(path) == ServiceAccountTokenPath) ||
		(kind == fileCA && filepath.Clean(path) == ServiceAccountCAPath)
	switch {
	case r.allowFiles, own && r.trusted:
		return nil
	case own:
		return at(field, errOwnFileUntrusted(r.ns))
	}
	return at(field, errFileRef)
}

// ownPaths points the standard paths of the agent's token and CA, whoever
// names them (a trusted monitor, a scrape class), at the service-account
// directory the agent reads them from.
func (r *resolver) ownPaths(h *httpconfig.Config) {
	move := func(p *string, std, name string) {
		if *p != "" && filepath.Clean(*p) == std {
			*p = filepath.Join(r.saDir, name)
		}
	}
	move(&h.TLS.CAFile, ServiceAccountCAPath, "ca.crt")
	if h.Authorization != nil {
		move(&h.Authorization.CredentialsFile, ServiceAccountTokenPath, "token")
	}
}

// ownCredentials says whether h sends the agent's own service-account
// token: credentials read from a file of its service-account directory (the
// standard one or the configured one, so that a path other than the
// standard one, allowed by AllowFileReferences, counts too). Such a job may
// not use a proxy: the token goes straight to the addresses discovery
// allows for it, not through a host in between.
func (g *Generator) ownCredentials(h *httpconfig.Config) (bool, error) {
	a := h.Authorization
	if a == nil || a.CredentialsFile == "" {
		return false, nil
	}
	f := filepath.Clean(a.CredentialsFile)
	own := false
	for _, dir := range []string{DefaultServiceAccountDir, filepath.Clean(g.s.ServiceAccountDir)} {
		if strings.HasPrefix(f, dir+string(filepath.Separator)) {
			own = true
		}
	}
	if own && (h.Proxy.URL != nil || h.Proxy.FromEnvironment) {
		return true, errors.New("the agent's own service-account token is not sent through a proxy (proxyUrl, proxyFromEnvironment)")
	}
	return own, nil
}
