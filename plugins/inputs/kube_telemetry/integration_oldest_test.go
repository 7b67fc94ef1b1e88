package kube_telemetry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf/testutil"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
)

// On the oldest Kubernetes minor supported (1.30, before lists were served
// from the watch cache and streamed), "auto" falls back to pages, and each
// strategy, forced or chosen, counts the seed exactly.
func TestIntegrationOldestAPIServer(t *testing.T) {
	c := testkube.Oldest(t)
	summaryFile := filepath.Join(t.TempDir(), "seed.json")
	seed := exec.Command(c.Kubeseed, "-kubeconfig", c.AdminKubeconfig, "-nodes", fmt.Sprint(seedNodes),
		"-pods", fmt.Sprint(seedPods), "-seed", fmt.Sprint(seedValue), "-summary", summaryFile)
	var out bytes.Buffer
	seed.Stdout, seed.Stderr = &out, &out
	require.NoError(t, seed.Run(), "seeding the v1.30 apiserver: %s", out.String())
	data, err := os.ReadFile(summaryFile)
	require.NoError(t, err)
	var summary seedSummary
	require.NoError(t, json.Unmarshal(data, &summary))

	for _, tt := range []struct {
		strategy string
		pageSize int64 // the limit of the lists: 0 unpaginated
	}{
		{strategy: strategyAuto, pageSize: testPageSize}, // v1.30: pages
		{strategy: strategyPaginated, pageSize: testPageSize},
		{strategy: strategyUnpaginated, pageSize: 0},
	} {
		t.Run(tt.strategy, func(t *testing.T) {
			acc := gatherClean(t, &KubeTelemetry{Kubeconfig: c.TelegrafKubeconfig, ClusterName: "old",
				ListStrategy: tt.strategy})
			testutil.RequireMetricsEqual(t, summary.expected("old", tt.pageSize), acc.GetTelegrafMetrics(),
				testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings)
		})
	}
}
