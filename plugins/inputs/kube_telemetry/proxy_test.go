package kube_telemetry

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
)

// recordingProxy answers every request 502 and remembers what it was asked
// for (CONNECT host:port for HTTPS).
type recordingProxy struct {
	mu    sync.Mutex
	asked []string
}

func (p *recordingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.asked = append(p.asked, r.Method+" "+r.Host)
	p.mu.Unlock()
	w.WriteHeader(http.StatusBadGateway)
}

func (p *recordingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.asked...)
}

// The API server is reached directly whatever the environment's proxy
// says, in every connection mode; only http_proxy_url sends it through a
// proxy. (The in-cluster mode is checked against the built binary with
// Debian's tinyproxy in e2e/shipped_test.go.)
func TestAPIProxy(t *testing.T) {
	proxy := &recordingProxy{}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	t.Setenv("HTTPS_PROXY", srv.URL)
	t.Setenv("HTTP_PROXY", srv.URL)
	t.Setenv("NO_PROXY", "")

	// A name not in NO_PROXY that does not resolve: reached directly, it
	// fails with a DNS error; through the proxy, the proxy is asked for it.
	const api = "kube-api.proxy-test.invalid:6443"
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+api+`"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600))

	tests := []struct {
		name       string
		configure  func(*KubeTelemetry)
		viaProxy   bool
		wantErrMsg string
	}{
		{name: "url ignores HTTPS_PROXY", configure: func(k *KubeTelemetry) {
			k.URL = "https://" + api
			k.BearerToken = config.NewSecret([]byte("t"))
		}, wantErrMsg: "kube-api.proxy-test.invalid"},
		{name: "kubeconfig ignores HTTPS_PROXY", configure: func(k *KubeTelemetry) { k.Kubeconfig = kubeconfig },
			wantErrMsg: "kube-api.proxy-test.invalid"},
		{name: "url with http_proxy_url", configure: func(k *KubeTelemetry) {
			k.URL = "https://" + api
			k.BearerToken = config.NewSecret([]byte("t"))
			k.HTTPProxyURL = srv.URL
		}, viaProxy: true},
		{name: "kubeconfig with http_proxy_url", configure: func(k *KubeTelemetry) {
			k.Kubeconfig = kubeconfig
			k.HTTPProxyURL = srv.URL
		}, viaProxy: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(proxy.requests())
			k := &KubeTelemetry{PageSize: defaultPageSize, ResponseTimeout: config.Duration(5 * time.Second), Log: testutil.Logger{}}
			tt.configure(k)
			require.NoError(t, k.Init())
			require.NoError(t, k.Start(nil))
			defer k.Stop()
			var acc testutil.Accumulator
			err := k.Gather(&acc)
			require.Error(t, err, "nothing serves %s", api)
			asked := proxy.requests()[before:]
			if tt.viaProxy {
				require.NotEmpty(t, asked, "http_proxy_url is set: the request must go through the proxy")
				require.Equal(t, "CONNECT "+api, asked[0])
				return
			}
			require.Empty(t, asked, "the API request went to the environment's proxy")
			require.ErrorContains(t, err, tt.wantErrMsg)
		})
	}
}
