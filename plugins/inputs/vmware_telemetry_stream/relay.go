package vmware_telemetry_stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/telegraf/config"
	httpconfig "github.com/influxdata/telegraf/plugins/common/http"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

// Relay forwards every stored batch to an upstream telemetry server (the
// vendor's) instead of this process's outputs: the installation's server
// keeps its own lake through a second consumer, and the upstream receives
// each batch as the agent sent it, under the agent's Idempotency-Key, so
// its de-duplication stores it once however often the relay retries (in
// halves under derived keys when it is too large for the upstream).
// Platform events go to the upstream's events endpoint, with its events
// token, as the platform API posted them; without events_url they stay
// with the installation.
type Relay struct {
	URL         string        `toml:"url"`
	Token       config.Secret `toml:"token"`
	EventsURL   string        `toml:"events_url"`
	EventsToken config.Secret `toml:"events_token"`
	// MaxBackoff bounds the wait between tries while the upstream fails.
	MaxBackoff config.Duration `toml:"max_backoff"`
	httpconfig.HTTPClientConfig
}

// The stamps the listener adds to every stored metric; the relay takes
// them off, reads the batch's identity from them, and the upstream adds
// its own.
const (
	stampCollector   = telemetry.StampCollector
	stampInstance    = telemetry.StampInstance
	stampLevel       = telemetry.StampLevel
	stampReceiveTime = telemetry.StampReceiveTime
	stampBatchKey    = telemetry.StampBatchKey
)

const relayUserAgent = "telegraf-tkgi-vmware-telemetry-relay"

func (r *Relay) validate() error {
	if r.MaxBackoff == 0 {
		r.MaxBackoff = config.Duration(time.Minute)
	}
	if r.Timeout == 0 {
		r.Timeout = config.Duration(30 * time.Second)
	}
	if !isEndpoint(r.URL) {
		return fmt.Errorf("relay.url %q must be the upstream server's endpoint, e.g. \"https://telemetry.example.com%s\"", r.URL, telemetry.DefaultPath)
	}
	if r.EventsURL != "" {
		if !isEndpoint(r.EventsURL) {
			return fmt.Errorf("relay.events_url %q must be the upstream server's events endpoint, e.g. \"https://telemetry.example.com/ph/api/hyper/events\", or empty to keep events with the installation", r.EventsURL)
		}
		if r.EventsURL == r.URL {
			return fmt.Errorf("relay.events_url %q is relay.url: give the upstream's events endpoint (its events_path)", r.EventsURL)
		}
	} else if !r.EventsToken.Empty() {
		return errors.New("relay.events_token is set but relay.events_url is empty: set events_url to relay platform events, or remove events_token")
	}
	if r.MaxBackoff < config.Duration(time.Second) {
		return fmt.Errorf("relay.max_backoff %s must be at least 1s", time.Duration(r.MaxBackoff))
	}
	return nil
}

func isEndpoint(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// upstreamBatch is one stored batch as the agent (or, for events, the
// platform API) sent it.
type upstreamBatch struct {
	key, collector, instance string
	level                    string
	events                   bool
	body                     []byte
	n                        int
}

// unstamp recovers the agent's batch from a stored one: the identity from
// the stamps (the same on every metric of a batch), the metrics without
// them, encoded (line protocol, or for events the JSON array of their
// documents) and zstd-compressed.
func unstamp(b telemetrystream.Batch) (upstreamBatch, error) {
	if len(b.Metrics) == 0 {
		return upstreamBatch{}, errors.New("batch has no metrics")
	}
	first := b.Metrics[0]
	u := upstreamBatch{key: b.Key, events: b.Events, n: len(b.Metrics)}
	u.collector, _ = first.GetTag(stampCollector)
	u.instance, _ = first.GetTag(stampInstance)
	u.level, _ = first.GetTag(stampLevel)
	if u.collector == "" || u.instance == "" || u.level == "" {
		return upstreamBatch{}, fmt.Errorf("batch %q lacks the listener's %s, %s or %s tag", b.Key, stampCollector, stampInstance, stampLevel)
	}
	enc := telemetry.NewEncoder()
	var events []telemetry.Event
	for _, m := range b.Metrics {
		c, _ := m.GetTag(stampCollector)
		i, _ := m.GetTag(stampInstance)
		l, _ := m.GetTag(stampLevel)
		if c != u.collector || i != u.instance || l != u.level {
			return upstreamBatch{}, fmt.Errorf("batch %q mixes senders or levels", b.Key)
		}
		m = m.Copy()
		m.RemoveTag(stampCollector)
		m.RemoveTag(stampInstance)
		m.RemoveTag(stampLevel)
		m.RemoveField(stampReceiveTime)
		m.RemoveField(stampBatchKey)
		if b.Events {
			e, err := telemetry.EventOf(m)
			if err != nil {
				return upstreamBatch{}, fmt.Errorf("events %q: event %d: %w", b.Key, len(events), err)
			}
			events = append(events, e)
			continue
		}
		if err := enc.AppendMetric(m); err != nil {
			return upstreamBatch{}, fmt.Errorf("encoding batch %q: %w", b.Key, err)
		}
	}
	body := enc.Bytes()
	if b.Events {
		var err error
		if body, err = json.Marshal(events); err != nil {
			return upstreamBatch{}, fmt.Errorf("encoding events %q: %w", b.Key, err)
		}
	}
	comp, err := telemetry.NewCompressor(telemetry.EncodingZstd)
	if err != nil {
		return upstreamBatch{}, err
	}
	if u.body, err = comp.Compress(nil, body); err != nil {
		return upstreamBatch{}, fmt.Errorf("compressing batch %q: %w", b.Key, err)
	}
	return u, nil
}

// refusalHint says what to compare when the upstream refuses u for good.
func (u upstreamBatch) refusalHint() string {
	if u.events {
		return "events: check that the upstream runs a release with this server's event schema"
	}
	return "check its dictionary_file against this server's"
}

// relayer posts batches upstream, one message at a time per worker.
type relayer struct {
	s      *Stream
	client *http.Client
}

// answer is what one POST came to.
type answer struct {
	status     int
	duplicate  bool
	retryAfter time.Duration
	hasRetry   bool
	message    string
	err        error
}

func (r *relayer) post(ctx context.Context, u upstreamBatch) answer {
	target, token, contentType := r.s.Relay.URL, &r.s.Relay.Token, telemetry.ContentType
	if u.events {
		target, token, contentType = r.s.Relay.EventsURL, &r.s.Relay.EventsToken, telemetry.EventContentType
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(u.body))
	if err != nil {
		return answer{err: fmt.Errorf("creating request failed: %w", err)}
	}
	q := req.URL.Query()
	q.Set(telemetry.QueryCollector, u.collector)
	q.Set(telemetry.QueryInstance, u.instance)
	req.URL.RawQuery = q.Encode()
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", telemetry.EncodingZstd)
	req.Header.Set("User-Agent", relayUserAgent)
	if u.key != "" {
		req.Header.Set(telemetry.HeaderIdempotencyKey, u.key)
	}
	req.Header.Set(telemetry.HeaderLevel, u.level)
	req.Header.Set(telemetry.HeaderMetricCount, strconv.Itoa(u.n))
	if !token.Empty() {
		tok, err := token.Get()
		if err != nil {
			return answer{err: fmt.Errorf("getting relay token failed: %w", err)}
		}
		req.Header.Set("Authorization", "Bearer "+tok.String())
		tok.Destroy()
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return answer{err: fmt.Errorf("posting batch %q upstream failed: %w", u.key, err)}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	a := answer{
		status:    resp.StatusCode,
		duplicate: resp.Header.Get(telemetry.HeaderDuplicate) == "true",
		message:   strings.TrimSpace(strings.ToValidUTF8(string(msg), "?")),
	}
	a.retryAfter, a.hasRetry = telemetry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return a
}

// relay runs workers that forward messages from cons until ctx ends.
func (s *Stream) relay(ctx context.Context, cons jetstream.Consumer) {
	if s.Relay.EventsURL == "" {
		s.Log.Info("Not relaying platform events (no events_url): they stay with the installation's lake")
	} else {
		s.Log.Infof("Relaying platform events to %s", s.Relay.EventsURL)
	}
	iter, err := cons.Messages(pullOptions(s.MaxUndeliveredBatches)...)
	if err != nil {
		s.Log.Errorf("Consuming failed: %v", err)
		return
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	msgs := make(chan jetstream.Msg)
	done := make(chan struct{})
	for range s.MaxUndeliveredBatches {
		go func() {
			defer func() { done <- struct{}{} }()
			r := &relayer{s: s, client: s.client}
			failures := 0
			for msg := range msgs {
				wait := r.forward(ctx, msg, &failures)
				if wait > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(wait):
					}
				}
			}
		}()
	}
	for {
		msg, err := iter.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			break
		}
		if err != nil {
			s.Log.Warnf("Reading the stream: %v", err)
			continue
		}
		msgs <- msg
	}
	close(msgs)
	for range s.MaxUndeliveredBatches {
		<-done
	}
}

// forward relays one message and settles it: acknowledged once the
// upstream stored it (201) or had it (200 duplicate); a batch too large
// for the upstream (413) is sent in halves, down to single metrics (see
// halves); terminated when the upstream calls the whole batch invalid
// (400, 422, or 413 for its one metric) or it cannot be read; otherwise
// delivered again later, and the worker waits as long. failures counts
// this worker's consecutive failures, for the backoff.
func (r *relayer) forward(ctx context.Context, msg jetstream.Msg, failures *int) time.Duration {
	s := r.s
	b, err := s.decoder.Decode(msg.Headers(), msg.Data())
	if err == nil && b.Events && s.Relay.EventsURL == "" {
		// Without events_url, platform events stay with the installation
		// (its lake consumer has them).
		s.Log.Debugf("Not relaying events %s: no events_url", b.Key)
		msg.Ack() //nolint:errcheck // redelivered and skipped again if lost
		return 0
	}
	var u upstreamBatch
	if err == nil {
		u, err = unstamp(b)
	}
	if err != nil {
		s.Log.Errorf("Dropping message %s: %v", msgRef(msg), err)
		msg.Term() //nolint:errcheck // redelivered after ack_wait if lost
		s.stats.messagesTerminated.Incr(1)
		return 0
	}
	// parts is what is left to post, in order; the first, the whole batch,
	// is encoded already.
	parts, encoded, relayed := []telemetrystream.Batch{b}, true, 0
	for len(parts) > 0 {
		part := parts[0]
		if !encoded {
			// A half. A long run of halves must not outlive ack_wait, or
			// the message would be delivered to another worker meanwhile.
			msg.InProgress() //nolint:errcheck // at worst delivered again: the upstream answers duplicate
			// Its metrics were read with the whole batch, so encoding
			// them cannot fail.
			if u, err = unstamp(part); err != nil {
				s.Log.Errorf("Dropping part %s of message %s: %v", part.Key, msgRef(msg), err)
				parts = parts[1:]
				continue
			}
		}
		encoded = false
		start := time.Now()
		a := r.post(ctx, u)
		if ctx.Err() != nil {
			return 0 // stopping: the message comes again after ack_wait
		}
		outcome := telemetry.OutcomeRetry
		if a.err == nil {
			outcome = telemetry.Classify(a.status)
		}
		switch {
		case a.err == nil && outcome == telemetry.OutcomeAccepted:
			relayed++
			s.stats.relayed(a.duplicate)
			dup := ""
			if a.duplicate {
				dup = " (duplicate: the upstream had it)"
			}
			s.Log.Debugf("Relayed batch %s: %d metrics from %s/%s, status %d in %s%s",
				u.key, u.n, u.collector, u.instance, a.status, time.Since(start).Round(time.Millisecond), dup)
			parts = parts[1:]
			continue
		case a.err == nil && outcome == telemetry.OutcomeSplit && len(part.Metrics) > 1:
			h1, h2 := halves(part)
			s.Log.Infof("Batch %s of %d metrics (%d bytes zstd) is too large for the upstream (413): relaying it in halves %s and %s",
				u.key, u.n, len(u.body), h1.Key, h2.Key)
			parts = append([]telemetrystream.Batch{h1, h2}, parts[1:]...)
			continue
		case a.err == nil && (outcome == telemetry.OutcomeSplit || a.status == http.StatusBadRequest || a.status == http.StatusUnprocessableEntity):
			hint := u.refusalHint()
			if outcome == telemetry.OutcomeSplit {
				hint = "its one metric is over the upstream's size limit"
			}
			s.Log.Errorf("Dropping batch %s of %d metrics from %s/%s: the upstream answered %d: %s; it will never take it (%s)",
				u.key, u.n, u.collector, u.instance, a.status, a.message, hint)
			s.stats.batchesRefused.Incr(1)
			parts = parts[1:]
			continue
		}
		*failures++
		wait := backoff(*failures, time.Duration(s.Relay.MaxBackoff))
		if a.hasRetry {
			wait = min(max(a.retryAfter, time.Second), time.Duration(s.Relay.MaxBackoff))
		}
		reason := a.err
		if reason == nil {
			reason = fmt.Errorf("the upstream answered %d: %s", a.status, a.message)
		}
		if *failures == 1 {
			s.Log.Warnf("Relaying batch %s failed: %v; keeping it in the stream, retrying in %s", u.key, reason, wait)
		} else {
			s.Log.Debugf("Relaying batch %s failed again: %v; retrying in %s", u.key, reason, wait)
		}
		// The parts relayed so far are answered duplicate next time.
		msg.NakWithDelay(wait) //nolint:errcheck // redelivered after ack_wait if lost
		s.stats.relayFailures.Incr(1)
		return wait
	}
	*failures = 0
	if relayed == 0 {
		msg.Term() //nolint:errcheck // redelivered after ack_wait if lost
		return 0
	}
	ackCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ackCtx); err != nil {
		s.Log.Warnf("Acknowledging message %s: %v; relayed again, the upstream answers duplicate", msgRef(msg), err)
	}
	return 0
}

// halves splits a batch the upstream answered 413. Each half's key derives
// from the batch's key and which half it is, and the split always falls
// at the same metric, so a redelivered message is cut into the same keyed
// parts and the upstream stores each part once. (A batch sent without a
// key has halves without one.)
func halves(b telemetrystream.Batch) (telemetrystream.Batch, telemetrystream.Batch) {
	n := len(b.Metrics) / 2
	h1, h2 := b, b
	h1.Metrics, h2.Metrics = b.Metrics[:n], b.Metrics[n:]
	h1.Key, h2.Key = halfKey(b.Key, 1), halfKey(b.Key, 2)
	return h1, h2
}

// halfKey is 32 hex digits, as the agent's keys are.
func halfKey(key string, half int) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key + "/" + strconv.Itoa(half)))
	return hex.EncodeToString(sum[:16])
}

// backoff doubles from a second up to limit with consecutive failures.
func backoff(failures int, limit time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
