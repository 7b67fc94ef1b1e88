package sinks

import (
	"fmt"
	"sort"
	"strings"

	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/outputs"
)

// compiledIn tells whether the binary has the plugin. Telegraf's loader
// says only "undefined but requested output"; a user migrating a TKGI sink
// needs to know that the build, not the YAML, is what lacks it.
func compiledIn(field, kind, name string) error {
	var names []string
	switch kind {
	case "inputs":
		if _, ok := inputs.Inputs[name]; ok {
			return nil
		}
		for n := range inputs.Inputs {
			names = append(names, n)
		}
	case "outputs":
		if _, ok := outputs.Outputs[name]; ok {
			return nil
		}
		for n := range outputs.Outputs {
			names = append(names, n)
		}
	default:
		return fmt.Errorf("%s: unknown plugin kind %q", field, kind)
	}
	sort.Strings(names)
	return fmt.Errorf("%s: %s.%s is not compiled into telegraf-tkgi; compiled-in %s: %s",
		field, kind, name, kind, strings.Join(names, ", "))
}

// tkgiSpellings maps option names TKGI's sink documentation gives in
// camelCase to the names the Telegraf plugin reads. Telegraf matches option
// names exactly, so without this a TKGI user's sink would not load.
var tkgiSpellings = map[string]map[string]string{
	"outputs.datadog": {"apiKey": "apikey"},
}

// respell renames TKGI's spellings of the plugin's options in place.
func respell(field, plugin string, options map[string]interface{}) error {
	for from, to := range tkgiSpellings[plugin] {
		v, ok := options[from]
		if !ok {
			continue
		}
		if _, both := options[to]; both {
			return fmt.Errorf("%s: %q and %q are the same option of %s; give one", field, from, to, plugin)
		}
		delete(options, from)
		options[to] = v
	}
	return nil
}
