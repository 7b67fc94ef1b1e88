// Command telegraf-tkgi is a drop-in replacement for the telegraf binary:
// the same flags, TOML configuration and plugin sections, built on upstream
// Telegraf as a library with a curated plugin set plus the telegraf-tkgi
// telemetry plugins.
package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/buildinfo"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/sinks"

	_ "github.com/telegraf-tkgi/telegraf-tkgi/plugins/all"
)

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		var stop stopSignal
		if errors.As(err, &stop) {
			stop.raise()
		}
		log.Printf("E! %v", err)
		os.Exit(1)
	}
}

// filterFlags may be given before or after the `config` subcommand, as with
// telegraf; both places are merged.
var filterFlagNames = []string{
	"section-filter", "input-filter", "output-filter", "aggregator-filter", "processor-filter", "secretstore-filter",
}

func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "section-filter", Usage: "sections to print, separated by ':' (global_tags, agent, secretstores, outputs, processors, aggregators, inputs)"},
		&cli.StringFlag{Name: "input-filter", Usage: "inputs to enable or print, separated by ':'"},
		&cli.StringFlag{Name: "output-filter", Usage: "outputs to enable or print, separated by ':'"},
		&cli.StringFlag{Name: "aggregator-filter", Usage: "aggregators to print, separated by ':'"},
		&cli.StringFlag{Name: "processor-filter", Usage: "processors to print, separated by ':'"},
		&cli.StringFlag{Name: "secretstore-filter", Usage: "secret store plugins to enable or print, separated by ':'"},
	}
}

func configFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "config", Usage: "configuration file or URL to load (repeatable)"},
		&cli.StringSliceFlag{Name: "config-directory", Usage: "directory of additional *.conf files (repeatable)"},
	}
}

func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "test", Usage: "gather metrics once, print them to stdout and exit; outputs are not used"},
		&cli.IntFlag{Name: "test-wait", Usage: "seconds to wait for service inputs in --test or --once mode"},
		&cli.BoolFlag{Name: "once", Usage: "gather metrics once, write them to the outputs and exit"},
		&cli.BoolFlag{Name: "debug", Usage: "turn on debug logging"},
		&cli.BoolFlag{Name: "quiet", Usage: "log only errors"},
		&cli.StringFlag{Name: "pidfile", Usage: "file to write the process id to"},
		&cli.StringFlag{Name: "watch-config", Usage: "reload when a --config file or a --config-directory folder changes: 'notify' (inotify) or 'poll'"},
		&cli.DurationFlag{Name: "watch-interval", Usage: "how often '--watch-config poll' checks the files", DefaultText: defaultPollInterval.String()},
		&cli.DurationFlag{Name: "watch-debounce-interval", Usage: "wait until the config files are unchanged for this long before reloading", DefaultText: "0s"},
		&cli.IntFlag{Name: "config-url-retry-attempts", Usage: "retries of a --config URL that fails at start, 10s apart; -1 retries until it loads", DefaultText: "3"},
		&cli.DurationFlag{Name: "config-url-watch-interval", Usage: "how often to check --config URLs for a new Last-Modified and reload", DefaultText: "disabled"},
		&cli.StringFlag{Name: "usage", Usage: "print the sample configuration of an input or output plugin and exit"},
		&cli.StringFlag{Name: "pprof-addr", Usage: "serve Go's pprof on this address, e.g. localhost:6060"},
		&cli.BoolFlag{Name: "unprotected", Usage: "do not lock secrets in memory (for hosts with a low memlock limit)"},
		&cli.BoolFlag{Name: "non-strict-env-handling", Usage: "allow environment variables to replace non-string settings"},
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	flags := append(append(append(configFlags(), filterFlags()...), runFlags()...), compatFlags()...)
	return &cli.App{
		Name:      "telegraf-tkgi",
		Usage:     "Telegraf with Kubernetes telemetry plugins; a drop-in replacement for telegraf",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     flags,
		// Errors are logged once by main; keep urfave from printing them too.
		ExitErrHandler: func(*cli.Context, error) {},
		Action: func(cCtx *cli.Context) error {
			if cCtx.NArg() > 0 {
				return fmt.Errorf("unknown command %q, see --help", cCtx.Args().First())
			}
			if done, err := printAndExit(cCtx, stdout); done {
				return err
			}
			if err := applyGlobalSettings(cCtx); err != nil {
				return err
			}
			return runAgent(cCtx.Context, agentOptionsFrom(cCtx, true))
		},
		Commands: []*cli.Command{
			{
				Name:  "config",
				Usage: "print a sample configuration of the compiled-in plugins",
				Flags: append(append(configFlags(), filterFlags()...), envFlags()...),
				Action: func(cCtx *cli.Context) error {
					return printSampleConfig(stdout, filtersFrom(cCtx))
				},
				Subcommands: []*cli.Command{
					{
						Name:  "create",
						Usage: "print a sample configuration (the same as 'config')",
						Flags: append(append(configFlags(), filterFlags()...), envFlags()...),
						Action: func(cCtx *cli.Context) error {
							return printSampleConfig(stdout, filtersFrom(cCtx))
						},
					},
					{
						Name:  "check",
						Usage: "load the configuration and report the first problem found",
						Flags: append(append(configFlags(), filterFlags()...), envFlags()...),
						Action: func(cCtx *cli.Context) error {
							o := agentOptionsFrom(cCtx, false)
							o.debug, o.quiet = boolFlag(cCtx, "debug"), boolFlag(cCtx, "quiet")
							return checkConfig(o, envHandling{
								strict:    boolFlag(cCtx, "strict-env-handling"),
								nonStrict: boolFlag(cCtx, "non-strict-env-handling"),
							})
						},
					},
					{
						Name:  "migrate",
						Usage: "rewrite deprecated plugins and options of the configuration into <file>.migrated",
						Flags: append(append(append(configFlags(), filterFlags()...), envFlags()...),
							&cli.BoolFlag{Name: "force", Usage: "overwrite an existing .migrated file"}),
						Action: func(cCtx *cli.Context) error {
							return migrateConfig(agentOptionsFrom(cCtx, false), cCtx.Bool("force"))
						},
					},
				},
			},
			secretsCommand(stdout),
			sinks.Command(),
			{
				Name:      "plugins",
				Usage:     "list the compiled-in plugins",
				ArgsUsage: "[inputs|outputs|processors|aggregators|parsers|serializers|secretstores]",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "deprecated", Usage: "list only deprecated plugins"}},
				Action: func(cCtx *cli.Context) error {
					return printPlugins(stdout, cCtx.Args().First(), cCtx.Bool("deprecated"))
				},
				Subcommands: pluginCategoryCommands(stdout),
			},
			{
				Name:  "version",
				Usage: "print the version of telegraf-tkgi and of the Telegraf it is built on",
				Action: func(*cli.Context) error {
					_, err := fmt.Fprintln(stdout, buildinfo.String())
					return err
				},
			},
		},
	}
}

// stringSliceFlag collects a repeatable flag from every level of the command line.
func stringSliceFlag(cCtx *cli.Context, name string) []string {
	var values []string
	lineage := cCtx.Lineage()
	for i := len(lineage) - 1; i >= 0; i-- {
		if c := lineage[i]; c.IsSet(name) {
			values = append(values, c.StringSlice(name)...)
		}
	}
	return values
}

// boolFlag reports whether a boolean flag is set at any level of the
// command line; a flag a level does not define reads as false.
func boolFlag(cCtx *cli.Context, name string) bool {
	for _, c := range cCtx.Lineage() {
		if c.Bool(name) {
			return true
		}
	}
	return false
}

// splitFilter turns "cpu:mem" into its parts, merging values given at
// several levels of the command line.
func splitFilter(cCtx *cli.Context, name string) []string {
	var parts []string
	lineage := cCtx.Lineage()
	for i := len(lineage) - 1; i >= 0; i-- {
		c := lineage[i]
		if !c.IsSet(name) {
			continue
		}
		for _, p := range strings.Split(c.String(name), ":") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
	}
	return parts
}

// pluginCategoryCommands are `plugins inputs` and the like, as upstream has
// them: each lists one category.
func pluginCategoryCommands(stdout io.Writer) []*cli.Command {
	var commands []*cli.Command
	for _, category := range []string{"inputs", "outputs", "processors", "aggregators", "secretstores", "parsers", "serializers"} {
		commands = append(commands, &cli.Command{
			Name:  category,
			Usage: "list the compiled-in " + category,
			Flags: []cli.Flag{&cli.BoolFlag{Name: "deprecated", Usage: "list only deprecated plugins"}},
			Action: func(cCtx *cli.Context) error {
				return printPlugins(stdout, category, cCtx.Bool("deprecated"))
			},
		})
	}
	return commands
}

var errUnknownCategory = errors.New("unknown plugin category")
