package main

import (
	"fmt"
	"net"
	"syscall"
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
	conf := func(url, proxy string) string {
		path, _ := writeTelemetryAgentConf(t, dir, []string{"kube_telemetry_nodes,cluster_uid=3f1e2d4c total=5i 1777863721000000000"}, url,
			telemetryAgentSettings{output: fmt.Sprintf("  http_proxy_url = %q\n  retry_initial = \"200ms\"\n  retry_max = \"400ms\"\n", proxy)})
		return path
	}

	// A failing request through a proxy that is not there.
	agent := startAgent(t, conf("http://telemetry.example.com/ph/api/hyper/send?apikey="+querySecret,
		"http://agent:"+password+"@"+closed))
	agent.waitLog(t, "proxyconnect", 2, 30*time.Second)
	_, took := agent.stopBy(t, syscall.SIGTERM)
	require.Less(t, took, 5*time.Second)
	text := agent.logText()
	require.NotContains(t, text, password)
	require.NotContains(t, text, querySecret)
	require.Contains(t, text, "apikey=xxxxx")

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
