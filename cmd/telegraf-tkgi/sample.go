package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/aggregators"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/outputs"
	"github.com/influxdata/telegraf/plugins/parsers"
	"github.com/influxdata/telegraf/plugins/processors"
	"github.com/influxdata/telegraf/plugins/secretstores"
	"github.com/influxdata/telegraf/plugins/serializers"
)

// Sections in the order the sample configuration prints them.
var allSections = []string{"global_tags", "agent", "secretstores", "outputs", "processors", "aggregators", "inputs"}

// Plugins printed enabled when no filter is given; all others print
// commented out so the sample still documents every compiled-in plugin.
var (
	defaultInputs  = []string{"cpu", "disk", "diskio", "kernel", "mem", "processes", "system"}
	defaultOutputs = []string{"file"}
)

type sampleFilters struct {
	sections, inputs, outputs, aggregators, processors, secretstores []string
}

func filtersFrom(cCtx *cli.Context) sampleFilters {
	return sampleFilters{
		sections:     splitFilter(cCtx, "section-filter"),
		inputs:       splitFilter(cCtx, "input-filter"),
		outputs:      splitFilter(cCtx, "output-filter"),
		aggregators:  splitFilter(cCtx, "aggregator-filter"),
		processors:   splitFilter(cCtx, "processor-filter"),
		secretstores: splitFilter(cCtx, "secretstore-filter"),
	}
}

// pluginSet is one category of the registry, reduced to what the printer
// needs so every category prints through the same code.
type pluginSet struct {
	section     string
	names       []string
	create      func(name string) telegraf.PluginDescriber
	deprecation func(name string) telegraf.DeprecationInfo
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func inputSet() pluginSet {
	return pluginSet{"inputs", sortedKeys(inputs.Inputs),
		func(n string) telegraf.PluginDescriber { return inputs.Inputs[n]() },
		func(n string) telegraf.DeprecationInfo { return inputs.Deprecations[n] }}
}

func outputSet() pluginSet {
	return pluginSet{"outputs", sortedKeys(outputs.Outputs),
		func(n string) telegraf.PluginDescriber { return outputs.Outputs[n]() },
		func(n string) telegraf.DeprecationInfo { return outputs.Deprecations[n] }}
}

func processorSet() pluginSet {
	return pluginSet{"processors", sortedKeys(processors.Processors),
		func(n string) telegraf.PluginDescriber { return processors.Processors[n]() },
		func(n string) telegraf.DeprecationInfo { return processors.Deprecations[n] }}
}

func secretstoreSet() pluginSet {
	return pluginSet{"secretstores", sortedKeys(secretstores.SecretStores),
		func(n string) telegraf.PluginDescriber { return secretstores.SecretStores[n]("secretstore") },
		func(n string) telegraf.DeprecationInfo { return secretstores.Deprecations[n] }}
}

func aggregatorSet() pluginSet {
	return pluginSet{"aggregators", sortedKeys(aggregators.Aggregators),
		func(n string) telegraf.PluginDescriber { return aggregators.Aggregators[n]() },
		func(n string) telegraf.DeprecationInfo { return aggregators.Deprecations[n] }}
}

func printSampleConfig(w io.Writer, f sampleFilters) error {
	sections := f.sections
	if len(sections) == 0 {
		sections = allSections
	}
	// Names in the filters that match no section or plugin are ignored, as
	// upstream does.

	type category struct {
		set      pluginSet
		filter   []string
		defaults []string
	}
	categories := []category{
		{secretstoreSet(), f.secretstores, nil},
		{outputSet(), f.outputs, defaultOutputs},
		{processorSet(), f.processors, nil},
		{aggregatorSet(), f.aggregators, nil},
		{inputSet(), f.inputs, defaultInputs},
	}

	var b strings.Builder
	b.WriteString(headerText)
	if slices.Contains(sections, "global_tags") {
		b.WriteString(globalTagsText)
	}
	if slices.Contains(sections, "agent") {
		b.WriteString(agentText)
	}
	for _, c := range categories {
		if !slices.Contains(sections, c.set.section) {
			continue
		}
		fmt.Fprintf(&b, "\n\n###############################################################################\n#%s#\n###############################################################################\n",
			centre(strings.ToUpper(c.set.section), 77))
		for _, name := range c.set.names {
			enabled := slices.Contains(c.defaults, name)
			if len(c.filter) > 0 {
				if !slices.Contains(c.filter, name) {
					continue
				}
				enabled = true
			}
			writePluginSample(&b, c.set, name, !enabled)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func centre(s string, width int) string {
	pad := width - len(s)
	if pad <= 0 {
		return s
	}
	return strings.Repeat(" ", pad/2) + s + strings.Repeat(" ", pad-pad/2)
}

// writePluginSample writes one plugin's sample, commented out if asked, with
// a deprecation note where upstream declares one.
func writePluginSample(b *strings.Builder, set pluginSet, name string, commented bool) {
	prefix := ""
	if commented {
		prefix = "# "
	}
	b.WriteString("\n")
	if di := set.deprecation(name); di.Since != "" {
		fmt.Fprintf(b, "%s## Deprecated since Telegraf %s", prefix, di.Since)
		if di.RemovalIn != "" {
			fmt.Fprintf(b, ", to be removed in %s", di.RemovalIn)
		}
		fmt.Fprintf(b, ": %s\n", di.Notice)
	}
	sample := strings.TrimRight(set.create(name).SampleConfig(), "\n")
	if sample == "" {
		fmt.Fprintf(b, "%s[[%s.%s]]\n", prefix, set.section, name)
		return
	}
	for _, line := range strings.Split(sample, "\n") {
		b.WriteString(strings.TrimRight(prefix+line, " ") + "\n")
	}
}

// printUsage prints the sample of one input or output, like telegraf --usage.
func printUsage(w io.Writer, name string) error {
	var b strings.Builder
	switch {
	case inputs.Inputs[name] != nil:
		writePluginSample(&b, inputSet(), name, false)
	case outputs.Outputs[name] != nil:
		writePluginSample(&b, outputSet(), name, false)
	default:
		return fmt.Errorf("no input or output plugin named %q; see 'telegraf-tkgi plugins'", name)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printPlugins lists compiled-in plugins as "category.name", one a line.
func printPlugins(w io.Writer, only string, deprecated bool) error {
	type registry struct {
		names, deprecated []string
	}
	registries := map[string]registry{
		"inputs":       {sortedKeys(inputs.Inputs), sortedKeys(inputs.Deprecations)},
		"outputs":      {sortedKeys(outputs.Outputs), sortedKeys(outputs.Deprecations)},
		"processors":   {sortedKeys(processors.Processors), sortedKeys(processors.Deprecations)},
		"aggregators":  {sortedKeys(aggregators.Aggregators), sortedKeys(aggregators.Deprecations)},
		"parsers":      {sortedKeys(parsers.Parsers), sortedKeys(parsers.Deprecations)},
		"serializers":  {sortedKeys(serializers.Serializers), sortedKeys(serializers.Deprecations)},
		"secretstores": {sortedKeys(secretstores.SecretStores), sortedKeys(secretstores.Deprecations)},
	}
	order := []string{"inputs", "outputs", "processors", "aggregators", "parsers", "serializers", "secretstores"}
	if only != "" {
		if _, ok := registries[only]; !ok {
			return fmt.Errorf("%w %q: use one of %s", errUnknownCategory, only, strings.Join(order, ", "))
		}
		order = []string{only}
	}
	var b strings.Builder
	for _, category := range order {
		r := registries[category]
		names := r.names
		if deprecated {
			// Only deprecated plugins that are actually compiled in.
			names = slices.DeleteFunc(slices.Clone(r.deprecated), func(n string) bool { return !slices.Contains(r.names, n) })
		}
		for _, name := range names {
			fmt.Fprintf(&b, "%s.%s\n", category, name)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
