package telemetry

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPseudonym(t *testing.T) {
	a := testPseudonymizer(t)
	other, err := NewPseudonymizer([]byte(strings.Repeat("k", 32)))
	require.NoError(t, err)

	tests := []struct{ domain, value string }{
		{"node", "worker-01.corp.example.com"},
		{"node", "10.0.0.1"},
		{"cluster_uid", "3f1e2d4c-aaaa-bbbb-cccc-123456789012"},
		{"storage_class", ""},
		{"node", "ünïcode"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		p := a.Pseudonym(tt.domain, tt.value)
		require.True(t, IsPseudonym(p), p)
		require.Len(t, p, PseudonymLength)
		require.Equal(t, p, a.Pseudonym(tt.domain, tt.value), "deterministic")
		require.NotEqual(t, p, other.Pseudonym(tt.domain, tt.value), "differs between keys")
		unkeyed := sha256.Sum256([]byte(tt.value))
		require.NotContains(t, hex.EncodeToString(unkeyed[:]), p, "not an unkeyed hash")
		require.False(t, seen[p], "distinct inputs, distinct pseudonyms")
		seen[p] = true
	}
	// The domain separates equal values of different keys.
	require.NotEqual(t, a.Pseudonym("node", "x"), a.Pseudonym("storage_class", "x"))
	// Domain and value cannot be shifted into each other.
	require.NotEqual(t, a.Pseudonym("ab", "c"), a.Pseudonym("a", "bc"))
	require.Len(t, a.KeyID(), 8)
	require.NotEqual(t, a.KeyID(), other.KeyID())

	// The instance id is longer, stable and keyed like the rest.
	id := a.InstanceID("_i", "default")
	require.Len(t, id, InstanceIDLength)
	require.Equal(t, id, a.InstanceID("_i", "default"))
	require.NotEqual(t, id, other.InstanceID("_i", "default"))
	require.NotEqual(t, id, a.InstanceID("_i", "other"))
}

func TestPseudonymCacheBounded(t *testing.T) {
	p := testPseudonymizer(t)
	first := p.Pseudonym("node", "n0")
	for i := range maxCache + 10 {
		p.Pseudonym("node", "n"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+hex.EncodeToString([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
	}
	require.LessOrEqual(t, len(p.cache), maxCache)
	require.Equal(t, first, p.Pseudonym("node", "n0"), "same value after the cache was cleared")
}

func TestPseudonymConcurrent(t *testing.T) {
	p := testPseudonymizer(t)
	want := p.Pseudonym("node", "a")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				require.Equal(t, want, p.Pseudonym("node", "a"))
			}
		}()
	}
	wg.Wait()
}

func TestNewPseudonymizerShortKey(t *testing.T) {
	_, err := NewPseudonymizer(make([]byte, 16))
	require.ErrorContains(t, err, "need at least 32 random bytes")
}

func TestIsPseudonym(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"0123456789ab", true},
		{"0123456789AB", false},
		{"0123456789a", false},
		{"0123456789abc", false},
		{"0123456789abcdef", false}, // 64 bits: too long
		{"worker-01.co", false},
		{"", false},
	} {
		require.Equal(t, tt.want, IsPseudonym(tt.s), tt.s)
	}
}

func TestParseKey(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name, in, err string
	}{
		{"hex", good, ""},
		{"whitespace", "  " + good + "\n", ""},
		{"longer", good + "cd", ""},
		{"empty", "\n", "empty"},
		{"not hex", strings.Repeat("zz", 32), "not hex"},
		{"short", strings.Repeat("ab", 16), "has 16 bytes; need at least 32"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey([]byte(tt.in))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.GreaterOrEqual(t, len(k), keyBytes)
		})
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "key")

	k1, created, err := LoadOrCreateKey(path)
	require.NoError(t, err)
	require.True(t, created)
	require.Len(t, k1, keyBytes)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	st, err = os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	// A restart reads the same key: the same pseudonyms.
	k2, created, err := LoadOrCreateKey(path)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, k1, k2)

	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1)

	// Another installation gets another key.
	k3, _, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	require.NoError(t, err)
	require.NotEqual(t, k1, k3)
}

func TestLoadOrCreateKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, err := LoadOrCreateKey(path)
			require.NoError(t, err)
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		require.Equal(t, keys[0], k, "every starter ends with the same key")
	}
}

func TestLoadOrCreateKeyErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("not a key"), 0o600))
	_, _, err := LoadOrCreateKey(bad)
	require.ErrorContains(t, err, `key file "`+bad+`": pseudonym key is not hex`)

	// A read-only directory (a mounted Secret without the key) fails with
	// the path, never with an ephemeral key.
	ro := filepath.Join(dir, "ro")
	require.NoError(t, os.Mkdir(ro, 0o500))
	_, _, err = LoadOrCreateKey(filepath.Join(ro, "key"))
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a path under a file.
		_, _, err = LoadOrCreateKey(filepath.Join(bad, "key"))
	}
	require.ErrorContains(t, err, "key file")

	_, _, err = LoadOrCreateKey("")
	require.ErrorContains(t, err, "no key file path")
}
