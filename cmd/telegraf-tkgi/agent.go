package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/urfave/cli/v2"

	"github.com/influxdata/telegraf/agent"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/logger"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/buildinfo"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/exepages"
)

type agentOptions struct {
	configFiles   []string
	configDirs    []string
	inputFilters  []string
	outputFilters []string
	test          bool
	testWait      int
	once          bool
	debug         bool
	quiet         bool
	pidFile       string
	watchConfig   string
	watchInterval time.Duration
	// watchDebounce waits for the files to settle before a reload.
	watchDebounce time.Duration
	// urlRetryAttempts: attempts to fetch --config URLs (0 means 3, -1 unlimited).
	urlRetryAttempts int
	// urlWatchInterval: how often to check --config URLs for changes (0: never).
	urlWatchInterval time.Duration
	pprofAddr        string
	unprotected      bool
	nonStrictEnv     bool
	// check: `config check`, which must write nothing (see checkConfig).
	check bool

	// secretstoreFilters selects secret store plugins, as --secretstore-filter.
	secretstoreFilters []string
	// pprofErr reports the pprof server failing (a taken port, say): the
	// agent then stops, like upstream.
	pprofErr <-chan error
	// watchBaseline is the watched files' state just before the running
	// configuration was read: a change made while it loaded still counts.
	watchBaseline map[string]fileState
}

// agentOptionsFrom reads the options; run flags exist only on the top-level
// command, so subcommands such as `config check` pass runFlags=false.
func agentOptionsFrom(cCtx *cli.Context, runFlags bool) agentOptions {
	o := agentOptions{
		configFiles:   stringSliceFlag(cCtx, "config"),
		configDirs:    stringSliceFlag(cCtx, "config-directory"),
		inputFilters:  splitFilter(cCtx, "input-filter"),
		outputFilters: splitFilter(cCtx, "output-filter"),
	}
	o.secretstoreFilters = splitFilter(cCtx, "secretstore-filter")
	if runFlags {
		o.test = cCtx.Bool("test")
		o.testWait = cCtx.Int("test-wait")
		o.once = cCtx.Bool("once")
		o.debug = cCtx.Bool("debug")
		o.quiet = cCtx.Bool("quiet")
		o.pidFile = cCtx.String("pidfile")
		o.watchConfig = normalizeWatchMode(cCtx.String("watch-config"))
		o.watchInterval = cCtx.Duration("watch-interval")
		o.watchDebounce = cCtx.Duration("watch-debounce-interval")
		o.urlRetryAttempts = cCtx.Int("config-url-retry-attempts")
		o.urlWatchInterval = cCtx.Duration("config-url-watch-interval")
		o.pprofAddr = cCtx.String("pprof-addr")
		o.unprotected = cCtx.Bool("unprotected")
		o.nonStrictEnv = cCtx.Bool("non-strict-env-handling")
	}
	return o
}

func (o *agentOptions) testMode() bool {
	return !o.once && (o.test || o.testWait != 0)
}

func (o *agentOptions) validate() error {
	if o.testWait < 0 {
		return fmt.Errorf("invalid --test-wait %d: must not be negative", o.testWait)
	}
	// Names in --input-filter/--output-filter that match no plugin are
	// ignored, as upstream does: the filter only selects among the
	// configured plugins.
	return nil
}

// resolveConfigFiles expands directories and, when nothing was given, falls
// back to telegraf's default locations ($TELEGRAF_CONFIG_PATH,
// ~/.telegraf/telegraf.conf, /etc/telegraf/telegraf.conf and telegraf.d).
func (o *agentOptions) resolveConfigFiles() ([]string, error) {
	files := append([]string(nil), o.configFiles...)
	for _, dir := range o.configDirs {
		found, err := config.WalkDirectory(dir)
		if err != nil {
			return nil, fmt.Errorf("reading config directory %s failed: %w", dir, err)
		}
		files = append(files, found...)
	}
	if len(files) > 0 {
		return files, nil
	}
	return config.GetDefaultConfigPath()
}

func (o *agentOptions) loadConfig() (*config.Config, []string, error) {
	config.ResetSecrets()
	config.NonStrictEnvVarHandling = o.nonStrictEnv
	files, err := o.resolveConfigFiles()
	if err != nil {
		return nil, nil, err
	}
	c := config.NewConfig()
	c.Agent.Quiet = o.quiet
	c.Agent.ConfigURLRetryAttempts = o.urlRetryAttempts
	c.InputFilters = o.inputFilters
	c.OutputFilters = o.outputFilters
	c.SecretStoreFilters = o.secretstoreFilters
	// Test mode also keeps outputs' buffers in memory: `config check` must
	// not open (create, or race the running agent for) a disk buffer.
	c.TestMode = o.testMode() || o.check
	o.watchBaseline = nil
	if o.watchConfig != "" && !o.once && !o.testMode() && !o.check {
		local, _ := splitURLs(files)
		o.watchBaseline = watchSet{files: local, dirs: o.configDirs}.snapshot()
	}
	if err := c.LoadAll(files...); err != nil {
		return nil, files, err
	}
	return c, files, nil
}

// runnable reports what keeps a loaded configuration from running; `config
// check` accepts fragments (a file of inputs only, an empty file), as
// telegraf does, so only the agent asks this.
func (o *agentOptions) runnable(c *config.Config, files []string) error {
	if len(c.Inputs) == 0 {
		return fmt.Errorf("no inputs found in %s: add at least one [[inputs.*]] section", strings.Join(files, ", "))
	}
	if !o.testMode() && len(c.Outputs) == 0 {
		return fmt.Errorf("no outputs found in %s: add at least one [[outputs.*]] section", strings.Join(files, ", "))
	}
	if time.Duration(c.Agent.Interval) <= 0 {
		return fmt.Errorf("agent interval must be positive, got %s", time.Duration(c.Agent.Interval))
	}
	if time.Duration(c.Agent.FlushInterval) <= 0 {
		return fmt.Errorf("agent flush_interval must be positive, got %s", time.Duration(c.Agent.FlushInterval))
	}
	return nil
}

// envHandling is what the command line says about substituting environment
// variables: --strict-env-handling, --non-strict-env-handling or neither.
type envHandling struct{ strict, nonStrict bool }

// checkConfig is `config check`. Like upstream's, it substitutes environment
// variables non-strictly unless --strict-env-handling is given, and warns
// when neither flag is, because the agent itself is strict by default: a
// configuration can pass the check and still fail to start.
func checkConfig(o agentOptions, env envHandling) error {
	if err := logger.SetupLogging(&logger.Config{Debug: o.debug}); err != nil {
		return err
	}
	if env.strict && env.nonStrict {
		return errors.New("--strict-env-handling and --non-strict-env-handling cannot be given together")
	}
	if !env.strict && !env.nonStrict {
		log.Printf("W! config check substitutes environment variables non-strictly (into non-string settings too) " +
			"while the agent is strict by default: check with --strict-env-handling, or run the agent with " +
			"--non-strict-env-handling if the configuration needs it")
	}
	o.nonStrictEnv = !env.strict
	if err := o.validate(); err != nil {
		return err
	}
	o.check = true
	c, _, err := o.loadConfig()
	if err != nil {
		return err
	}
	// Like upstream's `config check`: run every plugin's Init, which
	// validates its settings without starting it, so that a bad value fails
	// here and not at the first start.
	if c.Agent.SkipProcessorsAfterAggregators == nil {
		log.Printf("W! [agent] skip_processors_after_aggregators is not set: false applies, " +
			"and Telegraf 1.40 changes its default to true; set it to keep today's behaviour")
		skip := false
		c.Agent.SkipProcessorsAfterAggregators = &skip
	}
	// Success prints nothing on stdout, as upstream's: the exit code is the
	// answer.
	return agent.NewAgent(c).InitPlugins()
}

func setupLogging(c *config.Config, o *agentOptions) error {
	return logger.SetupLogging(&logger.Config{
		Debug:                   c.Agent.Debug || o.debug,
		Quiet:                   c.Agent.Quiet || o.quiet,
		LogTarget:               c.Agent.LogTarget,
		LogFormat:               c.Agent.LogFormat,
		Logfile:                 c.Agent.Logfile,
		StructuredLogMessageKey: c.Agent.StructuredLogMessageKey,
		RotationInterval:        time.Duration(c.Agent.LogfileRotationInterval),
		RotationMaxSize:         int64(c.Agent.LogfileRotationMaxSize),
		RotationMaxArchives:     c.Agent.LogfileRotationMaxArchives,
		LogWithTimezone:         c.Agent.LogWithTimezone,
	})
}

// runAgent loads the configuration and runs the agent until SIGINT or
// SIGTERM; SIGHUP (or a watched file change) reloads the configuration. A
// reload that fails leaves the process exiting with the error, like telegraf.
func runAgent(ctx context.Context, o agentOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.unprotected {
		log.Printf("W! Running without secret protection (--unprotected): secrets are not locked in memory")
		config.DisableSecretProtection()
	}
	if o.pprofAddr != "" {
		o.pprofErr = startPprof(o.pprofAddr)
	}
	if o.pidFile != "" && !o.testMode() && !o.once {
		if err := os.WriteFile(o.pidFile, fmt.Appendf(nil, "%d\n", os.Getpid()), 0o640); err != nil {
			log.Printf("E! Writing pidfile %s failed: %v", o.pidFile, err)
		} else {
			defer os.Remove(o.pidFile)
		}
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	handover := newPromHandover()
	defer handover.closeAll()

	for generation := 0; ; generation++ {
		c, files, err := o.loadConfigUntilSignal(signals)
		var stop stopSignal
		if generation > 0 && errors.As(err, &stop) {
			// The previous agent has flushed already: a clean stop.
			log.Printf("I! Received %s while reloading the configuration, stopping", stop.sig)
			return nil
		}
		if err != nil {
			return err
		}
		if err := o.runnable(c, files); err != nil {
			return err
		}
		if err := setupLogging(c, &o); err != nil {
			return fmt.Errorf("setting up logging failed: %w", err)
		}
		if !o.once && !o.testMode() {
			handover.adopt(c)
		}
		reload, err := runOnce(ctx, c, files, &o, signals)
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("running agent failed: %w", err)
		}
		if !reload {
			return nil
		}
		log.Printf("I! Reloading configuration")
	}
}

// runOnce runs one agent generation; it reports whether a reload was asked.
func runOnce(parent context.Context, c *config.Config, files []string, o *agentOptions, signals <-chan os.Signal) (bool, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	log.Printf("I! Starting telegraf-tkgi %s on Telegraf %s", buildinfo.Version, buildinfo.UpstreamVersion())
	// The *WithSources tables are empty unless --print-plugin-config-source.
	log.Printf("I! Loaded inputs: %s\n%s", strings.Join(c.InputNames(), " "), c.InputNamesWithSources())
	log.Printf("I! Loaded aggregators: %s\n%s", strings.Join(c.AggregatorNames(), " "), c.AggregatorNamesWithSources())
	log.Printf("I! Loaded processors: %s\n%s", strings.Join(c.ProcessorNames(), " "), c.ProcessorNamesWithSources())
	log.Printf("I! Loaded secretstores: %s\n%s", strings.Join(c.SecretstoreNames(), " "), c.SecretstoreNamesWithSources())
	if o.testMode() {
		log.Printf("W! Outputs are not used in test mode")
	} else {
		log.Printf("I! Loaded outputs: %s\n%s", strings.Join(c.OutputNames(), " "), c.OutputNamesWithSources())
	}
	log.Printf("I! Tags enabled: %s", c.ListTags())

	reload := make(chan struct{}, 1)
	go func() {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				reload <- struct{}{}
			} else {
				log.Printf("I! Received %s, flushing and stopping", sig)
			}
			interruptOutputs(c)
			cancel()
		case err := <-o.pprofErr:
			log.Printf("E! Serving pprof on %s failed, stopping: %v", o.pprofAddr, err)
			interruptOutputs(c)
			cancel()
		case <-ctx.Done():
		}
	}()
	// A watched change stops the agent once no collection is about to be
	// lost (see reloadStopAt); a signal during that wait wins.
	scheds := schedules(c)
	onChange := func() {
		if stop := reloadStopAt(time.Now(), scheds); time.Until(stop) > 0 {
			log.Printf("I! Reloading at %s, after the collection due then", stop.Format("15:04:05.000"))
			wait := time.NewTimer(time.Until(stop))
			defer wait.Stop()
			select {
			case <-wait.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case reload <- struct{}{}:
		default:
		}
		interruptOutputs(c)
		cancel()
	}
	if !o.once && !o.testMode() {
		local, remote := splitURLs(files)
		if o.watchConfig != "" {
			go watchConfig(ctx, watchSet{files: local, dirs: o.configDirs}, o.watchBaseline, o.watchConfig, o.watchInterval, o.watchDebounce, onChange)
		}
		if o.urlWatchInterval > 0 && len(remote) > 0 {
			go watchRemoteConfig(ctx, remote, o.urlWatchInterval, onChange)
		}
	}

	// Start-up (package inits, config parsing) left much of the executable
	// resident that the running agent never touches again.
	if r, err := exepages.Release(); err != nil {
		log.Printf("D! Releasing start-up pages failed: %v", err)
	} else if r.Mappings > 0 {
		log.Printf("D! Released %.1f MB of start-up pages of the executable", float64(r.Bytes)/(1<<20))
	}
	ag := agent.NewAgent(c)
	// Under a Type=notify unit (upstream's) systemd waits for READY=1 and
	// stops the process at its start timeout without it; elsewhere
	// NOTIFY_SOCKET is unset and nothing is sent.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Printf("D! Notifying systemd failed: %v", err)
	}
	var err error
	switch {
	case o.once:
		err = ag.Once(ctx, time.Duration(o.testWait)*time.Second)
	case o.testMode():
		err = ag.Test(ctx, time.Duration(o.testWait)*time.Second)
	default:
		err = ag.Run(ctx)
	}
	select {
	case <-reload:
		return !o.once && !o.testMode(), err
	default:
		return false, err
	}
}
