package sinks

import (
	"fmt"
	"sort"
	"strings"
)

// tenantInputs are the inputs a MetricSink may use: each sees only what its
// own pod can reach or is sent. Everything else (the kubelet, host
// filesystems, cluster-wide API reads, commands) would show a tenant data
// of the node or of other namespaces, so it is refused.
var tenantInputs = map[string]bool{
	"prometheus":        true,
	"http_listener_v2":  true,
	"influxdb_listener": true,
	"internal":          true,
}

// tenantPrometheusRefused are inputs.prometheus options that reach beyond
// the tenant's namespace through the Kubernetes API or the node.
var tenantPrometheusRefused = map[string]string{
	"kube_config":               "the agent uses its own namespace's ServiceAccount",
	"namespace_annotation_pass": "it lists the cluster's namespaces",
	"namespace_annotation_drop": "it lists the cluster's namespaces",
}

// confineTenantInputs applies the tenancy rules to a MetricSink's inputs in
// place: refused inputs and options fail, and every pod discovery of
// inputs.prometheus is pinned to the sink's namespace.
func confineTenantInputs(namespace string, inputs []section) error {
	for i, in := range inputs {
		if !tenantInputs[in.name] {
			return fmt.Errorf("spec.inputs[%d]: input %q is not allowed in a MetricSink: it reads node or cluster-wide data; "+
				"a MetricSink may use %s (a ClusterMetricSink may use any input)", i, in.name, allowedTenantInputs())
		}
		if in.name != "prometheus" {
			continue
		}
		for opt, why := range tenantPrometheusRefused {
			if _, ok := in.options[opt]; ok {
				return fmt.Errorf("spec.inputs[%d]: prometheus option %q is not allowed in a MetricSink: %s", i, opt, why)
			}
		}
		if scope, ok := in.options["pod_scrape_scope"]; ok && !strings.EqualFold(fmt.Sprint(scope), "cluster") {
			return fmt.Errorf("spec.inputs[%d]: prometheus pod_scrape_scope %q is not allowed in a MetricSink: "+
				"it lists the node's pods through the kubelet; leave it unset", i, fmt.Sprint(scope))
		}
		if ns, ok := in.options["monitor_kubernetes_pods_namespace"]; ok && ns != namespace {
			return fmt.Errorf("spec.inputs[%d]: prometheus monitor_kubernetes_pods_namespace %q is not this sink's namespace %q: "+
				"a MetricSink sees only its own namespace", i, fmt.Sprint(ns), namespace)
		}
		in.options["monitor_kubernetes_pods_namespace"] = namespace
	}
	return nil
}

func allowedTenantInputs() string {
	names := make([]string, 0, len(tenantInputs))
	for n := range tenantInputs {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
