package vmware_telemetry

import (
	"crypto/sha256"
	"encoding/hex"
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
// key). The remembered chunks are also Telegraf plugin state (state.go):
// with a statefile they survive a restart (the disk buffer keeps the
// metrics).

// chunk is a run of lines sent in one request.
type chunk struct {
	first, n int
	key      string
	done     bool // stored or refused in an earlier attempt: not sent again
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

	maxRaw := t.seen.rawFor(int64(t.MaxPayloadBytes))
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

// halves splits a chunk of two or more lines.
func (t *VMwareTelemetry) halves(b *batch, c chunk) (chunk, chunk) {
	h1 := chunk{first: c.first, n: c.n / 2}
	h2 := chunk{first: c.first + h1.n, n: c.n - h1.n}
	h1.key = t.key(b, h1)
	h2.key = t.key(b, h2)
	return h1, h2
}

// fits reports whether a compressed body is within max_payload_bytes.
func (t *VMwareTelemetry) fits(body []byte) bool {
	return int64(len(body)) <= int64(t.MaxPayloadBytes)
}

// splitOversized replaces a chunk whose body is over max_payload_bytes by
// its halves; a single metric that large can never be sent and is dropped.
func (t *VMwareTelemetry) splitOversized(b *batch, d *delivery, c chunk, size int) {
	if c.n > 1 {
		d.split(t.halves(b, c))
		return
	}
	t.Log.Errorf("Dropping batch %s: its one metric compresses to %d bytes, over max_payload_bytes %d",
		c.key, size, int64(t.MaxPayloadBytes))
	t.stats.reject(c.n)
	d.next()
}
