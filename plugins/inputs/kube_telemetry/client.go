package kube_telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/influxdata/telegraf/config"
)

const (
	// Client-side rate limit shared by all lists of one plugin instance.
	// client-go's default (5/s) would stretch a 150k-pod collection (about
	// 350 requests at page_size 500) to over a minute; each list is
	// sequential and at most maxConcurrentLists run at once, so the API
	// server's priority and fairness sees two requests in flight, never a
	// burst.
	clientQPS   = 50
	clientBurst = 100

	userAgent = "telegraf-tkgi/kube_telemetry"
)

// clients are built once (in Start) and reused by every gather: the
// clientset for single objects and the lister streaming list pages (see
// stream.go) share one HTTP client, so one connection pool and one rate
// limiter.
type clients struct {
	host     string
	kube     kubernetes.Interface
	lister   lister
	http     *http.Client
	requests *atomic.Int64
}

// restConfig builds the connection settings. Precedence: url (with
// bearer_token or bearer_token_file and the tls_* options), then kubeconfig
// (with context), then the pod's in-cluster ServiceAccount.
func (k *KubeTelemetry) restConfig() (*rest.Config, error) {
	var cfg *rest.Config
	switch {
	case k.URL != "":
		tlsCfg, err := k.ClientConfig.TLSConfig()
		if err != nil {
			return nil, fmt.Errorf("tls options: %w", err)
		}
		// Our own transport so every option of Telegraf's common TLS
		// settings applies; SetTransportDefaults adds HTTP/2 as client-go
		// would, and keeps our proxy choice (never the environment's).
		var rt http.RoundTripper = utilnet.SetTransportDefaults(&http.Transport{
			TLSClientConfig: tlsCfg,
			Proxy:           k.apiProxy(),
		})
		if !k.BearerToken.Empty() {
			rt = &secretAuth{secret: &k.BearerToken, next: rt}
		}
		// client-go re-reads bearer_token_file every minute, so rotated
		// (projected) ServiceAccount tokens keep working.
		cfg = &rest.Config{Host: k.URL, Transport: rt, BearerTokenFile: k.BearerTokenFile}
	case k.Kubeconfig != "":
		var err error
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: k.Kubeconfig},
			&clientcmd.ConfigOverrides{CurrentContext: k.Context},
		).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %q failed: %w", k.Kubeconfig, err)
		}
	default:
		var err error
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("neither url nor kubeconfig is set and the in-cluster ServiceAccount is unusable "+
				"(not running in a pod?): %w; set url or kubeconfig", err)
		}
	}
	// client-go would take HTTPS_PROXY from the environment, which is set
	// for the telemetry's egress and usually does not list the API server's
	// service IP in NO_PROXY: the API traffic would leave through the
	// corporate proxy. A kubeconfig's own proxy-url is kept unless
	// http_proxy_url overrides it.
	if cfg.Proxy == nil || k.HTTPProxyURL != "" {
		cfg.Proxy = k.apiProxy()
	}
	// Single objects (/version, kube-system) are bounded as a whole;
	// list streams by their silence (restLister.idle).
	cfg.Timeout = time.Duration(k.ResponseTimeout)
	cfg.UserAgent = userAgent
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(clientQPS, clientBurst)

	prev := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if prev != nil {
			rt = prev(rt)
		}
		if k.wrapTransport != nil {
			rt = k.wrapTransport(rt)
		}
		return &countingTransport{next: rt, n: &k.requests}
	}
	return cfg, nil
}

// apiProxy is the proxy for the API server's requests: http_proxy_url if
// set, otherwise none, whatever HTTPS_PROXY, HTTP_PROXY and NO_PROXY say.
func (k *KubeTelemetry) apiProxy() func(*http.Request) (*url.URL, error) {
	if k.HTTPProxyURL != "" {
		// Validated by Init.
		u, err := url.Parse(k.HTTPProxyURL)
		if err == nil {
			return http.ProxyURL(u)
		}
	}
	return func(*http.Request) (*url.URL, error) { return nil, nil }
}

func (k *KubeTelemetry) newClients() (*clients, error) {
	cfg, err := k.restConfig()
	if err != nil {
		return nil, err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating HTTP client for %s failed: %w", cfg.Host, err)
	}
	kube, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("creating clientset for %s failed: %w", cfg.Host, err)
	}
	// Lists go through a core group REST client with absolute paths: it
	// decodes the API server's errors (Status) for every group alike. Its
	// HTTP client shares the transport (connections) and cfg the rate
	// limiter, but has no overall timeout, which would cut a long
	// unpaginated list and be sent as the server-side "timeout" parameter.
	streaming := *hc
	streaming.Timeout = 0
	core, err := corev1client.NewForConfigAndClient(cfg, &streaming)
	if err != nil {
		return nil, fmt.Errorf("creating list client for %s failed: %w", cfg.Host, err)
	}
	l := &restLister{rest: core.RESTClient(), idle: time.Duration(k.ResponseTimeout),
		firstByte: firstByteFactor * time.Duration(k.ResponseTimeout)}
	return &clients{host: cfg.Host, kube: kube, lister: l, http: hc, requests: &k.requests}, nil
}

// serverVersion reads /version. It doubles as the reachability check at the
// start of every gather: one request, no RBAC needed beyond discovery.
func (c *clients) serverVersion(ctx context.Context) (*version.Info, error) {
	rc := c.kube.Discovery().RESTClient()
	if rc == nil {
		// The fake clientset has no REST client; it fakes the version.
		return c.kube.Discovery().ServerVersion()
	}
	body, err := rc.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("decoding /version: %w", err)
	}
	return &info, nil
}

func (c *clients) close() {
	if c.http != nil {
		utilnet.CloseIdleConnectionsFor(c.http.Transport)
	}
}

// secretAuth sets the bearer token from a Telegraf secret on each request,
// so the token stays in Telegraf's protected memory between requests.
type secretAuth struct {
	secret *config.Secret
	next   http.RoundTripper
}

func (s *secretAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	buf, err := s.secret.Get()
	if err != nil {
		return nil, fmt.Errorf("reading bearer_token: %w", err)
	}
	req = utilnet.CloneRequest(req)
	req.Header.Set("Authorization", "Bearer "+buf.String())
	buf.Destroy()
	return s.next.RoundTrip(req)
}

func (s *secretAuth) WrappedRoundTripper() http.RoundTripper { return s.next }

// countingTransport counts the HTTP requests sent to the API server
// (field api_requests), retries and failures included.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

func (c *countingTransport) WrappedRoundTripper() http.RoundTripper { return c.next }
