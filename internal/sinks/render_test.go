package sinks

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRenderTenant(t *testing.T) {
	tests := []struct {
		name    string
		spec    SinkSpec
		want    []string // substrings of the rendered TOML
		wantErr string
	}{
		{
			name: "prometheus pod discovery is pinned to the sink's namespace",
			spec: SinkSpec{
				Inputs:  []Plugin{{"type": "prometheus", "monitor_kubernetes_pods": true}},
				Outputs: []Plugin{{"type": "prometheus_client"}},
			},
			want: []string{
				"[[inputs.prometheus]]",
				`monitor_kubernetes_pods_namespace = "team-a"`,
				"monitor_kubernetes_pods = true",
				"[[outputs.prometheus_client]]",
				`interval = "10s"`,
			},
		},
		{
			name: "no inputs scrape the namespace's annotated pods",
			spec: SinkSpec{Outputs: []Plugin{{"type": "file", "files": []interface{}{"stdout"}}}},
			want: []string{
				"[[inputs.prometheus]]",
				"monitor_kubernetes_pods = true",
				`monitor_kubernetes_pods_namespace = "team-a"`,
				`files = ["stdout"]`,
			},
		},
		{
			name: "integers stay integers and nested maps become sub-tables",
			spec: SinkSpec{
				Inputs: []Plugin{{"type": "prometheus", "urls": []interface{}{"http://app:9100/metrics"},
					"metric_version": int64(2), "tags": map[string]interface{}{"team": "a"}}},
				Outputs: []Plugin{{"type": "influxdb", "urls": []interface{}{"http://influx:8086"}, "database": "team_a"}},
			},
			want: []string{"metric_version = 2\n", "[inputs.prometheus.tags]", `team = "a"`, `database = "team_a"`},
		},
		{
			name: "the sink's own namespace may be named",
			spec: SinkSpec{
				Inputs:  []Plugin{{"type": "prometheus", "monitor_kubernetes_pods": true, "monitor_kubernetes_pods_namespace": "team-a"}},
				Outputs: []Plugin{{"type": "discard"}},
			},
			want: []string{`monitor_kubernetes_pods_namespace = "team-a"`},
		},
		{
			name:    "another namespace is refused",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "prometheus", "monitor_kubernetes_pods_namespace": "team-b"}}, Outputs: []Plugin{{"type": "discard"}}},
			wantErr: `monitor_kubernetes_pods_namespace "team-b" is not this sink's namespace "team-a"`,
		},
		{
			name:    "the kubelet input is refused",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "kubernetes", "url": "https://10.0.0.1:10250"}}, Outputs: []Plugin{{"type": "discard"}}},
			wantErr: `input "kubernetes" is not allowed in a MetricSink`,
		},
		{
			name:    "cluster-wide inventory is refused",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "kube_inventory"}}, Outputs: []Plugin{{"type": "discard"}}},
			wantErr: `input "kube_inventory" is not allowed in a MetricSink`,
		},
		{
			name:    "host inputs are refused",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "cpu"}}, Outputs: []Plugin{{"type": "discard"}}},
			wantErr: `input "cpu" is not allowed`,
		},
		{
			name:    "node pod scrape scope is refused",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "prometheus", "monitor_kubernetes_pods": true, "pod_scrape_scope": "node"}}, Outputs: []Plugin{{"type": "discard"}}},
			wantErr: `pod_scrape_scope "node" is not allowed`,
		},
		{
			name:    "a kubeconfig of its own is refused",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "prometheus", "kube_config": "/tmp/admin"}}, Outputs: []Plugin{{"type": "discard"}}},
			wantErr: `prometheus option "kube_config" is not allowed`,
		},
		{
			name:    "namespace annotation filters are refused",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "prometheus", "namespace_annotation_pass": map[string]interface{}{"a": []interface{}{"b"}}}}, Outputs: []Plugin{{"type": "discard"}}},
			wantErr: `"namespace_annotation_pass" is not allowed`,
		},
		{
			name:    "an output is required",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "prometheus"}}},
			wantErr: "spec.outputs: a sink needs at least one output",
		},
		{
			name:    "type is required",
			spec:    SinkSpec{Outputs: []Plugin{{"listen": ":9273"}}},
			wantErr: `spec.outputs[0]: "type" is missing`,
		},
		{
			name:    "type must be a plugin name",
			spec:    SinkSpec{Outputs: []Plugin{{"type": "file]\n[agent"}}},
			wantErr: `spec.outputs[0]: "type" must be a Telegraf plugin name`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := RenderTenant("team-a", "sink", tt.spec)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			for _, w := range tt.want {
				require.Contains(t, string(conf), w)
			}
			require.NoError(t, testChecker(t).Check(conf), "rendered:\n%s", conf)
		})
	}
}

func TestRenderTenantDoesNotChangeTheSpec(t *testing.T) {
	spec := SinkSpec{Inputs: []Plugin{{"type": "prometheus"}}, Outputs: []Plugin{{"type": "discard"}}}
	_, err := RenderTenant("team-a", "sink", spec)
	require.NoError(t, err)
	require.Equal(t, Plugin{"type": "prometheus"}, spec.Inputs[0])
}

func TestRenderCluster(t *testing.T) {
	parse := func(name string, spec SinkSpec) ClusterSink {
		s, err := ParseClusterSink(name, spec)
		require.NoError(t, err)
		return s
	}
	tests := []struct {
		name    string
		sinks   []ClusterSink
		want    []string
		count   map[string]int // how often a line appears
		notWant []string
	}{
		{
			name: "every sink's inputs go to every sink's outputs",
			sinks: []ClusterSink{
				parse("b-influx", SinkSpec{
					Inputs:  []Plugin{{"type": "cpu"}},
					Outputs: []Plugin{{"type": "influxdb", "urls": []interface{}{"http://influx:8086"}}},
				}),
				parse("a-prom", SinkSpec{
					Inputs:  []Plugin{{"type": "prometheus", "monitor_kubernetes_pods": true}},
					Outputs: []Plugin{{"type": "prometheus_client", "listen": ":9273"}},
				}),
			},
			want:    []string{"from ClusterMetricSinks: a-prom, b-influx", "[[inputs.cpu]]", `hostname = "${NODE_NAME}"`},
			count:   map[string]int{"[[inputs.prometheus]]": 1, "[[outputs.influxdb]]": 1, "[[outputs.prometheus_client]]": 1},
			notWant: []string{"10250", "monitor_kubernetes_pods_namespace"},
		},
		{
			name: "sinks without inputs share one kubelet input",
			sinks: []ClusterSink{
				parse("a", SinkSpec{Outputs: []Plugin{{"type": "prometheus_client"}}}),
				parse("b", SinkSpec{Outputs: []Plugin{{"type": "file"}}}),
			},
			want:  []string{`urls = ["https://${NODE_IP}:10250/metrics/resource"]`},
			count: map[string]int{"[[inputs.prometheus]]": 1, "[[outputs.prometheus_client]]": 1, "[[outputs.file]]": 1},
		},
		{
			name:  "no sink renders a loadable configuration that discards",
			want:  []string{"no ClusterMetricSink exists", "[[outputs.discard]]"},
			count: map[string]int{"[[inputs.prometheus]]": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := RenderCluster(tt.sinks)
			require.NoError(t, err)
			for _, w := range tt.want {
				require.Contains(t, string(conf), w)
			}
			for w, n := range tt.count {
				require.Equal(t, n, strings.Count(string(conf), w), "%q in:\n%s", w, conf)
			}
			for _, w := range tt.notWant {
				require.NotContains(t, string(conf), w)
			}
			require.NoError(t, testChecker(t).Check(conf), "rendered:\n%s", conf)
		})
	}
}

func TestRenderClusterIsStable(t *testing.T) {
	a, _ := ParseClusterSink("a", SinkSpec{Outputs: []Plugin{{"type": "file"}}})
	b, _ := ParseClusterSink("b", SinkSpec{Inputs: []Plugin{{"type": "mem"}}, Outputs: []Plugin{{"type": "discard"}}})
	one, err := RenderCluster([]ClusterSink{a, b})
	require.NoError(t, err)
	two, err := RenderCluster([]ClusterSink{b, a})
	require.NoError(t, err)
	require.Equal(t, string(one), string(two))
}
