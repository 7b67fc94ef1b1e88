package vmware_telemetry_listener

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

// JetStream is the scale-out backend: with it, replicas behind a load
// balancer share one de-duplication store (a key-value bucket) and hand
// every batch to a replicated stream, answering 201 only once the stream
// acknowledged it; the lake consumer (inputs.vmware_telemetry_stream)
// writes the lake from the stream.
type JetStream struct {
	telemetrystream.Config
	DedupBucket string `toml:"dedup_bucket"`
	// MaxMessageSize caps a stored batch's message (compressed); the NATS
	// servers' max_payload caps it too. Larger batches are answered 413,
	// so the agent splits them.
	MaxMessageSize config.Size `toml:"max_message_size"`
}

const (
	defaultMaxMessageSize = 1 << 20
	// fieldBatchKey carries the agent's Idempotency-Key in every record
	// stored through the stream, so the lake can be checked batch by batch.
	fieldBatchKey = telemetry.StampBatchKey
	claimStored   = "stored"
)

// Outcome of streamBackend.claim.
type claimResult int

const (
	claimOwned claimResult = iota
	claimDuplicate
	claimInProgress
)

// streamBackend holds the connection and the shared bucket. A claim is a
// key in the bucket: "stored", or "claim <replica> <deadline>" while one
// replica stores the batch. A claim whose deadline passed (its replica
// died) is taken over by compare-and-set on its revision; should two
// replicas still both publish, the stream's own de-duplication (the
// message id) keeps one.
type streamBackend struct {
	cfg     *JetStream
	replica string
	window  time.Duration
	lease   time.Duration
	log     telegraf.Logger

	nc *nats.Conn
	js jetstream.JetStream
	// encoders are the encoding slots: decodeSlots of them, made on first
	// use and kept, so encoding memory is bounded and not reallocated.
	encoders chan *telemetrystream.Encoder

	mu sync.Mutex
	kv jetstream.KeyValue
	// settingUp is closed when the setup in progress ends.
	settingUp chan struct{}
	// down: the operator was told the engine fails; told again once it
	// works, so an outage is two log lines, not one per request.
	down atomic.Bool
	// stop ends prepare.
	stop context.CancelFunc
}

func (b *streamBackend) failed(err error) {
	if b.down.Swap(true) {
		b.log.Debugf("JetStream still failing: %v", err)
		return
	}
	b.log.Warnf("JetStream failing: %v; batches are answered 503 with Retry-After (agents keep them) until it works again", err)
}

func (b *streamBackend) working() {
	if b.down.Swap(false) {
		b.log.Info("JetStream works again; storing batches")
	}
}

func (j *JetStream) validate() error {
	j.SetDefaults()
	if j.DedupBucket == "" {
		j.DedupBucket = telemetrystream.DefaultDedupBucket
	}
	if j.MaxMessageSize == 0 {
		j.MaxMessageSize = defaultMaxMessageSize
	}
	if j.MaxMessageSize < 64<<10 || j.MaxMessageSize > 64<<20 {
		return fmt.Errorf("jetstream.max_message_size %d must be between 64KiB and 64MiB (and at most the NATS servers' max_payload)", j.MaxMessageSize)
	}
	return j.Validate("jetstream")
}

func newStreamBackend(cfg *JetStream, window, lease time.Duration, log telegraf.Logger) (*streamBackend, error) {
	host, _ := os.Hostname()
	b := &streamBackend{
		cfg:      cfg,
		replica:  fmt.Sprintf("%s/%d", host, os.Getpid()),
		window:   window,
		lease:    lease,
		log:      log,
		encoders: make(chan *telemetrystream.Encoder, decodeSlots()),
	}
	for range decodeSlots() {
		b.encoders <- nil
	}
	var err error
	b.nc, b.js, err = cfg.Connect("vmware_telemetry_listener "+b.replica, log)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	b.stop = stop
	go b.prepare(ctx)
	return b, nil
}

// prepare sets the stream and the bucket up as soon as the engine answers,
// so a replica's first batch does not wait for it (after a NATS server is
// lost, creating them can take the stream's leader election).
func (b *streamBackend) prepare(ctx context.Context) {
	for {
		// Short tries, spaced at random: replicas starting together
		// then find the stream and bucket their first tries created.
		try, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := b.bucket(try)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		b.log.Debugf("JetStream not ready yet: %v", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second + rand.N(time.Second)):
		}
	}
}

// bucket creates the stream and the bucket on first use, so the listener
// starts while NATS is down and serves once it is up.
func (b *streamBackend) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	for {
		b.mu.Lock()
		if b.kv != nil {
			kv := b.kv
			b.mu.Unlock()
			return kv, nil
		}
		if wait := b.settingUp; wait != nil {
			// Another request (or prepare) is setting up: wait for it,
			// as long as this request may.
			b.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("waiting for the stream's setup: %w", ctx.Err())
			}
		}
		done := make(chan struct{})
		b.settingUp = done
		b.mu.Unlock()

		kv, err := b.setup(ctx)
		b.mu.Lock()
		b.kv = kv
		b.settingUp = nil
		b.mu.Unlock()
		close(done)
		return kv, err
	}
}

func (b *streamBackend) setup(ctx context.Context) (jetstream.KeyValue, error) {
	if _, err := b.cfg.EnsureStream(ctx, b.js); err != nil {
		return nil, err
	}
	kv, err := b.cfg.EnsureBucket(ctx, b.js, b.cfg.DedupBucket, "batch keys the telemetry listener replicas stored", b.window)
	if err != nil {
		return nil, err
	}
	b.log.Infof("Storing batches in JetStream stream %q (%d replicas), batch keys in bucket %q", b.cfg.Stream, b.cfg.Replicas, b.cfg.DedupBucket)
	return kv, nil
}

// claim takes id for this replica, or says it was stored or is being
// stored elsewhere. rev is the claim's revision, for release.
func (b *streamBackend) claim(ctx context.Context, id string, now time.Time) (res claimResult, rev uint64, err error) {
	kv, err := b.bucket(ctx)
	if err != nil {
		return 0, 0, err
	}
	mine := []byte(fmt.Sprintf("claim %s %d", b.replica, now.Add(b.lease).UnixNano()))
	for range 3 {
		rev, err = kv.Create(ctx, id, mine)
		if err == nil {
			return claimOwned, rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, 0, fmt.Errorf("claiming batch key: %w", err)
		}
		entry, err := kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile: claim again
		}
		if err != nil {
			return 0, 0, fmt.Errorf("reading batch key: %w", err)
		}
		value := string(entry.Value())
		if value == claimStored {
			return claimDuplicate, 0, nil
		}
		if deadline, ok := claimDeadline(value); ok && now.UnixNano() < deadline {
			return claimInProgress, 0, nil
		}
		// The replica holding it died (or cannot reach the store): take
		// it over unless another replica did first.
		rev, err = kv.Update(ctx, id, mine, entry.Revision())
		if err == nil {
			b.log.Debugf("Took over batch key %s from %q", id, value)
			return claimOwned, rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, 0, fmt.Errorf("taking over batch key: %w", err)
		}
	}
	return claimInProgress, 0, nil
}

func claimDeadline(value string) (int64, bool) {
	f := strings.Fields(value)
	if len(f) != 3 || f[0] != "claim" {
		return 0, false
	}
	d, err := strconv.ParseInt(f[2], 10, 64)
	return d, err == nil
}

// encode makes the batch's message in one of the encoding slots, waiting
// for one while ctx lasts.
func (b *streamBackend) encode(ctx context.Context, batch telemetrystream.Batch) (*nats.Msg, error) {
	var enc *telemetrystream.Encoder
	select {
	case enc = <-b.encoders:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to encode: %w", ctx.Err())
	}
	defer func() { b.encoders <- enc }()
	if enc == nil {
		var err error
		if enc, err = telemetrystream.NewEncoder(); err != nil {
			return nil, err
		}
	}
	return enc.Encode(b.cfg.Subject, batch, telemetrystream.MessageLimit(b.nc.MaxPayload(), int64(b.cfg.MaxMessageSize)))
}

// publish hands the message to the stream and waits for its
// acknowledgement (the stream's replicas have it). duplicate: the stream
// had it already.
func (b *streamBackend) publish(ctx context.Context, msg *nats.Msg) (duplicate bool, err error) {
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(b.cfg.Stream))
	if telemetrystream.StreamFull(err) {
		return false, fmt.Errorf("stream %q is full (%w): check that the lake consumer keeps up (its pending count), then raise the stream's max_bytes or the NATS servers' max_file_store", b.cfg.Stream, err)
	}
	if err != nil {
		return false, fmt.Errorf("publishing to stream %q: %w", b.cfg.Stream, err)
	}
	return ack.Duplicate, nil
}

// stored marks id stored for dedup_window. A failure leaves the claim to
// expire; a retry then publishes again and the stream answers duplicate.
// It does not take the request's context: the batch is in the stream
// whether or not the client is still waiting.
func (b *streamBackend) stored(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.kv.Put(ctx, id, []byte(claimStored)); err != nil {
		b.log.Warnf("Batch %s is in the stream but could not be marked stored: %v; the stream's duplicate window catches a retry", id, err)
	}
}

// release gives up a claim so a retry stores the batch; only this claim's
// revision is deleted, never a takeover's.
func (b *streamBackend) release(id string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.kv.Delete(ctx, id, jetstream.LastRevision(rev)); err != nil {
		b.log.Debugf("Releasing batch key %s: %v; it expires with its claim", id, err)
	}
}

func (b *streamBackend) close() {
	if b.stop != nil {
		b.stop()
	}
	if b.nc != nil {
		b.nc.Close()
	}
}

// serveStream stores one batch through JetStream: claim the key in the
// shared bucket, read and check the batch, publish it and answer 201 once
// the stream acknowledged it. Whatever fails, the agent keeps the batch:
// 503 with Retry-After, the claim released.
func (l *Listener) serveStream(w http.ResponseWriter, r *http.Request, req *request) int {
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(l.AckTimeout))
	defer cancel()
	b := l.stream
	var id string
	var rev uint64
	if req.key != "" {
		dk := newDedupKey(endpointScope(req.endpoint), req.collector, req.instance, req.key)
		id = hex.EncodeToString(dk[:])
		res, r2, err := b.claim(ctx, id, req.received)
		switch {
		case err != nil:
			l.stats.streamErrors.Incr(1)
			b.failed(err)
			return l.unavailable(w, req, "the server cannot reach its de-duplication store; retry later")
		case res == claimDuplicate:
			return l.duplicate(w, req)
		case res == claimInProgress:
			return l.unavailable(w, req, "an earlier attempt of this batch is being stored; retry later")
		}
		rev = r2
	}
	release := func() {
		if id != "" {
			b.release(id, rev)
		}
	}

	metrics, cost, err := l.readMetrics(w, r, req)
	if err != nil {
		l.undeliveredBytes.give(cost)
		release()
		return l.refuse(w, req, err)
	}
	defer l.tracker.release()
	l.stamp(metrics, req)
	if req.key != "" {
		for _, m := range metrics {
			m.AddField(fieldBatchKey, req.key)
		}
	}
	n := int64(len(metrics))
	msg, err := b.encode(ctx, telemetrystream.Batch{ID: id, Key: req.key, Events: req.endpoint == endpointEvents, Metrics: metrics})
	// From here the message, not the metrics (no longer referenced), is
	// what waits for the stream: it takes their place in
	// max_undelivered_bytes.
	held := cost
	if err == nil {
		held = int64(len(msg.Data))
		if held > cost && !l.undeliveredBytes.take(held-cost) {
			held = cost
			err = errorf(http.StatusTooManyRequests, "the server holds max_undelivered_bytes of batches; retry later")
		}
	}
	if held < cost {
		l.undeliveredBytes.give(cost - held)
	}
	defer l.undeliveredBytes.give(held)
	switch {
	case errors.Is(err, telemetrystream.ErrTooLarge):
		release()
		return l.refuse(w, req, wrapError(http.StatusRequestEntityTooLarge, err, "batch of %d metrics", n))
	case errors.As(err, new(*httpError)):
		release()
		return l.refuse(w, req, err)
	case err != nil:
		release()
		return l.unavailable(w, req, "the server cannot encode batches right now; retry later")
	}
	dup, err := b.publish(ctx, msg)
	if err != nil {
		release()
		l.stats.streamErrors.Incr(1)
		b.failed(fmt.Errorf("batch from %s/%s not stored: %w", req.collector, req.instance, err))
		return l.unavailable(w, req, "the server cannot store batches right now; retry later")
	}
	b.working()
	if id != "" {
		b.stored(id)
	}
	if dup {
		return l.duplicate(w, req)
	}
	l.stats.stored(req.endpoint, n)
	return l.created(w, n)
}
