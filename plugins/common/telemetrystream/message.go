package telemetrystream

import (
	"fmt"
	"strconv"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/nats-io/nats.go"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Batch is one stored batch on its way to the lake.
type Batch struct {
	// ID is the scoped digest of the batch key: the stream's message id
	// and the key in the shared buckets.
	ID string
	// Key is the agent's Idempotency-Key ("" for a batch sent without).
	Key string
	// Events: posted to the listener's events path, not its batches path.
	Events  bool
	Metrics []telegraf.Metric
}

// Encode makes the message for b: zstd line protocol, the identity in
// headers. maxPayload is the connection's limit (0: none).
func Encode(subject string, b Batch, maxPayload int64) (*nats.Msg, error) {
	enc := telemetry.NewEncoder()
	for _, m := range b.Metrics {
		if err := enc.AppendMetric(m); err != nil {
			return nil, fmt.Errorf("encoding batch: %w", err)
		}
	}
	comp, err := telemetry.NewCompressor(telemetry.EncodingZstd)
	if err != nil {
		return nil, err
	}
	data, err := comp.Compress(nil, enc.Bytes())
	if err != nil {
		return nil, fmt.Errorf("compressing batch: %w", err)
	}
	if maxPayload > 0 && int64(len(data)) > maxPayload-4096 {
		return nil, fmt.Errorf("batch of %d bytes compressed is %w (%d)", len(data), ErrTooLarge, maxPayload)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	if b.ID != "" {
		msg.Header.Set(nats.MsgIdHdr, b.ID)
	}
	if b.Key != "" {
		msg.Header.Set(HeaderBatchKey, b.Key)
	}
	if b.Events {
		msg.Header.Set(HeaderEndpoint, EndpointEvents)
	}
	msg.Header.Set(HeaderEncoding, telemetry.EncodingZstd)
	msg.Header.Set(HeaderMetricCount, strconv.Itoa(len(b.Metrics)))
	return msg, nil
}

// Decoder reads messages back into batches.
type Decoder struct {
	dec *telemetry.Decoder
}

// NewDecoder bounds a message's decompressed size and line length like
// the listener bounds a request's.
func NewDecoder(maxDecompressed, maxLine int64) (*Decoder, error) {
	dec, err := telemetry.NewDecoder(maxDecompressed, maxLine)
	if err != nil {
		return nil, err
	}
	return &Decoder{dec: dec}, nil
}

// Decode reads a message's batch; id and key come from its headers.
func (d *Decoder) Decode(header nats.Header, data []byte) (Batch, error) {
	b := Batch{ID: header.Get(nats.MsgIdHdr), Key: header.Get(HeaderBatchKey), Events: header.Get(HeaderEndpoint) == EndpointEvents}
	metrics, _, err := d.dec.Decode(data, header.Get(HeaderEncoding), time.Now())
	if err != nil {
		return b, fmt.Errorf("decoding batch %q: %w", b.Key, err)
	}
	b.Metrics = metrics
	return b, nil
}
