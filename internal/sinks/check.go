package sinks

import (
	"bytes"
	"sync"

	"github.com/influxdata/telegraf/agent"
	"github.com/influxdata/telegraf/config"

	// The plugins a sink may name are exactly those of the binary.
	_ "github.com/telegraf-tkgi/telegraf-tkgi/plugins/all"
)

// checkMu serialises checks: Telegraf's config package keeps the secret
// registry and the environment-handling switch in package variables.
var checkMu sync.Mutex

// ServiceAccountDir is where every pod, the agents' and the controller's,
// finds its ServiceAccount token and the cluster's CA certificate.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Checker checks rendered configurations. Plugins read the files they name
// in Init (a CA certificate, say), so a check is only true where the
// agent's files exist: the only files an agent has are its ServiceAccount's,
// which the controller's pod has at the same place.
type Checker struct {
	// ServiceAccountDir stands in for the agents' ServiceAccountDir; empty
	// means the same path (the controller in its pod).
	ServiceAccountDir string
}

// Check loads a rendered configuration the way `telegraf-tkgi config check`
// does: Telegraf's own loader, then every plugin's Init, with no network and
// nothing written. The error is the loader's or the plugin's own.
func (k Checker) Check(conf []byte) error {
	if k.ServiceAccountDir != "" && k.ServiceAccountDir != ServiceAccountDir {
		conf = bytes.ReplaceAll(conf, []byte(ServiceAccountDir+"/"), []byte(k.ServiceAccountDir+"/"))
	}
	checkMu.Lock()
	defer checkMu.Unlock()
	config.ResetSecrets()
	strict := config.NonStrictEnvVarHandling
	// As `config check`, environment variables may replace non-string settings.
	config.NonStrictEnvVarHandling = true
	defer func() { config.NonStrictEnvVarHandling = strict }()

	c := config.NewConfig()
	c.Agent.Quiet = true
	// Test mode keeps output buffers in memory: a check opens no disk buffer.
	c.TestMode = true
	if err := c.LoadConfigData(conf, ConfigKey); err != nil {
		return err
	}
	if c.Agent.SkipProcessorsAfterAggregators == nil {
		skip := false
		c.Agent.SkipProcessorsAfterAggregators = &skip
	}
	return agent.NewAgent(c).InitPlugins()
}
