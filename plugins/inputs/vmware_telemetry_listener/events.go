package vmware_telemetry_listener

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Events from the platform API arrive as JSON, one document or an array of
// them (see README "Events endpoint"):
//
//	{"type": "cluster.create.succeeded", "time": "2026-01-02T15:04:05Z",
//	 "id": "3f0c...", "severity": "info", "source": "tkgi-api",
//	 "attributes": {"plan": "small", "worker_nodes": 3, "upgrade": false}}
//
// Each becomes one metric "tkgi_event" with tags event_type, severity and
// (if set) source, and fields event_id (if set) plus one per attribute.
// Unknown keys, nested attribute values and over-long names are refused:
// the schema is the contract, as the data dictionary is for metrics.

const (
	eventMeasurement = "tkgi_event"
	// maxEvents caps the events of one request (with max_batch_metrics).
	maxEvents          = 10000
	maxEventAttributes = 64
	maxNameLen         = 64
	maxStringValueLen  = 1024
)

type eventDoc struct {
	Type       string                     `json:"type"`
	Time       string                     `json:"time"`
	ID         string                     `json:"id"`
	Severity   string                     `json:"severity"`
	Source     string                     `json:"source"`
	Attributes map[string]json.RawMessage `json:"attributes"`
}

var severities = map[string]bool{"info": true, "warning": true, "error": true}

// reservedEventFields are written by the listener; attributes may not use them.
var reservedEventFields = map[string]bool{"event_id": true, fieldReceiveTime: true}

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
		m, err := parseEvent(raw, now)
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

// parseEvent checks one event's JSON and makes its metric.
func parseEvent(raw json.RawMessage, now time.Time) (telegraf.Metric, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d eventDoc
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	return d.toMetric(now)
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

func (d *eventDoc) toMetric(now time.Time) (telegraf.Metric, error) {
	if d.Type == "" {
		return nil, errors.New(`"type" is required`)
	}
	if !telemetry.ValidID(d.Type) {
		return nil, fmt.Errorf(`"type" %q: use at most 128 letters, digits, '.', '_', '-' or ':'`, d.Type)
	}
	severity := d.Severity
	if severity == "" {
		severity = "info"
	}
	if !severities[severity] {
		return nil, fmt.Errorf(`"severity" %q: use "info", "warning" or "error"`, d.Severity)
	}
	ts := now
	if d.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, d.Time)
		if err != nil {
			return nil, fmt.Errorf(`"time" %q is not RFC 3339: %w`, d.Time, err)
		}
		ts = t
	}
	tags := map[string]string{"event_type": d.Type, "severity": severity}
	if d.Source != "" {
		if !telemetry.ValidID(d.Source) {
			return nil, fmt.Errorf(`"source" %q: use at most 128 letters, digits, '.', '_', '-' or ':'`, d.Source)
		}
		tags["source"] = d.Source
	}
	if len(d.Attributes) > maxEventAttributes {
		return nil, fmt.Errorf(`%d "attributes"; at most %d`, len(d.Attributes), maxEventAttributes)
	}
	fields := make(map[string]interface{}, len(d.Attributes)+2)
	if d.ID != "" {
		if len(d.ID) > maxNameLen*2 {
			return nil, fmt.Errorf(`"id" longer than %d bytes`, maxNameLen*2)
		}
		fields["event_id"] = d.ID
	}
	for k, raw := range d.Attributes {
		if !validFieldName(k) {
			return nil, fmt.Errorf(`attribute %q: names are 1-%d of a-z, 0-9 and '_'`, k, maxNameLen)
		}
		if reservedEventFields[k] {
			return nil, fmt.Errorf(`attribute %q is reserved`, k)
		}
		v, err := attributeValue(raw)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		fields[k] = v
	}
	return metric.New(eventMeasurement, tags, fields, ts), nil
}

// attributeValue accepts a JSON string, number or boolean.
func attributeValue(raw json.RawMessage) (interface{}, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case string:
		if len(v) > maxStringValueLen {
			return nil, fmt.Errorf("string longer than %d bytes", maxStringValueLen)
		}
		return v, nil
	case bool:
		return v, nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s out of range", v)
		}
		return f, nil
	default:
		return nil, errors.New("only strings, numbers and booleans are allowed")
	}
}

func validFieldName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
