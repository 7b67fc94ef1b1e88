package main

import (
	"github.com/influxdata/telegraf/config"
)

// interrupter is an output that can stop waiting (for a retry, say) when
// the agent starts to stop. Telegraf closes outputs only after their last
// flush, so without this a write waiting to retry would hold up SIGTERM.
type interrupter interface {
	Interrupt()
}

// interruptOutputs tells every output that can be interrupted that the
// agent is stopping (a signal or a reload).
func interruptOutputs(c *config.Config) {
	for _, o := range c.Outputs {
		if i, ok := o.Output.(interrupter); ok {
			i.Interrupt()
		}
	}
}
