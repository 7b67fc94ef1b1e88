package telemetry

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Pseudonyms are the first PseudonymBytes bytes of
// HMAC-SHA256(key, domain || 0x00 || value), hex encoded: PseudonymLength
// lowercase hex characters.
//
// Collision maths: 48 bits. Within one installation (one key) and one
// domain, n distinct values collide with probability about n²/2^49: for the
// 5,000 nodes of the largest cluster 4.4e-8, for 100,000 values 1.8e-5 (and
// a collision only merges two series in the vendor's counts). Pseudonyms of
// different installations are never compared: the server keeps them apart
// by the instance id, which is longer (InstanceIDLength) because it is
// compared across every installation. Bits beyond what collisions need only
// cost bytes: a pseudonym is the one part of a node's line that does not
// compress, 6 of its ~8 bytes on the wire.
// Truncation does not weaken the pseudonym: what protects the value is the
// 256-bit key, not the length of the output.
//
// The key is what makes them pseudonyms rather than hashes: without it a
// pseudonym cannot be recomputed from a guessed host name or IP address, so
// the dictionary attack that reverses an unkeyed SHA-256 of an IPv4 address
// in seconds does not apply.
const (
	PseudonymBytes  = 6
	PseudonymLength = 2 * PseudonymBytes

	// InstanceIDBytes is the length of the instance id pseudonym (128
	// bits): one per request, in the URL, compared across installations.
	InstanceIDBytes  = 16
	InstanceIDLength = 2 * InstanceIDBytes

	// keyBytes is the size of a generated key; shorter keys are refused.
	keyBytes = 32

	// maxCache bounds the pseudonym cache; kube_telemetry has one value
	// per node and storage class, so this holds the largest cluster.
	maxCache = 1 << 15
)

type cacheKey struct{ domain, value string }

// Pseudonymizer computes keyed pseudonyms. It is safe for concurrent use.
type Pseudonymizer struct {
	mu    sync.Mutex
	mac   hash.Hash
	sum   []byte
	cache map[cacheKey]string
	keyID string
}

// NewPseudonymizer returns a pseudonymizer keyed with key, which must hold
// at least keyBytes bytes. The pseudonymizer keeps its own copy.
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if len(key) < keyBytes {
		return nil, fmt.Errorf("pseudonym key has %d bytes; need at least %d random bytes", len(key), keyBytes)
	}
	k := make([]byte, len(key))
	copy(k, key)
	p := &Pseudonymizer{
		mac:   hmac.New(sha256.New, k),
		cache: make(map[cacheKey]string),
	}
	p.keyID = p.compute("key-id", "", 4)
	return p, nil
}

// Pseudonym returns the pseudonym of value in domain (the tag or field key;
// the domain keeps equal values of different keys unlinkable).
func (p *Pseudonymizer) Pseudonym(domain, value string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := cacheKey{domain, value}
	if s, ok := p.cache[k]; ok {
		return s
	}
	s := p.compute(domain, value, PseudonymBytes)
	if len(p.cache) >= maxCache {
		clear(p.cache)
	}
	p.cache[k] = s
	return s
}

// InstanceID returns the pseudonym of an installation's instance id, in
// its own domain and InstanceIDLength characters long.
func (p *Pseudonymizer) InstanceID(domain, value string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.compute(domain, value, InstanceIDBytes)
}

// compute is called with mu held (or before p is shared).
func (p *Pseudonymizer) compute(domain, value string, n int) string {
	p.mac.Reset()
	p.mac.Write([]byte(domain))
	p.mac.Write([]byte{0})
	p.mac.Write([]byte(value))
	p.sum = p.mac.Sum(p.sum[:0])
	return hex.EncodeToString(p.sum[:n])
}

// KeyID is a short pseudonym of nothing: it tells keys apart in logs (an
// operator can see the key changed) and reveals nothing about the key.
func (p *Pseudonymizer) KeyID() string { return p.keyID }

// IsPseudonym reports whether s has the shape of a pseudonym.
func IsPseudonym(s string) bool { return isLowerHex(s, PseudonymLength) }

// IsInstanceID reports whether s has the shape of an instance id.
func IsInstanceID(s string) bool { return isLowerHex(s, InstanceIDLength) }

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// generateKey returns keyBytes random bytes from crypto/rand.
func generateKey() ([]byte, error) {
	k := make([]byte, keyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generating pseudonym key: %w", err)
	}
	return k, nil
}

// ParseKey parses a key as stored in a key file or a Secret: hex, at least
// keyBytes bytes, surrounding white space ignored (`openssl rand -hex 32`).
func ParseKey(data []byte) ([]byte, error) {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil, errors.New("pseudonym key is empty; generate one with `openssl rand -hex 32`")
	}
	k, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("pseudonym key is not hex (generate one with `openssl rand -hex 32`): %w", err)
	}
	if len(k) < keyBytes {
		return nil, fmt.Errorf("pseudonym key has %d bytes; need at least %d (`openssl rand -hex 32`)", len(k), keyBytes)
	}
	return k, nil
}

// LoadOrCreateKey reads the key file at path or, if there is none, creates
// it with a new random key, mode 0600 in a directory created 0700, and
// reports created. Creation is atomic: the key is written to a temporary
// file and hard-linked into place, so a crash never leaves a half-written
// key and two processes starting at once end up with the same key.
//
// In Kubernetes the file comes from a mounted Secret (read-only, so it is
// never created there); elsewhere the first start creates it on a path that
// survives restarts.
func LoadOrCreateKey(path string) (key []byte, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("no key file path")
	}
	if data, err := os.ReadFile(path); err == nil {
		k, err := ParseKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("key file %q: %w", path, err)
		}
		return k, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("reading key file: %w", err)
	}

	k, err := generateKey()
	if err != nil {
		return nil, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("creating directory of key file %q: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".pseudonym-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("creating key file %q: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("creating key file %q: %w", path, err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("writing key file %q: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("writing key file %q: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("writing key file %q: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process won the race: use its key.
			return LoadOrCreateKey(path)
		}
		return nil, false, fmt.Errorf("creating key file %q: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return k, true, nil
}
