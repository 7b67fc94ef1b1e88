package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// Platform events: the JSON document the platform API posts to the
// listener's events endpoint, and the tkgi_event metric each becomes. The
// listener maps documents to metrics and the relay maps stored metrics back
// to documents, with this one schema, so an event relayed upstream is
// stored there as the installation stored it:
//
//	{"type": "cluster.create.succeeded", "time": "2026-01-02T15:04:05Z",
//	 "id": "3f0c...", "severity": "info", "source": "tkgi-api",
//	 "attributes": {"plan": "small", "worker_nodes": 3, "upgrade": false}}
//
// becomes the metric tkgi_event with tags event_type, severity and (if
// set) source, fields event_id (if set) plus one per attribute, at "time"
// (the receive time without it). Unknown keys, nested attribute values and
// over-long names are refused: the schema is the contract, as the data
// dictionary is for metrics.
const (
	EventMeasurement = "tkgi_event"
	// EventContentType is the events endpoint's body (before
	// Content-Encoding).
	EventContentType = "application/json"

	EventTagType     = "event_type"
	EventTagSeverity = "severity"
	EventTagSource   = "source"
	EventFieldID     = "event_id"

	MaxEventAttributes = 64
	// MaxEventNameLen bounds attribute names; ids get twice as much.
	MaxEventNameLen = 64
	MaxEventIDLen   = 2 * MaxEventNameLen
	// MaxEventStringLen bounds a string attribute, in bytes.
	MaxEventStringLen = 1024
)

// The stamps the listener adds to every metric it stores: who sent it, at
// which level, when it arrived, and (stored through the stream) the
// batch's Idempotency-Key. Events may not use them, nor event_id, as
// attribute names.
const (
	StampCollector   = "collector"
	StampInstance    = "instance"
	StampLevel       = "level"
	StampReceiveTime = "receive_time"
	StampBatchKey    = "batch_key"
)

// Event is one platform event as posted.
type Event struct {
	Type       string                     `json:"type"`
	Time       string                     `json:"time,omitempty"`
	ID         string                     `json:"id,omitempty"`
	Severity   string                     `json:"severity,omitempty"`
	Source     string                     `json:"source,omitempty"`
	Attributes map[string]json.RawMessage `json:"attributes,omitempty"`
}

var eventSeverities = map[string]bool{"info": true, "warning": true, "error": true}

var reservedEventFields = map[string]bool{EventFieldID: true, StampReceiveTime: true, StampBatchKey: true}

// ParseEvent checks one event's JSON and makes its metric; now is the
// time of an event without one.
func ParseEvent(raw []byte, now time.Time) (telegraf.Metric, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var e Event
	if err := dec.Decode(&e); err != nil {
		return nil, err
	}
	return e.Metric(now)
}

// Metric checks the event and makes its metric.
func (e *Event) Metric(now time.Time) (telegraf.Metric, error) {
	if e.Type == "" {
		return nil, errors.New(`"type" is required`)
	}
	if !ValidID(e.Type) {
		return nil, fmt.Errorf(`"type" %q: use at most %d letters, digits, '.', '_', '-' or ':'`, e.Type, MaxIDLength)
	}
	severity := e.Severity
	if severity == "" {
		severity = "info"
	}
	if !eventSeverities[severity] {
		return nil, fmt.Errorf(`"severity" %q: use "info", "warning" or "error"`, e.Severity)
	}
	ts := now
	if e.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			return nil, fmt.Errorf(`"time" %q is not RFC 3339: %w`, e.Time, err)
		}
		ts = t
	}
	tags := map[string]string{EventTagType: e.Type, EventTagSeverity: severity}
	if e.Source != "" {
		if !ValidID(e.Source) {
			return nil, fmt.Errorf(`"source" %q: use at most %d letters, digits, '.', '_', '-' or ':'`, e.Source, MaxIDLength)
		}
		tags[EventTagSource] = e.Source
	}
	if len(e.Attributes) > MaxEventAttributes {
		return nil, fmt.Errorf(`%d "attributes"; at most %d`, len(e.Attributes), MaxEventAttributes)
	}
	fields := make(map[string]any, len(e.Attributes)+2)
	if e.ID != "" {
		if len(e.ID) > MaxEventIDLen {
			return nil, fmt.Errorf(`"id" longer than %d bytes`, MaxEventIDLen)
		}
		fields[EventFieldID] = e.ID
	}
	for k, raw := range e.Attributes {
		if !validAttributeName(k) {
			return nil, fmt.Errorf(`attribute %q: names are 1-%d of a-z, 0-9 and '_'`, k, MaxEventNameLen)
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
	return metric.New(EventMeasurement, tags, fields, ts), nil
}

// EventOf is the document of a tkgi_event metric whose stamps are taken
// off: Metric of the result gives m back (same tags, fields, value types
// and time), which EventOf checks, so a metric the schema cannot carry is
// refused here, naming why, rather than by the server it is sent to.
func EventOf(m telegraf.Metric) (Event, error) {
	if m.Name() != EventMeasurement {
		return Event{}, fmt.Errorf("measurement %q is not an event (%s)", m.Name(), EventMeasurement)
	}
	e := Event{Time: m.Time().UTC().Format(time.RFC3339Nano)}
	for _, t := range m.TagList() {
		switch t.Key {
		case EventTagType:
			e.Type = t.Value
		case EventTagSeverity:
			e.Severity = t.Value
		case EventTagSource:
			e.Source = t.Value
		default:
			return Event{}, fmt.Errorf("tag %q is not part of an event", t.Key)
		}
	}
	for _, f := range m.FieldList() {
		if f.Key == EventFieldID {
			id, ok := f.Value.(string)
			if !ok {
				return Event{}, fmt.Errorf("field %s is a %T, not a string", EventFieldID, f.Value)
			}
			e.ID = id
			continue
		}
		raw, err := attributeJSON(f.Value)
		if err != nil {
			return Event{}, fmt.Errorf("field %q: %w", f.Key, err)
		}
		if e.Attributes == nil {
			e.Attributes = make(map[string]json.RawMessage, len(m.FieldList()))
		}
		e.Attributes[f.Key] = raw
	}
	back, err := e.Metric(m.Time())
	if err != nil {
		return Event{}, err
	}
	if err := sameEvent(m, back); err != nil {
		return Event{}, err
	}
	return e, nil
}

// sameEvent reports the first difference between an event metric and the
// metric its document makes.
func sameEvent(m, back telegraf.Metric) error {
	if len(back.TagList()) != len(m.TagList()) {
		return fmt.Errorf("event tags %v would be stored as %v", m.Tags(), back.Tags())
	}
	for _, t := range m.TagList() {
		if v, _ := back.GetTag(t.Key); v != t.Value {
			return fmt.Errorf("tag %q %q would be stored as %q", t.Key, t.Value, v)
		}
	}
	if len(back.FieldList()) != len(m.FieldList()) {
		return fmt.Errorf("event fields %v would be stored as %v", m.Fields(), back.Fields())
	}
	for _, f := range m.FieldList() {
		if v, _ := back.GetField(f.Key); v != f.Value {
			return fmt.Errorf("field %q %v (%T) would be stored as %v (%T)", f.Key, f.Value, f.Value, v, v)
		}
	}
	return nil
}

// attributeValue accepts a JSON string, number or boolean: a number is an
// int64 when it is a whole number written without a fraction or exponent
// that fits, else a float64.
func attributeValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case string:
		if len(v) > MaxEventStringLen {
			return nil, fmt.Errorf("string longer than %d bytes", MaxEventStringLen)
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

// attributeJSON writes a field value so that attributeValue reads the
// same value and type: a float always with a fraction or an exponent.
func attributeJSON(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case string:
		return json.Marshal(x)
	case bool:
		return json.Marshal(x)
	case int64:
		return json.RawMessage(strconv.FormatInt(x, 10)), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v has no JSON number", x)
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return json.RawMessage(s), nil
	}
	return nil, fmt.Errorf("a %T is not an event attribute (string, int64, float64 or bool)", v)
}

func validAttributeName(s string) bool {
	if s == "" || len(s) > MaxEventNameLen {
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
