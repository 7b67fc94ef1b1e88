// Package testmonitor starts Debian's influxd and prometheus (installed by
// scripts/test-deps.sh) on loopback for end-to-end tests, each in its own
// temporary directory and stopped when the test ends.
package testmonitor

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FreePort returns a loopback TCP port nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Background runs a long-running process until the test ends; its output
// goes to logName in a temporary directory and its tail is logged if the
// test fails.
func Background(t testing.TB, logName, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), logName)
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start(), "starting %s (installed by scripts/test-deps.sh)", name)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, Tail(string(data), 40))
		}
	})
}

// Tail returns the last lines of s.
func Tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// GetJSON decodes the JSON answer of a GET; any status but 200 is an error.
func GetJSON(rawURL string, into any) error {
	resp, err := http.Get(rawURL) //nolint:gosec // loopback test servers
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", rawURL, resp.Status, body)
	}
	return json.Unmarshal(body, into)
}

// StartInfluxDB runs Debian's influxd (1.x) on loopback and returns its URL
// once it answers /ping.
func StartInfluxDB(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	httpPort, rpcPort := FreePort(t), FreePort(t)
	conf := filepath.Join(dir, "influxdb.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = "%s/meta"
[data]
  dir = "%s/data"
  wal-dir = "%s/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  log-enabled = false
[monitor]
  store-enabled = false
`, rpcPort, dir, dir, dir, httpPort)), 0o600))
	Background(t, "influxd.log", "influxd", "-config", conf)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	}, 60*time.Second, 200*time.Millisecond, "influxd did not answer /ping")
	return base
}

// StartPrometheus runs Debian's prometheus scraping target every second as
// job job, with extra command-line flags (e.g.
// --web.enable-remote-write-receiver), and returns its URL.
func StartPrometheus(t testing.TB, job, target string, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	port := FreePort(t)
	conf := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, job, target)), 0o600))
	args := append([]string{"--config.file=" + conf, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port)}, flags...)
	Background(t, "prometheus.log", "prometheus", args...)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}
