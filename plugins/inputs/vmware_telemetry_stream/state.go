package vmware_telemetry_stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// stateMeasurement is the durable consumer's state as the engine reports
// it, read at every Gather, so the lag behind the replicas and the batches
// delivered again can be alerted on without the NATS CLI.
const stateMeasurement = "vmware_telemetry_stream_consumer"

// stateTimeout bounds one Gather's reads: an engine that is down or has
// lost its quorum costs a Gather this long, not the interval.
const stateTimeout = 3 * time.Second

// gatherState adds one stateMeasurement metric, or says what to check.
func (s *Stream) gatherState(acc telegraf.Accumulator) error {
	what := fmt.Sprintf("reading consumer %q of stream %q", s.Durable, s.Config.Stream)
	if s.nc == nil || s.js == nil {
		return fmt.Errorf("%s: not connected yet", what)
	}
	// A client that is reconnecting holds requests until its timeout;
	// say so at once instead.
	if status := s.nc.Status(); status != nats.CONNECTED {
		return fmt.Errorf("%s: not connected to NATS (%s); check that the servers %v are up and reachable from here", what, status, s.Servers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	cons, err := s.js.Consumer(ctx, s.Config.Stream, s.Durable)
	if err != nil {
		return fmt.Errorf("%s failed: %w; %s", what, err, stateHint(err))
	}
	stream, err := s.js.Stream(ctx, s.Config.Stream)
	if err != nil {
		return fmt.Errorf("reading stream %q failed: %w; %s", s.Config.Stream, err, stateHint(err))
	}
	acc.AddFields(stateMeasurement, stateFields(cons.CachedInfo(), stream.CachedInfo()),
		map[string]string{"durable": s.Durable, "stream": s.Config.Stream})
	return nil
}

// stateHint tells the operator where to look for err.
func stateHint(err error) string {
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrConsumerNotFound):
		return "this process creates both once it reaches JetStream (see its log for \"Cannot consume yet\")"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders):
		return fmt.Sprintf("JetStream did not answer within %s: check that a quorum of the NATS servers is up (nats server report jetstream)", stateTimeout)
	default:
		return "check the NATS servers and this process's credentials"
	}
}

// stateFields are the fields of stateMeasurement: the consumer's counts
// and, from the stream's information, its size and its replicas in sync.
func stateFields(c *jetstream.ConsumerInfo, st *jetstream.StreamInfo) map[string]any {
	fields := map[string]any{
		"pending":     int64(c.NumPending),
		"ack_pending": int64(c.NumAckPending),
		"redelivered": int64(c.NumRedelivered),
	}
	if st == nil {
		return fields
	}
	fields["stream_messages"] = int64(st.State.Msgs)
	fields["stream_bytes"] = int64(st.State.Bytes)
	if st.Cluster != nil {
		current := int64(0)
		if st.Cluster.Leader != "" {
			current = 1
		}
		for _, p := range st.Cluster.Replicas {
			if p.Current && !p.Offline {
				current++
			}
		}
		fields["stream_replicas_current"] = current
	}
	return fields
}
