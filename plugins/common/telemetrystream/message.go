package telemetrystream

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/klauspost/compress/zstd"
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

// Messages are compressed with a 1 MiB zstd window: a stored batch is
// rarely larger than a few hundred KB compressed, and the window is most
// of what an Encoder holds (EncoderMemory).
const encoderWindow = 1 << 20

// EncoderMemory bounds what one Encoder holds besides its output: zstd's
// window and match tables (2.7 MiB measured with a 1 MiB window at
// SpeedFastest) and one line of line protocol.
const EncoderMemory = 4 << 20

// Encoder makes messages from batches, streaming each metric's line into
// zstd and the compressed bytes into a buffer that stops at the message
// limit: encoding a batch holds its compressed form and one line, never its
// whole line protocol, and a batch over the limit is refused as soon as the
// compressed bytes pass it. Reuse one per goroutine; not safe for
// concurrent use.
type Encoder struct {
	lines *telemetry.Encoder
	zw    *zstd.Encoder
	out   cappedBuffer
}

// NewEncoder returns an encoder; its buffers grow with use.
func NewEncoder() (*Encoder, error) {
	e := &Encoder{lines: telemetry.NewEncoder()}
	zw, err := zstd.NewWriter(&e.out, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(encoderWindow), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("creating zstd encoder: %w", err)
	}
	e.zw = zw
	return e, nil
}

// Encode makes the message for b on subject: zstd line protocol, the
// identity in headers. A message whose data would pass limit bytes (0:
// none) is ErrTooLarge. The message's data is its own copy.
func (e *Encoder) Encode(subject string, b Batch, limit int64) (*nats.Msg, error) {
	e.out.reset(limit)
	e.zw.Reset(&e.out)
	for _, m := range b.Metrics {
		e.lines.Reset()
		if err := e.lines.AppendMetric(m); err != nil {
			return nil, fmt.Errorf("encoding batch: %w", err)
		}
		if _, err := e.zw.Write(e.lines.Bytes()); err != nil {
			return nil, e.writeError(err)
		}
	}
	if err := e.zw.Close(); err != nil {
		return nil, e.writeError(err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = bytes.Clone(e.out.buf)
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

func (e *Encoder) writeError(err error) error {
	if errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("batch compressed is more than %d bytes: %w", e.out.limit, err)
	}
	return fmt.Errorf("compressing batch: %w", err)
}

// Encode makes the message for b with a new Encoder: for tools and tests,
// which encode now and then. maxPayload is the connection's limit (0:
// none); headers get 4 KiB of it.
func Encode(subject string, b Batch, maxPayload int64) (*nats.Msg, error) {
	e, err := NewEncoder()
	if err != nil {
		return nil, err
	}
	return e.Encode(subject, b, MessageLimit(maxPayload, 0))
}

// MessageLimit is the most data a message may carry on a connection whose
// servers take maxPayload bytes (headers get 4 KiB of them) when the
// operator allows at most configured bytes (0: no limit of one's own).
func MessageLimit(maxPayload, configured int64) int64 {
	limit := configured
	if maxPayload > 0 && (limit == 0 || maxPayload-headerRoom < limit) {
		limit = max(maxPayload-headerRoom, 1)
	}
	return limit
}

const headerRoom = 4096

// cappedBuffer is a bytes buffer that refuses to grow past its limit and
// keeps its memory from one message to the next.
type cappedBuffer struct {
	buf   []byte
	limit int64
}

func (c *cappedBuffer) reset(limit int64) {
	c.buf = c.buf[:0]
	c.limit = limit
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	need := len(c.buf) + len(p)
	if c.limit > 0 && int64(need) > c.limit {
		return 0, ErrTooLarge
	}
	if need > cap(c.buf) {
		// Grown by hand: append could reserve up to twice the limit.
		size := max(2*cap(c.buf), need, 64<<10)
		if c.limit > 0 {
			size = min(size, int(c.limit))
		}
		grown := make([]byte, len(c.buf), size)
		copy(grown, c.buf)
		c.buf = grown
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
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
