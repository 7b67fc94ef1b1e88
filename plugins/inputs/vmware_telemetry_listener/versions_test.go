package vmware_telemetry_listener

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testversions"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// versionMetrics returns a metric per position the dictionary reads with
// scheme, carrying v there and the fields the measurement needs to be sent.
func versionMetrics(d *telemetry.Dictionary, scheme, v string, ts time.Time) []telegraf.Metric {
	var out []telegraf.Metric
	for _, name := range d.MeasurementNames() {
		m := d.Measurements[name]
		fields := map[string]any{}
		for _, k := range m.FieldKeys() {
			switch m.Fields[k].Type {
			case telemetry.TypeInt:
				fields[k] = int64(1)
			case telemetry.TypeBool:
				fields[k] = true
			}
		}
		for _, k := range m.TagKeys() {
			if m.Tags[k].Version == scheme {
				out = append(out, metric.New(name, map[string]string{k: v}, fields, ts))
			}
		}
		for _, k := range m.FieldKeys() {
			if m.Fields[k].Version == scheme {
				f := map[string]any{k: v}
				for fk, fv := range fields {
					f[fk] = fv
				}
				out = append(out, metric.New(name, nil, f, ts))
			}
		}
	}
	return out
}

// Both ends agree on versions, over HTTP: what the agent's policy makes of
// every corpus string, as is and with customer words planted, is stored by
// the listener (201); the planted strings themselves, as a client that
// skipped the policy would send them, are refused (422) naming the key.
func TestVersionStringsBothEnds(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0x7e53))
	d := telemetry.DefaultDictionary()
	ps, err := telemetry.NewPseudonymizer(bytes.Repeat([]byte{9}, 32))
	require.NoError(t, err)
	pol, err := telemetry.NewPolicy(d, telemetry.LevelStandard, ps, telemetry.Identity{})
	require.NoError(t, err)
	ts := startListener(t, nil)
	now := time.Unix(1_700_000_000, 0)

	enc := telemetry.NewEncoder()
	var view telemetry.View
	var raws []telegraf.Metric
	lines := 0
	for _, v := range testversions.Corpus() {
		core, _, _, ok := d.Versions[v.Scheme].Split(v.Value)
		require.True(t, ok)
		values := []string{v.Value}
		for _, pl := range testversions.Plant(v, core, testversions.Words(r, 1)[0]) {
			values = append(values, pl.Value)
		}
		for i, value := range values {
			for _, m := range versionMetrics(d, v.Scheme, value, now) {
				require.Equal(t, telemetry.Sent, pol.View(m, &view))
				require.NoError(t, enc.AppendView(&view))
				lines++
				if i > 0 && r.IntN(8) == 0 {
					raws = append(raws, m)
				}
			}
		}
	}
	stored := ts.pipe.stored
	before := stored("kube_telemetry_node") + stored("kube_telemetry_cluster") + stored("kube_telemetry_addon")
	resp, body := ts.do(post{body: zstdBytes(t, enc.Bytes()), encoding: "zstd", key: "versions-agent"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	after := stored("kube_telemetry_node") + stored("kube_telemetry_cluster") + stored("kube_telemetry_addon")
	require.Equal(t, lines, after-before, "every line the agent's policy produced is stored")

	for i, m := range raws {
		raw := telemetry.NewEncoder()
		require.NoError(t, raw.AppendMetric(m))
		resp, body := ts.do(post{body: raw.Bytes(), key: fmt.Sprintf("raw-%d", i)})
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "raw %s accepted: %s", strings.TrimSpace(string(raw.Bytes())), body)
		require.Contains(t, body, "version scheme")
	}
	t.Logf("%d policy lines stored in one batch, %d raw planted strings refused one by one", lines, len(raws))
}
