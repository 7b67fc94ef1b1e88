package vmware_telemetry_stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
}

type pendingBatch struct {
	id  string
	msg jetstream.Msg
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
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.deliveries(ctx)
	}()
	c.consume(ctx, cons)
	wg.Wait()
}

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
	iter, err := cons.Messages(jetstream.PullMaxMessages(c.s.MaxUndeliveredBatches))
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

// handle hands one message to the outputs; false when it did not (the
// slot is the caller's to give back).
func (c *consumer) handle(ctx context.Context, msg jetstream.Msg) bool {
	b, err := c.s.decoder.Decode(msg.Headers(), msg.Data())
	if err != nil {
		// Another delivery cannot make it readable: keep it out of the
		// way and say so.
		c.s.Log.Errorf("Dropping message %s: %v", msgRef(msg), err)
		msg.Term() //nolint:errcheck // redelivered after ack_wait if lost
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
			return false
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			c.s.Log.Warnf("Cannot read lake bucket for batch %s: %v; delivering it later", b.Key, err)
			msg.NakWithDelay(time.Second) //nolint:errcheck // redelivered after ack_wait if lost
			return false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.acc.AddTrackingMetricGroup(b.Metrics)
	c.pending[id] = pendingBatch{id: b.ID, msg: msg}
	if b.ID != "" {
		c.inFlight[b.ID] = true
	}
	return true
}

// deliveries marks written batches in the lake bucket and acknowledges
// them; a batch the outputs dropped is delivered again.
func (c *consumer) deliveries(ctx context.Context) {
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
			c.settle(ctx, p, info.Delivered())
			c.mu.Lock()
			delete(c.inFlight, p.id)
			c.mu.Unlock()
			<-c.slots
		}
	}
}

func (c *consumer) settle(ctx context.Context, p pendingBatch, delivered bool) {
	if !delivered {
		c.s.Log.Warnf("The outputs dropped message %s; it is delivered again", msgRef(p.msg))
		p.msg.Nak() //nolint:errcheck // redelivered after ack_wait if lost
		return
	}
	if p.id != "" {
		putCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.lake.Put(putCtx, p.id, written)
		cancel()
		if err != nil {
			c.s.Log.Warnf("Batch %s is written but not marked in the lake bucket: %v", p.id, err)
		}
	}
	ackCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.msg.DoubleAck(ackCtx); err != nil {
		c.s.Log.Warnf("Acknowledging message %s: %v; when delivered again the lake bucket skips it", msgRef(p.msg), err)
	}
}

func msgRef(msg jetstream.Msg) string {
	if md, err := msg.Metadata(); err == nil {
		return fmt.Sprintf("%s#%d", md.Stream, md.Sequence.Stream)
	}
	return msg.Subject()
}
