package e2e_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testversions"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// versionLine is one metric the binary agent reads and what its lake line
// must hold.
type versionLine struct {
	measurement, key string
	tag              bool
	value            string // as the node or API server reports it
	word             string // planted customer word; "" for a corpus string as is
	want             string // the exact value the lake must hold (corpus strings)
	core             string // the prefix the lake value must keep ("" when none need survive)
}

// The version privacy property against the built binary in both roles: an
// agent (inputs.file reading kube_telemetry lines carrying the real-world
// version corpus, as is and with customer words planted, into
// outputs.vmware_telemetry at standard) and the telemetry server
// (inputs.vmware_telemetry_listener into the JSON lake). Every line is
// stored (the listener accepts what the agent sends), the corpus strings
// keep core and vendor token, and no planted word reaches the lake.
func TestVersionStringsBinaryBothEnds(t *testing.T) {
	bin := testbin.Path(t)
	f := &fixture{t: t, bin: bin, dir: t.TempDir()} // no cluster: the input is a file
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0x7e54))
	d := telemetry.DefaultDictionary()

	positions := map[string][]versionLine{
		"kubernetes": {{measurement: "kube_telemetry_cluster", key: "server_version"}, {measurement: "kube_telemetry_node", key: "kubelet_version", tag: true}},
		"kernel":     {{measurement: "kube_telemetry_node", key: "kernel_version", tag: true}},
		"runtime":    {{measurement: "kube_telemetry_node", key: "container_runtime_version", tag: true}},
		"os_image":   {{measurement: "kube_telemetry_node", key: "os_image", tag: true}},
		"image_tag":  {{measurement: "kube_telemetry_addon", key: "version", tag: true}},
	}
	var lines []versionLine
	for _, v := range testversions.Corpus() {
		core, _, _, ok := d.Versions[v.Scheme].Split(v.Value)
		require.True(t, ok, "versions.txt:%d", v.Line)
		for _, p := range positions[v.Scheme] {
			l := p
			l.value, l.want = v.Value, v.Sent
			lines = append(lines, l)
			// Without its vendor token a core that looks like an address
			// (Azure Linux's kernel 6.6.130.1-3) is not sent either.
			bare := versionMetric(l, core, -1)
			bareKept := d.Check(bare, telemetry.LevelStandard) == nil
			for _, word := range testversions.Words(r, 2) {
				for _, pl := range testversions.Plant(v, core, word) {
					l := p
					l.value, l.word = pl.Value, word
					if pl.KeepsCore && bareKept {
						l.core = core
					}
					lines = append(lines, l)
				}
			}
		}
	}
	var lp strings.Builder
	enc := telemetry.NewEncoder()
	for i, l := range lines {
		enc.Reset()
		require.NoError(t, enc.AppendMetric(versionMetric(l, l.value, i)))
		lp.Write(enc.Bytes())
	}
	input := filepath.Join(f.dir, "versions.lp")
	require.NoError(t, os.WriteFile(input, []byte(lp.String()), 0o600))

	port := freePort(t)
	lake := filepath.Join(f.dir, "lake.jsonl")
	server := f.startServer(serverOpts{port: port, lake: lake})
	agent := f.start("agent", fmt.Sprintf(`
[agent]
  interval = "1h"
  flush_interval = "1s"
  metric_batch_size = 1000
  metric_buffer_limit = 100000
  omit_hostname = true
[[inputs.file]]
  files = [%q]
  data_format = "influx"
[[outputs.vmware_telemetry]]
  url = %q
  participation_level = "standard"
  pseudonym_key = %q
  token = %q
`, input, serverURL(port), pseudonymKey, token), "--once")
	agent.wait(2 * time.Minute)
	require.Eventually(t, func() bool { return len(readLake(t, lake)) >= len(lines) },
		time.Minute, 100*time.Millisecond, "the lake never got every line")
	server.stop()

	// Each line carries its index as cluster_uid, pseudonymized by the
	// installation's key: map the lake back to what was planted.
	key, err := telemetry.ParseKey([]byte(pseudonymKey))
	require.NoError(t, err)
	ps, err := telemetry.NewPseudonymizer(key)
	require.NoError(t, err)
	index := make(map[string]int, len(lines))
	for i := range lines {
		index[ps.Pseudonym("cluster_uid", lineUID(i))] = i
	}
	got := readLake(t, lake)
	require.Len(t, got, len(lines), "every line stored once")
	seen := map[int]bool{}
	planted := 0
	for _, m := range got {
		i, ok := index[m.Tags["cluster_uid"]]
		require.True(t, ok, "lake line with an unknown cluster_uid: %+v", m)
		require.False(t, seen[i], "line %d stored twice", i)
		seen[i] = true
		l := lines[i]
		value := m.Tags[l.key]
		if !l.tag {
			value, _ = m.RawFields[l.key].(string)
		}
		if l.word == "" {
			require.Equal(t, l.want, value, "corpus string %q", l.value)
			continue
		}
		planted++
		require.NotContains(t, strings.ToLower(value), strings.ToLower(l.word), "%q reached the lake as %q", l.value, value)
		if l.core != "" {
			require.True(t, strings.HasPrefix(value, l.core), "%q reached the lake as %q: core %q lost", l.value, value, l.core)
		}
	}
	lakeText, err := os.ReadFile(lake)
	require.NoError(t, err)
	lower := strings.ToLower(string(lakeText))
	words := map[string]bool{}
	for _, l := range lines {
		if l.word != "" && !words[l.word] {
			words[l.word] = true
			require.NotContains(t, lower, strings.ToLower(l.word), "planted in %q", l.value)
		}
	}
	t.Logf("%d lines through the binary agent and server: %d corpus strings kept as the corpus says, %d planted strings, %d distinct words, none in the lake",
		len(lines), len(lines)-planted, planted, len(words))
}

func lineUID(i int) string { return "uid-" + strconv.Itoa(i) }

// versionMetric is a kube_telemetry metric carrying value at l's position,
// its index i as cluster_uid (none for i < 0), and a field so it is sent at
// all.
func versionMetric(l versionLine, value string, i int) telegraf.Metric {
	tags := map[string]string{}
	if i >= 0 {
		tags["cluster_uid"] = lineUID(i)
	}
	fields := map[string]any{}
	switch l.measurement {
	case "kube_telemetry_node":
		fields["ready"] = true
	case "kube_telemetry_addon":
		fields["desired"] = int64(1)
	default:
		fields["pages"] = int64(1)
	}
	if l.tag {
		tags[l.key] = value
	} else {
		fields[l.key] = value
	}
	return metric.New(l.measurement, tags, fields, time.Unix(1_700_000_000, int64(max(i, 0))))
}
