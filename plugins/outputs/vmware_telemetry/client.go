package vmware_telemetry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/net/http/httpproxy"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

const (
	userAgent = "telegraf-tkgi-vmware-telemetry"
	// maxMessage is how much of a refusal's body goes into the log.
	maxMessage = 512
)

// newClient builds the client from upstream's HTTP options. The system
// proxy is read from the environment when the client is built
// (http.ProxyFromEnvironment would freeze it at its first use for the whole
// process); an explicit
// http_proxy_url is used as given. Redirects are not followed: a POST
// redirected is a misconfigured url, reported as such.
func (t *VMwareTelemetry) newClient() (*http.Client, error) {
	if t.HTTPProxyURL != "" {
		t.UseSystemProxy = false
	}
	client, err := t.HTTPClientConfig.CreateClient(t.reqCtx, t.Log)
	if err != nil {
		return nil, fmt.Errorf("creating HTTP client failed: %w", err)
	}
	if tr, ok := client.Transport.(*http.Transport); ok && t.UseSystemProxy {
		proxyFor := httpproxy.FromEnvironment().ProxyFunc()
		tr.Proxy = func(r *http.Request) (*url.URL, error) { return proxyFor(r.URL) }
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return client, nil
}

// response is what one POST came to.
type response struct {
	action     action
	status     int
	retryAfter time.Duration
	hasRetry   bool
	duplicate  bool
	message    string
	err        error
}

func (t *VMwareTelemetry) post(c chunk, body []byte) response {
	req, err := http.NewRequestWithContext(t.reqCtx, http.MethodPost, t.endpoint, bytes.NewReader(body))
	if err != nil {
		return response{action: actMisconfigured, err: t.redactError(fmt.Errorf("creating request failed: %w", err))}
	}
	q := req.URL.Query()
	q.Set(telemetry.QueryCollector, t.CollectorID)
	q.Set(telemetry.QueryInstance, t.instance)
	req.URL.RawQuery = q.Encode()
	req.Header.Set("Content-Type", telemetry.ContentType)
	req.Header.Set("Content-Encoding", t.compressor.Encoding())
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(telemetry.HeaderIdempotencyKey, c.key)
	req.Header.Set(telemetry.HeaderLevel, string(t.level))
	req.Header.Set(telemetry.HeaderDictionaryVersion, t.dict.Version)
	req.Header.Set(telemetry.HeaderMetricCount, strconv.Itoa(c.n))
	if !t.Token.Empty() {
		tok, err := t.Token.Get()
		if err != nil {
			return response{action: actMisconfigured, err: fmt.Errorf("getting token failed: %w", err)}
		}
		req.Header.Set("Authorization", "Bearer "+tok.String())
		tok.Destroy()
	}

	resp, err := t.client.Do(req)
	if err != nil {
		return response{action: actRetry, err: t.redactError(fmt.Errorf("posting batch %s failed: %w", c.key, err))}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxMessage))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))

	r := response{
		action:    actionOf(resp.StatusCode),
		status:    resp.StatusCode,
		duplicate: resp.Header.Get(telemetry.HeaderDuplicate) == "true",
		message:   printable(msg),
	}
	r.retryAfter, r.hasRetry = telemetry.ParseRetryAfter(resp.Header.Get("Retry-After"), t.now())
	if r.action != actDone {
		r.err = t.redactError(fmt.Errorf("telemetry server answered %s: %s", resp.Status, r.message))
	}
	return r
}

// printable keeps a server message safe for one log line.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, string(b))
	return strings.TrimSpace(s)
}
