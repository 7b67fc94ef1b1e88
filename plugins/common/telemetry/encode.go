package telemetry

import (
	"bytes"
	"fmt"
	"io"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encoder writes metrics as line protocol (nanosecond timestamps, keys and
// values checked) into a buffer it reuses across batches.
type Encoder struct {
	lp lineprotocol.Encoder
	// view is AppendMetric's scratch: its slices are reused, so a batch
	// does not allocate them per metric.
	view View
}

// NewEncoder returns an empty encoder.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.lp.SetPrecision(lineprotocol.Nanosecond)
	return e
}

// SetLax turns off the encoder's own checks of names, keys, tag values and
// tag order. Views from a Policy are already checked (dictionary keys and
// measurement names when parsed, kept tag values when allowed, pseudonyms
// and identity values by construction), so the output encodes them lax;
// field values are still checked. Leave it off for anything else.
func (e *Encoder) SetLax(lax bool) { e.lp.SetLax(lax) }

// Reset empties the buffer, keeping its memory.
func (e *Encoder) Reset() { e.lp.Reset() }

// Bytes returns the lines written since the last Reset; valid until the
// next call.
func (e *Encoder) Bytes() []byte { return e.lp.Bytes() }

// Len returns the number of bytes written since the last Reset; lines end
// in '\n', so Len after each append marks a line boundary.
func (e *Encoder) Len() int { return len(e.lp.Bytes()) }

// AppendView writes one line. On error nothing of the line is written.
func (e *Encoder) AppendView(v *View) error {
	// Values are checked first: lineprotocol.Encoder cannot take back a
	// field it refuses without losing the line's start.
	for _, f := range v.Fields {
		if _, ok := lpValue(f.Value); !ok {
			return fmt.Errorf("measurement %q field %q: value of type %T cannot be encoded (NaN, infinity or invalid UTF-8?)", v.Name, f.Key, f.Value)
		}
	}
	e.lp.StartLine(v.Name)
	for _, t := range v.Tags {
		e.lp.AddTag(t.Key, t.Value)
	}
	for _, f := range v.Fields {
		val, _ := lpValue(f.Value)
		e.lp.AddField(f.Key, val)
	}
	e.lp.EndLine(v.Time)
	if err := e.lp.Err(); err != nil {
		e.lp.ClearErr()
		return fmt.Errorf("measurement %q: %w", v.Name, err)
	}
	return nil
}

// AppendMetric writes a metric as it is, without any dictionary: the
// stream's messages, tests and tools use it; the output writes Views.
func (e *Encoder) AppendMetric(m telegraf.Metric) error {
	v := &e.view
	v.Name, v.Time = m.Name(), m.Time()
	v.Tags, v.Fields = v.Tags[:0], v.Fields[:0]
	for _, t := range m.TagList() {
		v.Tags = append(v.Tags, *t)
	}
	for _, f := range m.FieldList() {
		v.Fields = append(v.Fields, *f)
	}
	err := e.AppendView(v)
	// Drop the references to m's values (strings) until the next call.
	clear(v.Tags)
	clear(v.Fields)
	return err
}

func lpValue(x any) (lineprotocol.Value, bool) {
	switch v := x.(type) {
	case int64:
		return lineprotocol.IntValue(v), true
	case uint64:
		return lineprotocol.UintValue(v), true
	case float64:
		return lineprotocol.FloatValue(v)
	case string:
		return lineprotocol.StringValue(v)
	case bool:
		return lineprotocol.BoolValue(v), true
	}
	return lineprotocol.Value{}, false
}

// Compressor compresses batch bodies with one encoding, reusing its
// encoder. Not safe for concurrent use.
type Compressor struct {
	encoding string
	zstd     *zstd.Encoder
	gzip     *gzip.Writer
	buf      bytes.Buffer
}

// NewCompressor returns a compressor for zstd (SpeedFastest, one
// goroutine: batches are small and the agent shares its node; on
// kube_telemetry batches it is faster and smaller than SpeedDefault, the
// pseudonyms being the part that does not compress), gzip (default level)
// or identity.
func NewCompressor(encoding string) (*Compressor, error) {
	enc, ok := ParseEncoding(encoding)
	if !ok {
		return nil, unsupportedEncoding(encoding)
	}
	c := &Compressor{encoding: enc}
	switch enc {
	case EncodingZstd:
		z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return nil, fmt.Errorf("creating zstd encoder: %w", err)
		}
		c.zstd = z
	case EncodingGzip:
		c.gzip = gzip.NewWriter(io.Discard)
	}
	return c, nil
}

// Encoding returns the Content-Encoding value of the compressor's output.
func (c *Compressor) Encoding() string { return c.encoding }

// Compress appends the compressed src to dst[:0] and returns it.
func (c *Compressor) Compress(dst, src []byte) ([]byte, error) {
	switch c.encoding {
	case EncodingZstd:
		return c.zstd.EncodeAll(src, dst[:0]), nil
	case EncodingGzip:
		c.buf.Reset()
		c.gzip.Reset(&c.buf)
		if _, err := c.gzip.Write(src); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := c.gzip.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return append(dst[:0], c.buf.Bytes()...), nil
	}
	return append(dst[:0], src...), nil
}
