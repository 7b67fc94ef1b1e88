package vmware_telemetry

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

func setProxyEnv(t *testing.T, httpProxy, httpsProxy, noProxy string) {
	for _, kv := range [][2]string{{"HTTP_PROXY", httpProxy}, {"HTTPS_PROXY", httpsProxy}, {"NO_PROXY", noProxy}} {
		t.Setenv(kv[0], kv[1])
		t.Setenv(strings.ToLower(kv[0]), kv[1])
	}
}

func proxyLog(t *testing.T) string {
	require.NotEmpty(t, proxies.allowLog, "set TINYPROXY_LOG with TINYPROXY_ADDR")
	data, err := os.ReadFile(proxies.allowLog)
	require.NoError(t, err)
	return string(data)
}

func systemProxy(o *VMwareTelemetry) { o.UseSystemProxy = true }

// The proxy from the environment carries the batch; NO_PROXY bypasses it.
// The denying tinyproxy proves which way a request went: through it, the
// request is refused 403 and never reaches the server.
func TestProxyFromEnvironment(t *testing.T) {
	requireProxies(t)
	ip := nonLoopbackIP(t)
	srv := newServer(t, ip)
	in := kubeTelemetryMetrics(3, gatherTime)

	t.Run("through the proxy", func(t *testing.T) {
		setProxyEnv(t, "http://"+proxies.allow, "", "")
		before := len(srv.reqs())
		o, _ := newOutput(t, srv.endpoint(), "", systemProxy)
		start(t, o)
		require.NoError(t, o.Write(in))
		reqs := srv.reqs()
		require.Len(t, reqs, before+1)
		require.Contains(t, proxyLog(t), "POST "+srv.endpoint()+"?_c=telegraf-tkgi.v1&_i="+reqs[before].query.Get("_i"))
	})

	t.Run("denying proxy is used", func(t *testing.T) {
		setProxyEnv(t, "http://"+proxies.deny, "", "")
		before := len(srv.reqs())
		o, log := newOutput(t, srv.endpoint(), "", systemProxy)
		start(t, o)
		require.ErrorContains(t, o.Write(in), "answered 403", "a 403 keeps the batch")
		require.Len(t, srv.reqs(), before, "the proxy refused; the server saw nothing")
		require.Len(t, log.Errors(), 1)
		require.Contains(t, log.Errors()[0], "answered 403")
		require.Contains(t, log.Errors()[0], "or a proxy on the way, refused this agent (403)")
		require.Equal(t, int64(1), o.stats.refusedAuth.Get())
	})

	t.Run("NO_PROXY bypasses it", func(t *testing.T) {
		setProxyEnv(t, "http://"+proxies.deny, "http://"+proxies.deny, ip)
		before := len(srv.reqs())
		o, log := newOutput(t, srv.endpoint(), "", systemProxy)
		start(t, o)
		require.NoError(t, o.Write(in))
		require.Len(t, srv.reqs(), before+1)
		require.Empty(t, log.Errors())
	})

	t.Run("use_system_proxy off ignores the environment", func(t *testing.T) {
		setProxyEnv(t, "http://"+proxies.deny, "", "")
		before := len(srv.reqs())
		o, _ := newOutput(t, srv.endpoint(), "")
		start(t, o)
		require.NoError(t, o.Write(in))
		require.Len(t, srv.reqs(), before+1)
	})
}

// An explicit proxy URL with credentials, e.g. a corporate proxy; it wins
// over the environment. Without credentials the proxy answers 407 and the
// batch stays for a retry instead of being dropped.
func TestExplicitProxyWithCredentials(t *testing.T) {
	requireProxies(t)
	srv := newServer(t, "")
	in := kubeTelemetryMetrics(3, gatherTime)
	setProxyEnv(t, "http://"+proxies.deny, "", "")

	o, _ := newOutput(t, srv.endpoint(), "", systemProxy, func(o *VMwareTelemetry) {
		o.HTTPProxyURL = "http://agent:s3cret@" + proxies.auth
	})
	start(t, o)
	require.NoError(t, o.Write(in))
	require.Len(t, srv.reqs(), 1)

	clk := newClock()
	bad, _ := newOutput(t, srv.endpoint(), "", withClock(clk), func(o *VMwareTelemetry) {
		o.HTTPProxyURL = "http://" + proxies.auth
	})
	start(t, bad)
	require.ErrorContains(t, bad.Write(in), "407")
	require.Len(t, srv.reqs(), 1)
}

// HTTPS through the proxy (CONNECT): verification is on; with the
// server's CA configured the batch arrives, without it nothing is sent.
func TestHTTPSThroughProxy(t *testing.T) {
	requireProxies(t)
	ip := nonLoopbackIP(t)
	srv := newServerTLS(t, ip, true)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.cert.Raw}), 0o600))
	setProxyEnv(t, "", "http://"+proxies.allow, "")
	in := kubeTelemetryMetrics(3, gatherTime)
	require.True(t, strings.HasPrefix(srv.endpoint(), "https://"))

	o, _ := newOutput(t, srv.endpoint(), "", systemProxy, func(o *VMwareTelemetry) { o.TLSCA = ca })
	start(t, o)
	require.NoError(t, o.Write(in))
	require.Len(t, srv.reqs(), 1)
	require.Contains(t, proxyLog(t), "CONNECT "+strings.TrimPrefix(srv.URL, "https://"))

	untrusted, _ := newOutput(t, srv.endpoint(), "", systemProxy)
	start(t, untrusted)
	require.ErrorContains(t, untrusted.Write(in), "certificate")
	require.Len(t, srv.reqs(), 1)
	require.Equal(t, string(telemetry.LevelStandard), srv.reqs()[0].header.Get(telemetry.HeaderLevel))
}
