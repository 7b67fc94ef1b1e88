package main

import (
	"errors"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/logger"
	"github.com/influxdata/telegraf/migrations"
)

// migrateConfig applies upstream's migrations of deprecated plugins and
// options to each configuration file, as `telegraf config migrate` does:
// the result goes to <file>.migrated (for a URL, <base name>.migrated in
// the working directory), never over an existing file unless force.
func migrateConfig(o agentOptions, force bool) error {
	if err := logger.SetupLogging(&logger.Config{}); err != nil {
		return err
	}
	general := len(migrations.GeneralMigrations) + len(migrations.GlobalMigrations)
	plugins := len(migrations.PluginMigrations)
	options := len(migrations.PluginOptionMigrations)
	if general+plugins+options == 0 {
		return errors.New("no migrations available")
	}
	log.Printf("I! %d general, %d plugin and %d plugin-option migrations available", general, plugins, options)

	files, err := o.resolveConfigFiles()
	if err != nil {
		return err
	}
	for _, path := range files {
		data, remote, err := config.LoadConfigFile(path)
		if err != nil {
			return fmt.Errorf("reading %s failed: %w", path, err)
		}
		out, applied, err := config.ApplyMigrations(data)
		if err != nil {
			return fmt.Errorf("migrating %s failed: %w", path, err)
		}
		if applied == 0 {
			log.Printf("I! No migration applied for %s", path)
			continue
		}
		target := path + ".migrated"
		if remote {
			u, err := url.Parse(path)
			if err != nil {
				return fmt.Errorf("parsing config URL %s failed: %w", path, err)
			}
			target = filepath.Base(u.Path) + ".migrated"
		}
		if !force {
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s already exists: remove it or pass --force", target)
			}
		}
		log.Printf("I! %d migration(s) applied to %s, writing %s", applied, path, target)
		if err := os.WriteFile(target, out, 0o640); err != nil {
			return fmt.Errorf("writing %s failed: %w", target, err)
		}
	}
	return nil
}
