package sinks

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPortClashes(t *testing.T) {
	base := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	sink := func(name string, created int, listens ...string) *ClusterMetricSink {
		s := &ClusterMetricSink{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(base.Add(time.Duration(created) * time.Second))}}
		for _, l := range listens {
			p := Plugin{"type": "prometheus_client"}
			if l != "" {
				p["listen"] = l
			}
			s.Spec.Outputs = append(s.Spec.Outputs, p, Plugin{"type": "discard"})
		}
		return s
	}
	tests := []struct {
		name  string
		sinks []*ClusterMetricSink
		want  map[string]string
	}{
		{
			name:  "different ports",
			sinks: []*ClusterMetricSink{sink("a", 0, ":9273"), sink("b", 0, ":9126")},
			want:  map[string]string{},
		},
		{
			name:  "the later sink is left out",
			sinks: []*ClusterMetricSink{sink("newer", 5, ":9273"), sink("older", 1, ":9273")},
			want:  map[string]string{"newer": "prometheus_client listen port 9273 is already used by ClusterMetricSink older"},
		},
		{
			name:  "same creation time: by name",
			sinks: []*ClusterMetricSink{sink("zeta", 0, ":9126"), sink("alpha", 0, ":9126")},
			want:  map[string]string{"zeta": "port 9126 is already used by ClusterMetricSink alpha"},
		},
		{
			name:  "the default port and a host-bound listen clash",
			sinks: []*ClusterMetricSink{sink("a", 0, ""), sink("b", 1, "127.0.0.1:9273")},
			want:  map[string]string{"b": "port 9273 is already used by ClusterMetricSink a"},
		},
		{
			name:  "two outputs of one sink",
			sinks: []*ClusterMetricSink{sink("twice", 0, ":9273", "0.0.0.0:9273")},
			want:  map[string]string{"twice": "two prometheus_client outputs listen on port 9273"},
		},
		{
			name:  "a sink left out claims no port",
			sinks: []*ClusterMetricSink{sink("a", 0, ":9273"), sink("b", 1, ":9273", ":9126"), sink("c", 2, ":9126")},
			want:  map[string]string{"b": "used by ClusterMetricSink a"},
		},
		{
			name:  "no prometheus_client",
			sinks: []*ClusterMetricSink{sink("a", 0), sink("b", 0)},
			want:  map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := portClashes(tt.sinks)
			require.Len(t, got, len(tt.want), "%v", got)
			for name, msg := range tt.want {
				require.ErrorContains(t, got[name], msg)
			}
		})
	}
}
