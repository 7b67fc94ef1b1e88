package configs_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testmonitor"
)

type promVector struct {
	Status string `json:"status"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func promQuery(t *testing.T, base, query string) (promVector, error) {
	var v promVector
	err := testmonitor.GetJSON(base+"/api/v1/query?query="+url.QueryEscape(query), &v)
	return v, err
}

type influxResult struct {
	Results []struct {
		Series []struct {
			Name    string   `json:"name"`
			Columns []string `json:"columns"`
			Values  [][]any  `json:"values"`
		} `json:"series"`
		Error string `json:"error"`
	} `json:"results"`
}

// A seeded cluster's telemetry and node metrics reach Debian's Prometheus
// (scraping prometheus_client) and Debian's InfluxDB (outputs.influxdb), and
// the Grafana dashboard queries only metrics that exist there.
func TestPrometheusAndInfluxDBEndToEnd(t *testing.T) {
	binary := testbin.Path(t)
	c := testkube.Get(t)

	dir := t.TempDir()
	summary := filepath.Join(dir, "seed.json")
	seed := exec.Command(c.Kubeseed, "-kubeconfig", c.AdminKubeconfig, "-nodes", "12", "-pods", "120", "-summary", summary)
	out, err := seed.CombinedOutput()
	require.NoError(t, err, "kubeseed: %s", out)
	var seeded struct {
		Nodes []json.RawMessage `json:"nodes"`
	}
	data, err := os.ReadFile(summary)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &seeded))

	influx := testmonitor.StartInfluxDB(t)
	promPort := testmonitor.FreePort(t)
	conf := filepath.Join(dir, "monitoring.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
[agent]
  interval = "2s"
  flush_interval = "1s"
  hostname = "node-under-test"
[[inputs.kube_telemetry]]
  kubeconfig = %q
  cluster_name = "e2e"
[[inputs.cpu]]
  percpu = false
[[inputs.mem]]
[[inputs.system]]
[[inputs.internal]]
[[outputs.prometheus_client]]
  listen = "127.0.0.1:%d"
  metric_version = 2
[[outputs.influxdb]]
  urls = [%q]
  database = "k8s"
`, c.TelegrafKubeconfig, promPort, influx)), 0o600))
	testmonitor.Background(t, "telegraf-tkgi.log", binary, "--config", conf)
	prom := testmonitor.StartPrometheus(t, "telegraf-tkgi", fmt.Sprintf("127.0.0.1:%d", promPort))

	// Prometheus: cluster telemetry, node metrics and the agent's own.
	nodes := len(seeded.Nodes)
	require.Eventually(t, func() bool {
		v, err := promQuery(t, prom, `kube_telemetry_nodes_total{cluster_name="e2e"}`)
		return err == nil && len(v.Data.Result) == 1 && v.Data.Result[0].Value[1] == fmt.Sprint(nodes)
	}, 90*time.Second, time.Second, "Prometheus never saw kube_telemetry_nodes_total == %d", nodes)
	for _, q := range []string{"kube_telemetry_pods_total", "kube_telemetry_node_cpu_capacity_millicores", "mem_used", "cpu_usage_idle", "internal_agent_metrics_gathered"} {
		require.Eventually(t, func() bool {
			v, err := promQuery(t, prom, q)
			return err == nil && len(v.Data.Result) > 0
		}, 30*time.Second, time.Second, "Prometheus has no %s", q)
	}
	perNode, err := promQuery(t, prom, "kube_telemetry_node_cpu_capacity_millicores")
	require.NoError(t, err)
	require.Len(t, perNode.Data.Result, nodes, "one series per node")

	// InfluxDB: the same measurements through outputs.influxdb.
	require.Eventually(t, func() bool {
		var r influxResult
		q := url.QueryEscape(`SELECT last("total") FROM "kube_telemetry_nodes"`)
		if testmonitor.GetJSON(influx+"/query?db=k8s&q="+q, &r) != nil || len(r.Results) == 0 || len(r.Results[0].Series) == 0 {
			return false
		}
		return fmt.Sprint(r.Results[0].Series[0].Values[0][1]) == fmt.Sprint(nodes)
	}, 60*time.Second, time.Second, "InfluxDB never held kube_telemetry_nodes total == %d", nodes)
	var measurements influxResult
	require.NoError(t, testmonitor.GetJSON(influx+"/query?db=k8s&q="+url.QueryEscape("SHOW MEASUREMENTS"), &measurements))
	var names []string
	for _, row := range measurements.Results[0].Series[0].Values {
		names = append(names, fmt.Sprint(row[0]))
	}
	for _, m := range []string{"kube_telemetry_cluster", "kube_telemetry_node", "kube_telemetry_pods", "cpu", "mem", "system", "internal_agent"} {
		require.Contains(t, names, m)
	}

	// Every metric the dashboard queries exists in this Prometheus.
	var values struct {
		Data []string `json:"data"`
	}
	require.NoError(t, testmonitor.GetJSON(prom+"/api/v1/label/__name__/values", &values))
	for _, name := range dashboardMetricNames(t) {
		require.Contains(t, values.Data, name, "the dashboard queries %s, which Prometheus does not have", name)
	}
}

var metricName = regexp.MustCompile(`\b((?:kube_telemetry|internal|cpu|mem|system)_[a-z0-9_]+)\b`)

// dashboardMetricNames reads the Grafana dashboard (valid JSON or the test
// fails) and returns the metric names its panel queries use.
func dashboardMetricNames(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("grafana/telegraf-tkgi.json")
	require.NoError(t, err)
	var dashboard struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dashboard), "the dashboard is not valid JSON")
	require.NotEmpty(t, dashboard.Title)
	seen := make(map[string]bool)
	var names []string
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			for _, m := range metricName.FindAllStringSubmatch(target.Expr, -1) {
				if !seen[m[1]] {
					seen[m[1]] = true
					names = append(names, m[1])
				}
			}
		}
	}
	require.NotEmpty(t, names, "the dashboard queries no metrics")
	return names
}
