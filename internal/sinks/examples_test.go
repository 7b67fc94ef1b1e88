package sinks

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// tkgiExample is one sink of the TKGI-shaped files in testdata/: what it
// must render to, or why it is refused.
type tkgiExample struct {
	file      string
	kind      string // ClusterMetricSink or MetricSink
	namespace string
	name      string
	// plugins are the sections the rendered configuration loads, sorted.
	plugins []string
	// contains are lines of the rendered TOML.
	contains []string
	// wantErr is part of the refusal; empty means accepted.
	wantErr string
}

var tkgiExamples = []tkgiExample{
	{
		file: "tkgi-1-pod-annotations.yaml", kind: "ClusterMetricSink", name: "tkgi-pod-annotations",
		plugins:  []string{"inputs.prometheus", "outputs.prometheus_client"},
		contains: []string{"monitor_kubernetes_pods = true", `listen = ":9273"`},
	},
	{
		file: "tkgi-2-namespaced-null-inputs.yaml", kind: "ClusterMetricSink", name: "tkgi-node-metrics",
		plugins:  []string{"inputs.prometheus", "outputs.influxdb"},
		contains: []string{":10250/metrics/resource", `database = "tkgi_nodes"`},
	},
	{
		file: "tkgi-3-service-urls.yaml", kind: "ClusterMetricSink", name: "tkgi-wordpress-exporter",
		plugins:  []string{"inputs.prometheus", "outputs.prometheus_client"},
		contains: []string{`urls = ["http://wordpress-svc.default:9117/metrics"]`, `listen = ":9117"`},
	},
	{
		file: "tkgi-4-basic-auth.yaml", kind: "ClusterMetricSink", name: "tkgi-basic-auth",
		plugins:  []string{"inputs.prometheus", "outputs.prometheus_client"},
		contains: []string{`basic_username = "scraper"`, `basic_password = "s3cret-for-tests"`, `path = "/metrics"`, `listen = ":9126"`},
	},
	{
		file: "tkgi-5-metricsinks.yaml", kind: "MetricSink", namespace: "spring-petclinic", name: "petclinic-default",
		plugins:  []string{"inputs.prometheus", "outputs.prometheus_client"},
		contains: []string{"monitor_kubernetes_pods = true", `monitor_kubernetes_pods_namespace = "spring-petclinic"`, `listen = ":9273"`},
	},
	{
		file: "tkgi-5-metricsinks.yaml", kind: "MetricSink", namespace: "spring-petclinic", name: "petclinic-pods",
		plugins:  []string{"inputs.prometheus", "outputs.influxdb"},
		contains: []string{`monitor_kubernetes_pods_namespace = "spring-petclinic"`, `database = "petclinic"`},
	},
	{
		file: "tkgi-6-saas-outputs.yaml", kind: "ClusterMetricSink", name: "tkgi-datadog",
		plugins:  []string{"inputs.prometheus", "outputs.datadog"},
		contains: []string{`apikey = "0123456789abcdef0123456789abcdef"`},
	},
	{
		file: "tkgi-6-saas-outputs.yaml", kind: "ClusterMetricSink", name: "tkgi-wavefront",
		plugins:  []string{"inputs.prometheus", "outputs.wavefront"},
		contains: []string{`url = "http://wavefront-proxy.monitoring.svc:2878"`, `prefix = "tkgi."`},
	},
	{
		file: "tkgi-8-interval.yaml", kind: "ClusterMetricSink", name: "tkgi-interval",
		plugins:  []string{"inputs.prometheus", "outputs.prometheus_client"},
		contains: []string{`interval = "30s"`, `listen = ":9275"`},
	},
	{
		file: "tkgi-8-interval.yaml", kind: "MetricSink", namespace: "spring-petclinic", name: "petclinic-slow",
		plugins:  []string{"inputs.prometheus", "outputs.prometheus_client"},
		contains: []string{`interval = "1m"`, `monitor_kubernetes_pods_namespace = "spring-petclinic"`},
	},
	{
		file: "tkgi-8-interval.yaml", kind: "ClusterMetricSink", name: "tkgi-interval-too-short",
		wantErr: "spec.interval: 100ms is shorter than 1s",
	},
	{
		file: "tkgi-7-not-compiled-in.yaml", kind: "ClusterMetricSink", name: "tkgi-stackdriver",
		wantErr: "spec.outputs[0]: outputs.stackdriver is not compiled into telegraf-tkgi; compiled-in outputs: datadog, discard,",
	},
}

// readSinks reads the sinks of a testdata file, keyed by kind/name.
func readSinks(t *testing.T, file string) map[string]interface{} {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	require.NoError(t, err)
	sinks := make(map[string]interface{})
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var head struct {
			Kind string `json:"kind"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &head))
		switch head.Kind {
		case "ClusterMetricSink":
			var s ClusterMetricSink
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &s))
			sinks["ClusterMetricSink/"+s.Name] = &s
		case "MetricSink":
			var s MetricSink
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &s))
			sinks["MetricSink/"+s.Name] = &s
		default:
			t.Fatalf("%s: unexpected kind %q", file, head.Kind)
		}
	}
	return sinks
}

// loadedPlugins loads a rendered configuration with Telegraf's own loader,
// the agents' ServiceAccount files read from the checker's stand-in, and
// names its plugin sections, sorted.
func loadedPlugins(t *testing.T, k Checker, conf string) []string {
	t.Helper()
	conf = strings.ReplaceAll(conf, ServiceAccountDir+"/", k.ServiceAccountDir+"/")
	checkMu.Lock()
	defer checkMu.Unlock()
	c := config.NewConfig()
	c.Agent.Quiet = true
	require.NoError(t, c.LoadConfigData([]byte(conf), ConfigKey))
	var names []string
	for _, in := range c.Inputs {
		names = append(names, "inputs."+in.Config.Name)
	}
	for _, out := range c.Outputs {
		names = append(names, "outputs."+out.Config.Name)
	}
	sort.Strings(names)
	return names
}

// Every TKGI-shaped example renders, alone and (the ClusterMetricSinks) all
// together, into a configuration that passes the check; or is refused with
// a message that names what is wrong.
func TestTKGIExamplesRender(t *testing.T) {
	checker := testChecker(t)
	var together []ClusterSink
	for _, ex := range tkgiExamples {
		t.Run(ex.name, func(t *testing.T) {
			sinks := readSinks(t, ex.file)
			var (
				conf []byte
				err  error
			)
			switch s := sinks[ex.kind+"/"+ex.name].(type) {
			case *ClusterMetricSink:
				var cs ClusterSink
				cs, err = checker.ValidateClusterMetricSink(s)
				if err == nil {
					together = append(together, cs)
					conf, err = RenderCluster([]ClusterSink{cs})
				}
			case *MetricSink:
				require.Equal(t, ex.namespace, s.Namespace)
				conf, err = checker.ValidateMetricSink(s)
			default:
				t.Fatalf("%s has no %s %s", ex.file, ex.kind, ex.name)
			}
			if ex.wantErr != "" {
				require.ErrorContains(t, err, ex.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, ex.plugins, loadedPlugins(t, checker, string(conf)))
			for _, want := range ex.contains {
				require.Contains(t, string(conf), want)
			}
		})
	}
	conf, err := RenderCluster(together)
	require.NoError(t, err)
	require.NoError(t, checker.Check(conf))
}

func TestCompiledIn(t *testing.T) {
	tests := []struct {
		kind, name, wantErr string
	}{
		{"inputs", "prometheus", ""},
		{"outputs", "wavefront", ""},
		{"outputs", "datadog", ""},
		{"outputs", "stackdriver", "spec.outputs[0]: outputs.stackdriver is not compiled into telegraf-tkgi; compiled-in outputs: datadog, discard, file,"},
		{"inputs", "nginx", "spec.outputs[0]: inputs.nginx is not compiled into telegraf-tkgi; compiled-in inputs: cpu, disk,"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"."+tt.name, func(t *testing.T) {
			err := compiledIn("spec.outputs[0]", tt.kind, tt.name)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestRespell(t *testing.T) {
	tests := []struct {
		name    string
		plugin  string
		in      map[string]interface{}
		want    map[string]interface{}
		wantErr string
	}{
		{"TKGI's camelCase key", "outputs.datadog", map[string]interface{}{"apiKey": "k"}, map[string]interface{}{"apikey": "k"}, ""},
		{"Telegraf's own key", "outputs.datadog", map[string]interface{}{"apikey": "k"}, map[string]interface{}{"apikey": "k"}, ""},
		{"both", "outputs.datadog", map[string]interface{}{"apikey": "k", "apiKey": "j"}, nil, `"apiKey" and "apikey" are the same option of outputs.datadog`},
		{"another plugin keeps its keys", "outputs.http", map[string]interface{}{"apiKey": "k"}, map[string]interface{}{"apiKey": "k"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := respell("spec.outputs[0]", tt.plugin, tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, tt.in)
		})
	}
}
