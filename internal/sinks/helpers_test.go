package sinks

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
)

// testChecker checks with a stand-in for the agents' ServiceAccount
// directory: a real CA certificate and a token file, as in a pod.
func testChecker(t testing.TB) Checker {
	t.Helper()
	dir := t.TempDir()
	ca, err := os.ReadFile(testpki.New(t).CertFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte("token"), 0o600))
	return Checker{ServiceAccountDir: dir}
}
