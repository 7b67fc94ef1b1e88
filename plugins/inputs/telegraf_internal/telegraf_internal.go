// Package telegraf_internal provides inputs.internal, the agent's own
// metrics. Upstream's plugin of that name lives under a Go "internal" path
// that other modules cannot import, so this one is written on the exported
// selfstat package. The folder is not called "internal" for the same reason:
// plugins/all could not import it.
package telegraf_internal

import (
	_ "embed"
	"runtime"
	"strings"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/buildinfo"
)

//go:embed sample.conf
var sampleConfig string

type Internal struct {
	CollectMemstats bool `toml:"collect_memstats"`
	CollectGostats  bool `toml:"collect_gostats"`
	PerInstance     bool `toml:"per_instance"`
}

func (*Internal) SampleConfig() string {
	return sampleConfig
}

func (i *Internal) Gather(acc telegraf.Accumulator) error {
	goVersion := strings.TrimPrefix(runtime.Version(), "go")
	stats := selfstat.Metrics()
	for _, m := range stats {
		if m.Name() == "internal_agent" {
			m.AddTag("go_version", goVersion)
		}
		m.AddTag("version", buildinfo.Version)
	}
	if !i.PerInstance {
		stats = sumOverInstances(stats)
	}
	for _, m := range stats {
		acc.AddFields(m.Name(), m.Fields(), m.Tags(), m.Time())
	}
	if i.CollectMemstats {
		acc.AddFields("internal_memstats", memstats(), nil)
	}
	if i.CollectGostats {
		acc.AddFields("internal_gostats", gostats(), map[string]string{"go_version": goVersion})
	}
	return nil
}

func init() {
	inputs.Add("internal", func() telegraf.Input {
		return &Internal{CollectMemstats: true}
	})
}
