package telemetrystream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func TestEncodeDecode(t *testing.T) {
	metrics := []telegraf.Metric{
		metric.New("kube_telemetry_nodes", map[string]string{"instance": "i1"},
			map[string]any{"total": int64(3), "batch_key": "k1", "receive_time": int64(42)}, time.Unix(1_700_000_000, 5)),
		metric.New("kube_telemetry_nodes", map[string]string{"instance": "i1"},
			map[string]any{"total": int64(4), "batch_key": "k1"}, time.Unix(1_700_000_001, 0)),
	}
	for _, tt := range []struct {
		name       string
		batch      Batch
		maxPayload int64
		wantErr    error
	}{
		{name: "identity in headers, metrics as sent", batch: Batch{ID: "abc", Key: "k1", Metrics: metrics}, maxPayload: 1 << 20},
		{name: "no key: no message id", batch: Batch{Metrics: metrics}},
		{name: "events endpoint kept", batch: Batch{ID: "abc", Key: "k1", Events: true, Metrics: metrics}},
		{name: "over max_payload", batch: Batch{ID: "abc", Key: "k1", Metrics: metrics}, maxPayload: 4100, wantErr: ErrTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := Encode("s", tt.batch, tt.maxPayload)
			if tt.wantErr != nil {
				require.True(t, errors.Is(err, tt.wantErr), "got %v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.batch.ID, msg.Header.Get(nats.MsgIdHdr))
			require.Equal(t, "2", msg.Header.Get(HeaderMetricCount))
			dec, err := NewDecoder(1<<20, 1<<16)
			require.NoError(t, err)
			got, err := dec.Decode(msg.Header, msg.Data)
			require.NoError(t, err)
			require.Equal(t, tt.batch.ID, got.ID)
			require.Equal(t, tt.batch.Key, got.Key)
			require.Equal(t, tt.batch.Events, got.Events)
			require.Len(t, got.Metrics, 2)
			for i, m := range got.Metrics {
				require.Equal(t, metrics[i].Name(), m.Name())
				require.Equal(t, metrics[i].Tags(), m.Tags())
				require.Equal(t, metrics[i].Fields(), m.Fields())
				require.Equal(t, metrics[i].Time().UnixNano(), m.Time().UnixNano())
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "defaults", cfg: Config{Servers: []string{"nats://a:4222"}}},
		{name: "no servers", cfg: Config{}, wantErr: "x.servers is empty"},
		{name: "replicas", cfg: Config{Servers: []string{"nats://a:4222"}, Replicas: 7}, wantErr: "x.replicas 7"},
		{name: "wildcard", cfg: Config{Servers: []string{"nats://a:4222"}, Subject: "a.*"}, wantErr: "no wildcards"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.SetDefaults()
			err := tt.cfg.Validate("x")
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// An encoder holds at most EncoderMemory besides its output buffer (at
// most the limit), whatever the batch: the listener's memory formula
// counts it so, once per encoding slot.
func TestEncoderMemoryBound(t *testing.T) {
	const limit = 1 << 20
	for _, tt := range []struct {
		name    string
		metrics int
		value   func(i int) string
		wantErr error
	}{
		{name: "compressible, 20 MiB of lines", metrics: 100_000, value: func(int) string { return strings.Repeat("a", 200) }},
		{name: "incompressible, over the limit", metrics: 20_000, value: func(i int) string { return randomText(i, 1000) }, wantErr: ErrTooLarge},
		{name: "incompressible, just under the limit", metrics: 700, value: func(i int) string { return randomText(i, 1000) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := Batch{ID: "id", Key: "k"}
			for i := range tt.metrics {
				b.Metrics = append(b.Metrics, metric.New("kube_telemetry_node", map[string]string{"node": fmt.Sprintf("n%d", i)},
					map[string]any{"label": tt.value(i), "cpu": int64(i)}, time.Unix(1_700_000_000, int64(i))))
			}
			before := liveHeap()
			e, err := NewEncoder()
			require.NoError(t, err)
			for range 3 {
				msg, err := e.Encode("s", b, limit)
				if tt.wantErr != nil {
					require.ErrorIs(t, err, tt.wantErr)
					continue
				}
				require.NoError(t, err)
				require.LessOrEqual(t, len(msg.Data), limit)
			}
			held := liveHeap() - before
			runtime.KeepAlive(e)
			runtime.KeepAlive(b)
			t.Logf("encoder holds %d KiB", held>>10)
			require.LessOrEqual(t, held, int64(EncoderMemory+limit))
		})
	}
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// randomText is n printable bytes zstd cannot compress much.
func randomText(seed, n int) string {
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}
