package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// treeSnapshot lists every file and directory under root with what a write
// would change.
func treeSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[path] = fmt.Sprintf("%s %d %s", fi.Mode(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		return nil
	}))
	return out
}

// `config check` and `--test` of every shipped configuration, with the
// environment its manifests give and the paths they mount moved into a
// scratch tree, create and modify nothing: no pseudonym key (the key
// directory is empty, as before the first start), no statefile, no disk
// buffer, no dedup log, nothing in the working directory or HOME.
func TestConfigCheckAndTestWriteNothing(t *testing.T) {
	confs, err := filepath.Glob("../../configs/*.conf")
	require.NoError(t, err)
	require.NotEmpty(t, confs)
	// And the agent with Telegraf's disk buffer, which config loading
	// would open (create) unless told it is only a check.
	disk := filepath.Join(t.TempDir(), "agent-disk-buffer.conf")
	agentConf, err := os.ReadFile("../../configs/agent.conf")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(disk, []byte(strings.Replace(string(agentConf), "[agent]\n",
		"[agent]\n  buffer_strategy = \"disk_write_through\"\n  buffer_directory = \"/var/lib/telegraf-tkgi/buffer\"\n", 1)), 0o600))
	confs = append(confs, disk)

	root := t.TempDir()
	d := newDeployment(t, filepath.Join(root, "mounts"))
	home := filepath.Join(root, "home")
	work := filepath.Join(root, "work")
	for _, dir := range []string{home, work} {
		require.NoError(t, os.Mkdir(dir, 0o700))
	}
	env := append(os.Environ(), "TELEGRAF_CONFIG_PATH=/nonexistent", "HOME="+home)
	env = append(env, d.env...)

	for _, conf := range confs {
		t.Run(filepath.Base(conf), func(t *testing.T) {
			local := d.localConf(t, conf)
			for _, args := range [][]string{
				{"config", "check", "--config", local},
				{"--config", local, "--test"},
			} {
				before := treeSnapshot(t, root)
				r := runIn(t, work, env, args...)
				after := treeSnapshot(t, root)
				require.Equal(t, before, after, "%s created or modified files; stderr:\n%s", strings.Join(args, " "), r.stderr)
				if args[0] == "config" {
					require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
					require.Empty(t, r.stdout, "config check is silent on success, as upstream")
				}
			}
		})
	}
}
