package sinks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Lifetimes of the certificates the controller issues itself. Each is
// renewed once less than a third of it is left; the check runs every
// certCheckInterval, so a caBundle reset by hand is restored within it too.
const (
	caLifetime        = 5 * 365 * 24 * time.Hour
	servingLifetime   = 365 * 24 * time.Hour
	certCheckInterval = time.Minute
)

// Keys of the webhook certificate Secret: the trusted CA bundle (the
// current CA first, then the previous one while it is valid), the CA's key,
// and the serving pair the webhook server reads.
const (
	secretCAKey      = "ca.crt"
	secretCAKeyKey   = "ca.key"
	secretCertKey    = corev1.TLSCertKey
	secretPrivateKey = corev1.TLSPrivateKeyKey
)

// webhookCerts keeps the webhook's serving certificate without
// cert-manager: a CA and a serving certificate in a Secret shared by the
// replicas, the pair written to the webhook server's certificate directory
// (controller-runtime reloads it when it changes), and the CA put into the
// ValidatingWebhookConfiguration's caBundle so the API server trusts it.
type webhookCerts struct {
	client        client.Client
	secret        types.NamespacedName
	configuration string
	hosts         []string
	dir           string
	now           func() time.Time
}

func newWebhookCerts(c client.Client, o Options) *webhookCerts {
	hosts := []string{
		o.WebhookService,
		o.WebhookService + "." + o.Namespace,
		o.WebhookService + "." + o.Namespace + ".svc",
		o.WebhookService + "." + o.Namespace + ".svc.cluster.local",
	}
	return &webhookCerts{
		client:        c,
		secret:        types.NamespacedName{Namespace: o.Namespace, Name: o.WebhookCertSecret},
		configuration: o.WebhookConfiguration,
		hosts:         append(hosts, o.WebhookHosts...),
		dir:           o.WebhookCertDir,
		now:           time.Now,
	}
}

// ensure makes the Secret hold a pair valid for a while yet, writes it to
// the certificate directory and injects the CA bundle.
func (w *webhookCerts) ensure(ctx context.Context) error {
	data, err := w.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := w.writeFiles(data); err != nil {
		return err
	}
	return w.injectCABundle(ctx, data[secretCAKey])
}

// Start re-checks every certCheckInterval until ctx ends; every replica
// runs it, leader or not, since each serves the webhook.
func (w *webhookCerts) Start(ctx context.Context) error {
	tick := time.NewTicker(certCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := w.ensure(ctx); err != nil {
				slog.Error("Keeping the webhook certificate failed", "error", err)
			}
		}
	}
}

// NeedLeaderElection: every replica serves the webhook with the files.
func (*webhookCerts) NeedLeaderElection() bool { return false }

func (w *webhookCerts) ensureSecret(ctx context.Context) (map[string][]byte, error) {
	for attempt := 0; ; attempt++ {
		var s corev1.Secret
		err := w.client.Get(ctx, w.secret, &s)
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading Secret %s failed: %w", w.secret, err)
		}
		data, changed, err := renewPair(s.Data, w.hosts, w.now())
		if err != nil {
			return nil, err
		}
		if !changed {
			return data, nil
		}
		s.Data, s.Type = data, corev1.SecretTypeTLS
		if exists {
			err = w.client.Update(ctx, &s)
		} else {
			s.ObjectMeta = metav1.ObjectMeta{Namespace: w.secret.Namespace, Name: w.secret.Name,
				Labels: map[string]string{managedByLabel: managedBy}}
			err = w.client.Create(ctx, &s)
		}
		// Another replica wrote first: use its pair.
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("writing Secret %s failed: %w", w.secret, err)
		}
		slog.Info("Issued the webhook serving certificate", "secret", w.secret.String(), "hosts", w.hosts)
		return data, nil
	}
}

// writeFiles puts the pair where the webhook server reads it, each file
// replaced whole so the server never reads half of one.
func (w *webhookCerts) writeFiles(data map[string][]byte) error {
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return fmt.Errorf("creating the webhook certificate directory failed: %w", err)
	}
	for _, key := range []string{secretPrivateKey, secretCertKey} {
		path := filepath.Join(w.dir, key)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data[key]) {
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data[key], 0o600); err != nil {
			return fmt.Errorf("writing %s failed: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("writing %s failed: %w", path, err)
		}
	}
	return nil
}

func (w *webhookCerts) injectCABundle(ctx context.Context, bundle []byte) error {
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := w.client.Get(ctx, types.NamespacedName{Name: w.configuration}, &vwc); err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s failed: %w", w.configuration, err)
	}
	changed := false
	for i := range vwc.Webhooks {
		if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, bundle) {
			vwc.Webhooks[i].ClientConfig.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := w.client.Update(ctx, &vwc); err != nil {
		return fmt.Errorf("injecting the CA bundle into ValidatingWebhookConfiguration %s failed: %w", w.configuration, err)
	}
	slog.Info("Injected the webhook CA bundle", "validatingwebhookconfiguration", w.configuration)
	return nil
}

// renewPair returns the Secret data to keep: data itself while its CA and
// serving certificate have more than a third of their lifetime left and
// the serving certificate names every host; otherwise a new serving
// certificate, under a new CA too when the CA is due (the old CA stays in
// the bundle while it is valid, so a replica still serving the previous
// certificate keeps being trusted).
func renewPair(data map[string][]byte, hosts []string, now time.Time) (map[string][]byte, bool, error) {
	ca, caKey, caErr := parsePair(data[secretCAKey], data[secretCAKeyKey])
	serving, _, servingErr := parsePair(data[secretCertKey], data[secretPrivateKey])
	caFresh := caErr == nil && fresh(ca, now)
	if caFresh && servingErr == nil && fresh(serving, now) && serving.CheckSignatureFrom(ca) == nil && namesAll(serving, hosts) {
		return data, false, nil
	}
	bundle := data[secretCAKey]
	if !caFresh {
		var caPEM []byte
		var err error
		ca, caKey, caPEM, err = issueCA(now)
		if err != nil {
			return nil, false, err
		}
		bundle = append(caPEM, stillValid(data[secretCAKey], now)...)
	}
	certPEM, keyPEM, err := issueServing(ca, caKey, hosts, now)
	if err != nil {
		return nil, false, err
	}
	keyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, false, err
	}
	return map[string][]byte{
		secretCAKey:      bundle,
		secretCAKeyKey:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		secretCertKey:    certPEM,
		secretPrivateKey: keyPEM,
	}, true, nil
}

// fresh: more than a third of the certificate's lifetime is left.
func fresh(c *x509.Certificate, now time.Time) bool {
	lifetime := c.NotAfter.Sub(c.NotBefore)
	return now.After(c.NotBefore) && c.NotAfter.Sub(now) > lifetime/3
}

func namesAll(c *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if c.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// stillValid returns the certificates of a PEM bundle that have not expired.
func stillValid(bundle []byte, now time.Time) []byte {
	var out []byte
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && now.Before(c.NotAfter) {
			out = append(out, pem.EncodeToMemory(block)...)
		}
	}
}

// parsePair parses the first certificate of certPEM and its EC key.
func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("no certificate or key")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, errors.New("the key does not match the certificate")
	}
	return cert, key, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func issueCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "telegraf-tkgi sink webhook CA " + now.UTC().Format("2006-01-02")},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("issuing the webhook CA failed: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func issueServing(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(servingLifetime)
	if ca.NotAfter.Before(notAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range slices.Compact(slices.Clone(hosts)) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing the webhook serving certificate failed: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
