package vmware_telemetry

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README shows sample.conf verbatim and documents every self-metric.
func TestReadme(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(data)

	_, rest, ok := strings.Cut(readme, "```toml @sample.conf\n")
	require.True(t, ok, "README lacks the sample.conf block")
	block, _, ok := strings.Cut(rest, "```\n")
	require.True(t, ok)
	require.Equal(t, sampleConfig, block, "README's configuration block differs from sample.conf")

	o, _ := newOutput(t, "https://x", "")
	require.NoError(t, o.Init())
	for _, name := range []string{"batches_sent", "metrics_sent", "bytes_raw", "bytes_compressed", "retries", "refused_auth", "splits",
		"duplicates", "batches_rejected", "metrics_rejected", "metrics_dropped", "metrics_previewed"} {
		require.Contains(t, readme, "`"+name+"`")
	}
	for _, st := range []interface{ FieldName() string }{o.stats.batchesSent, o.stats.metricsSent, o.stats.bytesRaw,
		o.stats.bytesCompressed, o.stats.retries, o.stats.refusedAuth, o.stats.splits, o.stats.duplicates, o.stats.batchesRejected,
		o.stats.metricsRejected, o.stats.previewed} {
		require.Contains(t, readme, "`"+st.FieldName()+"`")
	}
	require.Contains(t, readme, "docs/data-dictionary.md")
}
