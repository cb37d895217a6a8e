package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// pki is the control plane's certificate authority and the files written
// from it. ECDSA P-256 keeps generation in the milliseconds (RSA 2048 costs
// ~100 ms per key on this class of machine).
type pki struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	caPEM []byte

	caFile         string // CA certificate: --client-ca-file, --root-ca-file
	serverCertFile string // kube-apiserver serving certificate
	serverKeyFile  string
	saKeyFile      string // ServiceAccount token signing key (private; the public half is derived)
}

// keyPair is a client certificate and its key, PEM encoded.
type keyPair struct {
	certPEM, keyPEM []byte
}

func newPKI(dir string) (*pki, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nodescraper-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	p := &pki{
		ca:             ca,
		caKey:          key,
		caPEM:          pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		caFile:         filepath.Join(dir, "ca.crt"),
		serverCertFile: filepath.Join(dir, "apiserver.crt"),
		serverKeyFile:  filepath.Join(dir, "apiserver.key"),
		saKeyFile:      filepath.Join(dir, "sa.key"),
	}
	if err := os.WriteFile(p.caFile, p.caPEM, 0o600); err != nil {
		return nil, err
	}

	if err := p.writeServingCert("kube-apiserver", p.serverCertFile, p.serverKeyFile); err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate service account key: %w", err)
	}
	saPEM, err := keyPEM(saKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.saKeyFile, saPEM, 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// writeServingCert issues a serving certificate for the loopback address and
// writes it and its key to certFile and keyFile.
func (p *pki) writeServingCert(name, certFile, keyFile string) error {
	kp, err := p.issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	})
	if err != nil {
		return fmt.Errorf("issue %s serving certificate: %w", name, err)
	}
	if err := os.WriteFile(certFile, kp.certPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, kp.keyPEM, 0o600)
}

// httpClient trusts only this CA; for probing the components.
func (p *pki) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// clientCert issues a client certificate: the apiserver maps CommonName to
// the user name and Organization to the groups.
func (p *pki) clientCert(user string, groups ...string) (keyPair, error) {
	return p.issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

func (p *pki) issue(tmpl x509.Certificate) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return keyPair{}, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = p.ca.NotBefore
	tmpl.NotAfter = p.ca.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return keyPair{}, err
	}
	kp := keyPair{certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	kp.keyPEM, err = keyPEM(key)
	return kp, err
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
