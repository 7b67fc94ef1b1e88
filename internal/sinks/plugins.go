package sinks

import (
	"fmt"
	"regexp"
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
// key names the plugin, the rest are its options, left for Telegraf's own
// config loader to judge.
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
		options := make(map[string]interface{}, len(p)-1)
		for k, v := range p.DeepCopy() {
			if k != "type" {
				options[k] = v
			}
		}
		sections = append(sections, section{name: name, options: options})
	}
	return sections, nil
}
