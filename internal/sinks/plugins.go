package sinks

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

// section is one [[inputs.NAME]] or [[outputs.NAME]] table to render.
type section struct {
	name    string
	options map[string]interface{}
}

// pluginName is what Telegraf's registry names look like; anything else
// cannot name a plugin and would only reach the TOML as a quoted key.
var pluginName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// parsePlugins turns spec.inputs or spec.outputs into sections: the "type"
// key names a compiled-in plugin, the rest are its options (TKGI's
// spellings respelt), left for Telegraf's own config loader to judge.
func parsePlugins(field string, list []Plugin) ([]section, error) {
	sections := make([]section, 0, len(list))
	for i, p := range list {
		raw, ok := p["type"]
		if !ok {
			return nil, fmt.Errorf("%s[%d]: \"type\" is missing: it names the Telegraf plugin, e.g. type: prometheus", field, i)
		}
		name, ok := raw.(string)
		if !ok || !pluginName.MatchString(name) {
			return nil, fmt.Errorf("%s[%d]: \"type\" must be a Telegraf plugin name (lower case, digits, _), got %v", field, i, raw)
		}
		at := fmt.Sprintf("%s[%d]", field, i)
		kind := strings.TrimPrefix(field, "spec.")
		if err := compiledIn(at, kind, name); err != nil {
			return nil, err
		}
		options := make(map[string]interface{}, len(p)-1)
		for k, v := range p.DeepCopy() {
			if k != "type" {
				options[k] = wholeNumbersAsIntegers(v)
			}
		}
		if err := respell(at, kind+"."+name, options); err != nil {
			return nil, err
		}
		sections = append(sections, section{name: name, options: options})
	}
	return sections, nil
}

// wholeNumbersAsIntegers turns whole float64 values into int64, in nested
// lists and maps too. JSON has one number type and some decoders give every
// number as a float; written to TOML as 2.0, it would not load into a
// Telegraf integer option, while an integer loads into a float option too.
func wholeNumbersAsIntegers(v interface{}) interface{} {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	case []interface{}:
		for i := range x {
			x[i] = wholeNumbersAsIntegers(x[i])
		}
	case map[string]interface{}:
		for k := range x {
			x[k] = wholeNumbersAsIntegers(x[k])
		}
	}
	return v
}
