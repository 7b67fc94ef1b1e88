package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/parsers/influx"
	"github.com/stretchr/testify/require"
)

// binary is the telegraf-tkgi executable under test: $TELEGRAF_TKGI_BIN
// (what `make test` builds) or one built here.
var binary string

func TestMain(m *testing.M) {
	binary = os.Getenv("TELEGRAF_TKGI_BIN")
	cleanup := func() {}
	if binary == "" {
		dir, err := os.MkdirTemp("", "telegraf-tkgi-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		binary = filepath.Join(dir, "telegraf-tkgi")
		build := exec.Command("go", "build", "-o", binary, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building telegraf-tkgi failed:", err)
			cleanup()
			os.Exit(1)
		}
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t, "", append(os.Environ(), "TELEGRAF_CONFIG_PATH=/nonexistent", "HOME="+t.TempDir()), args...)
}

// runIn runs the binary in dir with env.
func runIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// replaceFile writes a file atomically by renaming a new one over it, as
// editors that keep a backup and Kubernetes ConfigMap updates do.
func replaceFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	tmp := writeFile(t, dir, "."+name+".tmp", content)
	path := filepath.Join(dir, name)
	require.NoError(t, os.Rename(tmp, path))
	return path
}

func parseLines(t *testing.T, text string) []telegraf.Metric {
	t.Helper()
	parser := &influx.Parser{}
	require.NoError(t, parser.Init())
	var metrics []telegraf.Metric
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, ">"))
		if line == "" {
			continue
		}
		m, err := parser.ParseLine(line)
		require.NoError(t, err, "line %q", line)
		metrics = append(metrics, m)
	}
	return metrics
}

func names(metrics []telegraf.Metric) map[string]bool {
	set := make(map[string]bool)
	for _, m := range metrics {
		set[m.Name()] = true
	}
	return set
}

func TestPluginsListsTheCuratedSet(t *testing.T) {
	r := run(t, "plugins")
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{
		"inputs.cpu", "inputs.internal", "inputs.kube_inventory", "inputs.kubernetes", "inputs.prometheus",
		"outputs.prometheus_client", "outputs.influxdb", "outputs.influxdb_v2", "outputs.http", "outputs.health",
		"processors.rename", "processors.tag_limit", "aggregators.basicstats",
		"parsers.influx", "parsers.json", "serializers.prometheus",
	} {
		require.Contains(t, strings.Split(r.stdout, "\n"), want)
	}

	r = run(t, "plugins", "outputs")
	require.Equal(t, 0, r.code, r.stderr)
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		require.True(t, strings.HasPrefix(line, "outputs."), line)
	}

	r = run(t, "plugins", "widgets")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `unknown plugin category "widgets"`)
}

func TestSampleConfigLoadsBack(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "everything", args: []string{"config"}},
		{name: "filters after command", args: []string{"config", "--input-filter", "mem:internal", "--output-filter", "discard"}},
		{name: "filters before command", args: []string{"--input-filter", "kernel", "--output-filter", "file:health", "config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Contains(t, r.stdout, "[agent]")
			path := writeFile(t, t.TempDir(), "sample.conf", r.stdout)

			check := run(t, "config", "check", "--config", path)
			require.Equal(t, 0, check.code, "stdout: %s\nstderr: %s", check.stdout, check.stderr)
			require.Empty(t, check.stdout, "config check is silent on success, as upstream")
		})
	}
}

func TestSampleConfigDocumentsEveryPlugin(t *testing.T) {
	r := run(t, "config")
	require.Equal(t, 0, r.code, r.stderr)
	list := run(t, "plugins")
	for _, line := range strings.Split(strings.TrimSpace(list.stdout), "\n") {
		category, name, _ := strings.Cut(line, ".")
		switch category {
		case "inputs", "outputs", "processors", "aggregators", "secretstores":
			require.Contains(t, r.stdout, "[["+category+"."+name+"]]", "sample config lacks %s", line)
		}
	}
	// Enabled by default: uncommented.
	require.Contains(t, r.stdout, "\n[[inputs.cpu]]")
	require.Contains(t, r.stdout, "\n[[outputs.file]]")
	require.Contains(t, r.stdout, "\n# [[inputs.kube_inventory]]")
}

func TestSampleConfigSectionFilter(t *testing.T) {
	r := run(t, "config", "--section-filter", "agent:inputs", "--input-filter", "cpu")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "[agent]")
	require.Contains(t, r.stdout, "[[inputs.cpu]]")
	require.NotContains(t, r.stdout, "\n[global_tags]")
	require.NotContains(t, r.stdout, "OUTPUTS")
	require.NotContains(t, r.stdout, "[[outputs.file]]")
	require.NotContains(t, r.stdout, "[[inputs.mem]]")

	// Unknown names are ignored, as upstream.
	r = run(t, "config", "--section-filter", "agent:bogus", "--input-filter", "mem:nosuch")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "\n[agent]")
	require.NotContains(t, r.stdout, "[[inputs.mem]]")
	r = run(t, "config", "--section-filter", "inputs", "--input-filter", "mem:nosuch")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "\n[[inputs.mem]]")
	require.Empty(t, r.stderr)
}

func TestUsage(t *testing.T) {
	r := run(t, "--usage", "cpu")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "[[inputs.cpu]]")

	r = run(t, "--usage", "no_such_plugin")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `no input or output plugin named "no_such_plugin"`)
}

func TestTestModePrintsLineProtocol(t *testing.T) {
	conf := writeFile(t, t.TempDir(), "cpu.conf", `
[[inputs.cpu]]
  percpu = false
  totalcpu = true
`)
	r := run(t, "--config", conf, "--test")
	require.Equal(t, 0, r.code, r.stderr)
	metrics := parseLines(t, r.stdout)
	require.NotEmpty(t, metrics)
	require.True(t, names(metrics)["cpu"], "stdout: %s", r.stdout)
	for _, m := range metrics {
		require.Equal(t, "cpu-total", m.Tags()["cpu"])
		_, ok := m.GetField("usage_idle")
		require.True(t, ok)
	}
}

func TestOnceWritesOutputFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "metrics.out")
	conf := writeFile(t, dir, "once.conf", fmt.Sprintf(`
[global_tags]
  role = "once"
[[inputs.mem]]
[[inputs.internal]]
[[outputs.file]]
  files = [%q]
  data_format = "influx"
`, out))
	r := run(t, "--config", conf, "--once")
	require.Equal(t, 0, r.code, r.stderr)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	metrics := parseLines(t, string(data))
	got := names(metrics)
	require.True(t, got["mem"], string(data))
	// The internal input reports the agent's own statistics.
	require.True(t, got["internal_agent"], string(data))
	require.True(t, got["internal_gather"], string(data))
	require.True(t, got["internal_memstats"], string(data))
	for _, m := range metrics {
		require.Equal(t, "once", m.Tags()["role"])
	}
}

func TestBadConfigExitsNamingTheProblem(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    []string
		// fragment: `config check` accepts it, as telegraf's does.
		fragment bool
	}{
		{
			name:    "unknown plugin",
			content: "[[inputs.no_such_input]]\n[[outputs.discard]]\n",
			want:    []string{"no_such_input"},
		},
		{
			name:    "malformed toml",
			content: "[[inputs.cpu]]\n  percpu = \n[[outputs.discard]]\n",
			want:    []string{"invalid TOML syntax"},
		},
		{
			name:    "unknown option",
			content: "[[inputs.cpu]]\n  per_cpu_typo = true\n[[outputs.discard]]\n",
			want:    []string{"per_cpu_typo"},
		},
		{
			name:     "no outputs",
			content:  "[[inputs.cpu]]\n",
			want:     []string{"no outputs found"},
			fragment: true,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, fmt.Sprintf("bad%d.conf", i), tt.content)
			for _, args := range [][]string{{"--config", path, "--once"}, {"config", "check", "--config", path}} {
				r := run(t, args...)
				if tt.fragment && args[0] == "config" {
					require.Equal(t, 0, r.code, "args %v: %s", args, r.stderr)
					continue
				}
				require.NotEqual(t, 0, r.code, "args %v", args)
				for _, want := range append(tt.want, path) {
					if tt.name == "no outputs" && args[0] == "--config" && want == path {
						continue
					}
					require.Contains(t, r.stderr, want, "args %v", args)
				}
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	r := run(t, "--config", "/nonexistent/telegraf.conf", "--once")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "/nonexistent/telegraf.conf")
}

// waitForLine waits until the output file holds a metric matching want.
func waitForLine(t *testing.T, path string, want func(telegraf.Metric) bool, p *process) {
	t.Helper()
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		for _, m := range parseLines(t, string(data)) {
			if want(m) {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "log:\n%s", p.logText())
}

func reloadConfig(generation, out string) string {
	return fmt.Sprintf(`
[global_tags]
  generation = %q
[agent]
  interval = "1s"
  flush_interval = "1s"
[[inputs.mem]]
[[outputs.file]]
  files = [%q]
`, generation, out)
}

func TestSighupReloadsConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("a running agent against a real server over seconds: an integration test, run without -short (make test)")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "metrics.out")
	conf := writeFile(t, dir, "reload.conf", reloadConfig("1", out))
	pidfile := filepath.Join(dir, "telegraf.pid")
	d := startProcess(t, binary, nil, "--config", conf, "--pidfile", pidfile)

	waitForLine(t, out, func(m telegraf.Metric) bool { return m.Tags()["generation"] == "1" }, d)
	pid, err := os.ReadFile(pidfile)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(d.cmd.Process.Pid), strings.TrimSpace(string(pid)))

	writeFile(t, dir, "reload.conf", reloadConfig("2", out))
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	waitForLine(t, out, func(m telegraf.Metric) bool { return m.Tags()["generation"] == "2" }, d)

	code, _ := d.stopBy(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	require.Contains(t, d.logText(), "Reloading configuration")
	_, err = os.Stat(pidfile)
	require.True(t, os.IsNotExist(err), "pidfile removed on exit")
}

func TestWatchConfigReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("a running agent against a real server over seconds: an integration test, run without -short (make test)")
	}
	for _, mode := range []string{"poll", "inotify"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "metrics.out")
			conf := writeFile(t, dir, "watch.conf", reloadConfig("1", out))
			d := startProcess(t, binary, nil, "--config", conf, "--watch-config", mode, "--watch-interval", "200ms")
			waitForLine(t, out, func(m telegraf.Metric) bool { return m.Tags()["generation"] == "1" }, d)
			// Replaced whole, by a rename: a truncating rewrite would
			// reload on the empty file (see TestWatchDebounce).
			replaceFile(t, dir, "watch.conf", reloadConfig("2", out))
			waitForLine(t, out, func(m telegraf.Metric) bool { return m.Tags()["generation"] == "2" }, d)
			code, _ := d.stopBy(t, syscall.SIGINT)
			require.Equal(t, 0, code)
		})
	}
}

func TestSigtermFlushesBeforeExit(t *testing.T) {
	if testing.Short() {
		t.Skip("a running agent against a real server over seconds: an integration test, run without -short (make test)")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "metrics.out")
	// The flush interval is far longer than the test: anything in the
	// file was written by the final flush on stop.
	conf := writeFile(t, dir, "flush.conf", fmt.Sprintf(`
[agent]
  interval = "1s"
  flush_interval = "1h"
[[inputs.mem]]
[[outputs.file]]
  files = [%q]
`, out))
	d := startProcess(t, binary, nil, "--config", conf)
	require.Eventually(t, func() bool {
		return strings.Contains(d.logText(), "Starting telegraf-tkgi")
	}, 30*time.Second, 50*time.Millisecond)
	time.Sleep(2500 * time.Millisecond) // let a couple of gathers land in the buffer
	_, err := os.Stat(out)
	if err == nil {
		data, _ := os.ReadFile(out)
		require.Empty(t, string(data), "nothing is flushed before stop")
	}
	code, _ := d.stopBy(t, syscall.SIGTERM)
	require.Equal(t, 0, code)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	require.True(t, names(parseLines(t, string(data)))["mem"], "final flush wrote the buffered metrics; log:\n%s", d.logText())
}

func TestUnknownCommand(t *testing.T) {
	r := run(t, "frobnicate")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, `unknown command "frobnicate"`)
}

// Every role configuration shipped in configs/ must pass `config check`
// (which runs each plugin's Init) with the environment its manifest
// provides: configs/settings.env plus the pod's downward-API variables.
// Absolute state paths are moved into a temporary folder, which holds the
// pseudonym key the agent's Secret would mount and the server's certificate.
func TestShippedConfigsLoad(t *testing.T) {
	confs, err := filepath.Glob("../../configs/*.conf")
	require.NoError(t, err)
	require.NotEmpty(t, confs)

	d := newDeployment(t, t.TempDir())
	require.NoError(t, os.WriteFile(filepath.Join(d.keyDir, "key"), []byte(strings.Repeat("ab", 32)+"\n"), 0o600))
	for _, kv := range d.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, conf := range confs {
		t.Run(filepath.Base(conf), func(t *testing.T) {
			r := run(t, "config", "check", "--config", d.localConf(t, conf))
			require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Empty(t, r.stdout, "config check is silent on success, as upstream")
		})
	}
}

// config check runs Init: a bad value fails naming the key, as at start.
func TestConfigCheckRunsInit(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "bad.conf")
	require.NoError(t, os.WriteFile(conf, []byte(`
[[inputs.mem]]
[[outputs.vmware_telemetry]]
  url = "http://127.0.0.1:1/send"
  participation_level = "full"
`), 0o600))
	r := run(t, "config", "check", "--config", conf)
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "outputs.vmware_telemetry")
	require.Contains(t, r.stderr, `participation_level "full" unknown`)
	require.Empty(t, r.stdout)
}
