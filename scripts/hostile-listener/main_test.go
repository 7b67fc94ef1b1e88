package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The agents' batches must be ones the listener stores, and each attack
// body must be what its name says, or the run would measure something else.
func TestBodiesAreWhatTheySay(t *testing.T) {
	sz := sizes["small"]
	b := newBombs(sz)
	dict := telemetry.DefaultDictionary()
	dec, err := telemetry.NewDecoder(int64(sz.maxDecompressed), 64<<10)
	require.NoError(t, err)
	decode := func(body []byte, enc string) []telegraf.Metric {
		metrics, n, err := dec.DecodeFunc(bytes.NewReader(body), enc, time.Now(), nil)
		require.NoError(t, err)
		require.Less(t, n, int64(sz.maxDecompressed), "just under max_decompressed_size")
		return metrics
	}
	tests := []struct {
		name        string
		body        []byte
		enc         string
		wantMetrics func(n int) bool
		wantValid   bool
	}{
		{"agent batch", []byte(agentPayload(randomHex(telemetry.InstanceIDBytes), 3, 500)), "", func(n int) bool { return n == 500 }, true},
		{"zstd bomb over max_batch_metrics", b.zstdOverCount, "zstd", func(n int) bool { return n > sz.maxMetrics }, true},
		{"valid at max_batch_metrics", b.zstdValidAtCount, "zstd", func(n int) bool { return n == sz.maxMetrics }, true},
		{"gzip of unlisted lines", b.gzipUnlisted, "gzip", func(n int) bool { return n <= sz.maxMetrics }, false},
		{"long values", b.longValues, "zstd", func(n int) bool { return n <= sz.maxMetrics }, false},
		{"one line", b.oneLine, "zstd", func(n int) bool { return n == 1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metrics := decode(tt.body, tt.enc)
			require.True(t, tt.wantMetrics(len(metrics)), "%d metrics", len(metrics))
			err := dict.NewBatchChecker().Check(metrics, telemetry.LevelStandard)
			if tt.wantValid {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}
