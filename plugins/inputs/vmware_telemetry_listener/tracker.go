package vmware_telemetry_listener

import (
	"context"
	"sync"

	"github.com/influxdata/telegraf"
)

// tracker hands batches to Telegraf's pipeline as tracked metric groups and
// bounds how many of them may be undelivered at once: the listener's
// backpressure. A batch takes a slot before its body is read and gives it
// back when every output has accepted (or dropped) its metrics, so memory is
// bounded by max_undelivered_batches however fast agents post.
type tracker struct {
	acc   telegraf.TrackingAccumulator
	slots chan struct{}

	mu sync.Mutex
	// halves holds, by tracking ID, whichever of a batch's registration
	// (its callback) and its delivery came first: a fast output can
	// deliver before AddTrackingMetricGroup returns.
	halves map[telegraf.TrackingID]half

	// freed gets a token whenever a slot is given back (idle waits on it).
	freed chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

func newTracker(acc telegraf.Accumulator, maxUndelivered int) *tracker {
	return &tracker{
		// The delivery channel holds at most one entry per slot, so the
		// accumulator never finds it full.
		acc:    acc.WithTracking(maxUndelivered),
		slots:  make(chan struct{}, maxUndelivered),
		halves: make(map[telegraf.TrackingID]half),
		freed:  make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
}

func (t *tracker) start() {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			select {
			case <-t.stop:
				return
			case info := <-t.acc.Delivered():
				t.deliver(info.ID(), info.Delivered())
			}
		}
	}()
}

// tryAcquire takes a slot without blocking; false means the pipeline is
// saturated and the client should come back later.
func (t *tracker) tryAcquire() bool {
	select {
	case t.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// release gives back a slot taken by tryAcquire for a batch that never
// reached the pipeline.
func (t *tracker) release() {
	<-t.slots
	t.signalFreed()
}

func (t *tracker) signalFreed() {
	select {
	case t.freed <- struct{}{}:
	default: // a token is pending already
	}
}

// idle waits until no batch is undelivered or ctx ends; true if idle.
func (t *tracker) idle(ctx context.Context) bool {
	for t.undelivered() > 0 {
		select {
		case <-t.freed:
		case <-ctx.Done():
			return t.undelivered() == 0
		}
	}
	return true
}

// add hands the metrics to the pipeline. done runs once, on the tracker's
// goroutine, when the outputs accepted or dropped them; the slot is
// released just before. metrics must not be empty.
func (t *tracker) add(metrics []telegraf.Metric, done func(delivered bool)) {
	t.meet(t.acc.AddTrackingMetricGroup(metrics), half{done: done})
}

func (t *tracker) deliver(id telegraf.TrackingID, delivered bool) {
	t.meet(id, half{delivered: delivered})
}

// half is a batch's registration (done set) or its delivery.
type half struct {
	done      func(delivered bool)
	delivered bool
}

// meet keeps the first half of id to arrive; the second releases the slot
// and runs the callback with the delivery.
func (t *tracker) meet(id telegraf.TrackingID, h half) {
	t.mu.Lock()
	first, ok := t.halves[id]
	if !ok {
		t.halves[id] = h
		t.mu.Unlock()
		return
	}
	delete(t.halves, id)
	t.mu.Unlock()
	if h.done == nil {
		h.done = first.done
	} else {
		h.delivered = first.delivered
	}
	t.release()
	h.done(h.delivered)
}

// undelivered is the number of slots taken.
func (t *tracker) undelivered() int {
	return len(t.slots)
}

// stopDispatch ends the delivery goroutine. Batches still undelivered keep
// their metrics in the pipeline; their callbacks never run.
func (t *tracker) stopDispatch() {
	close(t.stop)
	t.wg.Wait()
}
