package telegraf_internal

import (
	"math"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
)

func TestRegisteredAsInternal(t *testing.T) {
	creator, ok := inputs.Inputs["internal"]
	require.True(t, ok)
	plugin, ok := creator().(*Internal)
	require.True(t, ok)
	require.True(t, plugin.CollectMemstats, "memstats are on by default")
	require.False(t, plugin.CollectGostats)
	require.False(t, plugin.PerInstance)
}

func TestGatherReportsSelfstat(t *testing.T) {
	tags := map[string]string{"output": "tkgi_test", "_id": "a"}
	s := selfstat.Register("write", "tkgi_test_metrics", tags)
	defer selfstat.Unregister("write", "tkgi_test_metrics", tags)
	s.Set(42)

	tests := []struct {
		name        string
		plugin      Internal
		wantID      bool
		wantMem     bool
		wantGostats bool
	}{
		{name: "defaults", plugin: Internal{CollectMemstats: true}, wantMem: true},
		{name: "per instance", plugin: Internal{PerInstance: true}, wantID: true},
		{name: "gostats", plugin: Internal{CollectGostats: true}, wantGostats: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var acc testutil.Accumulator
			require.NoError(t, tt.plugin.Gather(&acc))

			var found bool
			for _, m := range acc.GetTelegrafMetrics() {
				if m.Name() != "internal_write" || m.Tags()["output"] != "tkgi_test" {
					continue
				}
				found = true
				v, ok := m.GetField("tkgi_test_metrics")
				require.True(t, ok)
				require.Equal(t, int64(42), v)
				_, hasID := m.GetTag("_id")
				require.Equal(t, tt.wantID, hasID)
				require.NotEmpty(t, m.Tags()["version"])
			}
			require.True(t, found, "internal_write for the registered stat is missing")
			require.Equal(t, tt.wantMem, acc.HasMeasurement("internal_memstats"))
			require.Equal(t, tt.wantGostats, acc.HasMeasurement("internal_gostats"))
			if tt.wantMem {
				require.True(t, acc.HasField("internal_memstats", "heap_alloc_bytes"))
			}
			if tt.wantGostats {
				require.True(t, acc.HasField("internal_gostats", "gc_heap_allocs_bytes"))
			}
		})
	}
}

func TestSumOverInstances(t *testing.T) {
	now := time.Unix(0, 0)
	in := []telegraf.Metric{
		metric.New("internal_write", map[string]string{"output": "file", "_id": "1"}, map[string]interface{}{"metrics_written": int64(3)}, now),
		metric.New("internal_write", map[string]string{"output": "file", "_id": "2"}, map[string]interface{}{"metrics_written": int64(4), "errors": int64(1)}, now),
		metric.New("internal_write", map[string]string{"output": "http", "_id": "3"}, map[string]interface{}{"metrics_written": int64(5)}, now),
	}
	expected := []telegraf.Metric{
		metric.New("internal_write", map[string]string{"output": "file"}, map[string]interface{}{"metrics_written": int64(7), "errors": int64(1)}, now),
		metric.New("internal_write", map[string]string{"output": "http"}, map[string]interface{}{"metrics_written": int64(5)}, now),
	}
	testutil.RequireMetricsEqual(t, expected, sumOverInstances(in))
}

func TestFieldName(t *testing.T) {
	tests := map[string]string{
		"/gc/heap/allocs:bytes":                   "gc_heap_allocs_bytes",
		"/sched/goroutines:goroutines":            "sched_goroutines_goroutines",
		"/gc/heap/tiny/allocs:objects":            "gc_heap_tiny_allocs_objects",
		"/cpu/classes/gc/mark/assist:cpu-seconds": "cpu_classes_gc_mark_assist_cpu_seconds",
	}
	for in, want := range tests {
		require.Equal(t, want, fieldName(in), in)
	}
}

func TestHistogramMedian(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		h    metrics.Float64Histogram
		want float64
	}{
		{name: "empty", h: metrics.Float64Histogram{Counts: []uint64{0, 0}, Buckets: []float64{0, 1, 2}}, want: 0},
		{name: "middle bucket", h: metrics.Float64Histogram{Counts: []uint64{1, 5, 1}, Buckets: []float64{0, 10, 20, 30}}, want: 15},
		{name: "first half", h: metrics.Float64Histogram{Counts: []uint64{2, 2}, Buckets: []float64{0, 2, 4}}, want: 1},
		{name: "open top", h: metrics.Float64Histogram{Counts: []uint64{0, 3}, Buckets: []float64{0, 8, inf}}, want: 8},
		{name: "open bottom", h: metrics.Float64Histogram{Counts: []uint64{3, 0}, Buckets: []float64{math.Inf(-1), 4, 8}}, want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.InDelta(t, tt.want, histogramMedian(&tt.h), 1e-9)
		})
	}
}
