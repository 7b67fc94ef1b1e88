package telegraf_internal

import (
	"math"
	"runtime"
	"runtime/metrics"
	"strings"
)

func memstats() map[string]interface{} {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return map[string]interface{}{
		"alloc_bytes":         m.Alloc,
		"total_alloc_bytes":   m.TotalAlloc,
		"sys_bytes":           m.Sys,
		"mallocs":             m.Mallocs,
		"frees":               m.Frees,
		"heap_alloc_bytes":    m.HeapAlloc,
		"heap_sys_bytes":      m.HeapSys,
		"heap_idle_bytes":     m.HeapIdle,
		"heap_in_use_bytes":   m.HeapInuse,
		"heap_released_bytes": m.HeapReleased,
		"heap_objects":        m.HeapObjects,
		"num_gc":              m.NumGC,
		"pointer_lookups":     m.Lookups,
	}
}

// gostats reports every runtime/metrics sample, named after the metric with
// its unit: "/gc/heap/allocs:bytes" becomes "gc_heap_allocs_bytes".
// Histograms are reduced to an estimate of their median so the field set
// stays flat.
func gostats() map[string]interface{} {
	descs := metrics.All()
	samples := make([]metrics.Sample, len(descs))
	for i, d := range descs {
		samples[i].Name = d.Name
	}
	metrics.Read(samples)
	fields := make(map[string]interface{}, len(samples))
	for _, s := range samples {
		name := fieldName(s.Name)
		switch s.Value.Kind() {
		case metrics.KindUint64:
			fields[name] = s.Value.Uint64()
		case metrics.KindFloat64:
			fields[name] = s.Value.Float64()
		case metrics.KindFloat64Histogram:
			fields[name] = histogramMedian(s.Value.Float64Histogram())
		}
	}
	return fields
}

var fieldNameReplacer = strings.NewReplacer("/", "_", ":", "_", "-", "_")

func fieldName(metric string) string {
	return fieldNameReplacer.Replace(strings.TrimPrefix(metric, "/"))
}

// histogramMedian estimates the median as the midpoint of the bucket holding
// the middle observation; open-ended buckets report their finite edge.
func histogramMedian(h *metrics.Float64Histogram) float64 {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen*2 < total {
			continue
		}
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		switch {
		case math.IsInf(lo, -1):
			return hi
		case math.IsInf(hi, 1):
			return lo
		default:
			return (lo + hi) / 2
		}
	}
	return 0
}
