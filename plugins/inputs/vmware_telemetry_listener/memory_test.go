package vmware_telemetry_listener

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

// TestMetricCostIsAnUpperBound measures what decoded metrics really hold on
// the heap, once the listener added its tags and field and Telegraf's
// tracking wrapped them, against metricCost, which max_undelivered_bytes
// counts: the estimate must not be short for any shape a client can send.
func TestMetricCostIsAnUpperBound(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap over 16,000 decoded metrics; runs without -short")
	}
	w, err := newWire("", 64<<20, 64<<10)
	require.NoError(t, err)
	manyTags := make([]string, 0, 200)
	for i := range 200 {
		manyTags = append(manyTags, fmt.Sprintf("t%d=v", i))
	}
	manyFields := make([]string, 0, 200)
	for i := range 200 {
		manyFields = append(manyFields, fmt.Sprintf("f%d=%di", i, 1000+i))
	}
	tests := []struct {
		name string
		line func(i int) string
	}{
		{"smallest line", func(int) string { return "m f=1\n" }},
		{"valid nodes line", validLine},
		{"valid node line", func(i int) string { return string(nodeBatch(1)) }},
		{"200 short tags", func(i int) string { return "m," + strings.Join(manyTags, ",") + " f=1i\n" }},
		{"200 int fields", func(i int) string { return "m " + strings.Join(manyFields, ",") + "\n" }},
		{"distinct long tag values", func(i int) string { return fmt.Sprintf("m,t=%0900d f=1i\n", i) }},
		{"long string field", func(i int) string { return fmt.Sprintf("m s=\"%0900d\"\n", i) }},
		{"float fields", func(i int) string { return fmt.Sprintf("m a=%d.5,b=2.5,c=3.5\n", i) }},
	}
	const n = 2000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			for i := range n {
				b.WriteString(tt.line(i))
			}
			body := zstdBytes(t, []byte(b.String()))
			b.Reset()

			// Once first, so the pools hold their decoder and buffers:
			// what is measured is the metrics alone.
			metrics, _, err := w.decoder.DecodeFunc(bytes.NewReader(body), "zstd", time.Now(), nil)
			require.NoError(t, err)
			metrics = nil
			before := liveHeap()
			var estimate int64
			metrics, _, err = w.decoder.DecodeFunc(bytes.NewReader(body), "zstd", time.Now(), func(m telegraf.Metric) error {
				estimate += metricCost(m)
				return nil
			})
			require.NoError(t, err)
			for _, m := range metrics {
				m.AddTag(tagCollector, "tkgi-agent")
				m.AddTag(tagInstance, testInstance)
				m.AddTag(tagLevel, "standard")
				m.AddField(fieldReceiveTime, time.Now().UnixNano())
			}
			tracked, _ := metric.WithGroupTracking(metrics, func(telegraf.DeliveryInfo) {})
			measured := liveHeap() - before
			runtime.KeepAlive(tracked)
			t.Logf("%s: measured %d B/metric, estimated %d B/metric", tt.name, measured/n, estimate/n)
			require.LessOrEqual(t, measured, estimate, "metricCost is short for %s", tt.name)
		})
	}
}

func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// At the defaults the formula stays under 512 MB on any machine, with the
// embedded store and with JetStream (its encoding slots and connection in
// place of the de-duplication keys).
func TestMemoryBoundAtDefaultsUnder512MB(t *testing.T) {
	for _, tt := range []struct {
		name      string
		jetstream bool
	}{
		{name: "embedded"},
		{name: "jetstream", jetstream: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := inputs.Inputs["vmware_telemetry_listener"]().(*Listener)
			if tt.jetstream {
				l.JetStream = &JetStream{Config: telemetrystream.Config{Servers: []string{"nats://127.0.0.1:4222"}}}
				require.NoError(t, l.JetStream.validate())
			}
			bound := l.memoryBound()
			t.Logf("at defaults with %d decode slots: %s", decodeSlots(), bound)
			if tt.jetstream {
				require.Zero(t, bound.dedup, "no keys in memory")
				require.Positive(t, bound.stream)
			}
			// The worst case over machines: maxDecodeSlots slots, each
			// with its decoder and, with JetStream, its encoder.
			perSlot := bound.decoding / int64(decodeSlots())
			if tt.jetstream {
				perSlot += telemetrystream.EncoderMemory + int64(l.JetStream.MaxMessageSize)
			}
			worst := bound.peak() + 2*perSlot*int64(maxDecodeSlots-decodeSlots())
			require.Less(t, worst, int64(512<<20))
		})
	}
}
