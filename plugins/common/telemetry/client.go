package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/influxdata/telegraf"
	httpconfig "github.com/influxdata/telegraf/plugins/common/http"
	"golang.org/x/net/http/httpproxy"
)

// NewHTTPClient builds the client that posts batches (the agent's output
// and the server's relay) from Telegraf's HTTP options. The system proxy
// is read from the environment when the client is built
// (http.ProxyFromEnvironment would freeze it at its first use for the
// whole process); an explicit http_proxy_url is used as given and wins
// over use_system_proxy. Redirects are not followed: a POST redirected is
// a misconfigured url, reported as such.
func NewHTTPClient(ctx context.Context, cfg *httpconfig.HTTPClientConfig, log telegraf.Logger) (*http.Client, error) {
	if cfg.HTTPProxyURL != "" {
		cfg.UseSystemProxy = false
	}
	client, err := cfg.CreateClient(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("creating HTTP client failed: %w", err)
	}
	if tr, ok := client.Transport.(*http.Transport); ok && cfg.UseSystemProxy {
		proxyFor := httpproxy.FromEnvironment().ProxyFunc()
		tr.Proxy = func(r *http.Request) (*url.URL, error) { return proxyFor(r.URL) }
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return client, nil
}
