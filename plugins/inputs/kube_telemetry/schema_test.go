package kube_telemetry

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/testutil"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// shape is what a set of metrics looks like, values aside: measurement ->
// tag keys and field keys with the data dictionary's name of their type.
type shape map[string]*keys

type keys struct {
	tags   map[string]bool
	fields map[string]string
}

func (s shape) measurement(name string) *keys {
	k := s[name]
	if k == nil {
		k = &keys{tags: map[string]bool{}, fields: map[string]string{}}
		s[name] = k
	}
	return k
}

// schemaShape is the schema's: every measurement with the common tags.
func schemaShape() shape {
	s := shape{}
	for _, m := range measurements {
		k := s.measurement(m.name)
		for _, t := range append(append([]key{}, commonTags...), m.tags...) {
			k.tags[t.name] = true
		}
		for _, f := range m.fields {
			k.fields[f.name] = f.typ.dictionaryType()
		}
	}
	return s
}

// gatheredShape is the shape of metrics the plugin emitted.
func gatheredShape(metrics []telegraf.Metric) shape {
	s := shape{}
	for _, m := range metrics {
		k := s.measurement(m.Name())
		for _, t := range m.TagList() {
			k.tags[t.Key] = true
		}
		for _, f := range m.FieldList() {
			k.fields[f.Key] = valueTypeName(f.Value)
		}
	}
	return s
}

func valueTypeName(v any) string {
	for _, t := range []valueType{typeInt, typeFloat, typeString, typeBool} {
		if t.matches(v) {
			return t.dictionaryType()
		}
	}
	return fmt.Sprintf("%T", v)
}

// dictionaryShape is the data dictionary's for the measurements it lists,
// with the common tags of the classes a metric carries when it leaves
// kube_telemetry: the identity tags are the output's to add and the
// dropped ones (Telegraf's host) no producer's to declare.
func dictionaryShape(d *telemetry.Dictionary) shape {
	s := shape{}
	for name, m := range d.Measurements {
		k := s.measurement(name)
		for t, e := range d.CommonTags() {
			if e.Class != telemetry.ClassIdentity && e.Class != telemetry.ClassDrop {
				k.tags[t] = true
			}
		}
		for t := range m.Tags {
			k.tags[t] = true
		}
		for f, e := range m.Fields {
			k.fields[f] = e.Type
		}
	}
	return s
}

// mismatches names every measurement, tag and field one shape has and the
// other has not, and every field whose types differ.
func mismatches(aName string, a shape, bName string, b shape) []string {
	var out []string
	oneWay := func(xName string, x shape, yName string, y shape) {
		for name, xk := range x {
			yk := y[name]
			if yk == nil {
				out = append(out, fmt.Sprintf("measurement %s: in %s, not in %s", name, xName, yName))
				continue
			}
			for t := range xk.tags {
				if !yk.tags[t] {
					out = append(out, fmt.Sprintf("%s tag %s: in %s, not in %s", name, t, xName, yName))
				}
			}
			for f, typ := range xk.fields {
				other, ok := yk.fields[f]
				switch {
				case !ok:
					out = append(out, fmt.Sprintf("%s field %s: in %s, not in %s", name, f, xName, yName))
				case other != typ && xName == aName:
					out = append(out, fmt.Sprintf("%s field %s: %s in %s, %s in %s", name, f, typ, xName, other, yName))
				}
			}
		}
	}
	oneWay(aName, a, bName, b)
	oneWay(bName, b, aName, a)
	sort.Strings(out)
	return out
}

func requireNoMismatch(t *testing.T, mismatch []string) {
	t.Helper()
	if len(mismatch) > 0 {
		t.Fatalf("%d mismatches:\n%s", len(mismatch), strings.Join(mismatch, "\n"))
	}
}

// TestSchemaMatchesDictionary: the data dictionary lists exactly the
// measurements, tags and fields of the schema, with the same types. A
// metric renamed on one side only would be dropped by the policy (fail
// closed) without anything else noticing.
func TestSchemaMatchesDictionary(t *testing.T) {
	requireNoMismatch(t, mismatches("metrics.toml", schemaShape(),
		"the data dictionary", dictionaryShape(telemetry.DefaultDictionary())))
}

// TestSchemaMatchesGather: a gather of the unit-test cluster, which has
// something of every kind, emits exactly what the schema declares.
func TestSchemaMatchesGather(t *testing.T) {
	k := newFixture(t).plugin(t, func(k *KubeTelemetry) { k.ClusterName = "lab" })
	var acc testutil.Accumulator
	require.NoError(t, k.Gather(&acc))
	require.Empty(t, acc.Errors)
	requireNoMismatch(t, mismatches("metrics.toml", schemaShape(), "the gather", gatheredShape(acc.GetTelegrafMetrics())))
}

// TestSchemaShapeMismatches: mismatches names each difference, both ways.
func TestSchemaShapeMismatches(t *testing.T) {
	a, b := schemaShape(), schemaShape()
	delete(b, "kube_telemetry_addon")
	delete(b["kube_telemetry_pods"].fields, "total")
	b["kube_telemetry_pods"].fields["all"] = "int"
	b["kube_telemetry_node"].tags["hostname"] = true
	b["kube_telemetry_cluster"].fields["pages"] = "float"
	require.Equal(t, []string{
		"kube_telemetry_cluster field pages: int in a, float in b",
		"kube_telemetry_node tag hostname: in b, not in a",
		"kube_telemetry_pods field all: in b, not in a",
		"kube_telemetry_pods field total: in a, not in b",
		"measurement kube_telemetry_addon: in a, not in b",
	}, mismatches("a", a, "b", b))
}

// TestEmitterRefusesUndeclared: what the schema does not declare is not
// emitted; each key is named in an error.
func TestEmitterRefusesUndeclared(t *testing.T) {
	tests := []struct {
		name   string
		tags   map[string]string
		fields map[string]any
		want   []string
	}{
		{name: "declared", tags: map[string]string{"role": "worker"}, fields: map[string]any{"nodes": int64(3)}},
		{name: "unknown field", fields: map[string]any{"nodes": int64(3), "node_count": int64(3)},
			want: []string{`kube_telemetry_node_role: field "node_count" is not in the schema (metrics.toml)`}},
		{name: "unknown tag", tags: map[string]string{"role": "worker", "zone": "a"}, fields: map[string]any{"nodes": int64(3)},
			want: []string{`kube_telemetry_node_role: tag "zone" is not in the schema (metrics.toml)`}},
		{name: "wrong type", fields: map[string]any{"nodes": 3},
			want: []string{`kube_telemetry_node_role: field "nodes" is int, the schema says integer`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var acc testutil.Accumulator
			e := &emitter{acc: &acc, tags: map[string]string{"cluster_uid": "u"}}
			e.add(nodeRoleMetric, tt.tags, tt.fields)
			var got []string
			for _, err := range acc.Errors {
				got = append(got, err.Error())
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, len(tt.want) == 0, acc.HasMeasurement("kube_telemetry_node_role"))
		})
	}
}

// TestSchemaExport: Schema gives other packages the same declaration.
func TestSchemaExport(t *testing.T) {
	all, common := Schema()
	require.Len(t, all, len(measurements))
	require.Equal(t, []SchemaKey{
		{Name: "cluster_uid", Type: "string", Meaning: commonTags[0].doc},
		{Name: "cluster_name", Type: "string", Meaning: commonTags[1].doc},
	}, common)
	exported := shape{}
	for _, m := range all {
		k := exported.measurement(m.Name)
		for _, c := range common {
			k.tags[c.Name] = true
		}
		for _, tg := range m.Tags {
			k.tags[tg.Name] = true
		}
		for _, f := range m.Fields {
			k.fields[f.Name] = f.Type
		}
	}
	requireNoMismatch(t, mismatches("metrics.toml", schemaShape(), "Schema()", exported))
}

// TestSchemaAddonNames: the add-ons metrics.toml documents are the table's.
func TestSchemaAddonNames(t *testing.T) {
	var names []string
	for _, r := range addonRules {
		names = append(names, "`"+r.addon+"`")
	}
	require.Equal(t, strings.Join(names, ", "), addonMetric.tags[0].doc)
}

func TestParseSchemaErrors(t *testing.T) {
	const good = "[[measurements]]\nname = \"m\"\nfields = [{ name = \"f\", type = \"int\" }]\n"
	_, _, err := parseSchema([]byte(good))
	require.NoError(t, err)
	tests := []struct{ name, toml, want string }{
		{"typo", strings.Replace(good, "type =", "typ =", 1), `unknown key "measurements.fields.typ"`},
		{"unknown type", strings.Replace(good, `"int"`, `"long"`, 1), `m.fields.f: type "long" unknown`},
		{"typed tag", good + "tags = [{ name = \"t\", type = \"int\" }]\n", "m.tags.t: tags are strings"},
		{"field twice", strings.Replace(good, "}]", "}, { name = \"f\", type = \"int\" }]", 1), `m.fields: name "f" empty or declared twice`},
		{"common tag again", "common_tags = [{ name = \"t\" }]\n" + good + "tags = [{ name = \"t\" }]\n", `m.tags: name "t" empty or declared twice`},
		{"measurement twice", good + good, `measurement "m" empty or declared twice`},
		{"no fields", "[[measurements]]\nname = \"m\"\n", "m: no fields"},
		{"nothing", "", "no measurements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseSchema([]byte(tt.toml))
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// TestDictionaryValuesCoverTables: the values the dictionary lets through
// for the resource and add-on tags include every name of the plugin's
// tables, so none of them reaches the lake as "other".
func TestDictionaryValuesCoverTables(t *testing.T) {
	d := telemetry.DefaultDictionary()
	allowed := func(measurement, tag string) map[string]bool {
		out := map[string]bool{}
		for _, v := range d.Tag(measurement, tag).Values {
			out[v] = true
		}
		return out
	}
	var missing []string
	values := allowed(resourceMetric.name, "resource")
	for _, r := range resources {
		if !values[r.name] {
			missing = append(missing, "resource "+r.name)
		}
	}
	values = allowed(addonMetric.name, "addon")
	for _, r := range addonRules {
		if !values[r.addon] {
			missing = append(missing, "addon "+r.addon)
		}
	}
	require.Empty(t, missing, "names the data dictionary sends as other")
}
