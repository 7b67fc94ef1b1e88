package sinks

import (
	"fmt"
)

// ValidateMetricSink is what a MetricSink must pass to run: the tenancy
// rules, then the rendered configuration loaded as `config check` does. It
// returns the rendered configuration.
func (k Checker) ValidateMetricSink(sink *MetricSink) ([]byte, error) {
	if len(sink.Name) > maxSinkName {
		return nil, fmt.Errorf("metadata.name: a MetricSink's name may have at most %d characters", maxSinkName)
	}
	conf, err := RenderTenant(sink.Namespace, sink.Name, sink.Spec)
	if err != nil {
		return nil, err
	}
	return conf, k.Check(conf)
}

// ValidateClusterMetricSink checks a ClusterMetricSink alone: its part of
// the node configuration must load by itself.
func (k Checker) ValidateClusterMetricSink(sink *ClusterMetricSink) (ClusterSink, error) {
	cs, err := ParseClusterSink(sink.Name, sink.Spec)
	if err != nil {
		return cs, err
	}
	conf, err := RenderCluster([]ClusterSink{cs})
	if err != nil {
		return cs, err
	}
	return cs, k.Check(conf)
}
