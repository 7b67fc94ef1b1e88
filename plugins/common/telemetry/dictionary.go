// Package telemetry is the wire protocol shared by outputs.vmware_telemetry
// (the agent side) and inputs.vmware_telemetry_listener (the server side):
// the data dictionary and participation levels, the keyed pseudonymizer, the
// header and query names with their status semantics, and the line protocol
// encoder, compressor and decoder.
//
// The data dictionary decides what may leave an installation. It is written
// once, in data-dictionary.toml beside this file (embedded as the default),
// and copied to configs/data-dictionary.toml and rendered to
// docs/data-dictionary.md by `go generate` (see cmd/dictgen); a test fails
// when the copies drift.
package telemetry

//go:generate go run ./cmd/dictgen -copy ../../../configs/data-dictionary.toml -markdown ../../../docs/data-dictionary.md

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/BurntSushi/toml"
)

// DefaultDictionaryTOML is the embedded default data dictionary, the
// canonical copy of configs/data-dictionary.toml.
//
//go:embed data-dictionary.toml
var DefaultDictionaryTOML []byte

// Class says what happens to a tag or field at the standard and enhanced
// levels.
type Class string

const (
	// ClassKeep sends the value as is (within its values or pattern, if any).
	ClassKeep Class = "keep"
	// ClassPseudonymize replaces the value by its keyed pseudonym.
	ClassPseudonymize Class = "pseudonymize"
	// ClassIdentity is a customer identity tag the output adds from its own
	// configuration at the enhanced level only; values in metrics are ignored.
	ClassIdentity Class = "identity"
	// ClassDrop is known and never sent; listed so the choice is documented.
	ClassDrop Class = "drop"
)

// Value types of fields. "int" accepts signed and unsigned integers.
const (
	TypeInt    = "int"
	TypeFloat  = "float"
	TypeString = "string"
	TypeBool   = "bool"
)

// OtherValue replaces a kept string whose value is outside the entry's
// values or pattern: the series survives, the unexpected value does not.
const OtherValue = "other"

// ErrNotAllowed is wrapped by every error of Dictionary.Check.
var ErrNotAllowed = errors.New("not allowed by the data dictionary")

// Entry is one tag or field of the dictionary.
type Entry struct {
	Class   Class  `toml:"class"`
	Type    string `toml:"type"`
	Meaning string `toml:"meaning"`
	// Values, if set, lists the only string values sent as they are.
	Values []string `toml:"values"`
	// Pattern, if set, is a regular expression (anchored) a string value
	// must match to be sent as it is.
	Pattern string `toml:"pattern"`
	// Version, if set, names the version scheme ([versions.<name>]) that
	// splits a value into what is sent (see VersionScheme). Values listed
	// in Values are sent as they are.
	Version string `toml:"version"`

	re     *regexp.Regexp
	scheme *VersionScheme
	values map[string]struct{}
	isTag  bool
	// matched caches what keep returns: the same few values (an OS image,
	// a kernel version) come on every line, and a regexp match costs more
	// than the rest of the line. Bounded; safe for concurrent use.
	matched  sync.Map // string -> string
	nMatched atomic.Int32
}

// Measurement is one measurement of the dictionary.
type Measurement struct {
	Meaning string            `toml:"meaning"`
	Tags    map[string]*Entry `toml:"tags"`
	Fields  map[string]*Entry `toml:"fields"`

	tagOrder   []string
	fieldOrder []string
	// allTags is Tags plus the common tags: one lookup per tag.
	allTags map[string]*Entry
}

// TagKeys returns the measurement's own tag keys in dictionary order.
func (m *Measurement) TagKeys() []string { return m.tagOrder }

// FieldKeys returns the measurement's field keys in dictionary order.
func (m *Measurement) FieldKeys() []string { return m.fieldOrder }

// Dictionary is a parsed, validated data dictionary. It is read-only after
// parsing and safe for concurrent use.
type Dictionary struct {
	Version      string                  `toml:"version"`
	Description  string                  `toml:"description"`
	Common       commonSection           `toml:"common"`
	Measurements map[string]*Measurement `toml:"measurements"`
	// Versions are the version schemes entries refer to by name.
	Versions map[string]*VersionScheme `toml:"versions"`

	// Source names where the dictionary came from, for messages.
	Source string `toml:"-"`

	commonOrder      []string
	measurementOrder []string
	versionOrder     []string
	identityOrder    []string // sorted: the order identity tags are encoded in
}

type commonSection struct {
	// Tags any measurement may carry, e.g. cluster_uid.
	Tags map[string]*Entry `toml:"tags"`
}

// CommonTags returns the tags any measurement may carry, keyed by tag.
func (d *Dictionary) CommonTags() map[string]*Entry { return d.Common.Tags }

// CommonTagKeys returns the common tag keys in dictionary order.
func (d *Dictionary) CommonTagKeys() []string { return d.commonOrder }

// MeasurementNames returns the measurement names in dictionary order.
func (d *Dictionary) MeasurementNames() []string { return d.measurementOrder }

// identityTags returns the keys of class identity, sorted.
func (d *Dictionary) identityTags() []string { return d.identityOrder }

// Tag returns the entry of a tag of a measurement: its own, else a common
// one; nil when neither lists it.
func (d *Dictionary) Tag(measurement, key string) *Entry {
	m := d.Measurements[measurement]
	if m == nil {
		return nil
	}
	return m.allTags[key]
}

// Field returns the entry of a field of a measurement, nil if not listed.
func (d *Dictionary) Field(measurement, key string) *Entry {
	m := d.Measurements[measurement]
	if m == nil {
		return nil
	}
	return m.Fields[key]
}

// DefaultDictionary returns the embedded dictionary, parsed once and
// shared (a Dictionary is read-only). It panics if the embedded file is
// invalid, which a test rules out.
func DefaultDictionary() *Dictionary {
	d, err := defaultDictionary()
	if err != nil {
		panic(err)
	}
	return d
}

var defaultDictionary = sync.OnceValues(func() (*Dictionary, error) {
	return ParseDictionary(DefaultDictionaryTOML, "embedded data-dictionary.toml")
})

// LoadDictionary reads a dictionary file; an empty path gives the embedded
// default.
func LoadDictionary(path string) (*Dictionary, error) {
	if path == "" {
		return defaultDictionary()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading data dictionary: %w", err)
	}
	return ParseDictionary(data, path)
}

// ParseDictionary parses and validates a dictionary; source names it in
// errors. Unknown keys are errors, so a typo cannot silently widen or narrow
// what is sent.
func ParseDictionary(data []byte, source string) (*Dictionary, error) {
	d := &Dictionary{Source: source}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(d)
	if err != nil {
		return nil, fmt.Errorf("data dictionary %s: %w", source, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return nil, fmt.Errorf("data dictionary %s: unknown key %q; allowed per entry: class, type, meaning, values, pattern, version",
			source, undecoded[0].String())
	}
	d.order(md.Keys())
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("data dictionary %s: %w", source, err)
	}
	return d, nil
}

// order records the file order of measurements, tags and fields for the
// rendered table.
func (d *Dictionary) order(keys []toml.Key) {
	for _, k := range keys {
		switch {
		case len(k) == 3 && k[0] == "common" && k[1] == "tags":
			d.commonOrder = append(d.commonOrder, k[2])
		case len(k) == 2 && k[0] == "measurements":
			d.measurementOrder = append(d.measurementOrder, k[1])
		case len(k) == 2 && k[0] == "versions":
			d.versionOrder = append(d.versionOrder, k[1])
		case len(k) == 4 && k[0] == "measurements":
			m := d.Measurements[k[1]]
			if m == nil {
				continue
			}
			switch k[2] {
			case "tags":
				m.tagOrder = append(m.tagOrder, k[3])
			case "fields":
				m.fieldOrder = append(m.fieldOrder, k[3])
			}
		}
	}
}

func (d *Dictionary) validate() error {
	if strings.TrimSpace(d.Version) == "" {
		return errors.New("version is empty; set e.g. version = \"1.0.0\"")
	}
	if !validToken(d.Version, 64) {
		return fmt.Errorf("version %q: use 1-64 letters, digits, '.', '_', '-' or ':'", d.Version)
	}
	if len(d.Measurements) == 0 {
		return errors.New("no measurements: the dictionary would send nothing")
	}
	for name, s := range d.Versions {
		if !validToken(name, 64) {
			return fmt.Errorf("versions.%s: invalid scheme name", name)
		}
		if err := s.prepare(); err != nil {
			return fmt.Errorf("versions.%s: %w", name, err)
		}
	}
	d.versionOrder = completeOrder(d.versionOrder, d.Versions)
	for key, e := range d.Common.Tags {
		if !validKey(key) {
			return fmt.Errorf("common.tags: invalid key %q", key)
		}
		if err := e.prepare(true, true, d.Versions); err != nil {
			return fmt.Errorf("common.tags.%s: %w", key, err)
		}
		if e.Class == ClassIdentity {
			d.identityOrder = append(d.identityOrder, key)
		}
	}
	sort.Strings(d.identityOrder)
	for name, m := range d.Measurements {
		if !validKey(name) {
			return fmt.Errorf("measurements.%s: invalid measurement name", name)
		}
		if strings.TrimSpace(m.Meaning) == "" {
			return fmt.Errorf("measurements.%s: meaning is empty; say in one line what it is", name)
		}
		if len(m.Fields) == 0 {
			return fmt.Errorf("measurements.%s: no fields: a line needs at least one", name)
		}
		for key, e := range m.Tags {
			if !validKey(key) {
				return fmt.Errorf("measurements.%s.tags: invalid key %q", name, key)
			}
			if _, dup := d.Common.Tags[key]; dup {
				return fmt.Errorf("measurements.%s.tags.%s: already a common tag; list it once", name, key)
			}
			if err := e.prepare(true, false, d.Versions); err != nil {
				return fmt.Errorf("measurements.%s.tags.%s: %w", name, key, err)
			}
		}
		for key, e := range m.Fields {
			if !validKey(key) {
				return fmt.Errorf("measurements.%s.fields: invalid key %q", name, key)
			}
			if err := e.prepare(false, false, d.Versions); err != nil {
				return fmt.Errorf("measurements.%s.fields.%s: %w", name, key, err)
			}
		}
		m.allTags = make(map[string]*Entry, len(m.Tags)+len(d.Common.Tags))
		for k, e := range d.Common.Tags {
			m.allTags[k] = e
		}
		for k, e := range m.Tags {
			m.allTags[k] = e
		}
		// Keys missing from the file order (not possible with toml, but
		// keep the table complete) go last, sorted.
		m.tagOrder = completeOrder(m.tagOrder, m.Tags)
		m.fieldOrder = completeOrder(m.fieldOrder, m.Fields)
	}
	d.commonOrder = completeOrder(d.commonOrder, d.Common.Tags)
	d.measurementOrder = completeOrder(d.measurementOrder, d.Measurements)
	return nil
}

func completeOrder[T any](order []string, all map[string]T) []string {
	out := make([]string, 0, len(all))
	for _, k := range order {
		if _, ok := all[k]; ok && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	var rest []string
	for k := range all {
		if !slices.Contains(out, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func (e *Entry) prepare(isTag, common bool, schemes map[string]*VersionScheme) error {
	if e == nil {
		return errors.New("empty entry")
	}
	switch e.Class {
	case ClassKeep, ClassPseudonymize, ClassDrop:
	case ClassIdentity:
		if !common || !isTag {
			return errors.New("class identity is only allowed in [common.tags]: the output adds it to every metric")
		}
	case "":
		return errors.New("class is missing; use keep, pseudonymize, identity or drop")
	default:
		return fmt.Errorf("class %q unknown; use keep, pseudonymize, identity or drop", e.Class)
	}
	if strings.TrimSpace(e.Meaning) == "" {
		return errors.New("meaning is empty; say in one line what it is")
	}
	e.isTag = isTag
	if isTag {
		if e.Type != "" && e.Type != TypeString {
			return fmt.Errorf("type %q: tags are always strings; omit type", e.Type)
		}
		e.Type = TypeString
	} else {
		switch e.Type {
		case TypeInt, TypeFloat, TypeString, TypeBool:
		case "":
			return errors.New("type is missing; use int, float, string or bool")
		default:
			return fmt.Errorf("type %q unknown; use int, float, string or bool", e.Type)
		}
	}
	if e.Class == ClassPseudonymize && e.Type != TypeString {
		return fmt.Errorf("class pseudonymize needs type string, not %q", e.Type)
	}
	if len(e.Values) > 0 || e.Pattern != "" || e.Version != "" {
		if e.Class != ClassKeep || e.Type != TypeString {
			return errors.New("values, pattern and version apply to kept strings only")
		}
	}
	if e.Version != "" {
		if e.Pattern != "" {
			return errors.New("pattern and version exclude each other: the version scheme decides what is sent")
		}
		e.scheme = schemes[e.Version]
		if e.scheme == nil {
			names := make([]string, 0, len(schemes))
			for n := range schemes {
				names = append(names, n)
			}
			sort.Strings(names)
			return fmt.Errorf("version %q: no [versions.%s]; defined: %s", e.Version, e.Version, strings.Join(names, ", "))
		}
	}
	if len(e.Values) > 0 {
		e.values = make(map[string]struct{}, len(e.Values))
		for _, v := range e.Values {
			if isTag && !validTagValue(v) {
				return fmt.Errorf("value %q cannot be a tag value: use printable characters without a trailing backslash", v)
			}
			e.values[v] = struct{}{}
		}
	}
	if e.Pattern != "" {
		re, err := regexp.Compile(`^(?:` + e.Pattern + `)$`)
		if err != nil {
			return fmt.Errorf("pattern: %w", err)
		}
		e.re = re
	}
	return nil
}

func validKey(s string) bool {
	if s == "" || strings.HasSuffix(s, `\`) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
