package telegraf_internal

import (
	"sort"
	"strings"

	"github.com/influxdata/telegraf"
)

// instanceTag is the tag selfstat uses to tell plugin instances apart.
const instanceTag = "_id"

// sumOverInstances folds the series of several instances of one plugin type
// into one, summing every field, so default output has one series per plugin
// type however many sections a config has.
func sumOverInstances(stats []telegraf.Metric) []telegraf.Metric {
	index := make(map[string]telegraf.Metric, len(stats))
	out := make([]telegraf.Metric, 0, len(stats))
	for _, m := range stats {
		m.RemoveTag(instanceTag)
		key := seriesKey(m)
		sum, ok := index[key]
		if !ok {
			index[key] = m
			out = append(out, m)
			continue
		}
		for _, f := range m.FieldList() {
			prev, found := sum.GetField(f.Key)
			if !found {
				sum.AddField(f.Key, f.Value)
				continue
			}
			a, aok := prev.(int64)
			b, bok := f.Value.(int64)
			if aok && bok {
				sum.AddField(f.Key, a+b)
			}
		}
	}
	return out
}

func seriesKey(m telegraf.Metric) string {
	tags := m.TagList()
	parts := make([]string, 0, len(tags)+1)
	parts = append(parts, m.Name())
	for _, t := range tags {
		parts = append(parts, t.Key+"="+t.Value)
	}
	sort.Strings(parts[1:])
	return strings.Join(parts, "\x00")
}
