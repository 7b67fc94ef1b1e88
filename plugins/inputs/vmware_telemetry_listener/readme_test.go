package vmware_telemetry_listener

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/influxdata/telegraf/selfstat"
	"github.com/stretchr/testify/require"
)

// The README shows sample.conf verbatim and documents every self-metric
// field and status the plugin registers.
func TestReadmeMatchesPlugin(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(data)

	block := regexp.MustCompile("(?s)```toml @sample.conf\n(.*?)```").FindStringSubmatch(readme)
	require.NotNil(t, block, "README has no ```toml @sample.conf block")
	require.Equal(t, sampleConfig, block[1], "README's sample config drifted from sample.conf")

	startListener(t, nil)
	section := readme[strings.Index(readme, "`internal_vmware_telemetry_listener`"):]
	seen := 0
	for _, m := range selfstat.Metrics() {
		if m.Name() != "internal_"+statsMeasurement || m.Tags()["test"] != t.Name() {
			continue
		}
		seen++
		for _, f := range m.FieldList() {
			require.Contains(t, section, "`"+f.Key+"`", "self-metric field %q undocumented", f.Key)
		}
		if status, ok := m.GetTag("status"); ok {
			require.Contains(t, section, "`"+status+"`", "status %q undocumented", status)
		}
	}
	require.NotZero(t, seen)
}
