package sinks

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func certsIn(t *testing.T, bundle []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
}

// The serving certificate verifies against the bundle for every host, and
// is renewed (under a new CA, with the old one still trusted, when the CA
// is due) once a third of its lifetime is left.
func TestRenewPair(t *testing.T) {
	hosts := []string{"telegraf-tkgi-sink-webhook.telegraf-tkgi.svc", "127.0.0.1"}
	start := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	first, changed, err := renewPair(nil, hosts, start)
	require.NoError(t, err)
	require.True(t, changed, "an empty Secret gets a pair")
	verify := func(data map[string][]byte, at time.Time) {
		t.Helper()
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(data[secretCAKey]))
		serving := certsIn(t, data[secretCertKey])[0]
		for _, h := range hosts {
			_, err := serving.Verify(x509.VerifyOptions{DNSName: h, Roots: pool, CurrentTime: at})
			require.NoError(t, err, h)
		}
	}
	verify(first, start)

	for _, tc := range []struct {
		name                string
		at                  time.Time
		hosts               []string
		renewed, newCA      bool
		bundleCertsExpected int
	}{
		{"kept while fresh", start.Add(200 * 24 * time.Hour), hosts, false, false, 1},
		{"renewed in its last third", start.Add(250 * 24 * time.Hour), hosts, true, false, 1},
		{"renewed for a new host", start.Add(time.Hour), append(hosts, "webhook.example.com"), true, false, 1},
		{"a due CA is replaced and the old one kept in the bundle", start.Add(4 * 365 * 24 * time.Hour), hosts, true, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, changed, err := renewPair(first, tc.hosts, tc.at)
			require.NoError(t, err)
			require.Equal(t, tc.renewed, changed)
			if !tc.renewed {
				require.Equal(t, first, data)
				return
			}
			require.NotEqual(t, string(first[secretCertKey]), string(data[secretCertKey]))
			require.Equal(t, tc.newCA, string(first[secretCAKeyKey]) != string(data[secretCAKeyKey]))
			require.Len(t, certsIn(t, data[secretCAKey]), tc.bundleCertsExpected)
			old := hosts
			hosts = tc.hosts
			verify(data, tc.at)
			hosts = old
		})
	}

	_, changed, err = renewPair(map[string][]byte{secretCertKey: []byte("junk")}, hosts, start)
	require.NoError(t, err)
	require.True(t, changed, "an unreadable Secret is replaced")
}
