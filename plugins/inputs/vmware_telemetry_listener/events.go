package vmware_telemetry_listener

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Events from the platform API arrive as JSON, one document or an array of
// them (see README "The events endpoint"); telemetry.ParseEvent is the
// schema, shared with the relay, which makes the documents again.
//
// maxEvents caps the events of one request (with max_batch_metrics).
const maxEvents = 10000

// parseEvents decodes and validates a body as a stream, one event at a
// time: no event may take more than maxEventSize bytes of JSON, and admit
// is called with each event's metric as soon as it is decoded (it caps the
// count and the memory). The body is never held whole, so an array of
// millions of empty objects is refused after the first ones beyond the
// limits. Any bad event refuses the body (400 naming the event's index and
// key), so nothing is partly stored.
func parseEvents(src io.Reader, now time.Time, maxEventSize int64, admit func(telegraf.Metric) error) ([]telegraf.Metric, error) {
	lim := &eventLimitReader{src: src}
	br := bufio.NewReaderSize(lim, 512)
	lim.allow(maxEventSize)
	first, err := firstByte(br)
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty body: send a JSON event object or an array of them")
	}
	if err != nil {
		return nil, eventsReadError(err, 0, maxEventSize)
	}
	dec := json.NewDecoder(br)

	var metrics []telegraf.Metric
	one := func(i int) error {
		lim.allow(maxEventSize)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return eventsReadError(err, i, maxEventSize)
		}
		m, err := telemetry.ParseEvent(raw, now)
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if err := admit(m); err != nil {
			return err
		}
		metrics = append(metrics, m)
		return nil
	}
	if first == '[' {
		lim.allow(maxEventSize)
		if _, err := dec.Token(); err != nil {
			return nil, eventsReadError(err, 0, maxEventSize)
		}
		for i := 0; ; i++ {
			lim.allow(maxEventSize)
			if !dec.More() {
				break
			}
			if err := one(i); err != nil {
				return nil, err
			}
		}
		lim.allow(maxEventSize)
		if _, err := dec.Token(); err != nil {
			return nil, eventsReadError(err, len(metrics), maxEventSize)
		}
	} else if err := one(0); err != nil {
		return nil, err
	}
	lim.allow(maxEventSize)
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON document")
	}
	return metrics, nil
}

// firstByte skips whitespace and peeks at the first byte of the document.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

// errEventTooLarge is the eventLimitReader's refusal to read on.
var errEventTooLarge = errors.New("event too large")

func eventsReadError(err error, i int, maxEventSize int64) error {
	switch {
	case errors.Is(err, errEventTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "event %d is larger than max_line_size (%d bytes)", i, maxEventSize)
	case errors.Is(err, telemetry.ErrTooLarge), errors.Is(err, telemetry.ErrCorrupt):
		return decodeError(err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("decoding event %d: unexpected end of the JSON document", i)
	}
	return fmt.Errorf("decoding event %d: %w", i, err)
}

// eventLimitReader lets the JSON decoder read at most a given number of
// bytes for the event it decodes (allow, before each): the decoder buffers
// a whole value, so this bounds its memory to about twice the largest
// event allowed, whatever the body holds.
type eventLimitReader struct {
	src  io.Reader
	left int64
}

func (r *eventLimitReader) allow(n int64) { r.left = n }

func (r *eventLimitReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, errEventTooLarge
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.src.Read(p)
	r.left -= int64(n)
	return n, err
}
