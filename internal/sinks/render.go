package sinks

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// ConfigKey is the ConfigMap key every rendered configuration is stored under.
const ConfigKey = "telegraf.conf"

// defaultInterval is TKGI's sink collection interval.
const defaultInterval = 10 * time.Second

// minInterval is the shortest spec.interval accepted: every node's agent
// collecting more often loads the kubelets and the scraped pods for little.
const minInterval = time.Second

// parseInterval reads spec.interval; empty means defaultInterval.
func parseInterval(value string) (time.Duration, error) {
	if value == "" {
		return defaultInterval, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		return 0, fmt.Errorf("spec.interval: %q is not a duration such as \"10s\" or \"1m\"", value)
	}
	if d < minInterval {
		return 0, fmt.Errorf("spec.interval: %s is shorter than %s", value, minInterval)
	}
	return d, nil
}

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
	Name     string
	interval time.Duration
	inputs   []section
	outputs  []section
}

// ParseClusterSink reads a ClusterMetricSink's spec; a sink without inputs
// collects the kubelet's metrics.
func ParseClusterSink(name string, spec SinkSpec) (ClusterSink, error) {
	s := ClusterSink{Name: name}
	var err error
	if s.interval, err = parseInterval(spec.Interval); err != nil {
		return s, err
	}
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
	// The agent collects at the sinks' interval when they agree; a sink
	// with another one sets it on each of its inputs. The kubelet input
	// shared by sinks without inputs collects at the shortest of theirs.
	interval := commonInterval(sorted)
	nodeInput, nodeInterval := -1, time.Duration(0)
	for _, s := range sorted {
		names = append(names, s.Name)
		for _, in := range s.inputs {
			if isDefaultNodeInput(in) {
				if nodeInput < 0 {
					nodeInput, nodeInterval = len(inputs), s.interval
					inputs = append(inputs, in)
				}
				nodeInterval = min(nodeInterval, s.interval)
				continue
			}
			if _, own := in.options["interval"]; !own && s.interval != interval {
				in = withInterval(in, s.interval)
			}
			inputs = append(inputs, in)
		}
		outputs = append(outputs, s.outputs...)
	}
	if nodeInput >= 0 && nodeInterval != interval {
		inputs[nodeInput] = withInterval(inputs[nodeInput], nodeInterval)
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
		"interval":       durationText(interval),
		"flush_interval": durationText(defaultInterval),
		"hostname":       "${NODE_NAME}",
	}
	return renderTOML(header, agent, inputs, outputs)
}

// durationText writes d as Telegraf reads it, without Go's trailing
// zero units ("1m", not "1m0s").
func durationText(d time.Duration) string {
	text := d.String()
	for _, zero := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(text, zero) {
			text = strings.TrimSuffix(text, zero[1:])
		}
	}
	return text
}

// commonInterval is the interval every sink has, or defaultInterval.
func commonInterval(sinks []ClusterSink) time.Duration {
	if len(sinks) == 0 {
		return defaultInterval
	}
	for _, s := range sinks[1:] {
		if s.interval != sinks[0].interval {
			return defaultInterval
		}
	}
	return sinks[0].interval
}

// withInterval gives an input its own interval.
func withInterval(in section, interval time.Duration) section {
	options := make(map[string]interface{}, len(in.options)+1)
	for k, v := range in.options {
		options[k] = v
	}
	options["interval"] = durationText(interval)
	return section{name: in.name, options: options}
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
	interval, err := parseInterval(spec.Interval)
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# Rendered by telegraf-tkgi sink-controller from MetricSink %s/%s", namespace, name)
	agent := map[string]interface{}{
		"interval":       durationText(interval),
		"flush_interval": durationText(defaultInterval),
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
