package telemetry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// Identity tag keys; the dictionary lists them with class identity.
const (
	TagCustomerNumber    = "customer_number"
	TagInstallationLabel = "installation_label"
	TagInstallationType  = "installation_type"
)

// Identity is the customer identity the output adds at the enhanced level.
type Identity struct {
	CustomerNumber    string
	InstallationLabel string
	InstallationType  string
}

// Verdict is what a Policy did with a metric.
type Verdict uint8

const (
	// Sent: the metric leaves, as the View shows it.
	Sent Verdict = iota
	// DroppedLevel: the level is none.
	DroppedLevel
	// DroppedMeasurement: the dictionary does not list the measurement.
	DroppedMeasurement
	// DroppedEmpty: no field of the metric is allowed.
	DroppedEmpty
)

func (v Verdict) String() string {
	switch v {
	case Sent:
		return "sent"
	case DroppedLevel:
		return "level"
	case DroppedMeasurement:
		return "measurement"
	case DroppedEmpty:
		return "no_fields"
	}
	return "unknown"
}

// View is a metric as it leaves the installation: the lightweight form the
// encoder writes, without building a telegraf.Metric. Tags are sorted by
// key, fields by key, so equal metrics give equal bytes. A View's slices
// are reused by the next Policy.View call.
type View struct {
	Name   string
	Tags   []telegraf.Tag
	Fields []telegraf.Field
	Time   time.Time
}

// toMetric builds a telegraf.Metric from the view.
func (v *View) toMetric() telegraf.Metric {
	tags := make(map[string]string, len(v.Tags))
	for _, t := range v.Tags {
		tags[t.Key] = t.Value
	}
	fields := make(map[string]any, len(v.Fields))
	for _, f := range v.Fields {
		fields[f.Key] = f.Value
	}
	return metric.New(v.Name, tags, fields, v.Time)
}

// Policy applies one participation level of a dictionary: what the output
// runs on every metric before encoding. It is read-only once made, and its
// pseudonymizer and the dictionary's caches are safe for concurrent use,
// so one policy serves any number of goroutines, each with its own View.
type Policy struct {
	dict     *Dictionary
	level    Level
	ps       *Pseudonymizer
	identity []telegraf.Tag // sorted by key; empty below enhanced
}

// NewPolicy checks the level's requirements: a pseudonymizer for standard
// and enhanced, a customer number for enhanced (and identity values only at
// enhanced, where the dictionary lists their keys as identity).
func NewPolicy(d *Dictionary, level Level, ps *Pseudonymizer, id Identity) (*Policy, error) {
	if d == nil {
		return nil, errors.New("no data dictionary")
	}
	if _, err := ParseLevel(string(level)); err != nil {
		return nil, err
	}
	p := &Policy{dict: d, level: level, ps: ps}
	if level == LevelNone {
		return p, nil
	}
	if ps == nil {
		return nil, fmt.Errorf("level %s needs a pseudonymizer", level)
	}
	if level != LevelEnhanced {
		return p, nil
	}
	if strings.TrimSpace(id.CustomerNumber) == "" {
		return nil, fmt.Errorf("level %s needs a customer number", level)
	}
	for _, t := range []telegraf.Tag{
		{Key: TagCustomerNumber, Value: id.CustomerNumber},
		{Key: TagInstallationLabel, Value: id.InstallationLabel},
		{Key: TagInstallationType, Value: id.InstallationType},
	} {
		if t.Value == "" {
			continue
		}
		if e := d.Common.Tags[t.Key]; e == nil || e.Class != ClassIdentity {
			return nil, fmt.Errorf("data dictionary %s (version %s) does not list %q as an identity tag", d.Source, d.Version, t.Key)
		}
		if !validIdentityValue(t.Value) {
			return nil, fmt.Errorf("%s %q: use 1-256 printable characters without a trailing backslash", t.Key, t.Value)
		}
		p.identity = append(p.identity, t)
	}
	slices.SortFunc(p.identity, func(a, b telegraf.Tag) int { return strings.Compare(a.Key, b.Key) })
	return p, nil
}

func validIdentityValue(s string) bool {
	return len(s) <= 256 && utf8.ValidString(s) && validKey(s)
}

// View fills v with what leaves of m and says whether anything does.
// Fail closed: tags and fields the dictionary does not list are left out,
// kept strings outside their values or pattern become OtherValue, versions
// are cut to their core and allowed token (see VersionScheme), fields of
// the wrong type are left out, pseudonymized values are replaced, identity
// tags come from the policy only.
func (p *Policy) View(m telegraf.Metric, v *View) Verdict {
	v.Name = ""
	v.Tags = v.Tags[:0]
	v.Fields = v.Fields[:0]
	if p.level == LevelNone {
		return DroppedLevel
	}
	meas := p.dict.Measurements[m.Name()]
	if meas == nil {
		return DroppedMeasurement
	}

	// Tags arrive sorted; the identity tags are merged in order.
	id := p.identity
	for _, t := range m.TagList() {
		e := meas.allTags[t.Key]
		if e == nil {
			continue
		}
		for len(id) > 0 && id[0].Key < t.Key {
			v.Tags = append(v.Tags, id[0])
			id = id[1:]
		}
		switch e.Class {
		case ClassKeep:
			v.Tags = append(v.Tags, telegraf.Tag{Key: t.Key, Value: e.keep(t.Value)})
		case ClassPseudonymize:
			v.Tags = append(v.Tags, telegraf.Tag{Key: t.Key, Value: p.ps.Pseudonym(t.Key, t.Value)})
		}
	}
	v.Tags = append(v.Tags, id...)

	for _, f := range m.FieldList() {
		e := meas.Fields[f.Key]
		if e == nil || !typeMatches(e.Type, f.Value) {
			continue
		}
		switch e.Class {
		case ClassKeep:
			val := f.Value
			if s, ok := val.(string); ok {
				val = e.keep(s)
			}
			v.Fields = append(v.Fields, telegraf.Field{Key: f.Key, Value: val})
		case ClassPseudonymize:
			v.Fields = append(v.Fields, telegraf.Field{Key: f.Key, Value: p.ps.Pseudonym(f.Key, f.Value.(string))})
		}
	}
	if len(v.Fields) == 0 {
		return DroppedEmpty
	}
	sortFields(v.Fields)
	v.Name = m.Name()
	v.Time = m.Time()
	return Sent
}

// sortFields sorts by key: an insertion sort, as a metric has a dozen
// fields at most and arrives in map order; cheaper than slices.SortFunc.
func sortFields(f []telegraf.Field) {
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].Key < f[j-1].Key; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

// Apply returns what leaves of m as a new metric, or nil and the reason.
func (p *Policy) Apply(m telegraf.Metric) (telegraf.Metric, Verdict) {
	var v View
	if verdict := p.View(m, &v); verdict != Sent {
		return nil, verdict
	}
	return v.toMetric(), Sent
}

// TypeOf returns the dictionary type of a field value (TypeInt, TypeFloat,
// TypeString, TypeBool), or "" for a value line protocol cannot carry.
func TypeOf(v any) string {
	switch v.(type) {
	case int64, uint64:
		return TypeInt
	case float64:
		return TypeFloat
	case string:
		return TypeString
	case bool:
		return TypeBool
	}
	return ""
}

func typeMatches(typ string, v any) bool { return typ != "" && TypeOf(v) == typ }

// Level is a participation level.
type Level string

const (
	// LevelNone forwards nothing and opens no connection.
	LevelNone Level = "none"
	// LevelStandard forwards what the dictionary allows, pseudonymized,
	// without customer identity.
	LevelStandard Level = "standard"
	// LevelEnhanced adds the customer identity tags to standard.
	LevelEnhanced Level = "enhanced"
)

// ParseLevel parses a participation level; the error names the allowed values.
func ParseLevel(s string) (Level, error) {
	switch l := Level(s); l {
	case LevelNone, LevelStandard, LevelEnhanced:
		return l, nil
	}
	return "", fmt.Errorf("participation level %q unknown; use %q, %q or %q", s, LevelNone, LevelStandard, LevelEnhanced)
}
