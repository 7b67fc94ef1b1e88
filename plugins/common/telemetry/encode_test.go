package telemetry

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

func sampleMetrics() []telegraf.Metric {
	return []telegraf.Metric{
		metric.New("kube_telemetry_pods", map[string]string{"cluster_uid": "u1"},
			map[string]any{"total": int64(12), "running": int64(10)}, ts),
		metric.New("kube_telemetry_node", map[string]string{"cluster_uid": "u1", "node": "n 1,=x", "role": "worker"},
			map[string]any{"ready": true, "memory_capacity_bytes": uint64(1 << 40), "ratio": 0.25, "note": "a \"quoted\"\nline"}, ts.Add(time.Nanosecond)),
	}
}

func encodeAll(t testing.TB, metrics []telegraf.Metric) []byte {
	e := NewEncoder()
	for _, m := range metrics {
		require.NoError(t, e.AppendMetric(m))
	}
	return bytes.Clone(e.Bytes())
}

// compress is body compressed as the output does it.
func compress(t testing.TB, encoding string, body []byte) []byte {
	c, err := NewCompressor(encoding)
	require.NoError(t, err)
	out, err := c.Compress(nil, body)
	require.NoError(t, err)
	return out
}

func TestEncoderSkipsBadLines(t *testing.T) {
	e := NewEncoder()
	require.NoError(t, e.AppendMetric(sampleMetrics()[0]))
	good := e.Len()
	bad := []*View{
		{Name: "m", Fields: []telegraf.Field{{Key: "f", Value: math.NaN()}}, Time: ts},
		{Name: "m", Fields: []telegraf.Field{{Key: "f", Value: []int{1}}}, Time: ts},
		{Name: "m", Tags: []telegraf.Tag{{Key: "t", Value: "bad\x01"}}, Fields: []telegraf.Field{{Key: "f", Value: int64(1)}}, Time: ts},
		{Name: "m", Tags: []telegraf.Tag{{Key: "b", Value: "1"}, {Key: "a", Value: "2"}}, Fields: []telegraf.Field{{Key: "f", Value: int64(1)}}, Time: ts},
		{Name: "m", Time: ts},
		{Name: "", Fields: []telegraf.Field{{Key: "f", Value: int64(1)}}, Time: ts},
	}
	for i, v := range bad {
		require.Error(t, e.AppendView(v), "view %d", i)
		require.Equal(t, good, e.Len(), "view %d left bytes behind", i)
	}
	require.NoError(t, e.AppendMetric(sampleMetrics()[1]))
	dec, err := NewDecoder(1<<20, 1<<10)
	require.NoError(t, err)
	got, _, err := dec.Decode(e.Bytes(), EncodingIdentity, time.Now())
	require.NoError(t, err)
	testutil.RequireMetricsEqual(t, sampleMetrics(), got)

	e.Reset()
	require.Zero(t, e.Len())
}

// AppendMetric reuses its scratch view: a metric with fewer tags or
// fields than the one before carries none of the earlier ones, in either
// order, and a refused metric leaves nothing for the next.
func TestAppendMetricReusesNothingOfTheLast(t *testing.T) {
	wide, narrow := sampleMetrics()[1], sampleMetrics()[0]
	bad := metric.New("m", map[string]string{"x": "1", "y": "2", "z": "3"}, map[string]any{"f": math.Inf(1)}, ts)
	for _, order := range [][]telegraf.Metric{
		{wide, narrow, wide},
		{narrow, wide, narrow},
		{wide, bad, narrow},
	} {
		e := NewEncoder()
		var want []telegraf.Metric
		for _, m := range order {
			if m == bad {
				require.Error(t, e.AppendMetric(m))
				continue
			}
			require.NoError(t, e.AppendMetric(m))
			want = append(want, m)
		}
		dec, err := NewDecoder(1<<20, 1<<10)
		require.NoError(t, err)
		got, _, err := dec.Decode(e.Bytes(), EncodingIdentity, time.Now())
		require.NoError(t, err)
		testutil.RequireMetricsEqual(t, want, got)
	}
}

func BenchmarkAppendMetric(b *testing.B) {
	metrics := sampleMetrics()
	e := NewEncoder()
	b.ReportAllocs()
	for b.Loop() {
		e.Reset()
		for _, m := range metrics {
			if err := e.AppendMetric(m); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestNewCompressorUnknown(t *testing.T) {
	_, err := NewCompressor("br")
	require.ErrorIs(t, err, ErrUnsupportedEncoding)
	require.ErrorContains(t, err, `use "zstd", "gzip" or "identity"`)
}
