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
	// jitterFraction: a wait is lengthened by up to this part of itself,
	// so that agents refused together do not come back together.
	jitterFraction = 0.5
)

// newClient builds the client from upstream's HTTP options. The system
// proxy is read from the environment now (http.ProxyFromEnvironment would
// freeze it at its first use for the whole process); an explicit
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

// send posts the chunks in order. A chunk whose body is over
// max_payload_bytes, or that the server answers 413, is split in halves; a
// chunk whose payload the server calls invalid is dropped and logged; any
// other failure keeps it. A failed chunk is retried in this write while
// the attempts stay within max_attempts_per_write and the waits within
// retry_within_write (a refused token is not retried in the write at all);
// else the write returns the error and the batch stays in Telegraf's
// buffer, with the chunks got to so far remembered as pending (see
// batch.go). Retries wait the backoff, or Retry-After if longer.
func (t *VMwareTelemetry) send(b *batch, chunks []chunk) error {
	queue := chunks
	processed := make([]pendingChunk, 0, len(chunks))
	finish := func(c chunk) {
		processed = append(processed, pendingChunk{Key: c.key, Lines: c.n, Done: true})
		queue = queue[1:]
	}
	var waited time.Duration
	attempts := 0
	for len(queue) > 0 {
		c := queue[0]
		if c.done {
			t.Log.Debugf("Batch %s was answered in an earlier attempt; not sending it again", c.key)
			finish(c)
			continue
		}
		raw := b.bytes(c)
		body, err := t.compressor.Compress(t.body, raw)
		if err != nil {
			return fmt.Errorf("compressing batch %s failed: %w", c.key, err)
		}
		t.body = body
		t.seenRaw += int64(len(raw))
		t.seenCompressed += int64(len(body))

		if int64(len(body)) > int64(t.MaxPayloadBytes) {
			if c.n > 1 {
				h1, h2 := t.halves(b, c)
				queue = append([]chunk{h1, h2}, queue[1:]...)
				continue
			}
			t.Log.Errorf("Dropping batch %s: its one metric compresses to %d bytes, over max_payload_bytes %d",
				c.key, len(body), int64(t.MaxPayloadBytes))
			t.stats.reject(c.n)
			finish(c)
			continue
		}

		if t.Preview {
			if err := t.writePreview(c, raw, len(body)); err != nil {
				return fmt.Errorf("writing preview failed: %w", err)
			}
			queue = queue[1:]
			continue
		}

		start := t.now()
		r := t.post(c, body)
		elapsed := t.now().Sub(start)
		switch r.action {
		case actDone:
			dup := ""
			if r.duplicate {
				dup = " (duplicate: stored before)"
				t.stats.duplicates.Incr(1)
			}
			t.Log.Infof("Sent batch %s: %d metrics, %d bytes, %d bytes %s, level %s, status %d in %s%s",
				c.key, c.n, len(raw), len(body), t.compressor.Encoding(), t.level, r.status, elapsed.Round(time.Millisecond), dup)
			t.stats.sent(c.n, len(raw), len(body))
			t.failures, t.notBefore, t.lastErr = 0, time.Time{}, nil
			finish(c)
			continue

		case actSplit:
			if c.n > 1 {
				t.Log.Infof("Batch %s of %d metrics, %d bytes %s, is too large for the server (413); sending it in halves",
					c.key, c.n, len(body), t.compressor.Encoding())
				t.stats.splits.Incr(1)
				h1, h2 := t.halves(b, c)
				queue = append([]chunk{h1, h2}, queue[1:]...)
				continue
			}
			fallthrough
		case actDrop:
			t.Log.Errorf("Dropping batch %s of %d metrics: %v. The server calls the batch itself invalid and will not accept it again; "+
				"check participation_level and dictionary_file against the server", c.key, c.n, r.err)
			t.stats.reject(c.n)
			finish(c)
			continue
		}

		// Kept: wait and send the same batch again.
		attempts++
		t.failures++
		t.lastErr = r.err
		t.stats.retries.Incr(1)
		delay := t.retryDelay(r)
		switch r.action {
		case actRefusedAuth:
			t.stats.refusedAuth.Incr(1)
			t.Log.Errorf("Keeping batch %s of %d metrics, next attempt in %s: %s (%v)",
				c.key, c.n, delay.Round(time.Millisecond), advice(r.status), r.err)
		case actMisconfigured:
			t.Log.Errorf("Keeping batch %s of %d metrics, next attempt in %s: %s (%v)",
				c.key, c.n, delay.Round(time.Millisecond), advice(r.status), r.err)
		default:
			if attempts < t.MaxAttemptsPerWrite && waited+delay <= time.Duration(t.RetryWithinWrite) {
				t.Log.Warnf("Retrying batch %s in %s: %v", c.key, delay.Round(time.Millisecond), r.err)
				if t.sleep(t.ctx, delay) {
					waited += delay
					continue
				}
			}
		}
		t.notBefore = t.now().Add(delay)
		t.pending = append(processed, pendingChunk{Key: c.key, Lines: c.n})
		return fmt.Errorf("batch %s not sent, next attempt in %s (attempt %d): %w", c.key, delay.Round(time.Millisecond), t.failures, r.err)
	}
	t.pending = nil
	return nil
}

// retryDelay is the wait before the next attempt: the backoff, or the
// server's Retry-After (at most maxRetryAfter) if longer, plus jitter. A
// Retry-After of 0 or less than the backoff never shortens the wait.
func (t *VMwareTelemetry) retryDelay(r response) time.Duration {
	d := t.backoff()
	if r.hasRetry {
		d = max(d, min(r.retryAfter, maxRetryAfter))
	}
	return d + time.Duration(t.jitter()*float64(d)*jitterFraction)
}

// backoff is capped exponential: the n-th consecutive failure waits
// min(retry_max, retry_initial * 2^(n-1)), before jitter.
func (t *VMwareTelemetry) backoff() time.Duration {
	d := time.Duration(t.RetryInitial)
	for i := 1; i < t.failures && d < time.Duration(t.RetryMax); i++ {
		d *= 2
	}
	return min(d, time.Duration(t.RetryMax))
}
