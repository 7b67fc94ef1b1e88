package main

import (
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/urfave/cli/v2"

	"github.com/influxdata/telegraf/config"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/buildinfo"
)

// compatFlags are the global flags of upstream telegraf's Linux command line
// that this build accepts with upstream's meaning: the ones that print
// something and exit (several of them deprecated upstream but still in
// service scripts), and the settings of the secret stores, environment
// handling and plugin selection.
func compatFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "password", Usage: "password that unlocks the secret stores (their `password` setting may refer to it)"},
		&cli.BoolFlag{Name: "old-env-behavior", Usage: "substitute environment variables the way telegraf did before v1.27"},
		&cli.BoolFlag{Name: "strict-env-handling", Usage: "substitute environment variables only in string settings (the default)"},
		&cli.BoolFlag{Name: "print-plugin-config-source", Usage: "log the file each plugin's configuration came from"},
		&cli.StringSliceFlag{Name: "select", Usage: "run only plugins whose labels match: key=value pairs joined by ';' must all match, " +
			"repeated options match any; values may use wildcards; without it every plugin runs"},
		&cli.BoolFlag{Name: "deprecation-list", Usage: "print the deprecated plugins and options and exit"},
		&cli.BoolFlag{Name: "input-list", Usage: "print the compiled-in input plugins and exit (see also 'plugins inputs')"},
		&cli.BoolFlag{Name: "output-list", Usage: "print the compiled-in output plugins and exit (see also 'plugins outputs')"},
		&cli.BoolFlag{Name: "version", Usage: "DEPRECATED: print the version and exit (use the 'version' command)"},
		&cli.BoolFlag{Name: "sample-config", Usage: "DEPRECATED: print a sample configuration and exit (use the 'config' command)"},
		&cli.StringFlag{Name: "plugin-directory", Usage: "DEPRECATED: directory of external Go plugins; this build has none, use execd plugins"},
	}
}

// envFlags are accepted by the commands that take upstream's configuration
// flags; printing a sample configuration reads no file, so they change
// nothing there.
func envFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "strict-env-handling", Usage: "substitute environment variables only in string settings (the default)"},
		&cli.BoolFlag{Name: "non-strict-env-handling", Usage: "allow environment variables to replace non-string settings"},
	}
}

// errNoExternalPlugins is what --plugin-directory ends with: like upstream's
// release builds (which have no Go plugin support either), this build cannot
// load shared-object plugins.
var errNoExternalPlugins = errors.New("--plugin-directory: this build of telegraf-tkgi has no support for external (Go shared object) plugins; " +
	"remove the flag and run such plugins as separate processes")

// printAndExit handles the flags that print something and exit, in
// upstream's order of precedence; done reports whether one was given.
func printAndExit(cCtx *cli.Context, stdout io.Writer) (done bool, err error) {
	if dir := cCtx.String("plugin-directory"); dir != "" {
		log.Printf("I! Loading external plugins from: %s", dir)
		return true, errNoExternalPlugins
	}
	switch {
	case cCtx.Bool("deprecation-list"):
		f := filtersFrom(cCtx)
		c := config.NewConfig()
		infos := c.CollectDeprecationInfos(f.inputs, f.outputs, f.aggregators, f.processors)
		for _, category := range []struct{ title, key string }{
			{"Input", "inputs"}, {"Output", "outputs"}, {"Processor", "processors"}, {"Aggregator", "aggregators"},
		} {
			fmt.Fprintf(stdout, "Deprecated %s Plugins:\n", category.title)
			// Upstream prints the list itself, to the process's stdout.
			c.PrintDeprecationList(infos[category.key])
		}
		return true, nil
	case cCtx.Bool("output-list"):
		return true, printList(stdout, "Output", "outputs", outputSet())
	case cCtx.Bool("input-list"):
		return true, printList(stdout, "Input", "inputs", inputSet())
	case cCtx.String("usage") != "":
		return true, printUsage(stdout, cCtx.String("usage"))
	case cCtx.Bool("version"):
		_, err := fmt.Fprintln(stdout, buildinfo.String())
		return true, err
	case cCtx.Bool("sample-config"):
		return true, printSampleConfig(stdout, filtersFrom(cCtx))
	}
	return false, nil
}

func printList(w io.Writer, title, category string, set pluginSet) error {
	fmt.Fprintf(w, "DEPRECATED: use 'telegraf-tkgi plugins %s'\nAvailable %s Plugins:\n", category, title)
	for _, name := range set.names {
		if _, err := fmt.Fprintf(w, "  %s\n", name); err != nil {
			return err
		}
	}
	return nil
}

// applyGlobalSettings sets the package-level switches of upstream's config
// package from the command line, as upstream does before loading.
func applyGlobalSettings(cCtx *cli.Context) error {
	if cCtx.Bool("strict-env-handling") && cCtx.Bool("non-strict-env-handling") {
		return errors.New("--strict-env-handling and --non-strict-env-handling cannot be given together")
	}
	if !cCtx.Bool("strict-env-handling") && !cCtx.Bool("non-strict-env-handling") {
		// As upstream, name the default on every start without either flag:
		// configurations written for Telegraf before 1.38 may rely on the
		// non-strict handling that was the default then.
		log.Printf("W! Environment variables replace string settings only (strict handling, the default since Telegraf 1.38); " +
			"add --non-strict-env-handling if the configuration uses them for other settings")
	}
	if pw := cCtx.String("password"); pw != "" {
		config.Password = config.NewSecret([]byte(pw))
	}
	config.OldEnvVarReplacement = cCtx.Bool("old-env-behavior")
	config.PrintPluginConfigSource = cCtx.Bool("print-plugin-config-source")
	return config.SetPluginLabelSelections(cCtx.StringSlice("select"))
}
