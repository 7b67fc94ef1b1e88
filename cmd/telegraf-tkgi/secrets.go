package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/awnumar/memguard"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
)

// secretsCommand is telegraf's `secrets` command: list, read and write the
// secrets of the secret stores the configuration defines. Only the secret
// stores are loaded; inputs, outputs and the rest are skipped.
func secretsCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "secrets",
		Usage: "list, read and write secrets in the secret stores of the configuration",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "list the keys of the secrets in the given stores (all stores by default)",
				ArgsUsage: "[secret store ID]...",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "reveal-secret", Usage: "print the secret values too"}},
				Action: func(cCtx *cli.Context) error {
					stores, err := loadSecretStores(cCtx)
					if err != nil {
						return err
					}
					ids := cCtx.Args().Slice()
					if len(ids) == 0 {
						ids = sortedKeys(stores)
					}
					sort.Strings(ids)
					return listSecrets(stdout, stores, ids, cCtx.Bool("reveal-secret"))
				},
			},
			{
				Name:      "get",
				Usage:     "print the value of one secret",
				ArgsUsage: "<secret store ID> <secret key>",
				Action: func(cCtx *cli.Context) error {
					if cCtx.NArg() != 2 {
						return errors.New("invalid number of arguments: give a secret store ID and a secret key")
					}
					store, err := secretStore(cCtx, cCtx.Args().Get(0))
					if err != nil {
						return err
					}
					value, err := store.Get(cCtx.Args().Get(1))
					if err != nil {
						return fmt.Errorf("unable to get secret: %w", err)
					}
					defer memguard.WipeBytes(value)
					_, err = fmt.Fprintf(stdout, "%s:%s = %s\n", cCtx.Args().Get(0), cCtx.Args().Get(1), value)
					return err
				},
			},
			{
				Name:      "set",
				Usage:     "create or change a secret; without a value it is read from the terminal",
				ArgsUsage: "<secret store ID> <secret key> [value]",
				Action: func(cCtx *cli.Context) error {
					if cCtx.NArg() < 2 {
						return errors.New("invalid number of arguments: give a secret store ID, a secret key and optionally the value")
					}
					id, key, value := cCtx.Args().Get(0), cCtx.Args().Get(1), cCtx.Args().Get(2)
					store, err := secretStore(cCtx, id)
					if err != nil {
						return err
					}
					editor, ok := store.(telegraf.SecretStoreEditor)
					if !ok {
						return fmt.Errorf("secret store %q does not support setting secrets", id)
					}
					if value == "" {
						fmt.Fprint(stdout, "Enter secret value: ")
						b, err := term.ReadPassword(int(os.Stdin.Fd()))
						if err != nil {
							return fmt.Errorf("reading the secret value from the terminal failed: %w", err)
						}
						fmt.Fprintln(stdout)
						value = string(b)
					}
					if err := editor.Set(key, value); err != nil {
						return fmt.Errorf("unable to set secret: %w", err)
					}
					return nil
				},
			},
		},
	}
}

func listSecrets(w io.Writer, stores map[string]telegraf.SecretStore, ids []string, reveal bool) error {
	for _, id := range ids {
		store, ok := stores[id]
		if !ok {
			return fmt.Errorf("unable to get secret store %q: unknown secret store", id)
		}
		keys, err := store.List()
		if err != nil {
			return fmt.Errorf("unable to get secrets from store %q: %w", id, err)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "Known secrets for store %q:\n", id)
		for _, k := range keys {
			var v []byte
			if reveal {
				if v, err = store.Get(k); err != nil {
					return fmt.Errorf("unable to get value of secret %q from store %q: %w", k, id, err)
				}
			}
			fmt.Fprintf(w, "    %-30s  %s\n", k, v)
			memguard.WipeBytes(v)
		}
	}
	return nil
}

func secretStore(cCtx *cli.Context, id string) (telegraf.SecretStore, error) {
	stores, err := loadSecretStores(cCtx)
	if err != nil {
		return nil, err
	}
	store, ok := stores[id]
	if !ok {
		return nil, fmt.Errorf("unable to get secret store %q: unknown secret store", id)
	}
	return store, nil
}

// loadSecretStores loads the configuration with inputs and outputs filtered
// out (as upstream does), so that none is created and no connection opened.
func loadSecretStores(cCtx *cli.Context) (map[string]telegraf.SecretStore, error) {
	config.ResetSecrets()
	if pw := cCtx.String("password"); pw != "" {
		config.Password = config.NewSecret([]byte(pw))
	}
	// The secrets subcommands have no flags of their own but these, so
	// the lookups find the global flags.
	o := agentOptions{
		configFiles: cCtx.StringSlice("config"),
		configDirs:  cCtx.StringSlice("config-directory"),
	}
	files, err := o.resolveConfigFiles()
	if err != nil {
		return nil, err
	}
	c := config.NewConfig()
	c.Agent.Quiet = true
	c.InputFilters, c.OutputFilters = []string{"-"}, []string{"-"}
	for _, id := range strings.Split(cCtx.String("secretstore-filter"), ":") {
		if id = strings.TrimSpace(id); id != "" {
			c.SecretStoreFilters = append(c.SecretStoreFilters, id)
		}
	}
	c.TestMode = true
	if err := c.LoadAll(files...); err != nil {
		return nil, err
	}
	return c.SecretStores, nil
}
