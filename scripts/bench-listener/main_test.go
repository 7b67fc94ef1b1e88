package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The benchmark's batches must be ones the listener accepts, or it would
// measure refusals.
func TestPayloadPassesTheDictionary(t *testing.T) {
	dec, err := telemetry.NewDecoder(64<<20, 1<<20)
	require.NoError(t, err)
	for _, seed := range []int{0, 1, 7, 1 << 20} {
		metrics, _, err := dec.Decode(payload(seed, 500), telemetry.EncodingIdentity, time.Now())
		require.NoError(t, err)
		require.Len(t, metrics, 500)
		require.NoError(t, telemetry.DefaultDictionary().NewBatchChecker().Check(metrics, telemetry.LevelStandard))
		for _, m := range metrics {
			node, _ := m.GetTag("node")
			require.True(t, telemetry.IsPseudonym(node), node)
		}
	}
}
