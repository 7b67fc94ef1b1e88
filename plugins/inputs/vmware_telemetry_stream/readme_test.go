package vmware_telemetry_stream

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README shows sample.conf verbatim.
func TestReadmeShowsSampleConfig(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)```toml @sample.conf\n(.*?)```").FindStringSubmatch(string(data))
	require.NotNil(t, block, "README has no ```toml @sample.conf block")
	require.Equal(t, sampleConfig, block[1], "README's sample config drifted from sample.conf")
}
