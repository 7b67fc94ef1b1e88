package kube_telemetry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// A list page is streamed, not read whole: client-go's List reads the
// response into one buffer and decodes every item before returning, so a
// page of 500 pods costs megabytes whichever way it is folded. Here the
// body is read through a small buffer and each item is handed over, as its
// protobuf encoding, the moment it is complete; the fold decodes it into one
// reused object with the type's generated Unmarshal, counts it and moves
// on. Memory per list in flight is one item, whatever the page size.
//
// The format is the API server's protobuf encoding of a list, stable since
// Kubernetes 1.3: the magic "k8s\x00", then a runtime.Unknown whose field 2
// (raw) holds the list, whose field 1 is its ListMeta (continue token) and
// whose field 2, repeated, its items. Protobuf field numbers are part of the
// Kubernetes API's compatibility guarantees.

const (
	protobufMediaType = "application/vnd.kubernetes.protobuf"
	// Asks for the objects' metadata only, for resources that are counted.
	metadataMediaType = protobufMediaType + ";as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

	streamBufferSize = 64 << 10
	// maxItemBytes bounds one item: etcd refuses objects over 1.5 MiB by
	// default, so anything near this is a corrupt stream, not an object.
	maxItemBytes = 64 << 20

	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

// lister fetches one page of a list and hands each item's protobuf encoding
// to item, returning the continue token and the number of items.
type lister interface {
	listPage(ctx context.Context, res resource, opts metav1.ListOptions, item func([]byte) error) (string, int, error)
}

// restLister streams pages through a client-go REST client, so requests
// get its authentication, rate limiting, retries and error decoding.
type restLister struct {
	rest rest.Interface
	// idle bounds the silence of one response, not its length: an
	// unpaginated list of a large cluster streams for longer than any
	// sensible per-request timeout, but a healthy server never stops
	// sending for long.
	idle time.Duration
	// firstByte bounds the wait for an unpaginated list's first byte: the
	// API server assembles the whole list from its watch cache before it
	// encodes the first item, which at 150,000 pods on a busy control
	// plane takes longer than idle.
	firstByte time.Duration
}

func (l *restLister) listPage(ctx context.Context, res resource, opts metav1.ListOptions, item func([]byte) error) (string, int, error) {
	accept := protobufMediaType
	if res.metadataOnly {
		accept = metadataMediaType
	}
	req := l.rest.Get().AbsPath(res.path()).SetHeader("Accept", accept)
	// No limit asks for the whole list in one response.
	if opts.Limit > 0 {
		req = req.Param("limit", strconv.FormatInt(opts.Limit, 10))
	}
	if opts.Continue != "" {
		req = req.Param("continue", opts.Continue)
	}
	first := l.idle
	if opts.Limit == 0 && l.firstByte > first {
		first = l.firstByte
	}
	ctx, w := watchIdle(ctx, first, l.idle)
	defer w.stop()
	body, err := req.Stream(ctx)
	if err != nil {
		return "", 0, w.explain(ctx, err)
	}
	defer body.Close()
	next, n, err := decodeList(w.reader(body), item)
	if err != nil {
		return "", 0, w.explain(ctx, err)
	}
	return next, n, nil
}

// stalledError is a response that sent nothing for response_timeout, or
// did not start within the first-byte allowance.
type stalledError struct {
	after     time.Duration
	firstByte bool
}

func (e *stalledError) Error() string {
	if e.firstByte {
		return fmt.Sprintf("the API server did not start answering within %s", e.after)
	}
	return fmt.Sprintf("the API server sent nothing for %s", e.after)
}

// idleWatch cancels a request whose response stays silent for longer than
// its limit; every read that returns bytes re-arms it.
type idleWatch struct {
	started atomic.Bool
	limit   time.Duration
	timer   *time.Timer
	cancel  context.CancelCauseFunc
}

// watchIdle allows first for the first bytes, then limit between reads.
func watchIdle(ctx context.Context, first, limit time.Duration) (context.Context, *idleWatch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &idleWatch{limit: limit, cancel: cancel}
	w.timer = time.AfterFunc(first, func() {
		if w.started.Load() {
			cancel(&stalledError{after: limit})
		} else {
			cancel(&stalledError{after: first, firstByte: true})
		}
	})
	return ctx, w
}

func (w *idleWatch) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// explain replaces the transport's "context canceled" by what caused it:
// a stall, or the bound on the whole collection.
func (w *idleWatch) explain(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
		return cause
	}
	return err
}

func (w *idleWatch) reader(r io.Reader) io.Reader { return &idleReader{r: r, w: w} }

type idleReader struct {
	r io.Reader
	w *idleWatch
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.w.started.Store(true)
		r.w.timer.Reset(r.w.limit)
	}
	return n, err
}

// decodeList reads one protobuf-encoded list from r.
func decodeList(r io.Reader, item func([]byte) error) (string, int, error) {
	pr := &pbReader{r: bufio.NewReaderSize(r, streamBufferSize), left: -1}
	magic := make([]byte, len(protobufMagic))
	if _, err := io.ReadFull(pr.r, magic); err != nil {
		return "", 0, fmt.Errorf("reading the list: %w", err)
	}
	if !bytes.Equal(magic, protobufMagic) {
		return "", 0, fmt.Errorf("the API server did not answer in protobuf (the response starts with %q)", magic)
	}
	var next string
	var n int
	var raw bool
	for {
		field, wire, err := pr.tag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", 0, err
		}
		if field != 2 || wire != wireBytes {
			if err := pr.skip(wire); err != nil {
				return "", 0, err
			}
			continue
		}
		size, err := pr.uvarint()
		if err != nil {
			return "", 0, err
		}
		// runtime.Unknown.raw: the list itself.
		raw = true
		list := &pbReader{r: pr.r, left: int64(size)}
		if next, n, err = decodeListBody(list, item); err != nil {
			return "", 0, err
		}
	}
	if !raw {
		return "", 0, errors.New("the API server's answer holds no list")
	}
	return next, n, nil
}

func decodeListBody(pr *pbReader, item func([]byte) error) (string, int, error) {
	var next string
	var n int
	var buf []byte
	for pr.left > 0 {
		field, wire, err := pr.tag()
		if err != nil {
			return "", 0, err
		}
		if (field != 1 && field != 2) || wire != wireBytes {
			if err := pr.skip(wire); err != nil {
				return "", 0, err
			}
			continue
		}
		if buf, err = pr.bytes(buf); err != nil {
			return "", 0, err
		}
		if field == 1 {
			var lm metav1.ListMeta
			if err := lm.Unmarshal(buf); err != nil {
				return "", 0, fmt.Errorf("decoding the list's metadata: %w", err)
			}
			next = lm.Continue
			continue
		}
		n++
		if err := item(buf); err != nil {
			return "", 0, fmt.Errorf("decoding item %d: %w", n, err)
		}
	}
	return next, n, nil
}

// pbReader reads protobuf wire format from a stream, at most left bytes
// (-1: up to EOF).
type pbReader struct {
	r    *bufio.Reader
	left int64
}

func (p *pbReader) ReadByte() (byte, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	b, err := p.r.ReadByte()
	if err != nil {
		return 0, err
	}
	if p.left > 0 {
		p.left--
	}
	return b, nil
}

func (p *pbReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(p)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

// tag reads a field's tag; io.EOF only at a clean end of the stream.
func (p *pbReader) tag() (field uint64, wire int, err error) {
	v, err := binary.ReadUvarint(p)
	if err != nil {
		return 0, 0, err
	}
	return v >> 3, int(v & 7), nil
}

// bytes reads a length-delimited field into buf, grown as needed.
func (p *pbReader) bytes(buf []byte) ([]byte, error) {
	size, err := p.uvarint()
	if err != nil {
		return nil, err
	}
	if size > maxItemBytes || (p.left >= 0 && int64(size) > p.left) {
		return nil, fmt.Errorf("corrupt list: a field of %d bytes", size)
	}
	if uint64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(p.r, buf); err != nil {
		return nil, fmt.Errorf("reading the list: %w", unexpected(err))
	}
	if p.left > 0 {
		p.left -= int64(size)
	}
	return buf, nil
}

// skip discards a field of the given wire type.
func (p *pbReader) skip(wire int) error {
	var size uint64
	switch wire {
	case wireVarint:
		_, err := p.uvarint()
		return err
	case wireFixed64:
		size = 8
	case wireFixed32:
		size = 4
	case wireBytes:
		var err error
		if size, err = p.uvarint(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("corrupt list: wire type %d", wire)
	}
	if p.left >= 0 && int64(size) > p.left {
		return fmt.Errorf("corrupt list: a field of %d bytes", size)
	}
	if _, err := p.r.Discard(int(size)); err != nil {
		return fmt.Errorf("reading the list: %w", unexpected(err))
	}
	if p.left > 0 {
		p.left -= int64(size)
	}
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// protoObject is a Kubernetes API type with generated protobuf code.
type protoObject interface {
	Reset()
	Unmarshal([]byte) error
}

// decodeInto decodes one item into obj, reused from item to item.
func decodeInto(obj protoObject, raw []byte) error {
	obj.Reset()
	return obj.Unmarshal(raw)
}
