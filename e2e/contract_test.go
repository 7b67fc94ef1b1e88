package e2e_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/inputs/kube_telemetry"
)

// requireGatheredInContract fails, naming each key, when kube_telemetry
// gathered a measurement, tag or field that its schema does not declare or
// the data dictionary does not list (with the same type). The lake is
// compared with what the dictionary's policy lets through, so without this
// a metric the policy drops for being unknown would be missing from the
// expected lake and the lake alike, and no test would notice.
func requireGatheredInContract(t *testing.T, gathered []telegraf.Metric) {
	t.Helper()
	if mismatch := contractMismatches(gathered); len(mismatch) > 0 {
		t.Fatalf("kube_telemetry gathered what its contract lacks:\n%s", strings.Join(mismatch, "\n"))
	}
}

// contractMismatches names, sorted, what of gathered is not in
// kube_telemetry's schema or the data dictionary.
func contractMismatches(gathered []telegraf.Metric) []string {
	d := telemetry.DefaultDictionary()
	schema, common := kube_telemetry.Schema()
	// measurement -> key -> the dictionary's type ("string" for tags)
	declared := map[string]map[string]string{}
	for _, m := range schema {
		keys := map[string]string{}
		for _, k := range append(append([]kube_telemetry.SchemaKey{}, common...), m.Tags...) {
			keys["tag "+k.Name] = k.Type
		}
		for _, k := range m.Fields {
			keys["field "+k.Name] = k.Type
		}
		declared[m.Name] = keys
	}
	mismatch := map[string]bool{}
	for _, m := range gathered {
		keys, ok := declared[m.Name()]
		if !ok {
			mismatch["measurement "+m.Name()+": gathered, not in kube_telemetry's schema"] = true
		}
		if d.Measurements[m.Name()] == nil {
			mismatch["measurement "+m.Name()+": gathered, not in the data dictionary"] = true
			continue
		}
		for _, tag := range m.TagList() {
			if e := d.CommonTags()[tag.Key]; e != nil && e.Class == telemetry.ClassDrop {
				continue // Telegraf's own global tags, listed to be dropped
			}
			if _, ok := keys["tag "+tag.Key]; !ok {
				mismatch[fmt.Sprintf("%s tag %s: gathered, not in kube_telemetry's schema", m.Name(), tag.Key)] = true
			}
			if d.Tag(m.Name(), tag.Key) == nil {
				mismatch[fmt.Sprintf("%s tag %s: gathered, not in the data dictionary", m.Name(), tag.Key)] = true
			}
		}
		for _, f := range m.FieldList() {
			typ := dictionaryType(f.Value)
			if want, ok := keys["field "+f.Key]; !ok || want != typ {
				mismatch[fmt.Sprintf("%s field %s (%s): gathered, not so in kube_telemetry's schema", m.Name(), f.Key, typ)] = true
			}
			if e := d.Field(m.Name(), f.Key); e == nil || e.Type != typ {
				mismatch[fmt.Sprintf("%s field %s (%s): gathered, not so in the data dictionary", m.Name(), f.Key, typ)] = true
			}
		}
	}
	lines := make([]string, 0, len(mismatch))
	for l := range mismatch {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	return lines
}

// TestContractMismatches: every gathered key outside the contract is named,
// once; Telegraf's dropped host tag is not one.
func TestContractMismatches(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	tags := map[string]string{"cluster_uid": "u", "host": "agent-0"}
	ok := metric.New("kube_telemetry_node_role", map[string]string{"cluster_uid": "u", "host": "agent-0", "role": "worker"},
		map[string]any{"nodes": int64(3)}, ts)
	require.Empty(t, contractMismatches([]telegraf.Metric{ok}))
	require.Equal(t, []string{
		"kube_telemetry_node_role field nodes (float): gathered, not so in kube_telemetry's schema",
		"kube_telemetry_node_role field nodes (float): gathered, not so in the data dictionary",
		"kube_telemetry_pods field all (int): gathered, not so in kube_telemetry's schema",
		"kube_telemetry_pods field all (int): gathered, not so in the data dictionary",
		"kube_telemetry_pods tag zone: gathered, not in kube_telemetry's schema",
		"kube_telemetry_pods tag zone: gathered, not in the data dictionary",
		"measurement kube_telemetry_jobs: gathered, not in kube_telemetry's schema",
		"measurement kube_telemetry_jobs: gathered, not in the data dictionary",
	}, contractMismatches([]telegraf.Metric{
		ok,
		metric.New("kube_telemetry_node_role", map[string]string{"role": "worker"}, map[string]any{"nodes": 3.0}, ts),
		metric.New("kube_telemetry_pods", map[string]string{"zone": "a"}, map[string]any{"all": int64(3)}, ts),
		metric.New("kube_telemetry_pods", map[string]string{"zone": "a"}, map[string]any{"all": int64(3)}, ts),
		metric.New("kube_telemetry_jobs", tags, map[string]any{"total": int64(1)}, ts),
	}))
}

// dictionaryType names a gathered value's type as the dictionary does;
// line protocol reads integers back as int64 (or uint64).
func dictionaryType(v any) string {
	switch v.(type) {
	case int64, uint64:
		return telemetry.TypeInt
	case float64:
		return telemetry.TypeFloat
	case string:
		return telemetry.TypeString
	case bool:
		return telemetry.TypeBool
	}
	return fmt.Sprintf("%T", v)
}
