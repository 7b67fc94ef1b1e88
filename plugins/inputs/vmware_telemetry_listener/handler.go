package vmware_telemetry_listener

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Tags and field every stored metric carries; they overwrite any the agent
// sent under the same names (the dictionary refuses such names anyway).
const (
	tagCollector     = "collector"
	tagInstance      = "instance"
	tagLevel         = "level"
	fieldReceiveTime = "receive_time"
)

type endpoint int

const (
	endpointBatches endpoint = iota
	endpointEvents
)

// request is what the handler learnt from a request before reading its body.
type request struct {
	endpoint  endpoint
	collector string
	instance  string
	level     telemetry.Level
	// dictionary version the agent applied (header), for messages only
	dictionary string
	key        string
	encoding   string
	received   time.Time
}

func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ep endpoint
	switch {
	case r.URL.Path == l.Path:
		ep = endpointBatches
	case l.EventsPath != "" && r.URL.Path == l.EventsPath:
		ep = endpointEvents
	default:
		l.stats.request(ep, http.StatusNotFound)
		http.NotFound(w, r)
		return
	}
	status := l.serve(w, r, ep)
	l.stats.request(ep, status)
}

// serve handles one request and returns the status it answered.
func (l *Listener) serve(w http.ResponseWriter, r *http.Request, ep endpoint) int {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return l.refuse(w, nil, errorf(http.StatusMethodNotAllowed, "method %s not allowed; use POST", r.Method))
	}
	if name := credentialInQuery(r.URL.RawQuery); name != "" {
		return l.refuse(w, nil, errorf(http.StatusBadRequest,
			"a query parameter named like %q looks like a credential: send tokens only in the Authorization header, URLs end up in logs", name))
	}
	if err := l.auth.check(r, ep); err != nil {
		l.stats.authFailures.Incr(1)
		if errors.Is(err, errOtherEndpoint) {
			return l.refuse(w, nil, wrapError(http.StatusForbidden, err, "forbidden"))
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="telemetry"`)
		return l.refuse(w, nil, wrapError(http.StatusUnauthorized, err, "unauthorized"))
	}
	select {
	case <-l.stopping: // a request on a connection kept open
		return l.unavailable(w, nil, "")
	default:
	}
	req, err := l.parseRequest(r, ep)
	if err != nil {
		return l.refuse(w, nil, err)
	}
	if r.ContentLength > int64(l.MaxBodySize) {
		return l.refuse(w, req, errorf(http.StatusRequestEntityTooLarge,
			"body of %d bytes exceeds max_body_size %d; split the batch", r.ContentLength, int64(l.MaxBodySize)))
	}

	// Claim the idempotency key; a retry that arrives while the first
	// attempt is still being stored waits for that attempt's outcome.
	var p *pending
	if req.key != "" {
		dk := newDedupKey(endpointScope(ep), req.collector, req.instance, req.key)
		for p == nil {
			state, cur := l.dedup.begin(dk, req.received)
			switch state {
			case beginDuplicate:
				return l.duplicate(w, req)
			case beginStarted:
				p = cur
			case beginInFlight:
				if !l.wait(r, cur) {
					return l.unavailable(w, req, "an earlier attempt of this batch is still being written; retry later")
				}
				if cur.stored {
					return l.duplicate(w, req)
				}
				// That attempt failed: this one stores the batch.
			}
		}
	} else {
		p = &pending{done: make(chan struct{})}
	}

	status, err := l.store(w, r, req, p)
	if err != nil {
		return l.refuse(w, req, err)
	}
	return status
}

// store reads, checks and hands one batch to the pipeline, then answers.
// p is owned by the caller's claim: every path either hands it to the
// tracker or aborts it.
func (l *Listener) store(w http.ResponseWriter, r *http.Request, req *request, p *pending) (int, error) {
	if err := l.dedup.ready(p); err != nil {
		l.dedup.abort(p)
		l.setRetryAfter(w)
		// The operator's log has the cause; the client gets no server paths.
		return 0, errorf(http.StatusServiceUnavailable, "the server cannot record batch keys right now (its disk may be full); retry later")
	}
	if !l.tracker.tryAcquire() {
		l.dedup.abort(p)
		l.stats.backpressure.Incr(1)
		l.setRetryAfter(w)
		return 0, errorf(http.StatusTooManyRequests,
			"%d batches are waiting for the outputs (max_undelivered_batches); retry later", l.MaxUndeliveredBatches)
	}
	metrics, err := l.readMetrics(w, r, req)
	if err == nil && len(metrics) == 0 {
		err = errors.New("no metrics in the body")
	}
	if err != nil {
		l.tracker.release()
		l.dedup.abort(p)
		return 0, err
	}
	for _, m := range metrics {
		m.AddTag(tagCollector, req.collector)
		m.AddTag(tagInstance, req.instance)
		m.AddTag(tagLevel, string(req.level))
		m.AddField(fieldReceiveTime, req.received.UnixNano())
	}
	n := int64(len(metrics))

	if l.Acknowledge == ackAccepted {
		l.tracker.add(metrics, func(bool) {})
		if err := l.dedup.commit(p, req.received); err != nil {
			l.Log.Warnf("Batch from %s/%s is stored; its key is kept in memory only until the de-duplication log can be written: %v", req.collector, req.instance, err)
		}
		l.stats.stored(req.endpoint, n)
		return l.created(w, n), nil
	}

	received := req.received
	l.tracker.add(metrics, func(delivered bool) {
		if !delivered {
			l.dedup.abort(p)
			return
		}
		if err := l.dedup.commit(p, received); err != nil {
			l.Log.Warnf("Batch from %s/%s is stored; its key is kept in memory only until the de-duplication log can be written: %v", req.collector, req.instance, err)
		}
	})
	if !l.wait(r, p) {
		// The batch stays in the pipeline and its key stays claimed: a
		// retry waits for the outcome instead of storing it again.
		return l.unavailable(w, req, "the outputs have not written the batch yet; retry later"), nil
	}
	if !p.stored {
		l.Log.Warnf("The outputs dropped a batch of %d metrics from %s/%s; the agent will retry", n, req.collector, req.instance)
		return l.unavailable(w, req, "the outputs dropped the batch; retry later"), nil
	}
	l.stats.stored(req.endpoint, n)
	return l.created(w, n), nil
}

// wait blocks until p is done, for at most ack_timeout, until the client
// goes away or until Stop begins; false means p is not done.
func (l *Listener) wait(r *http.Request, p *pending) bool {
	timer := time.NewTimer(time.Duration(l.AckTimeout))
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		return false
	case <-r.Context().Done():
		return false
	case <-l.stopping:
		return false
	}
}

// readMetrics reads the body within max_body_size and decodes it within the
// decompressed and line size limits.
func (l *Listener) readMetrics(w http.ResponseWriter, r *http.Request, req *request) ([]telegraf.Metric, error) {
	body, err := l.readBody(w, r)
	l.stats.bytesRaw.Incr(int64(len(body)))
	if err != nil {
		return nil, err
	}

	// Decoding is CPU-bound: no more at once than there are CPUs, which
	// also bounds the memory of bodies being decoded.
	select {
	case l.decoding <- struct{}{}:
		defer func() { <-l.decoding }()
	case <-r.Context().Done():
		return nil, wrapError(http.StatusServiceUnavailable, r.Context().Err(), "request ended while waiting to decode")
	}

	switch req.endpoint {
	case endpointEvents:
		data, err := l.wire.decompress(body, req.encoding)
		l.stats.bytesDecompressed.Incr(int64(len(data)))
		if err != nil {
			return nil, err
		}
		return parseEvents(data, req.received)
	default:
		metrics, size, err := l.wire.decode(body, req.encoding, req.level, req.received)
		l.stats.bytesDecompressed.Incr(size)
		if err != nil {
			if statusOf(err) == http.StatusUnprocessableEntity {
				l.stats.levelRefusals.Incr(1)
				l.Log.Warnf("Refused a batch from %s/%s (agent dictionary version %q): %v",
					req.collector, req.instance, req.dictionary, err)
			}
			return nil, err
		}
		return metrics, nil
	}
}

// readBody reads the whole body within max_body_size, in one allocation
// when the client sent Content-Length.
func (l *Listener) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	src := http.MaxBytesReader(w, r.Body, int64(l.MaxBodySize))
	var (
		body []byte
		err  error
	)
	if r.ContentLength > 0 {
		body = make([]byte, r.ContentLength)
		var n int
		n, err = io.ReadFull(src, body)
		body = body[:n]
	} else {
		body, err = io.ReadAll(src)
	}
	if err == nil {
		return body, nil
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return body, errorf(http.StatusRequestEntityTooLarge, "body exceeds max_body_size %d; split the batch", int64(l.MaxBodySize))
	}
	return body, wrapError(http.StatusBadRequest, err, "reading body failed")
}

// parseRequest checks the query, the headers and the content type.
func (l *Listener) parseRequest(r *http.Request, ep endpoint) (*request, error) {
	req := &request{endpoint: ep, received: l.now()}
	q := r.URL.Query()
	req.collector = q.Get(queryCollector)
	req.instance = q.Get(queryInstance)
	// The values are not echoed: answers end up in the clients' logs.
	if !telemetry.ValidID(req.collector) {
		return nil, errorf(http.StatusBadRequest, "query parameter %s (%d bytes): give the collector id, 1-%d of letters, digits, '.', '_', '-' or ':'",
			queryCollector, len(req.collector), telemetry.MaxIDLength)
	}
	if !telemetry.ValidID(req.instance) {
		return nil, errorf(http.StatusBadRequest, "query parameter %s (%d bytes): give the instance id, 1-%d of letters, digits, '.', '_', '-' or ':'",
			queryInstance, len(req.instance), telemetry.MaxIDLength)
	}

	level, err := l.wire.level(r.Header.Get(headerLevel))
	if err != nil {
		return nil, err
	}
	req.level = level

	req.dictionary = r.Header.Get(headerDictionaryVersion)
	if key := r.Header.Get(headerIdempotencyKey); key != "" {
		if !telemetry.ValidID(key) {
			return nil, errorf(http.StatusBadRequest, "header %s: 1-%d of letters, digits, '.', '_', '-' or ':'",
				headerIdempotencyKey, telemetry.MaxIDLength)
		}
		req.key = key
	}

	if err := checkContentType(r.Header.Get("Content-Type"), contentTypeFor(ep)); err != nil {
		return nil, err
	}
	if req.encoding, err = l.wire.encoding(r.Header.Get("Content-Encoding")); err != nil {
		return nil, err
	}
	return req, nil
}

func contentTypeFor(ep endpoint) string {
	if ep == endpointEvents {
		return "application/json"
	}
	return contentTypeLineProtocol
}

// checkContentType wants the media type given, with charset utf-8 if any.
func checkContentType(header, want string) error {
	if header == "" {
		return errorf(http.StatusUnsupportedMediaType, "missing Content-Type; send %q", want)
	}
	mt, params, err := mime.ParseMediaType(header)
	if err != nil {
		return wrapError(http.StatusUnsupportedMediaType, err, "Content-Type %q", header)
	}
	wantType, _, _ := mime.ParseMediaType(want)
	if mt != wantType {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type %q not accepted here; send %q", mt, want)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(http.StatusUnsupportedMediaType, "charset %q not accepted; send utf-8", cs)
	}
	return nil
}

func endpointScope(ep endpoint) string {
	if ep == endpointEvents {
		return "events"
	}
	return "batches"
}

func (l *Listener) setRetryAfter(w http.ResponseWriter) {
	secs := int64((time.Duration(l.RetryAfter) + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
}

func (l *Listener) created(w http.ResponseWriter, n int64) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "stored %d metrics\n", n)
	return http.StatusCreated
}

func (l *Listener) duplicate(w http.ResponseWriter, req *request) int {
	l.stats.duplicates.Incr(1)
	l.Log.Debugf("Batch %s from %s/%s was stored before; not storing it again", req.key, req.collector, req.instance)
	w.Header().Set(headerDuplicate, "true")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintln(w, "duplicate: this batch was stored before")
	return http.StatusOK
}

func (l *Listener) unavailable(w http.ResponseWriter, req *request, msg string) int {
	select {
	case <-l.stopping:
		msg = "the server is stopping; retry later"
	default:
	}
	l.setRetryAfter(w)
	return l.refuse(w, req, errorf(http.StatusServiceUnavailable, "%s", msg))
}

// refuse answers err's status with its message as the body: the first
// error, naming what to fix.
func (l *Listener) refuse(w http.ResponseWriter, req *request, err error) int {
	code := statusOf(err)
	if req != nil && code != http.StatusTooManyRequests && code != http.StatusServiceUnavailable {
		l.Log.Debugf("Refused request from %s/%s with %d: %v", req.collector, req.instance, code, err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, err.Error())
	return code
}
