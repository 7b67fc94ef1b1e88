package kube_telemetry

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf/testutil"
)

// readmeMetrics is the metric list of README.md: measurement -> tag keys and
// field keys with their documented types.
type readmeMetric struct {
	tags   []string
	fields map[string]string
}

var (
	measurementLine = regexp.MustCompile("^- (kube_telemetry_[a-z_]+)")
	itemLine        = regexp.MustCompile(`^    - ([a-z_, ]+?)(?: \(([a-z]+)\))?(?::|$)`)
)

func parseReadmeMetrics(t *testing.T, readme string) map[string]*readmeMetric {
	t.Helper()
	section := readme[strings.Index(readme, "\n## Metrics\n"):]
	section = section[:strings.Index(section, "\n## Example Output")]
	out := map[string]*readmeMetric{}
	var cur *readmeMetric
	var inFields bool
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := sc.Text()
		if m := measurementLine.FindStringSubmatch(line); m != nil {
			cur = &readmeMetric{fields: map[string]string{}}
			out[m[1]] = cur
			continue
		}
		switch line {
		case "  - tags:":
			inFields = false
			continue
		case "  - fields:":
			inFields = true
			continue
		}
		m := itemLine.FindStringSubmatch(line)
		if m == nil || cur == nil {
			continue
		}
		if inFields {
			require.NotEmpty(t, m[2], "README field %q has no type", m[1])
			cur.fields[m[1]] = m[2]
			continue
		}
		for _, tag := range strings.Split(m[1], ",") {
			cur.tags = append(cur.tags, strings.TrimSpace(tag))
		}
	}
	for _, m := range out {
		sort.Strings(m.tags)
	}
	return out
}

func readmeType(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case float64:
		return "float"
	case string:
		return "string"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

// TestReadmeMatchesCode: the README documents exactly the measurements,
// tags and fields (with their types) a gather emits, and embeds
// sample.conf and the ClusterRole verbatim.
func TestReadmeMatchesCode(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(data)

	require.Contains(t, readme, "```toml @sample.conf\n"+sampleConfig+"```\n")
	role, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", "kubernetes", "base", "clusterrole.yaml"))
	require.NoError(t, err)
	require.Contains(t, readme, "```yaml\n"+string(role)+"```\n")

	// Everything the fixture cluster makes the plugin emit, with every
	// measurement present.
	k := newFixture(t).plugin(t, func(k *KubeTelemetry) { k.ClusterName = "lab" })
	var acc testutil.Accumulator
	require.NoError(t, k.Gather(&acc))
	emitted := map[string]*readmeMetric{}
	for _, m := range acc.GetTelegrafMetrics() {
		e := emitted[m.Name()]
		if e == nil {
			e = &readmeMetric{fields: map[string]string{}}
			emitted[m.Name()] = e
		}
		for _, tag := range m.TagList() {
			if !contains(e.tags, tag.Key) {
				e.tags = append(e.tags, tag.Key)
			}
		}
		for _, f := range m.FieldList() {
			e.fields[f.Key] = readmeType(f.Value)
		}
	}
	for _, m := range emitted {
		sort.Strings(m.tags)
	}

	documented := parseReadmeMetrics(t, readme)
	require.Len(t, documented, 9)
	require.Equal(t, emitted, documented)

	// The add-on names the README lists are the table's.
	var addons []string
	for _, r := range addonRules {
		addons = append(addons, "`"+r.addon+"`")
	}
	require.Contains(t, readme, "    - addon: "+strings.Join(addons, ", ")+"\n")
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
