package telemetry

import (
	"bufio"
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

// Errors of the decoder; the listener maps them to statuses.
var (
	// ErrTooLarge: the decompressed body exceeds the limit (413).
	ErrTooLarge = errors.New("decompressed body exceeds the limit")
	// ErrCorrupt: the compressed stream is truncated or corrupt (400).
	ErrCorrupt = errors.New("corrupt compressed body")
	// ErrMalformed: the line protocol does not parse, a line is longer
	// than the line limit or not UTF-8 (400).
	ErrMalformed = errors.New("malformed line protocol")
)

// Decoder decompresses and parses a batch body in one pass, a line at a
// time, without ever holding the decompressed body: its memory per call is
// the metrics it returns, one line (maxLine) and the decompressor's window,
// whatever the body expands to, so a decompression bomb costs a few
// megabytes and the time to decompress up to maxDecompressed bytes. Safe
// for concurrent use.
type Decoder struct {
	maxDecompressed int64
	maxLine         int64
	window          uint64

	zstd  sync.Pool // *zstd.Decoder, synchronous streaming
	gzip  sync.Pool // *gzip.Reader
	lines sync.Pool // *bufio.Reader of maxLine+1 bytes
}

// NewDecoder returns a decoder refusing bodies that decompress to
// more than maxDecompressed bytes (ErrTooLarge) and lines longer than
// maxLine bytes (ErrMalformed); maxLine must be positive.
func NewDecoder(maxDecompressed, maxLine int64) (*Decoder, error) {
	if maxDecompressed <= 0 {
		return nil, fmt.Errorf("decompressed size limit %d must be positive", maxDecompressed)
	}
	if maxLine <= 0 || maxLine > maxDecompressed {
		return nil, fmt.Errorf("line size limit %d must be positive and at most the decompressed size limit", maxLine)
	}
	return &Decoder{
		maxDecompressed: maxDecompressed,
		maxLine:         maxLine,
		// The window bounds the zstd history kept in memory; agents'
		// encoders use far less than 8 MiB.
		window: uint64(min(max(maxDecompressed, zstd.MinWindowSize), 8<<20)),
	}, nil
}

// Decode decompresses (Content-Encoding encoding; "" is identity) and
// parses body. Lines without a timestamp get now. It also returns the
// number of decompressed bytes read. Errors wrap ErrUnsupportedEncoding,
// ErrCorrupt, ErrTooLarge or ErrMalformed; when the body is both malformed
// and over the size limit, the size wins (ErrTooLarge), so the answer does
// not depend on where in the body the first bad line is.
func (d *Decoder) Decode(body []byte, encoding string, now time.Time) ([]telegraf.Metric, int64, error) {
	// A bytes.Reader, not a bytes.Buffer: zstd decodes a Buffer all at once.
	return d.DecodeFunc(bytes.NewReader(body), encoding, now, nil)
}

// DecodeFunc is Decode reading the compressed body from src, calling admit
// (when not nil) with each metric as soon as it is decoded, before the next
// line is read. An error from admit stops decoding at once and is returned
// as is: that is how a caller caps the metrics of one body, or the memory
// they take, while decoding rather than after. src must not be a
// *bytes.Buffer (zstd would read it whole).
func (d *Decoder) DecodeFunc(src io.Reader, encoding string, now time.Time, admit func(telegraf.Metric) error) ([]telegraf.Metric, int64, error) {
	src, release, err := d.decompressor(src, encoding)
	if err != nil {
		return nil, 0, err
	}
	defer release()

	br := d.lineBuffer(src)
	defer func() {
		br.Reset(nil)
		d.lines.Put(br)
	}()
	lr := &lineReader{br: br, maxDecompressed: d.maxDecompressed, maxLine: d.maxLine, encoding: encoding}

	var out []telegraf.Metric
	strs := make(interner, 64)
	var lm lineMetric
	dec := lineprotocol.NewDecoder(lr)
	for dec.Next() {
		m, err := decodeLine(dec, now, strs, &lm)
		if err != nil {
			// The reader may have stopped the line short: its error is
			// the real one.
			if lr.err != nil && !errors.Is(lr.err, io.EOF) {
				return nil, lr.n, lr.drain()
			}
			return nil, lr.n, lr.drainOr(fmt.Errorf("%w: %w", ErrMalformed, err))
		}
		if admit != nil {
			if err := admit(m); err != nil {
				return nil, lr.n, err
			}
		}
		out = append(out, m)
	}
	if lr.err != nil && !errors.Is(lr.err, io.EOF) {
		return nil, lr.n, lr.drain()
	}
	if err := dec.Err(); err != nil {
		return nil, lr.n, lr.drainOr(fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	return out, lr.n, nil
}

// Open returns a reader of the decompressed body read from src that fails
// with ErrTooLarge once more than the decompressed size limit has been read
// (ErrCorrupt for a corrupt body), for callers that parse other formats as
// a stream (the listener's JSON events). The memory is the decompressor's
// window, whatever the body expands to. close hands the decompressor back;
// call it once done with the reader.
func (d *Decoder) Open(src io.Reader, encoding string) (r io.Reader, closeFn func(), err error) {
	dr, release, err := d.decompressor(src, encoding)
	if err != nil {
		return nil, nil, err
	}
	return &limitReader{src: dr, left: d.maxDecompressed, errs: lineReader{maxDecompressed: d.maxDecompressed, encoding: encoding}}, release, nil
}

// limitReader reads at most left bytes, then fails with ErrTooLarge.
type limitReader struct {
	src  io.Reader
	left int64
	errs lineReader // words the errors as Decode does
	err  error
}

func (r *limitReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if int64(len(p)) > r.left+1 {
		p = p[:r.left+1]
	}
	n, err := r.src.Read(p)
	if int64(n) > r.left {
		r.err = r.errs.tooLarge()
		return 0, r.err
	}
	r.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = r.errs.readError(err)
		err = r.err
	}
	return n, err
}

// decompressor returns a reader of the decompressed body and a function
// handing its decoder back to the pool.
func (d *Decoder) decompressor(in io.Reader, encoding string) (io.Reader, func(), error) {
	enc, ok := ParseEncoding(encoding)
	if !ok {
		return nil, nil, unsupportedEncoding(encoding)
	}
	switch enc {
	case EncodingZstd:
		var zr *zstd.Decoder
		if v := d.zstd.Get(); v != nil {
			zr = v.(*zstd.Decoder)
			if err := zr.Reset(in); err != nil {
				return nil, nil, fmt.Errorf("zstd: %w: %w", ErrCorrupt, err)
			}
		} else {
			var err error
			zr, err = zstd.NewReader(in,
				zstd.WithDecoderConcurrency(1), // synchronous: no goroutines per body
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(d.window),
				zstd.WithDecoderMaxMemory(uint64(d.maxDecompressed)),
			)
			if err != nil {
				return nil, nil, fmt.Errorf("creating zstd decoder: %w", err)
			}
		}
		return zr, func() {
			zr.Reset(nil) //nolint:errcheck // drops the reference to the body
			d.zstd.Put(zr)
		}, nil
	case EncodingGzip:
		var zr *gzip.Reader
		if v := d.gzip.Get(); v != nil {
			zr = v.(*gzip.Reader)
			if err := zr.Reset(in); err != nil {
				d.gzip.Put(zr)
				return nil, nil, fmt.Errorf("gzip: %w: %w", ErrCorrupt, err)
			}
		} else {
			var err error
			if zr, err = gzip.NewReader(in); err != nil {
				return nil, nil, fmt.Errorf("gzip: %w: %w", ErrCorrupt, err)
			}
		}
		return zr, func() { d.gzip.Put(zr) }, nil
	}
	return in, func() {}, nil
}

func (d *Decoder) lineBuffer(src io.Reader) *bufio.Reader {
	if v := d.lines.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(src)
		return br
	}
	// Room for the longest line and its newline: a full buffer without a
	// newline means the line is too long.
	return bufio.NewReaderSize(src, int(d.maxLine)+1)
}

// lineReader hands the line protocol decoder one checked line at a time:
// it enforces the decompressed size and line length limits and UTF-8
// validity before the decoder sees the bytes, and sorts decompression
// errors from parse errors.
type lineReader struct {
	br              *bufio.Reader
	maxDecompressed int64
	maxLine         int64
	encoding        string

	n       int64  // decompressed bytes read
	line    int64  // lines read
	pending []byte // rest of the current line, not yet returned
	err     error  // sticky; io.EOF at the end
}

func (r *lineReader) Read(p []byte) (int, error) {
	// Fill p with as many lines as fit: the decoder reads less often. Only
	// whole lines pass, so an error never cuts a line short.
	n := 0
	for n < len(p) {
		if len(r.pending) == 0 {
			if r.err != nil {
				break
			}
			r.next()
			continue
		}
		k := copy(p[n:], r.pending)
		r.pending = r.pending[k:]
		n += k
	}
	if n == 0 {
		return 0, r.err
	}
	return n, nil
}

// next reads one line into pending, or sets err.
func (r *lineReader) next() {
	line, err := r.br.ReadSlice('\n')
	r.n += int64(len(line))
	r.line++
	switch {
	case r.n > r.maxDecompressed:
		r.err = r.tooLarge()
		return
	case errors.Is(err, bufio.ErrBufferFull):
		r.err = fmt.Errorf("%w: line %d longer than %d bytes", ErrMalformed, r.line, r.maxLine)
		return
	case err != nil && !errors.Is(err, io.EOF):
		r.err = r.readError(err)
		return
	}
	if !utf8.Valid(line) {
		r.err = fmt.Errorf("%w: invalid UTF-8 in line %d at byte %d", ErrMalformed, r.line, invalidUTF8At(line))
		return
	}
	r.pending = line
	if err != nil {
		r.err = io.EOF // after this last line
	}
}

func (r *lineReader) tooLarge() error {
	return fmt.Errorf("%s: %w (%d bytes)", r.encodingName(), ErrTooLarge, r.maxDecompressed)
}

func (r *lineReader) readError(err error) error {
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return r.tooLarge()
	}
	return fmt.Errorf("%s: %w: %w", r.encodingName(), ErrCorrupt, err)
}

func (r *lineReader) encodingName() string {
	if enc, _ := ParseEncoding(r.encoding); enc != "" {
		return enc
	}
	return r.encoding
}

// drainOr reads the rest of the body, discarding it, to tell whether it is
// over the size limit (then that is the error) or not (then err is).
// Memory stays at one buffer; a corrupt tail keeps err.
func (r *lineReader) drainOr(err error) error {
	if r.err != nil && !errors.Is(r.err, io.EOF) {
		return r.err
	}
	if errors.Is(r.err, io.EOF) {
		return err
	}
	for {
		chunk, rerr := r.br.ReadSlice('\n')
		r.n += int64(len(chunk))
		if r.n > r.maxDecompressed {
			return r.tooLarge()
		}
		switch {
		case rerr == nil, errors.Is(rerr, bufio.ErrBufferFull):
			continue
		case errors.Is(rerr, io.EOF):
			return err
		}
		if e := r.readError(rerr); errors.Is(e, ErrTooLarge) {
			return e
		}
		return err
	}
}

// drain is drainOr for the reader's own error.
func (r *lineReader) drain() error {
	err := r.err
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorrupt) {
		return err
	}
	r.err = nil
	r.pending = nil
	return r.drainOr(err)
}

// decodeLine builds a metric without intermediate tag and field maps, and
// with names and tag values shared across the lines of a body: the line is
// gathered into a reused lineMetric and copied into a metric of exactly its
// size (metric.FromMetric), so building it costs one allocation per tag and
// field and no growing or sorting. Duplicate keys keep the last value.
func decodeLine(dec *lineprotocol.Decoder, now time.Time, strs interner, lm *lineMetric) (telegraf.Metric, error) {
	name, err := dec.Measurement()
	if err != nil {
		return nil, err
	}
	lm.reset(strs.get(name))
	err = eachPair(dec.NextTag, func(k, v []byte) { lm.addTag(strs.get(k), strs.get(v)) })
	if err != nil {
		return nil, err
	}
	err = eachPair(dec.NextField, func(k []byte, v lineprotocol.Value) { lm.addField(strs.get(k), v.Interface()) })
	if err != nil {
		return nil, err
	}
	if lm.tm, err = dec.Time(lineprotocol.Nanosecond, now); err != nil {
		return nil, err
	}
	return metric.FromMetric(lm), nil
}

// eachPair calls add with each key and value next returns until it returns
// a nil key (the end of the line's tags or fields) or an error.
func eachPair[V any](next func() ([]byte, V, error), add func([]byte, V)) error {
	for {
		k, v, err := next()
		if err != nil || k == nil {
			return err
		}
		add(k, v)
	}
}

// lineMetric holds one line while it is decoded. It implements only what
// metric.FromMetric reads (Name, TagList, FieldList, Time, Type); the
// embedded nil interface would panic on anything else.
type lineMetric struct {
	telegraf.Metric

	name   string
	tm     time.Time
	tags   []telegraf.Tag // sorted by key
	fields []telegraf.Field
	// pointer views for TagList and FieldList, rebuilt on each call
	tagPtrs   []*telegraf.Tag
	fieldPtrs []*telegraf.Field
}

func (l *lineMetric) reset(name string) {
	l.name = name
	l.tags, l.fields = l.tags[:0], l.fields[:0]
}

// addTag keeps the tags sorted by key; lines usually are, so it appends.
func (l *lineMetric) addTag(key, value string) {
	i := len(l.tags)
	for i > 0 && l.tags[i-1].Key >= key {
		i--
	}
	if i < len(l.tags) && l.tags[i].Key == key {
		l.tags[i].Value = value
		return
	}
	l.tags = append(l.tags, telegraf.Tag{})
	copy(l.tags[i+1:], l.tags[i:])
	l.tags[i] = telegraf.Tag{Key: key, Value: value}
}

func (l *lineMetric) addField(key string, value any) {
	for i := range l.fields {
		if l.fields[i].Key == key {
			l.fields[i].Value = value
			return
		}
	}
	l.fields = append(l.fields, telegraf.Field{Key: key, Value: value})
}

func (l *lineMetric) Name() string { return l.name }

func (l *lineMetric) TagList() []*telegraf.Tag {
	l.tagPtrs = l.tagPtrs[:0]
	for i := range l.tags {
		l.tagPtrs = append(l.tagPtrs, &l.tags[i])
	}
	return l.tagPtrs
}

func (l *lineMetric) FieldList() []*telegraf.Field {
	l.fieldPtrs = l.fieldPtrs[:0]
	for i := range l.fields {
		l.fieldPtrs = append(l.fieldPtrs, &l.fields[i])
	}
	return l.fieldPtrs
}

func (l *lineMetric) Time() time.Time { return l.tm }

func (*lineMetric) Type() telegraf.ValueType { return telegraf.Untyped }

// interner shares the strings that repeat from line to line of one body
// (measurement names, keys, most tag values), up to a bound so unique
// values (pseudonyms) do not grow it without end.
type interner map[string]string

const maxInterned = 4096

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(in) < maxInterned {
		in[s] = s
	}
	return s
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
