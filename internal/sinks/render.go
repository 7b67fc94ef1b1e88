package sinks

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// ConfigKey is the ConfigMap key every rendered configuration is stored under.
const ConfigKey = "telegraf.conf"

// defaultInterval is TKGI's sink collection interval.
const defaultInterval = "10s"

// defaultNodeInput is what a ClusterMetricSink without inputs collects: the
// kubelet's node, pod and container resource metrics on the agent's own
// node, read with the pod's ServiceAccount token (nodes/metrics only).
func defaultNodeInput() section {
	return section{name: "prometheus", options: map[string]interface{}{
		"urls":           []interface{}{"https://${NODE_IP}:10250/metrics/resource"},
		"bearer_token":   ServiceAccountDir + "/token",
		"tls_ca":         ServiceAccountDir + "/ca.crt",
		"metric_version": int64(2),
	}}
}

// defaultTenantInput is what a MetricSink without inputs collects: the pods
// of its namespace annotated prometheus.io/scrape.
func defaultTenantInput() section {
	return section{name: "prometheus", options: map[string]interface{}{
		"monitor_kubernetes_pods": true,
		"metric_version":          int64(2),
	}}
}

// ClusterSink is one ClusterMetricSink's part of the node configuration.
type ClusterSink struct {
	Name    string
	inputs  []section
	outputs []section
}

// ParseClusterSink reads a ClusterMetricSink's spec; a sink without inputs
// collects the kubelet's metrics.
func ParseClusterSink(name string, spec SinkSpec) (ClusterSink, error) {
	s := ClusterSink{Name: name}
	var err error
	if s.inputs, err = parsePlugins("spec.inputs", spec.Inputs); err != nil {
		return s, err
	}
	if s.outputs, err = parsePlugins("spec.outputs", spec.Outputs); err != nil {
		return s, err
	}
	if len(s.outputs) == 0 {
		return s, fmt.Errorf("spec.outputs: a sink needs at least one output")
	}
	if len(s.inputs) == 0 {
		s.inputs = []section{defaultNodeInput()}
	}
	return s, nil
}

// RenderCluster renders the node DaemonSet's one configuration: every
// sink's inputs feed every sink's outputs, as in TKGI. The kubelet input that
// sinks without inputs ask for appears once. Sinks are rendered in name
// order so the same set always gives the same bytes.
func RenderCluster(sinks []ClusterSink) ([]byte, error) {
	sorted := append([]ClusterSink(nil), sinks...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var inputs, outputs []section
	names := make([]string, 0, len(sorted))
	seenDefault := false
	for _, s := range sorted {
		names = append(names, s.Name)
		for _, in := range s.inputs {
			if isDefaultNodeInput(in) {
				if seenDefault {
					continue
				}
				seenDefault = true
			}
			inputs = append(inputs, in)
		}
		outputs = append(outputs, s.outputs...)
	}
	if len(sorted) == 0 {
		// Agents keep a loadable configuration, and collect nothing that
		// leaves the node, until a sink exists.
		inputs = []section{defaultNodeInput()}
		outputs = []section{{name: "discard", options: map[string]interface{}{}}}
	}
	header := "# Rendered by telegraf-tkgi sink-controller from ClusterMetricSinks: " + strings.Join(names, ", ")
	if len(sorted) == 0 {
		header = "# Rendered by telegraf-tkgi sink-controller: no ClusterMetricSink exists; metrics are discarded"
	}
	agent := map[string]interface{}{
		"interval":       defaultInterval,
		"flush_interval": defaultInterval,
		"hostname":       "${NODE_NAME}",
	}
	return renderTOML(header, agent, inputs, outputs)
}

func isDefaultNodeInput(s section) bool {
	d := defaultNodeInput()
	return s.name == d.name && fmt.Sprint(s.options) == fmt.Sprint(d.options)
}

// RenderTenant renders a MetricSink's configuration under the tenancy
// rules: only namespace-confined inputs, pod discovery pinned to the
// sink's namespace.
func RenderTenant(namespace, name string, spec SinkSpec) ([]byte, error) {
	inputs, err := parsePlugins("spec.inputs", spec.Inputs)
	if err != nil {
		return nil, err
	}
	outputs, err := parsePlugins("spec.outputs", spec.Outputs)
	if err != nil {
		return nil, err
	}
	if len(outputs) == 0 {
		return nil, fmt.Errorf("spec.outputs: a sink needs at least one output")
	}
	if len(inputs) == 0 {
		inputs = []section{defaultTenantInput()}
	}
	if err := confineTenantInputs(namespace, inputs); err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# Rendered by telegraf-tkgi sink-controller from MetricSink %s/%s", namespace, name)
	agent := map[string]interface{}{
		"interval":       defaultInterval,
		"flush_interval": defaultInterval,
	}
	return renderTOML(header, agent, inputs, outputs)
}

// renderTOML writes the sections as Telegraf TOML. Plugins of one type keep
// their order; types are sorted, which Telegraf does not care about.
func renderTOML(header string, agent map[string]interface{}, inputs, outputs []section) ([]byte, error) {
	doc := map[string]interface{}{
		"agent":   agent,
		"inputs":  group(inputs),
		"outputs": group(outputs),
	}
	var buf bytes.Buffer
	buf.WriteString(header + "\n\n")
	enc := toml.NewEncoder(&buf)
	enc.Indent = "  "
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("rendering TOML failed: %w", err)
	}
	return buf.Bytes(), nil
}

func group(sections []section) map[string][]map[string]interface{} {
	g := make(map[string][]map[string]interface{})
	for _, s := range sections {
		g[s.name] = append(g[s.name], s.options)
	}
	return g
}
