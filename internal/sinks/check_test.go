package sinks

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func TestCheckReportsThePluginsOwnError(t *testing.T) {
	tests := []struct {
		name    string
		spec    SinkSpec
		wantErr string
	}{
		{
			name:    "unknown option",
			spec:    SinkSpec{Outputs: []Plugin{{"type": "prometheus_client", "lisen": ":9273"}}},
			wantErr: `"lisen"`,
		},
		{
			name:    "a bad value fails the plugin's Init",
			spec:    SinkSpec{Inputs: []Plugin{{"type": "prometheus", "content_type_override": "bogus"}}, Outputs: []Plugin{{"type": "discard"}}},
			wantErr: `invalid 'content_type_override' setting "bogus"`,
		},
		{
			name:    "a wrongly typed value",
			spec:    SinkSpec{Outputs: []Plugin{{"type": "prometheus_client", "metric_version": "two"}}},
			wantErr: "cannot unmarshal TOML string into int",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := RenderTenant("team-a", "bad", tt.spec)
			require.NoError(t, err)
			require.ErrorContains(t, testChecker(t).Check(conf), tt.wantErr)
		})
	}
}

func TestCheckerReadsTheAgentsServiceAccountFilesFromItsStandIn(t *testing.T) {
	conf, err := RenderCluster(nil)
	require.NoError(t, err)
	require.Contains(t, string(conf), ServiceAccountDir+"/ca.crt")
	require.NoError(t, testChecker(t).Check(conf))
	// Without the files, the plugin's own error names the missing one.
	require.ErrorContains(t, Checker{ServiceAccountDir: t.TempDir()}.Check(conf), "ca.crt")
}

// Prometheus remote write is compiled in both ways: a sink pushes it with
// outputs.http, and http_listener_v2 receives it.
func TestRemoteWriteLoads(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "sinks", "examples", "remote-write.yaml"))
	require.NoError(t, err)
	var sink ClusterMetricSink
	require.NoError(t, yaml.UnmarshalStrict(b, &sink))
	_, err = testChecker(t).ValidateClusterMetricSink(&sink)
	require.NoError(t, err)

	tenant := MetricSink{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "rw"},
		Spec: SinkSpec{
			Inputs:  []Plugin{{"type": "http_listener_v2", "service_address": ":1234", "paths": []interface{}{"/receive"}, "data_format": "prometheusremotewrite"}},
			Outputs: []Plugin{{"type": "discard"}},
		},
	}
	_, err = testChecker(t).ValidateMetricSink(&tenant)
	require.NoError(t, err)
}
