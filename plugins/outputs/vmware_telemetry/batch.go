package vmware_telemetry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/influxdata/telegraf"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Delivery and idempotency.
//
// Telegraf hands Write a batch. If Write returns an error, the whole batch
// stays at the front of the buffer, in order, and comes back in the next
// Write, possibly with newer metrics appended. (Telegraf's partial-write
// error lives in its internal package, out of reach of a plugin built
// outside its module, so a write is all or nothing for Telegraf.)
//
// The output splits a batch into chunks, one POST each, and keys each chunk
// with a hash of what it sends:
//
//	Idempotency-Key = hex(SHA-256(instance 0 level 0 dictionary version 0 body before compression))[:32]
//
// The body is a deterministic function of the metrics (sorted tags and
// fields, keyed pseudonyms), so the same metrics give the same key. When a
// write fails, the output remembers the chunks it got to, in order: those
// done (stored or refused for good) and the one that failed (key and line
// count). The next Write re-forms them from the front of the batch while
// their keys match: done chunks are not sent again, the failed one is sent
// again with the same key, new metrics go into new chunks after them. So a
// retry carries the same key however many metrics arrived meanwhile, and a
// chunk whose answer was lost is stored once (the server de-duplicates by
// key). The remembered chunks are also Telegraf plugin state: with a
// statefile they survive a restart (the disk buffer keeps the metrics).

type line struct {
	start, end int // byte range in the encoder's buffer
	metric     int // index in the batch
}

// batch is the work of one Write; reused across writes.
type batch struct {
	view  telemetry.View
	lines []line
	raw   []byte
	// Counted once the write succeeds, so retries do not count twice.
	dropped  map[telemetry.Verdict]int
	rejected int
}

// chunk is a run of lines sent in one request.
type chunk struct {
	first, n int
	key      string
	done     bool // stored or refused in an earlier attempt: not sent again
}

type pendingChunk struct {
	Key   string `json:"key"`
	Lines int    `json:"lines"`
	Done  bool   `json:"done,omitempty"`
}

// State is what the output keeps in Telegraf's statefile.
type State struct {
	// Instance is the pseudonym the pending keys were made under; a new key
	// or instance id makes them useless.
	Instance string         `json:"instance"`
	Pending  []pendingChunk `json:"pending,omitempty"`
}

func (t *VMwareTelemetry) GetState() interface{} {
	return State{Instance: t.instance, Pending: t.pending}
}

func (t *VMwareTelemetry) SetState(state interface{}) error {
	s, ok := state.(State)
	if !ok {
		return fmt.Errorf("state of type %T unknown", state)
	}
	for _, p := range s.Pending {
		if p.Lines <= 0 || !telemetry.ValidID(p.Key) {
			return fmt.Errorf("pending batch %q with %d lines is invalid", p.Key, p.Lines)
		}
	}
	if t.instance == "" {
		// The key file is created by Connect: check the state then.
		t.restored = &s
		return nil
	}
	t.applyState(s)
	return nil
}

func (t *VMwareTelemetry) applyState(s State) {
	if s.Instance != t.instance {
		t.Log.Debug("Ignoring saved pending batches of another key or instance")
		return
	}
	t.pending = s.Pending
}

// prepare applies the policy to every metric and encodes what leaves.
func (t *VMwareTelemetry) prepare(b *batch, metrics []telegraf.Metric) {
	b.lines = b.lines[:0]
	if b.dropped == nil {
		b.dropped = make(map[telemetry.Verdict]int)
	}
	clear(b.dropped)
	b.rejected = 0
	t.encoder.Reset()
	for i, m := range metrics {
		if verdict := t.policy.View(m, &b.view); verdict != telemetry.Sent {
			b.dropped[verdict]++
			continue
		}
		start := t.encoder.Len()
		if err := t.encoder.AppendView(&b.view); err != nil {
			t.Log.Errorf("Dropping a metric that cannot be encoded: %v", err)
			b.rejected++
			continue
		}
		b.lines = append(b.lines, line{start: start, end: t.encoder.Len(), metric: i})
	}
	b.raw = t.encoder.Bytes()
}

func (b *batch) bytes(c chunk) []byte {
	return b.raw[b.lines[c.first].start:b.lines[c.first+c.n-1].end]
}

// done counts the batch's drops once the write succeeded.
func (t *VMwareTelemetry) done(b *batch) {
	for v, n := range b.dropped {
		t.stats.dropped(v, n)
	}
	t.stats.metricsRejected.Incr(int64(b.rejected))
}

// key derives a chunk's idempotency key from what it sends.
func (t *VMwareTelemetry) key(b *batch, c chunk) string {
	h := sha256.New()
	h.Write([]byte(t.instance))
	h.Write([]byte{0})
	h.Write([]byte(t.level))
	h.Write([]byte{0})
	h.Write([]byte(t.dict.Version))
	h.Write([]byte{0})
	h.Write(b.bytes(c))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// plan cuts the batch into chunks: first the pending chunks of the last
// failed write, as long as the batch starts with them, then the rest in
// chunks whose raw size is expected to compress below max_payload_bytes
// (send halves any that do not).
func (t *VMwareTelemetry) plan(b *batch) []chunk {
	var chunks []chunk
	pos := 0
	for _, p := range t.pending {
		if pos+p.Lines > len(b.lines) {
			break
		}
		c := chunk{first: pos, n: p.Lines, done: p.Done}
		c.key = t.key(b, c)
		if c.key != p.Key {
			break
		}
		chunks = append(chunks, c)
		pos += p.Lines
	}
	if len(chunks) < len(t.pending) {
		t.Log.Debugf("%d of %d pending batches no longer match the buffer; sending their metrics in new batches",
			len(t.pending)-len(chunks), len(t.pending))
	}

	maxRaw := t.rawTarget()
	for pos < len(b.lines) {
		c := chunk{first: pos}
		size := 0
		for pos < len(b.lines) {
			l := b.lines[pos]
			if c.n > 0 && size+(l.end-l.start) > maxRaw {
				break
			}
			size += l.end - l.start
			c.n++
			pos++
		}
		c.key = t.key(b, c)
		chunks = append(chunks, c)
	}
	return chunks
}

// rawTarget is the raw size expected to compress to max_payload_bytes,
// from the compression ratio seen so far, with a margin; a misestimate
// only costs a split.
func (t *VMwareTelemetry) rawTarget() int {
	ratio := 4.0
	if t.seenRaw > 0 && t.seenCompressed > 0 {
		ratio = min(max(float64(t.seenRaw)/float64(t.seenCompressed)*0.8, 1), 50)
	}
	return int(float64(t.MaxPayloadBytes) * ratio)
}

// halves splits a chunk of two or more lines.
func (t *VMwareTelemetry) halves(b *batch, c chunk) (chunk, chunk) {
	h1 := chunk{first: c.first, n: c.n / 2}
	h2 := chunk{first: c.first + h1.n, n: c.n - h1.n}
	h1.key = t.key(b, h1)
	h2.key = t.key(b, h2)
	return h1, h2
}
