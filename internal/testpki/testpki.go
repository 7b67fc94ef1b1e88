// Package testpki gives tests a throwaway self-signed certificate: one
// ECDSA P-256 certificate that is its own CA, valid for an hour, for
// localhost, 127.0.0.1 and any extra IP addresses, usable by servers and
// clients, written as PEM files into a test's temporary directory.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// PKI is a self-signed certificate, its key and where they were written.
type PKI struct {
	// CertFile holds the certificate (PEM); it is also the CA file.
	CertFile string
	// KeyFile holds the EC private key (PEM).
	KeyFile string
	// Cert is the certificate and key for a tls.Config.
	Cert tls.Certificate
	// Leaf is the parsed certificate.
	Leaf *x509.Certificate
	// Pool trusts the certificate.
	Pool *x509.CertPool
}

// New makes a certificate for localhost, 127.0.0.1 and ips.
func New(t testing.TB, ips ...net.IP) *PKI {
	t.Helper()
	return NewFor(t, nil, ips...)
}

// NewFor makes a certificate for localhost, 127.0.0.1, the host names
// dnsNames and ips.
func NewFor(t testing.TB, dnsNames []string, ips ...net.IP) *PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "telegraf-tkgi test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              append([]string{"localhost"}, dnsNames...),
		IPAddresses:           append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)

	dir := t.TempDir()
	p := &PKI{
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
		Cert:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Leaf:     leaf,
		Pool:     x509.NewCertPool(),
	}
	p.Pool.AddCert(leaf)
	require.NoError(t, os.WriteFile(p.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(p.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return p
}
