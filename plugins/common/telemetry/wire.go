package telemetry

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The request: POST {url}?_c={collector id}&_i={instance id} with a line
// protocol body, compressed as Content-Encoding says.
const (
	// DefaultPath is where the server listens and the output posts.
	DefaultPath = "/ph/api/hyper/send"

	// QueryCollector names the collector (the kind of agent and its data
	// dictionary family), e.g. "telegraf-tkgi.v1".
	QueryCollector = "_c"
	// QueryInstance is the installation's id: a pseudonym, so the server
	// can tell installations apart without learning which one it is.
	QueryInstance = "_i"

	// HeaderIdempotencyKey identifies a batch; every retry of the same
	// batch carries the same key so the server stores it once.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderLevel is the participation level the batch was made at.
	HeaderLevel = "Telemetry-Level"
	// HeaderDictionaryVersion is the data dictionary version applied.
	HeaderDictionaryVersion = "Telemetry-Dictionary-Version"
	// HeaderMetricCount is the number of lines in the batch.
	HeaderMetricCount = "Telemetry-Metric-Count"
	// HeaderDuplicate is set to "true" on the 200 answering a batch whose
	// key was stored before.
	HeaderDuplicate = "Telemetry-Duplicate"

	// ContentType of a batch body (before Content-Encoding).
	ContentType = "text/plain; charset=utf-8"
	// MaxIDLength bounds collector ids, instance ids and idempotency keys.
	MaxIDLength = 128
)

// Content encodings.
const (
	EncodingZstd     = "zstd"
	EncodingGzip     = "gzip"
	EncodingIdentity = "identity"
)

// ErrUnsupportedEncoding: a Content-Encoding other than ours (415).
var ErrUnsupportedEncoding = errors.New("unsupported content encoding")

// unsupportedEncoding is the error for a Content-Encoding ParseEncoding
// refuses; it names the ones to use.
func unsupportedEncoding(encoding string) error {
	return fmt.Errorf("content encoding %q: %w; use %q, %q or %q", encoding, ErrUnsupportedEncoding, EncodingZstd, EncodingGzip, EncodingIdentity)
}

// ParseEncoding normalises a Content-Encoding value ("" means identity) and
// reports whether it is one of ours.
func ParseEncoding(s string) (string, bool) {
	switch e := strings.ToLower(strings.TrimSpace(s)); e {
	case "", EncodingIdentity:
		return EncodingIdentity, true
	case EncodingZstd, EncodingGzip:
		return e, true
	}
	return "", false
}

// ValidID reports whether s may be a collector id, instance id or
// idempotency key: 1-MaxIDLength letters, digits, '.', '_', '-' or ':'.
func ValidID(s string) bool { return validToken(s, MaxIDLength) }

// Outcome is what the client does with a response.
type Outcome int

const (
	// OutcomeAccepted (2xx): the batch is stored (or was before: 200 with
	// HeaderDuplicate). The server answers 201 for a new batch.
	OutcomeAccepted Outcome = iota
	// OutcomeThrottled (429, 503): retry after Retry-After.
	OutcomeThrottled
	// OutcomeRetry (other 5xx, 408, 407): retry with backoff; the batch
	// stays. 407 comes from a proxy wanting credentials, not from the
	// server: the agent's configuration, not the batch, is at fault.
	OutcomeRetry
	// OutcomeSplit (413): the body is too large; send the halves.
	OutcomeSplit
	// OutcomeReject (other 4xx, 1xx, 3xx): the server will never take the
	// batch; drop it and tell the operator why.
	OutcomeReject
)

func (o Outcome) String() string {
	switch o {
	case OutcomeAccepted:
		return "accepted"
	case OutcomeThrottled:
		return "throttled"
	case OutcomeRetry:
		return "retry"
	case OutcomeSplit:
		return "split"
	case OutcomeReject:
		return "reject"
	}
	return "unknown"
}

// Classify maps a status code to what the client does; the server answers
// accordingly: 201 stored, 200 duplicate, 400 malformed, 401 bad token,
// 413 too large, 415 unknown encoding or content type, 422 not allowed by
// the dictionary at the level, 429/503 saturated.
func Classify(status int) Outcome {
	switch {
	case status >= 200 && status < 300:
		return OutcomeAccepted
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return OutcomeThrottled
	case status == http.StatusRequestEntityTooLarge:
		return OutcomeSplit
	case status == http.StatusRequestTimeout, status == http.StatusProxyAuthRequired, status >= 500:
		return OutcomeRetry
	}
	return OutcomeReject
}

// ParseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date,
// as a wait from now; false when absent or invalid. Past dates give 0.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		const maxSecs = int64(1<<63-1) / int64(time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// validToken: 1-max of letters, digits, '.', '_', '-' or ':'; the shape of
// ids in the query and headers.
func validToken(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == ':':
		default:
			return false
		}
	}
	return true
}
