package vmware_telemetry_listener

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/influxdata/telegraf"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Tags and field every stored metric carries; they overwrite any the agent
// sent under the same names (the dictionary refuses such names anyway).
const (
	tagCollector     = telemetry.StampCollector
	tagInstance      = telemetry.StampInstance
	tagLevel         = telemetry.StampLevel
	fieldReceiveTime = telemetry.StampReceiveTime
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

	if l.stream != nil {
		return l.serveStream(w, r, req)
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
	metrics, cost, err := l.readMetrics(w, r, req)
	if err != nil {
		l.undeliveredBytes.give(cost)
		l.dedup.abort(p)
		return 0, err
	}
	l.stamp(metrics, req)
	n := int64(len(metrics))

	if l.Acknowledge == ackAccepted {
		l.tracker.add(metrics, func(bool) { l.undeliveredBytes.give(cost) })
		if err := l.dedup.commit(p, req.received); err != nil {
			l.Log.Warnf("Batch from %s/%s is stored; its key is kept in memory only until the de-duplication log can be written: %v", req.collector, req.instance, err)
		}
		l.stats.stored(req.endpoint, n)
		return l.created(w, n), nil
	}

	received := req.received
	l.tracker.add(metrics, func(delivered bool) {
		l.undeliveredBytes.give(cost)
		if !delivered {
			l.dedup.abort(p)
			return
		}
		if err := l.dedup.commit(p, received); err != nil {
			l.Log.Warnf("Batch from %s/%s is stored; its key is kept in memory only until the de-duplication log can be written: %v", req.collector, req.instance, err)
		}
	})
	l.Log.Debugf("Batch %q from %s/%s: %d metrics waiting for the outputs", req.key, req.collector, req.instance, n)
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

// stamp adds what every stored metric carries: who sent it, at which
// level, when it arrived.
func (l *Listener) stamp(metrics []telegraf.Metric, req *request) {
	for _, m := range metrics {
		m.AddTag(tagCollector, req.collector)
		m.AddTag(tagInstance, req.instance)
		m.AddTag(tagLevel, string(req.level))
		m.AddField(fieldReceiveTime, req.received.UnixNano())
	}
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

// readMetrics reads the whole body, then takes a pipeline slot and a
// decoding slot and decodes it, in that order: a slow sender holds only the
// bytes it sent (from max_body_buffer), never a slot real agents need. The
// decoded metrics' estimated memory (cost) is taken from
// max_undelivered_bytes while decoding and stays taken until the outputs
// have written them; on error the caller gives cost back. On success the
// pipeline slot is the caller's (tracker.add gives it back on delivery).
func (l *Listener) readMetrics(w http.ResponseWriter, r *http.Request, req *request) (metrics []telegraf.Metric, cost int64, err error) {
	body, err := l.readBody(w, r)
	defer l.bodies.give(body.taken)
	l.stats.bytesRaw.Incr(body.size)
	if err != nil {
		return nil, 0, err
	}

	if !l.tracker.tryAcquire() {
		l.stats.backpressure.Incr(1)
		return nil, 0, errorf(http.StatusTooManyRequests,
			"%d batches are waiting for the outputs (max_undelivered_batches); retry later", l.MaxUndeliveredBatches)
	}
	defer func() {
		if err != nil {
			l.tracker.release()
		}
	}()

	// Decoding is CPU-bound: no more at once than there are CPUs (at most
	// maxDecodeSlots), which also bounds the decompressors' memory.
	select {
	case l.decoding <- struct{}{}:
		defer func() { <-l.decoding }()
	case <-r.Context().Done():
		return nil, 0, wrapError(http.StatusServiceUnavailable, r.Context().Err(), "request ended while waiting to decode")
	}

	admit := l.admitter(req.endpoint)
	defer func() { cost = admit.reserved }()
	switch req.endpoint {
	case endpointEvents:
		src, closeFn, err := l.wire.decoder.Open(body.reader(), req.encoding)
		if err != nil {
			return nil, 0, decodeError(err)
		}
		defer closeFn()
		counted := &countingReader{r: src}
		metrics, err = parseEvents(counted, req.received, int64(l.MaxLineSize), admit.admit)
		l.stats.bytesDecompressed.Incr(counted.n)
		if err != nil {
			return nil, 0, err
		}
	default:
		var size int64
		metrics, size, err = l.wire.decode(body.reader(), req.encoding, req.level, req.received, admit.admit)
		l.stats.bytesDecompressed.Incr(size)
		if err != nil {
			if statusOf(err) == http.StatusUnprocessableEntity {
				l.stats.levelRefusals.Incr(1)
				l.Log.Warnf("Refused a batch from %s/%s (agent dictionary version %.40q): %s",
					req.collector, req.instance, req.dictionary, clip(err.Error()))
			}
			return nil, 0, err
		}
	}
	if len(metrics) == 0 {
		return nil, 0, errors.New("no metrics in the body")
	}
	return metrics, 0, nil
}

// admitter checks each decoded metric against max_batch_metrics and takes
// its estimated memory from max_undelivered_bytes, in steps of
// admitStep bytes to keep the budget's lock out of the way.
type admitter struct {
	l        *Listener
	what     string // "metrics" or "events"
	max      int
	maxName  string // the setting or rule max comes from
	n        int
	used     int64 // estimated bytes of the metrics admitted
	reserved int64 // taken from the budget, at least used
}

const admitStep = 64 << 10

func (l *Listener) admitter(ep endpoint) *admitter {
	a := &admitter{l: l, what: "metrics", max: l.MaxBatchMetrics, maxName: "max_batch_metrics"}
	if ep == endpointEvents {
		a.what = "events"
		if l.MaxBatchMetrics > maxEvents {
			a.max, a.maxName = maxEvents, "the events endpoint's limit"
		}
	}
	return a
}

func (a *admitter) admit(m telegraf.Metric) error {
	a.n++
	if a.n > a.max {
		return errorf(http.StatusRequestEntityTooLarge, "more than %d %s in one request (%s); split the batch", a.max, a.what, a.maxName)
	}
	a.used += metricCost(m)
	if a.used <= a.reserved {
		return nil
	}
	total := int64(a.l.MaxUndeliveredBytes)
	if a.used > total {
		return errorf(http.StatusRequestEntityTooLarge,
			"the %s decoded so far take more than max_undelivered_bytes (%d bytes) in memory; split the batch", a.what, total)
	}
	step := min(max(a.used-a.reserved, admitStep), total-a.reserved)
	if !a.l.undeliveredBytes.take(step) {
		a.l.stats.backpressure.Incr(1)
		return errorf(http.StatusTooManyRequests,
			"decoded batches waiting for the outputs fill max_undelivered_bytes (%d bytes); retry later", total)
	}
	a.reserved += step
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// body is a request body read in chunks of up to bodyChunk bytes, each
// taken from max_body_buffer as it arrives: a slow sender holds only what
// it sent, for at most read_timeout.
type body struct {
	chunks [][]byte
	size   int64 // bytes read
	taken  int64 // bytes taken from the body budget
}

// reader reads the chunks in order; not a bytes.Buffer, so zstd streams.
func (b *body) reader() io.Reader {
	rs := make([]io.Reader, len(b.chunks))
	for i, c := range b.chunks {
		rs[i] = bytes.NewReader(c)
	}
	return io.MultiReader(rs...)
}

// readBody reads the whole body within max_body_size and max_body_buffer.
// The returned body is never nil; its bytes are taken from the budget even
// on error, for the caller to give back.
func (l *Listener) readBody(w http.ResponseWriter, r *http.Request) (*body, error) {
	src := http.MaxBytesReader(w, r.Body, int64(l.MaxBodySize))
	b := &body{}
	for r.ContentLength < 0 || b.size < r.ContentLength {
		size := int64(bodyChunk)
		if r.ContentLength >= 0 {
			size = min(size, r.ContentLength-b.size)
		}
		if !l.bodies.take(size) {
			l.stats.backpressure.Incr(1)
			return b, errorf(http.StatusTooManyRequests,
				"the server holds max_body_buffer (%d bytes) of bodies being received; retry later", int64(l.MaxBodyBuffer))
		}
		b.taken += size
		chunk := make([]byte, size)
		n, err := io.ReadFull(src, chunk)
		if n > 0 {
			b.chunks = append(b.chunks, chunk[:n])
			b.size += int64(n)
		}
		if r.ContentLength < 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			break
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return b, errorf(http.StatusRequestEntityTooLarge, "body exceeds max_body_size %d; split the batch", int64(l.MaxBodySize))
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return b, errorf(http.StatusRequestTimeout, "body not received within read_timeout %s", time.Duration(l.ReadTimeout))
		}
		if err != nil {
			return b, wrapError(http.StatusBadRequest, err, "reading body failed")
		}
	}
	return b, nil
}

// parseRequest checks the query, the headers and the content type.
func (l *Listener) parseRequest(r *http.Request, ep endpoint) (*request, error) {
	req := &request{endpoint: ep, received: l.now()}
	q := r.URL.Query()
	req.collector = q.Get(telemetry.QueryCollector)
	req.instance = q.Get(telemetry.QueryInstance)
	// The values are not echoed: answers end up in the clients' logs.
	if !telemetry.ValidID(req.collector) {
		return nil, errorf(http.StatusBadRequest, "query parameter %s (%d bytes): give the collector id, 1-%d of letters, digits, '.', '_', '-' or ':'",
			telemetry.QueryCollector, len(req.collector), telemetry.MaxIDLength)
	}
	switch {
	case ep == endpointBatches && !telemetry.IsInstanceID(req.instance):
		return nil, errorf(http.StatusBadRequest, "query parameter %s (%d bytes): give the instance pseudonym, %d lowercase hex digits, as outputs.vmware_telemetry sends",
			telemetry.QueryInstance, len(req.instance), telemetry.InstanceIDLength)
	case !telemetry.ValidID(req.instance):
		return nil, errorf(http.StatusBadRequest, "query parameter %s (%d bytes): give the instance id, 1-%d of letters, digits, '.', '_', '-' or ':'",
			telemetry.QueryInstance, len(req.instance), telemetry.MaxIDLength)
	}

	level, err := l.wire.level(r.Header.Get(telemetry.HeaderLevel))
	if err != nil {
		return nil, err
	}
	req.level = level

	req.dictionary = r.Header.Get(telemetry.HeaderDictionaryVersion)
	if key := r.Header.Get(telemetry.HeaderIdempotencyKey); key != "" {
		if !telemetry.ValidID(key) {
			return nil, errorf(http.StatusBadRequest, "header %s: 1-%d of letters, digits, '.', '_', '-' or ':'",
				telemetry.HeaderIdempotencyKey, telemetry.MaxIDLength)
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
		return telemetry.EventContentType
	}
	return telemetry.ContentType
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
	w.Header().Set(telemetry.HeaderDuplicate, "true")
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
		l.Log.Debugf("Refused request from %s/%s with %d: %s", req.collector, req.instance, code, clip(err.Error()))
	}
	if (code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable) && w.Header().Get("Retry-After") == "" {
		l.setRetryAfter(w)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, clip(err.Error()))
	return code
}

// maxMessage bounds what a refusal repeats of a client's input (names,
// keys) in the answer and the log.
const maxMessage = 512

func clip(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "... (cut)"
}
