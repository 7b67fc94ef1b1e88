package sinks

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Hand-written deep copies: the spec is free-form JSON, which
// runtime.DeepCopyJSONValue copies exactly.

// DeepCopy copies a plugin entry.
func (p Plugin) DeepCopy() Plugin {
	if p == nil {
		return nil
	}
	return Plugin(runtime.DeepCopyJSON(map[string]interface{}(p)))
}

// DeepCopyInto copies the spec into out.
func (in *SinkSpec) DeepCopyInto(out *SinkSpec) {
	out.Inputs = copyPlugins(in.Inputs)
	out.Outputs = copyPlugins(in.Outputs)
	out.Interval = in.Interval
}

func copyPlugins(in []Plugin) []Plugin {
	if in == nil {
		return nil
	}
	out := make([]Plugin, len(in))
	for i, p := range in {
		out[i] = p.DeepCopy()
	}
	return out
}

// DeepCopyInto copies the status into out.
func (in *SinkStatus) DeepCopyInto(out *SinkStatus) {
	out.ObservedGeneration = in.ObservedGeneration
	out.Conditions = nil
	if in.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(in.Conditions))
		for i := range in.Conditions {
			in.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
}

// DeepCopyObject implements runtime.Object.
func (in *ClusterMetricSink) DeepCopyObject() runtime.Object { return in.DeepCopy() }

// DeepCopy copies the sink.
func (in *ClusterMetricSink) DeepCopy() *ClusterMetricSink {
	if in == nil {
		return nil
	}
	out := &ClusterMetricSink{TypeMeta: in.TypeMeta}
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	in.Spec.DeepCopyInto(&out.Spec)
	in.Status.DeepCopyInto(&out.Status)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *ClusterMetricSinkList) DeepCopyObject() runtime.Object {
	if in == nil {
		return nil
	}
	out := &ClusterMetricSinkList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]ClusterMetricSink, len(in.Items))
		for i := range in.Items {
			out.Items[i] = *in.Items[i].DeepCopy()
		}
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *MetricSink) DeepCopyObject() runtime.Object { return in.DeepCopy() }

// DeepCopy copies the sink.
func (in *MetricSink) DeepCopy() *MetricSink {
	if in == nil {
		return nil
	}
	out := &MetricSink{TypeMeta: in.TypeMeta}
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	in.Spec.DeepCopyInto(&out.Spec)
	in.Status.DeepCopyInto(&out.Status)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *MetricSinkList) DeepCopyObject() runtime.Object {
	if in == nil {
		return nil
	}
	out := &MetricSinkList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]MetricSink, len(in.Items))
		for i := range in.Items {
			out.Items[i] = *in.Items[i].DeepCopy()
		}
	}
	return out
}
