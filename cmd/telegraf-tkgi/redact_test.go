package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The agent never logs a credential: not the proxy's password when the
// proxy cannot be reached, not a secret in url's query, not a password put
// in url by mistake (refused by config check, without quoting it).
func TestAgentLogsNoCredentials(t *testing.T) {
	const password = "pr0xy-s3cret-pw"
	const querySecret = "q-s3cret-apikey-value"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())

	dir := t.TempDir()
	data := filepath.Join(dir, "telemetry.lp")
	require.NoError(t, os.WriteFile(data, []byte("kube_telemetry_nodes,cluster_uid=3f1e2d4c total=5i 1777863721000000000\n"), 0o600))
	conf := func(url, proxy string) string {
		path := filepath.Join(t.TempDir(), "agent.conf")
		require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`
[agent]
  interval = "1h"
  round_interval = false
  flush_interval = "100ms"
  omit_hostname = true
[[inputs.file]]
  files = [%q]
  data_format = "influx"
[[outputs.vmware_telemetry]]
  url = %q
  http_proxy_url = %q
  use_system_proxy = false
  pseudonym_key_file = %q
  retry_initial = "200ms"
  retry_max = "400ms"
`, data, url, proxy, filepath.Join(dir, "key"))), 0o600))
		return path
	}

	// A failing request through a proxy that is not there.
	logPath := filepath.Join(dir, "agent.log")
	agent := startAgent(t, conf("http://telemetry.example.com/ph/api/hyper/send?apikey="+querySecret,
		"http://agent:"+password+"@"+closed), logPath)
	require.Eventually(t, func() bool {
		text, _ := os.ReadFile(logPath)
		return strings.Count(string(text), "proxyconnect") >= 2
	}, 30*time.Second, 20*time.Millisecond, "the agent did not report the failing proxy")
	require.Less(t, agent.stop(t), 5*time.Second)
	text, err := os.ReadFile(logPath)
	require.NoError(t, err)
	require.NotContains(t, string(text), password)
	require.NotContains(t, string(text), querySecret)
	require.Contains(t, string(text), "apikey=xxxxx")

	// Credentials in url: refused, not repeated.
	for _, u := range []string{
		"https://agent:" + password + "@telemetry.example.com/ph/api/hyper/send",
		"https://agent:" + password + "@telemetry.example.com:port/ph/api/hyper/send",
	} {
		r := run(t, "config", "check", "--config", conf(u, ""))
		require.NotEqual(t, 0, r.code)
		require.Contains(t, r.stderr, "url")
		require.NotContains(t, r.stderr+r.stdout, password)
	}
	r := run(t, "config", "check", "--config", conf("https://telemetry.example.com/ph/api/hyper/send", "http://agent:"+password+"@proxy:port"))
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "http_proxy_url cannot be parsed")
	require.NotContains(t, r.stderr+r.stdout, password)
}
