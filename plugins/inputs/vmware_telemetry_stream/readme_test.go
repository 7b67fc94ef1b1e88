package vmware_telemetry_stream

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// The README shows sample.conf verbatim and documents every field the
// plugin reports: each self-metric as statFields declares it, each field of
// the consumer's state.
func TestReadmeMatchesPlugin(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(data)

	block := regexp.MustCompile("(?s)```toml @sample.conf\n(.*?)```").FindStringSubmatch(readme)
	require.NotNil(t, block, "README has no ```toml @sample.conf block")
	require.Equal(t, sampleConfig, block[1], "README's sample config drifted from sample.conf")

	metrics := readme[strings.Index(readme, "## Metrics\n"):]
	metrics = metrics[:strings.Index(metrics, "\n## ")]
	for _, f := range statFields {
		mode := f.mode
		if mode == "" {
			mode = "both"
		}
		row := fmt.Sprintf("| `%s` | %s | %s |", f.name, mode, f.counts)
		require.Contains(t, metrics, row, "self-metric %s: the README's row differs from statFields", f.name)
	}
	require.Contains(t, metrics, "`"+stateMeasurement+"`")
	all := stateFields(&jetstream.ConsumerInfo{}, &jetstream.StreamInfo{Cluster: &jetstream.ClusterInfo{}})
	for field := range all {
		require.Contains(t, metrics, "`"+field+"`", "consumer state field %s undocumented", field)
	}
}
