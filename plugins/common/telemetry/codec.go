package telemetry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Errors of the decode side; the listener maps them to statuses.
var (
	// ErrUnsupportedEncoding: a Content-Encoding we do not speak (415).
	ErrUnsupportedEncoding = errors.New("unsupported content encoding")
	// ErrTooLarge: the decompressed body exceeds the limit (413).
	ErrTooLarge = errors.New("decompressed body exceeds the limit")
	// ErrCorrupt: the compressed stream is truncated or corrupt (400).
	ErrCorrupt = errors.New("corrupt compressed body")
	// ErrMalformed: the line protocol does not parse (400).
	ErrMalformed = errors.New("malformed line protocol")
	// ErrLineTooLong: a line exceeds the line limit (413).
	ErrLineTooLong = errors.New("line exceeds the limit")
)

// Encoder writes metrics as line protocol (nanosecond timestamps, keys and
// values checked) into a buffer it reuses across batches.
type Encoder struct {
	lp lineprotocol.Encoder
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

// AppendMetric writes a metric as it is, without any dictionary: tests and
// tools use it; the output writes Views.
func (e *Encoder) AppendMetric(m telegraf.Metric) error {
	v := View{Name: m.Name(), Time: m.Time()}
	for _, t := range m.TagList() {
		v.Tags = append(v.Tags, *t)
	}
	for _, f := range m.FieldList() {
		v.Fields = append(v.Fields, *f)
	}
	return e.AppendView(&v)
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
		return nil, fmt.Errorf("content encoding %q: %w; use %q, %q or %q", encoding, ErrUnsupportedEncoding, EncodingZstd, EncodingGzip, EncodingIdentity)
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

// Decoder decompresses and parses batch bodies within limits. It is safe
// for concurrent use.
type Decoder struct {
	maxDecompressed int64
	maxLine         int64
	zstd            *zstd.Decoder
	gzip            sync.Pool
}

// NewDecoder returns a decoder that refuses bodies decompressing to more
// than maxDecompressed bytes (with ErrTooLarge, having used at most about
// that much memory: a zstd frame declaring more is refused before decoding,
// gzip is read through a limit) and lines longer than maxLine bytes (0: no
// line limit beyond maxDecompressed).
func NewDecoder(maxDecompressed, maxLine int64) (*Decoder, error) {
	if maxDecompressed <= 0 {
		return nil, fmt.Errorf("decompressed size limit %d must be positive", maxDecompressed)
	}
	if maxLine < 0 {
		return nil, fmt.Errorf("line size limit %d must not be negative", maxLine)
	}
	window := uint64(min(max(maxDecompressed, zstd.MinWindowSize), 8<<20))
	z, err := zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(uint64(maxDecompressed)),
		zstd.WithDecoderMaxWindow(window),
		zstd.WithDecoderConcurrency(0),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd decoder: %w", err)
	}
	return &Decoder{maxDecompressed: maxDecompressed, maxLine: maxLine, zstd: z}, nil
}

// Close releases the zstd decoder's goroutines.
func (d *Decoder) Close() { d.zstd.Close() }

// Decompress returns the decompressed body. encoding is a Content-Encoding
// value ("" is identity).
func (d *Decoder) Decompress(body []byte, encoding string) ([]byte, error) {
	enc, ok := ParseEncoding(encoding)
	if !ok {
		return nil, fmt.Errorf("content encoding %q: %w; use %q, %q or %q", encoding, ErrUnsupportedEncoding, EncodingZstd, EncodingGzip, EncodingIdentity)
	}
	switch enc {
	case EncodingZstd:
		out, err := d.zstd.DecodeAll(body, make([]byte, 0, min(int64(len(body))*8, d.maxDecompressed)))
		switch {
		case errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
			return nil, fmt.Errorf("zstd: %w (%d bytes)", ErrTooLarge, d.maxDecompressed)
		case err != nil:
			return nil, fmt.Errorf("zstd: %w: %w", ErrCorrupt, err)
		case int64(len(out)) > d.maxDecompressed:
			return nil, fmt.Errorf("zstd: %w (%d bytes)", ErrTooLarge, d.maxDecompressed)
		}
		return out, nil
	case EncodingGzip:
		return d.gunzip(body)
	}
	if int64(len(body)) > d.maxDecompressed {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, d.maxDecompressed)
	}
	return body, nil
}

func (d *Decoder) gunzip(body []byte) ([]byte, error) {
	var zr *gzip.Reader
	if v := d.gzip.Get(); v != nil {
		zr = v.(*gzip.Reader)
		if err := zr.Reset(bytes.NewReader(body)); err != nil {
			d.gzip.Put(zr)
			return nil, fmt.Errorf("gzip: %w: %w", ErrCorrupt, err)
		}
	} else {
		var err error
		if zr, err = gzip.NewReader(bytes.NewReader(body)); err != nil {
			return nil, fmt.Errorf("gzip: %w: %w", ErrCorrupt, err)
		}
	}
	defer d.gzip.Put(zr)
	var out bytes.Buffer
	out.Grow(int(min(int64(len(body))*8, d.maxDecompressed)))
	n, err := out.ReadFrom(io.LimitReader(zr, d.maxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w: %w", ErrCorrupt, err)
	}
	if n > d.maxDecompressed {
		return nil, fmt.Errorf("gzip: %w (%d bytes)", ErrTooLarge, d.maxDecompressed)
	}
	return out.Bytes(), nil
}

// Parse parses line protocol into metrics; lines without a timestamp get
// now. The first error is returned, wrapping ErrMalformed (or
// ErrLineTooLong), with its line.
func (d *Decoder) Parse(data []byte, now time.Time) ([]telegraf.Metric, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrMalformed, invalidUTF8At(data))
	}
	if d.maxLine > 0 {
		line := 1
		for rest := data; len(rest) > 0; line++ {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				i = len(rest)
			}
			if int64(i) > d.maxLine {
				return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrLineTooLong, line, d.maxLine)
			}
			rest = rest[min(i+1, len(rest)):]
		}
	}
	var out []telegraf.Metric
	dec := lineprotocol.NewDecoderWithBytes(data)
	for dec.Next() {
		m, err := decodeLine(dec, now)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		out = append(out, m)
	}
	if err := dec.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return out, nil
}

func decodeLine(dec *lineprotocol.Decoder, now time.Time) (telegraf.Metric, error) {
	name, err := dec.Measurement()
	if err != nil {
		return nil, err
	}
	tags := make(map[string]string)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return nil, err
		}
		if k == nil {
			break
		}
		tags[string(k)] = string(v)
	}
	fields := make(map[string]any)
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return nil, err
		}
		if k == nil {
			break
		}
		fields[string(k)] = v.Interface()
	}
	t, err := dec.Time(lineprotocol.Nanosecond, now)
	if err != nil {
		return nil, err
	}
	return metric.New(string(name), tags, fields, t), nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// Decode decompresses and parses a body; it also returns the decompressed
// size (for statistics), set even when parsing fails.
func (d *Decoder) Decode(body []byte, encoding string, now time.Time) ([]telegraf.Metric, int64, error) {
	data, err := d.Decompress(body, encoding)
	if err != nil {
		return nil, 0, err
	}
	metrics, err := d.Parse(data, now)
	return metrics, int64(len(data)), err
}
