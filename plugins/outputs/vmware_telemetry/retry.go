package vmware_telemetry

import (
	"context"
	"fmt"
	"time"
)

// jitterFraction: a wait is lengthened by up to this part of itself, so
// that agents refused together do not come back together.
const jitterFraction = 0.5

// failed handles an attempt that keeps the chunk: it counts the failure
// and either waits and leaves the chunk first in the queue, to be sent
// again in this write, or remembers the chunks got to as pending, sets
// the time before which no write connects, and returns the write's error.
func (t *VMwareTelemetry) failed(d *delivery, c chunk, r response) error {
	d.attempts++
	t.failures++
	t.lastErr = r.err
	t.stats.retries.Incr(1)
	delay := t.retryDelay(r)
	if r.action == actRefusedAuth {
		t.stats.refusedAuth.Incr(1)
	}
	switch {
	case d.mayRetry(r.action, delay, t.MaxAttemptsPerWrite, time.Duration(t.RetryWithinWrite)):
		t.Log.Warnf("Retrying batch %s in %s: %v", c.key, delay.Round(time.Millisecond), r.err)
		if t.sleep(t.ctx, delay) {
			d.waited += delay
			return nil
		}
	case r.action != actRetry:
		// A refusal: waiting within the write would not change the
		// answer; the operator has to.
		t.Log.Errorf("Keeping batch %s of %d metrics, next attempt in %s: %s (%v)",
			c.key, c.n, delay.Round(time.Millisecond), advice(r.status), r.err)
	}
	t.notBefore = t.now().Add(delay)
	t.pending = d.pending()
	return fmt.Errorf("batch %s not sent, next attempt in %s (attempt %d): %w", c.key, delay.Round(time.Millisecond), t.failures, r.err)
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

// lastFlushWaits lets the agent's last flush, once it is stopping, wait
// out a backoff shorter than shutdownGrace instead of giving up: with
// Telegraf's memory buffer the batch would otherwise be lost at exit. The
// wait still ends when the grace does.
func (t *VMwareTelemetry) lastFlushWaits(wait time.Duration) bool {
	stopping := t.ctx != nil && t.ctx.Err() != nil
	return stopping && wait < shutdownGrace && t.sleep(t.reqCtx, wait)
}

// sleepContext waits d and reports true, or reports false as soon as ctx
// ends.
func sleepContext(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
