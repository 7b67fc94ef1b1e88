package vmware_telemetry

import (
	"fmt"
	"net/http"
	"time"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// action is what the output does with one answer (the README's table
// "Delivery guarantees" lists them).
type action int

const (
	// actDone: 2xx, stored (or stored before).
	actDone action = iota
	// actSplit: 413, send the halves (a single metric is dropped).
	actSplit
	// actDrop: the server says the payload itself is invalid (400, 422);
	// sending it again cannot succeed. Drop it, count it, log why.
	actDrop
	// actRetry: the server or the network failed for now (5xx, 408, 429,
	// network and TLS errors): keep the batch, retry with backoff, within
	// the write while the budget allows.
	actRetry
	// actRefusedAuth: 401, 403 or a proxy's 407: this agent's credentials
	// are wrong. Keep the batch, back off, tell the operator what to fix.
	actRefusedAuth
	// actMisconfigured: any other answer (404, 405, 415, 3xx...): the
	// agent's configuration, not the batch, is at fault. Keep it, back off,
	// tell the operator what to check.
	actMisconfigured
)

// actionOf maps a response (status 0: no answer) to an action.
func actionOf(status int) action {
	switch status {
	case 0:
		return actRetry
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return actDrop
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusProxyAuthRequired:
		return actRefusedAuth
	}
	switch telemetry.Classify(status) {
	case telemetry.OutcomeAccepted:
		return actDone
	case telemetry.OutcomeSplit:
		return actSplit
	case telemetry.OutcomeThrottled, telemetry.OutcomeRetry:
		return actRetry
	}
	return actMisconfigured
}

// advice tells the operator what to fix after a refusal that keeps the
// batch.
func advice(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "the telemetry server refused the token (401): set TELEMETRY_TOKEN / token to the server's token"
	case http.StatusForbidden:
		return "the telemetry server, or a proxy on the way, refused this agent (403): check token against the server's tokens " +
			"and that the proxy (http_proxy_url, HTTPS_PROXY) lets the agent reach url"
	case http.StatusProxyAuthRequired:
		return "the proxy wants credentials (407): set them in http_proxy_url (\"http://user:password@proxy:3128\") or HTTPS_PROXY"
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return fmt.Sprintf("nothing takes batches at url (%d): set url to the server's endpoint, e.g. \"https://telemetry.example.com%s\"",
			status, telemetry.DefaultPath)
	case http.StatusUnsupportedMediaType:
		return "the server does not take this encoding (415): set content_encoding to one it takes (\"zstd\" or \"gzip\")"
	}
	if status >= 300 && status < 400 {
		return fmt.Sprintf("url is redirected (%d): set url to where it is redirected to", status)
	}
	return fmt.Sprintf("the server refused the request (%d): check url, token and the proxy settings against the server", status)
}

// deliver posts the current chunk and applies the answer: stored, split
// in halves, dropped as invalid, or failed (retry.go). It returns the
// write's error when the chunk is kept for a later write.
func (t *VMwareTelemetry) deliver(b *batch, d *delivery, c chunk, raw, body []byte) error {
	start := t.now()
	r := t.post(c, body)
	elapsed := t.now().Sub(start)
	switch r.action {
	case actDone:
		t.accepted(c, r, len(raw), len(body), elapsed)
		d.next()
		return nil
	case actSplit:
		if c.n > 1 {
			t.Log.Infof("Batch %s of %d metrics, %d bytes %s, is too large for the server (413); sending it in halves",
				c.key, c.n, len(body), t.compressor.Encoding())
			t.stats.splits.Incr(1)
			d.split(t.halves(b, c))
			return nil
		}
		// One metric the server finds too large is as invalid as a 422.
		fallthrough
	case actDrop:
		t.rejected(c, r.err)
		d.next()
		return nil
	}
	return t.failed(d, c, r)
}

// accepted logs the audit line of a stored chunk and counts it; the
// backoff starts over.
func (t *VMwareTelemetry) accepted(c chunk, r response, raw, compressed int, elapsed time.Duration) {
	dup := ""
	if r.duplicate {
		dup = " (duplicate: stored before)"
		t.stats.duplicates.Incr(1)
	}
	t.Log.Infof("Sent batch %s: %d metrics, %d bytes, %d bytes %s, level %s, status %d in %s%s",
		c.key, c.n, raw, compressed, t.compressor.Encoding(), t.level, r.status, elapsed.Round(time.Millisecond), dup)
	t.stats.sent(c.n, raw, compressed)
	t.failures, t.notBefore, t.lastErr = 0, time.Time{}, nil
}

// rejected drops a chunk the server calls invalid, saying why.
func (t *VMwareTelemetry) rejected(c chunk, reason error) {
	t.Log.Errorf("Dropping batch %s of %d metrics: %v. The server calls the batch itself invalid and will not accept it again; "+
		"check participation_level and dictionary_file against the server", c.key, c.n, reason)
	t.stats.reject(c.n)
}
