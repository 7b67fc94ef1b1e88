package kube_telemetry

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateReadme = flag.Bool("update", false, "rewrite the README's metric list from metrics.toml")

const (
	readmeMetricsBegin = "<!-- The metric list is rendered from metrics.toml: edit metrics.toml, then run\n" +
		"     go test ./plugins/inputs/kube_telemetry -run TestReadmeMetrics -update -->\n\n"
	readmeMetricsEnd = "\n<!-- End of the list rendered from metrics.toml -->\n"
)

// renderMetrics is the README's metric list: every measurement of the
// schema with its tags and fields, their types and meanings. The common
// tags are spelt out under the first measurement only.
func renderMetrics() string {
	var b strings.Builder
	line := func(indent int, name, typ, doc string) {
		b.WriteString(strings.Repeat("  ", indent) + "- " + name)
		if typ != "" {
			b.WriteString(" (" + typ + ")")
		}
		if doc != "" {
			b.WriteString(": " + doc)
		}
		b.WriteString("\n")
	}
	common := make([]string, 0, len(commonTags))
	for _, k := range commonTags {
		common = append(common, k.name)
	}
	for i, m := range measurements {
		if i > 0 {
			b.WriteString("\n")
		}
		title := m.name
		if m.series != "" {
			title += " (" + m.series + ")"
		}
		line(0, title, "", "")
		line(1, "tags:", "", "")
		if i == 0 {
			for _, k := range commonTags {
				line(2, k.name, "", k.doc)
			}
		} else {
			line(2, strings.Join(common, ", "), "", "")
		}
		for _, k := range m.tags {
			line(2, k.name, "", k.doc)
		}
		line(1, "fields:", "", "")
		for _, k := range m.fields {
			line(2, k.name, k.typ.String(), k.doc)
		}
	}
	return b.String()
}

// TestReadmeMetrics: the README's metric list is the schema's, rendered.
// Each line that differs is named; -update rewrites the list.
func TestReadmeMetrics(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(data)
	begin := strings.Index(readme, readmeMetricsBegin)
	end := strings.Index(readme, readmeMetricsEnd)
	require.True(t, begin >= 0 && end > begin, "README.md has lost the markers around its metric list")
	begin += len(readmeMetricsBegin)
	want := renderMetrics()
	if *updateReadme {
		require.NoError(t, os.WriteFile("README.md", []byte(readme[:begin]+want+readme[end:]), 0o644))
		return
	}
	got := readme[begin:end]
	if got == want {
		return
	}
	lines := func(s string) map[string]bool {
		out := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			out[l] = true
		}
		return out
	}
	gotLines, wantLines := lines(got), lines(want)
	var diff []string
	for _, l := range strings.Split(got, "\n") {
		if !wantLines[l] {
			diff = append(diff, "README has, metrics.toml has not: "+l)
		}
	}
	for _, l := range strings.Split(want, "\n") {
		if !gotLines[l] {
			diff = append(diff, "metrics.toml has, README has not: "+l)
		}
	}
	if len(diff) == 0 {
		diff = append(diff, "the same lines in another order")
	}
	t.Fatalf("the README's metric list differs from metrics.toml (rewrite it with "+
		"go test ./plugins/inputs/kube_telemetry -run TestReadmeMetrics -update):\n%s", strings.Join(diff, "\n"))
}

// TestReadmeEmbeds: the README shows sample.conf and the ClusterRole
// verbatim.
func TestReadmeEmbeds(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(data)
	require.Contains(t, readme, "```toml @sample.conf\n"+sampleConfig+"```\n")
	role, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", "kubernetes", "base", "clusterrole.yaml"))
	require.NoError(t, err)
	require.Contains(t, readme, "```yaml\n"+string(role)+"```\n")
}
