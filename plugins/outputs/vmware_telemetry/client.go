package vmware_telemetry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

const (
	userAgent = "telegraf-tkgi-vmware-telemetry"
	// maxMessage is how much of a refusal's body goes into the log.
	maxMessage = 512
)

// newClient builds the client from upstream's HTTP options
// (telemetry.NewHTTPClient: proxy, TLS, no redirects).
func (t *VMwareTelemetry) newClient() (*http.Client, error) {
	return telemetry.NewHTTPClient(t.reqCtx, &t.HTTPClientConfig, t.Log)
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
