package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Side-by-side runs of telegraf-tkgi and upstream telegraf for the
// behaviours a drop-in must share: reloads, remote configs, logging and the
// config commands.

// upstreamTags builds upstream with what these scenarios use (see
// scripts/upstream-telegraf.sh): a minute cold instead of twenty.
const upstreamTags = "custom,inputs.mem,outputs.file,serializers.influx,migrations,inputs.cpu"

var upstreamOnce struct {
	sync.Once
	path string
	err  error
}

// upstreamBinary builds (once, cached across runs) and returns upstream
// telegraf.
func upstreamBinary(t *testing.T) string {
	t.Helper()
	upstreamOnce.Do(func() {
		cmd := exec.Command("../../scripts/upstream-telegraf.sh")
		cmd.Env = append(os.Environ(), "UPSTREAM_TAGS="+upstreamTags)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			upstreamOnce.err = errors.New(err.Error() + ": " + stderr.String())
			return
		}
		upstreamOnce.path = strings.TrimSpace(string(out))
	})
	require.NoError(t, upstreamOnce.err)
	return upstreamOnce.path
}

// flavour is one of the two binaries with the log lines that mark its
// events.
type flavour struct {
	name   string
	binary string
	// reloaded is logged once per reload.
	reloaded string
	// watching is logged once the config watcher runs.
	watching string
}

// flavours returns telegraf-tkgi and, outside the -short loop, upstream.
func flavours(t *testing.T) []flavour {
	t.Helper()
	fs := []flavour{{name: "telegraf-tkgi", binary: binary, reloaded: "I! Reloading configuration", watching: "I! Watching "}}
	if !testing.Short() {
		fs = append(fs, flavour{name: "upstream", binary: upstreamBinary(t), reloaded: "I! Reloading Telegraf config", watching: "I! Config watcher started"})
	}
	return fs
}

// stop sends SIGTERM and returns the exit code. telegraf-tkgi must stop at
// the first signal. Upstream can lose a SIGTERM that arrives while a reload
// is under way (each reload registers a new signal channel and the old
// generation's watchers may still send SIGHUP), so it gets the signal again
// every 5 s: these tests compare reloads, not that upstream race.
func (p *process) stop(t *testing.T, f flavour) int {
	t.Helper()
	for range 6 {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-p.done:
			return p.state.ExitCode()
		case <-time.After(5 * time.Second):
		}
		require.NotEqual(t, binary, f.binary, "telegraf-tkgi did not stop within 5 s of SIGTERM")
	}
	require.FailNow(t, "upstream did not stop on SIGTERM")
	return 0
}

// waitMetric waits until the line-protocol file holds a line with want.
func waitMetric(t *testing.T, path, want string, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(data), want)
	}, within, 20*time.Millisecond, "waiting for %q in %s", want, path)
}

func fileOutputConfig(out, generation string) string {
	return `
[global_tags]
  generation = "` + generation + `"
[agent]
  interval = "200ms"
  flush_interval = "200ms"
[[outputs.file]]
  files = ["` + out + `"]
`
}

// A *.conf file added to a watched --config-directory is loaded by a
// reload, and removing it reloads again, in both watch modes; poll without
// --watch-interval checks every 250ms, as telegraf does.
func TestWatchedDirectoryReloadsOnNewAndRemovedFiles(t *testing.T) {
	for _, f := range flavours(t) {
		for _, mode := range []string{"notify", "poll"} {
			t.Run(f.name+"/"+mode, func(t *testing.T) {
				dir := t.TempDir()
				confDir := filepath.Join(dir, "telegraf.d")
				require.NoError(t, os.Mkdir(confDir, 0o700))
				out := filepath.Join(dir, "metrics.out")
				main := writeFile(t, dir, "telegraf.conf", fileOutputConfig(out, "1"))
				writeFile(t, confDir, "mem.conf", "[[inputs.mem]]\n")
				p := startProcess(t, f.binary, nil, "--config", main, "--config-directory", confDir, "--watch-config", mode)
				p.waitLog(t, f.watching, 1, 30*time.Second)
				waitMetric(t, out, "mem,", 30*time.Second)

				began := time.Now()
				// Created whole (renamed into place): a file created empty
				// and written a moment later is two changes, and reloads
				// twice when the watcher sees it in between.
				replaceFile(t, confDir, "extra.conf", "[[inputs.mem]]\n  name_override = \"mem_extra\"\n")
				waitMetric(t, out, "mem_extra,", 30*time.Second)
				t.Logf("%s %s: new file to its metric in %s", f.name, mode, time.Since(began).Round(time.Millisecond))
				require.Equal(t, 1, strings.Count(p.logText(), f.reloaded))

				require.NoError(t, os.Remove(filepath.Join(confDir, "extra.conf")))
				p.waitLog(t, f.reloaded, 2, 30*time.Second)
				require.True(t, p.running())
				require.Equal(t, 0, p.stop(t, f))
			})
		}
	}
}

// With --watch-debounce-interval, an editor that truncates the file and
// then writes it causes one reload, with the complete file.
func TestWatchDebounceReloadsOnceOnTruncatingRewrite(t *testing.T) {
	for _, f := range flavours(t) {
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "metrics.out")
			conf := writeFile(t, dir, "telegraf.conf", fileOutputConfig(out, "1")+"[[inputs.mem]]\n")
			p := startProcess(t, f.binary, nil, "--config", conf, "--watch-config", "notify", "--watch-debounce-interval", "1s")
			p.waitLog(t, f.watching, 1, 30*time.Second)
			waitMetric(t, out, "generation=1", 30*time.Second)

			require.NoError(t, os.Truncate(conf, 0))
			// The watcher saw the empty file before the rest is written.
			p.waitLog(t, "Config file", 1, 10*time.Second)
			writeFile(t, dir, "telegraf.conf", fileOutputConfig(out, "2")+"[[inputs.mem]]\n")
			waitMetric(t, out, "generation=2", 30*time.Second)
			require.Equal(t, 1, strings.Count(p.logText(), f.reloaded))
			require.True(t, p.running())
			require.Equal(t, 0, p.stop(t, f))
		})
	}
}

// --watch-config accepts upstream's documented value and the older one.
func TestWatchConfigValues(t *testing.T) {
	for _, value := range []string{"notify", "inotify", "poll"} {
		t.Run(value, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "metrics.out")
			conf := writeFile(t, dir, "telegraf.conf", fileOutputConfig(out, "1")+"[[inputs.mem]]\n")
			p := startProcess(t, binary, nil, "--config", conf, "--watch-config", value)
			p.waitLog(t, "I! Watching 1 config file(s)", 1, 30*time.Second)
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			require.Equal(t, 0, p.waitExit(t, 30*time.Second).ExitCode())
		})
	}
}

// A sub-folder created in a watched --config-directory is watched too: a
// *.conf file written into it later is loaded by a reload.
func TestWatchedDirectoryWatchesNewSubfolders(t *testing.T) {
	dir := t.TempDir()
	confDir := filepath.Join(dir, "telegraf.d")
	require.NoError(t, os.Mkdir(confDir, 0o700))
	out := filepath.Join(dir, "metrics.out")
	main := writeFile(t, dir, "telegraf.conf", fileOutputConfig(out, "1")+"[[inputs.mem]]\n")
	p := startProcess(t, binary, nil, "--config", main, "--config-directory", confDir, "--watch-config", "notify", "--debug")
	p.waitLog(t, "I! Watching ", 1, 30*time.Second)

	sub := filepath.Join(confDir, "team")
	require.NoError(t, os.Mkdir(sub, 0o700))
	p.waitLog(t, "D! Watching new config folder "+sub, 1, 10*time.Second)
	require.Zero(t, strings.Count(p.logText(), "I! Reloading configuration"), "an empty folder changes no config")
	writeFile(t, sub, "extra.conf", "[[inputs.mem]]\n  name_override = \"mem_extra\"\n")
	waitMetric(t, out, "mem_extra,", 30*time.Second)
	require.Equal(t, 0, p.stop(t, flavour{binary: binary}))
}
