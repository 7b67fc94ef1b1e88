package vmware_telemetry

import (
	"fmt"
	"time"
)

// delivery is one write's progress through its chunks.
type delivery struct {
	queue    []chunk        // still to go, in order; the first is the current one
	answered []pendingChunk // answered in this write: stored, dropped or done before
	attempts int            // failed attempts in this write
	waited   time.Duration  // time waited for retries in this write
}

func newDelivery(chunks []chunk) *delivery {
	return &delivery{queue: chunks, answered: make([]pendingChunk, 0, len(chunks))}
}

func (d *delivery) finished() bool { return len(d.queue) == 0 }

func (d *delivery) current() chunk { return d.queue[0] }

// next records the current chunk as answered and moves on.
func (d *delivery) next() {
	c := d.queue[0]
	d.answered = append(d.answered, pendingChunk{Key: c.key, Lines: c.n, Done: true})
	d.queue = d.queue[1:]
}

// split puts the halves of the current chunk in its place.
func (d *delivery) split(h1, h2 chunk) {
	d.queue = append([]chunk{h1, h2}, d.queue[1:]...)
}

// pending is what the next write must re-form when this one stops at the
// current chunk: the chunks answered, then the current one, to be sent
// again with its key.
func (d *delivery) pending() []pendingChunk {
	c := d.queue[0]
	return append(d.answered, pendingChunk{Key: c.key, Lines: c.n})
}

// mayRetry reports whether a failed attempt that calls for a retry
// (action actRetry) is retried within this write: refusals wait for the
// next write, and the write's attempts and waits are bounded.
func (d *delivery) mayRetry(a action, delay time.Duration, maxAttempts int, budget time.Duration) bool {
	return a == actRetry && d.attempts < maxAttempts && d.waited+delay <= budget
}

// send sends the chunks in order (see chunks.go for the keys): each is
// compressed, split while over max_payload_bytes, then previewed or posted
// and its answer applied (outcome.go, retry.go). It returns an error when
// a chunk is kept for a later write; the chunks got to so far are then
// remembered as pending.
func (t *VMwareTelemetry) send(b *batch, chunks []chunk) error {
	d := newDelivery(chunks)
	for !d.finished() {
		c := d.current()
		if c.done {
			t.Log.Debugf("Batch %s was answered in an earlier attempt; not sending it again", c.key)
			d.next()
			continue
		}
		raw := b.bytes(c)
		body, err := t.compress(raw)
		if err != nil {
			return fmt.Errorf("compressing batch %s failed: %w", c.key, err)
		}
		if !t.fits(body) {
			t.splitOversized(b, d, c, len(body))
			continue
		}
		if t.Preview {
			if err := t.writePreview(c, raw, len(body)); err != nil {
				return fmt.Errorf("writing preview failed: %w", err)
			}
			d.next()
			continue
		}
		if err := t.deliver(b, d, c, raw, body); err != nil {
			return err
		}
	}
	t.pending = nil
	return nil
}
