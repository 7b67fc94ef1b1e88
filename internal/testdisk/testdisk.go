// Package testdisk gives tests a real, small filesystem they can fill to
// the last byte: a tmpfs mounted for the test. Mounting needs root; without
// it the test runs again inside a user and mount namespace (unshare -rm),
// where a tmpfs may be mounted.
package testdisk

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

const reexecEnv = "TESTDISK_USERNS"

// Mount mounts a tmpfs of size bytes and returns its directory, unmounted
// when the test ends. Where the process may not mount, it runs the test
// again in a user namespace and returns "" once that run passed: the
// caller then returns.
func Mount(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size))
	if err == nil {
		t.Cleanup(func() { require.NoError(t, syscall.Unmount(dir, 0)) })
		return dir
	}
	require.Empty(t, os.Getenv(reexecEnv), "mounting a tmpfs in a user namespace failed: %v", err)
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--mount",
		os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), reexecEnv+"=1")
	out, rerr := cmd.CombinedOutput()
	require.NoError(t, rerr, "mount: %v; running in a user namespace:\n%s", err, out)
	require.Contains(t, string(out), "--- PASS: "+t.Name())
	return ""
}

// Fill writes a file in dir until the filesystem is full, to the last
// byte; removing the returned file frees the space.
func Fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	for _, chunk := range []int{64 << 10, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				require.ErrorIs(t, err, syscall.ENOSPC)
				break
			}
		}
	}
	return path
}
