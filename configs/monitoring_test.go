package configs_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// background starts a long-running process that is killed when the test ends.
func background(t *testing.T, logName string, name string, args ...string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), logName))
	require.NoError(t, err)
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start(), "starting %s (installed by scripts/test-deps.sh)", name)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			data, _ := os.ReadFile(logFile.Name())
			t.Logf("%s log:\n%s", name, tail(string(data), 40))
		}
	})
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func getJSON(t *testing.T, rawURL string, into any) error {
	t.Helper()
	resp, err := http.Get(rawURL) //nolint:gosec // loopback test servers
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", rawURL, resp.Status, body)
	}
	return json.Unmarshal(body, into)
}

// startInfluxDB runs Debian's influxd (1.x) on loopback and returns its URL.
func startInfluxDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	httpPort, rpcPort := freePort(t), freePort(t)
	conf := filepath.Join(dir, "influxdb.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = "%s/meta"
[data]
  dir = "%s/data"
  wal-dir = "%s/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  log-enabled = false
[monitor]
  store-enabled = false
`, rpcPort, dir, dir, dir, httpPort)), 0o600))
	background(t, "influxd.log", "influxd", "-config", conf)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	}, 60*time.Second, 200*time.Millisecond, "influxd did not answer /ping")
	return base
}

// startPrometheus runs Debian's prometheus scraping target every second.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: telegraf-tkgi
    static_configs:
      - targets: [%q]
`, target)), 0o600))
	background(t, "prometheus.log", "prometheus", "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

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
	err := getJSON(t, base+"/api/v1/query?query="+url.QueryEscape(query), &v)
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

	influx := startInfluxDB(t)
	promPort := freePort(t)
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
	background(t, "telegraf-tkgi.log", binary, "--config", conf)
	prom := startPrometheus(t, fmt.Sprintf("127.0.0.1:%d", promPort))

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
		if getJSON(t, influx+"/query?db=k8s&q="+q, &r) != nil || len(r.Results) == 0 || len(r.Results[0].Series) == 0 {
			return false
		}
		return fmt.Sprint(r.Results[0].Series[0].Values[0][1]) == fmt.Sprint(nodes)
	}, 60*time.Second, time.Second, "InfluxDB never held kube_telemetry_nodes total == %d", nodes)
	var measurements influxResult
	require.NoError(t, getJSON(t, influx+"/query?db=k8s&q="+url.QueryEscape("SHOW MEASUREMENTS"), &measurements))
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
	require.NoError(t, getJSON(t, prom+"/api/v1/label/__name__/values", &values))
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
