package sinks

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is TKGI's sink API, so a user's existing sink YAML applies
// unchanged.
var GroupVersion = schema.GroupVersion{Group: "pksapi.io", Version: "v1beta1"}

// Plugin is one entry of spec.inputs or spec.outputs: "type" names a
// Telegraf plugin, every other key is one of that plugin's options. Values
// are JSON values as the API server's decoder gives them (integers stay
// int64).
type Plugin map[string]interface{}

// SinkSpec is the spec shared by both kinds.
type SinkSpec struct {
	Inputs  []Plugin `json:"inputs,omitempty"`
	Outputs []Plugin `json:"outputs,omitempty"`
	// Interval is TKGI's agent interval: how often the sink's inputs
	// collect, a duration such as "30s" or "1m" (default 10s).
	Interval string `json:"interval,omitempty"`
}

// SinkStatus reports whether the sink's configuration loads and is in place.
type SinkStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterMetricSink feeds the node DaemonSet: all of them share one
// configuration.
type ClusterMetricSink struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SinkSpec   `json:"spec,omitempty"`
	Status            SinkStatus `json:"status,omitempty"`
}

// ClusterMetricSinkList is a list of ClusterMetricSinks.
type ClusterMetricSinkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterMetricSink `json:"items"`
}

// MetricSink is a tenant's sink: an agent in its namespace that sees only
// that namespace.
type MetricSink struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SinkSpec   `json:"spec,omitempty"`
	Status            SinkStatus `json:"status,omitempty"`
}

// MetricSinkList is a list of MetricSinks.
type MetricSinkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MetricSink `json:"items"`
}

// AddToScheme registers both kinds and their lists.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ClusterMetricSink{}, &ClusterMetricSinkList{},
		&MetricSink{}, &MetricSinkList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
