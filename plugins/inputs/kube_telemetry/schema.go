package kube_telemetry

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"

	"github.com/BurntSushi/toml"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The schema is every metric the plugin emits, declared once as data in
// metrics.toml: the measurement, its tags and fields with their types and
// meanings. The emitter refuses what it does not declare; the README's
// metric list is rendered from it; tests check the data dictionary (whose
// classes and allowed values decide what leaves the installation) against
// it both ways, and other packages' fixtures are built from it (Schema).

//go:embed metrics.toml
var metricsTOML []byte

// valueType is the type of a field's value, as emitted.
type valueType int

const (
	typeInt valueType = iota
	typeFloat
	typeString
	typeBool
)

var (
	// dictionaryTypes are the types' names in metrics.toml and the data
	// dictionary.
	dictionaryTypes = [...]string{"int", "float", "string", "bool"}
	// readmeTypes are their names in the README, upstream Telegraf's.
	readmeTypes = [...]string{"integer", "float", "string", "boolean"}
)

func (t valueType) String() string         { return readmeTypes[t] }
func (t valueType) dictionaryType() string { return dictionaryTypes[t] }

// matches reports whether v is a value of the type, in the dictionary's
// terms: what the emitter accepts is what the policy keeps.
func (t valueType) matches(v any) bool { return telemetry.TypeOf(v) == t.dictionaryType() }

// key is one tag or field of a measurement. Tags are strings.
type key struct {
	name string
	typ  valueType
	doc  string
}

// measurement is one metric of the schema.
type measurement struct {
	name string
	// series says what one series is when there are several per cluster.
	series string
	tags   []key // beside the common tags
	fields []key

	tagIndex   map[string]bool
	fieldIndex map[string]valueType
}

// schemaFile is the layout of metrics.toml.
type schemaFile struct {
	CommonTags   []schemaFileKey `toml:"common_tags"`
	Measurements []struct {
		Name   string          `toml:"name"`
		Series string          `toml:"series"`
		Tags   []schemaFileKey `toml:"tags"`
		Fields []schemaFileKey `toml:"fields"`
	} `toml:"measurements"`
}

type schemaFileKey struct {
	Name string `toml:"name"`
	Type string `toml:"type"`
	Doc  string `toml:"doc"`
}

// parseSchema reads and checks a schema: known keys and types only, every
// measurement with fields, no name twice.
func parseSchema(data []byte) (common []key, all []*measurement, err error) {
	var f schemaFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, nil, err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return nil, nil, fmt.Errorf("unknown key %q", undecoded[0].String())
	}
	convert := func(where string, in []schemaFileKey, isTag bool, seen map[string]bool) ([]key, error) {
		out := make([]key, 0, len(in))
		for _, k := range in {
			if k.Name == "" || seen[k.Name] {
				return nil, fmt.Errorf("%s: name %q empty or declared twice", where, k.Name)
			}
			seen[k.Name] = true
			t := typeString
			if !isTag {
				i := 0
				for i < len(dictionaryTypes) && dictionaryTypes[i] != k.Type {
					i++
				}
				if i == len(dictionaryTypes) {
					return nil, fmt.Errorf("%s.%s: type %q unknown; use int, float, string or bool", where, k.Name, k.Type)
				}
				t = valueType(i)
			} else if k.Type != "" {
				return nil, fmt.Errorf("%s.%s: tags are strings; omit type", where, k.Name)
			}
			out = append(out, key{name: k.Name, typ: t, doc: k.Doc})
		}
		return out, nil
	}
	if common, err = convert("common_tags", f.CommonTags, true, map[string]bool{}); err != nil {
		return nil, nil, err
	}
	names := map[string]bool{}
	for _, fm := range f.Measurements {
		if fm.Name == "" || names[fm.Name] {
			return nil, nil, fmt.Errorf("measurement %q empty or declared twice", fm.Name)
		}
		names[fm.Name] = true
		if len(fm.Fields) == 0 {
			return nil, nil, fmt.Errorf("%s: no fields: a line needs at least one", fm.Name)
		}
		m := &measurement{name: fm.Name, series: fm.Series}
		tagSeen := map[string]bool{}
		for _, k := range common {
			tagSeen[k.name] = true
		}
		if m.tags, err = convert(fm.Name+".tags", fm.Tags, true, tagSeen); err != nil {
			return nil, nil, err
		}
		if m.fields, err = convert(fm.Name+".fields", fm.Fields, false, map[string]bool{}); err != nil {
			return nil, nil, err
		}
		m.tagIndex = tagSeen
		m.fieldIndex = make(map[string]valueType, len(m.fields))
		for _, k := range m.fields {
			m.fieldIndex[k.name] = k.typ
		}
		all = append(all, m)
	}
	if len(all) == 0 {
		return nil, nil, errors.New("no measurements")
	}
	return common, all, nil
}

// commonTags are on every metric; measurements are in the README's order.
var commonTags, measurements = mustParseSchema()

func mustParseSchema() ([]key, []*measurement) {
	common, all, err := parseSchema(metricsTOML)
	if err != nil {
		panic("kube_telemetry's metrics.toml: " + err.Error())
	}
	return common, all
}

// declared returns the measurement of the schema with that name; the
// plugin's own names only, so a missing one is a bug any test finds.
func declared(name string) *measurement {
	for _, m := range measurements {
		if m.name == name {
			return m
		}
	}
	panic("kube_telemetry: measurement " + name + " is not in metrics.toml")
}

var (
	clusterMetric  = declared("kube_telemetry_cluster")
	resourceMetric = declared("kube_telemetry_resource")
	nodesMetric    = declared("kube_telemetry_nodes")
	nodeRoleMetric = declared("kube_telemetry_node_role")
	nodeMetric     = declared("kube_telemetry_node")
	podsMetric     = declared("kube_telemetry_pods")
	// objectsMetric's fields are the resources' objectsField and the
	// services' breakdown by type.
	objectsMetric = declared("kube_telemetry_objects")
	storageMetric = declared("kube_telemetry_storage")
	addonMetric   = declared("kube_telemetry_addon")
)

// check returns an error for each tag or field the measurement does not
// declare, or whose value has another type.
func (m *measurement) check(tags map[string]string, fields map[string]any) []error {
	var errs []error
	for k := range tags {
		if !m.tagIndex[k] {
			errs = append(errs, fmt.Errorf("%s: tag %q is not in the schema (metrics.toml)", m.name, k))
		}
	}
	for k, v := range fields {
		t, ok := m.fieldIndex[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: field %q is not in the schema (metrics.toml)", m.name, k))
		case !t.matches(v):
			errs = append(errs, fmt.Errorf("%s: field %q is %T, the schema says %s", m.name, k, v, t))
		}
	}
	return errs
}

// SchemaKey is a tag or field of a kube_telemetry measurement. Type is the
// data dictionary's name of the value's type: int, float, string or bool.
type SchemaKey struct {
	Name, Type, Meaning string
}

// SchemaMeasurement is one measurement kube_telemetry emits. Tags are its
// own; the common tags are on every measurement.
type SchemaMeasurement struct {
	Name   string
	Tags   []SchemaKey
	Fields []SchemaKey
}

// Schema returns every measurement kube_telemetry emits and the tags common
// to all of them, for the tests of the packages that handle its metrics:
// their fixtures are built from it, so a metric renamed here reaches them.
func Schema() (all []SchemaMeasurement, common []SchemaKey) {
	export := func(keys []key) []SchemaKey {
		out := make([]SchemaKey, 0, len(keys))
		for _, k := range keys {
			out = append(out, SchemaKey{Name: k.name, Type: k.typ.dictionaryType(), Meaning: k.doc})
		}
		return out
	}
	for _, m := range measurements {
		all = append(all, SchemaMeasurement{Name: m.name, Tags: export(m.tags), Fields: export(m.fields)})
	}
	return all, export(commonTags)
}
