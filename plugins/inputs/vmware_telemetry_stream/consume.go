package vmware_telemetry_stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/nats-io/nats.go/jetstream"
)

// written is the value of a key in the lake bucket.
var written = []byte("written")

// consumer moves batches from the stream to the outputs. A batch goes:
// skipped if the lake bucket has its key (written before, acknowledgement
// lost); else handed to the outputs as one tracked group; once they wrote
// it, its key is put in the lake bucket, then it is acknowledged. A crash
// between the write and the put is the one window where a batch reaches the
// lake twice; the records carry batch_key, so the lake can drop it on read.
type consumer struct {
	s    *Stream
	acc  telegraf.TrackingAccumulator
	lake jetstream.KeyValue
	// slots bounds the batches handed to the outputs and not yet written.
	slots chan struct{}

	mu sync.Mutex
	// pending is what each tracked group is; inFlight the batch ids among
	// them, so a delivery again while the first is being written is let
	// go (acknowledging the first acknowledges both).
	pending  map[telegraf.TrackingID]pendingBatch
	inFlight map[string]bool
	// drops counts the batches the outputs dropped since they last wrote
	// one, so an overflow is told once, not for every batch.
	drops atomic.Int64
}

// dropPause is how long a batch the outputs dropped (their buffer
// overflowed) waits before it comes again.
const dropPause = time.Second

type pendingBatch struct {
	id      string
	msg     jetstream.Msg
	metrics int
}

// run sets the stream, consumer and bucket up (waiting for the engine if it
// is down) and consumes until ctx ends.
func (s *Stream) run(ctx context.Context, acc telegraf.TrackingAccumulator) {
	var cons jetstream.Consumer
	var lake jetstream.KeyValue
	told := false
	for {
		var err error
		cons, lake, err = s.setup(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if !told {
			s.Log.Errorf("Cannot consume yet: %v; retrying every 2s", err)
			told = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	if s.Relay != nil {
		s.Log.Infof("Relaying stream %q as %q to %s", s.Config.Stream, s.Durable, s.Relay.URL)
		s.relay(ctx, cons)
		return
	}
	s.Log.Infof("Consuming stream %q as %q into the outputs; written batch keys in bucket %q", s.Config.Stream, s.Durable, s.LakeBucket)

	c := &consumer{
		s: s, acc: acc, lake: lake,
		slots:    make(chan struct{}, s.MaxUndeliveredBatches),
		pending:  map[telegraf.TrackingID]pendingBatch{},
		inFlight: map[string]bool{},
	}
	// Settling outlives consuming: when the plugin stops, the outputs
	// still hold batches, which Telegraf writes at their next flush while
	// the inputs stop. Settling those before leaving keeps a restart from
	// writing them a second time.
	settleCtx, stopSettling := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.deliveries(settleCtx)
	}()
	c.consume(ctx, cons)
	c.drain(drainTimeout)
	stopSettling()
	wg.Wait()
}

// drainTimeout bounds the wait, when stopping, for the batches the outputs
// hold: a flush or two of a working output. Outputs that fail keep theirs
// unsettled, and the stream delivers them again after ack_wait.
const drainTimeout = 10 * time.Second

func (s *Stream) setup(ctx context.Context) (jetstream.Consumer, jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.EnsureStream(ctx, s.js); err != nil {
		return nil, nil, err
	}
	// The relay needs no bucket of its own: the upstream's de-duplication
	// answers a batch relayed again "duplicate".
	var lake jetstream.KeyValue
	description := "telemetry relay to " + s.relayURL()
	if s.Relay == nil {
		var err error
		lake, err = s.EnsureBucket(ctx, s.js, s.LakeBucket, "batch keys the lake consumer wrote", time.Duration(s.LakeWindow))
		if err != nil {
			return nil, nil, err
		}
		description = "telemetry lake writer"
	}
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.Config.Stream, jetstream.ConsumerConfig{
		Durable:       s.Durable,
		Description:   description,
		FilterSubject: s.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Duration(s.AckWait),
		MaxAckPending: s.MaxUndeliveredBatches * 2,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      s.Replicas,
	})
	if err != nil {
		return nil, nil, err
	}
	return cons, lake, nil
}

func (s *Stream) relayURL() string {
	if s.Relay == nil {
		return ""
	}
	return s.Relay.URL
}

func (c *consumer) consume(ctx context.Context, cons jetstream.Consumer) {
	iter, err := cons.Messages(pullOptions(c.s.MaxUndeliveredBatches)...)
	if err != nil {
		c.s.Log.Errorf("Consuming failed: %v", err)
		return
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	for {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		msg, err := iter.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			// A message fetched but not handed over stays unacknowledged:
			// the stream delivers it again, and it was written nowhere.
			<-c.slots
			return
		}
		if err != nil {
			<-c.slots
			c.s.Log.Warnf("Reading the stream: %v", err)
			continue
		}
		if !c.handle(ctx, msg) {
			<-c.slots
		}
	}
}

// pullOptions are the lake consumer's and the relay's pull requests: up
// to max messages, each request open 10 s with a heartbeat every 3 s.
// nats.go's defaults (30 s, 15 s) let a pull lost with a NATS server (its
// consumer's leader elected elsewhere) go unnoticed for 30 s, during which
// nothing is consumed; with these it is noticed within about 6 s and
// pulled again. The cost is an idle request every 10 s.
func pullOptions(max int) []jetstream.PullMessagesOpt {
	return []jetstream.PullMessagesOpt{
		jetstream.PullMaxMessages(max),
		jetstream.PullExpiry(10 * time.Second),
		jetstream.PullHeartbeat(3 * time.Second),
	}
}

// drain waits until every batch handed to the outputs is settled (its
// slot given back), or timeout.
func (c *consumer) drain(timeout time.Duration) {
	if len(c.slots) == 0 {
		return
	}
	c.s.Log.Infof("Waiting up to %s for the outputs to write the %d batches they hold", timeout, len(c.slots))
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(c.slots) > 0 {
		select {
		case <-deadline.C:
			c.s.Log.Warnf("Stopping with %d batches handed to the outputs and not yet written; the stream delivers them again after ack_wait", len(c.slots))
			return
		case <-tick.C:
		}
	}
}

// handle hands one message to the outputs; false when it did not (the
// slot is the caller's to give back).
func (c *consumer) handle(ctx context.Context, msg jetstream.Msg) bool {
	b, err := c.s.decoder.Decode(msg.Headers(), msg.Data())
	if err != nil {
		// Another delivery cannot make it readable: keep it out of the
		// way and say so.
		c.s.Log.Errorf("Dropping message %s: %v", msgRef(msg), err)
		msg.Term() //nolint:errcheck // redelivered after ack_wait if lost
		c.s.stats.messagesTerminated.Incr(1)
		return false
	}
	if b.ID != "" {
		c.mu.Lock()
		busy := c.inFlight[b.ID]
		c.mu.Unlock()
		if busy {
			return false
		}
		getCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.lake.Get(getCtx, b.ID)
		cancel()
		switch {
		case err == nil:
			c.s.Log.Debugf("Batch %s was written before; acknowledging it again", b.Key)
			msg.Ack() //nolint:errcheck // redelivered and skipped again if lost
			c.s.stats.batchesSkipped.Incr(1)
			return false
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			c.s.Log.Warnf("Cannot read lake bucket for batch %s: %v; delivering it later", b.Key, err)
			msg.NakWithDelay(time.Second) //nolint:errcheck // redelivered after ack_wait if lost
			c.s.stats.lakeBucketErrors.Incr(1)
			return false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.acc.AddTrackingMetricGroup(b.Metrics)
	c.pending[id] = pendingBatch{id: b.ID, msg: msg, metrics: len(b.Metrics)}
	if b.ID != "" {
		c.inFlight[b.ID] = true
	}
	return true
}

// deliveries marks written batches in the lake bucket and acknowledges
// them; a batch the outputs dropped is delivered again. Each batch is
// settled on its own goroutine (at most max_undelivered_batches, the
// slots): one flush delivers many batches at once, and marking them one
// after the other would keep the last ones written but unmarked, the
// window in which a crash writes a batch twice, for the sum of the
// others' round trips.
func (c *consumer) deliveries(ctx context.Context) {
	var settling sync.WaitGroup
	defer settling.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case info := <-c.acc.Delivered():
			c.mu.Lock()
			p, ok := c.pending[info.ID()]
			delete(c.pending, info.ID())
			c.mu.Unlock()
			if !ok {
				continue
			}
			settling.Add(1)
			go func() {
				defer settling.Done()
				c.settle(ctx, p, info.Delivered())
				c.forget(p.id)
				<-c.slots
			}()
		}
	}
}

func (c *consumer) settle(ctx context.Context, p pendingBatch, delivered bool) {
	if !delivered {
		if c.drops.Add(1) == 1 {
			c.s.Log.Warnf("The outputs dropped message %s (an output's buffer is full: see metric_buffer_limit and its write errors); it is delivered again in %s, and so are the next ones dropped", msgRef(p.msg), dropPause)
		} else {
			c.s.Log.Debugf("The outputs dropped message %s; it is delivered again in %s", msgRef(p.msg), dropPause)
		}
		// Its next delivery must not be taken for a copy of a batch
		// still being written.
		c.forget(p.id)
		p.msg.NakWithDelay(dropPause) //nolint:errcheck // redelivered after ack_wait if lost
		c.s.stats.droppedByOutputs.Incr(1)
		// Keeping the slot as long slows the hand-over to what the outputs
		// take, rather than pushing another batch out of their buffer.
		select {
		case <-ctx.Done():
		case <-time.After(dropPause):
		}
		return
	}
	if n := c.drops.Swap(0); n > 0 {
		c.s.Log.Infof("The outputs write again, after dropping %d batches (each delivered again)", n)
	}
	c.s.stats.written(p.metrics)
	if p.id != "" {
		c.mark(ctx, p)
	}
	ackCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.msg.DoubleAck(ackCtx); err != nil {
		c.s.Log.Warnf("Acknowledging message %s: %v; when delivered again the lake bucket skips it", msgRef(p.msg), err)
	}
}

// Tries of a lake bucket put that failed are spaced from markRetryMin,
// doubling, to markRetryMax.
var (
	markRetryMin = 250 * time.Millisecond
	markRetryMax = 2 * time.Second
)

// mark puts a written batch's key in the lake bucket, trying again until
// the put lands or the consumer stops. Giving up would be worse: the
// acknowledgement that follows can fail for the same reason (a NATS server
// lost, its streams electing new leaders for some seconds), and the stream
// then delivers the batch again with no mark to skip it, so a consumer
// that never crashed would write it twice. Meanwhile the batch stays in
// flight, so a delivery again is let go, and the message is kept in
// progress.
func (c *consumer) mark(ctx context.Context, p pendingBatch) {
	wait := markRetryMin
	for try := 1; ; try++ {
		putCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.lake.Put(putCtx, p.id, written)
		cancel()
		if err == nil {
			if try > 1 {
				c.s.Log.Infof("Batch %s is marked in the lake bucket after %d tries", p.id, try)
			}
			return
		}
		c.s.stats.lakeBucketErrors.Incr(1)
		if try == 1 {
			c.s.Log.Warnf("Batch %s is written but not marked in the lake bucket: %v; trying again until it is (if this goes on, check the NATS servers)", p.id, err)
		}
		select {
		case <-ctx.Done():
			c.s.Log.Warnf("Stopping with batch %s written but not marked in the lake bucket: if the stream delivers it again, it is written again (its records carry batch_key)", p.id)
			return
		case <-time.After(wait):
		}
		p.msg.InProgress() //nolint:errcheck // a lost one only lets ack_wait run
		wait = min(2*wait, markRetryMax)
	}
}

// forget ends a batch's time in flight.
func (c *consumer) forget(id string) {
	c.mu.Lock()
	delete(c.inFlight, id)
	c.mu.Unlock()
}

func msgRef(msg jetstream.Msg) string {
	if md, err := msg.Metadata(); err == nil {
		return fmt.Sprintf("%s#%d", md.Stream, md.Sequence.Stream)
	}
	return msg.Subject()
}
