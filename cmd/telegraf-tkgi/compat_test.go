package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/buildinfo"
)

// upstreamGlobalFlags are the global flags upstream telegraf v1.39.3 lists
// in its Linux --help, with a value for those that take one.
// scripts/dropin-compare.sh derives the same list from upstream's binary.
var upstreamGlobalFlags = map[string]string{
	"test-wait": "0", "config-url-retry-attempts": "3", "usage": "mem", "pprof-addr": "127.0.0.1:0",
	"watch-config": "poll", "watch-debounce-interval": "1s", "pidfile": "/nonexistent/pid", "password": "pw",
	"old-env-behavior": "", "print-plugin-config-source": "", "once": "", "debug": "", "quiet": "",
	"unprotected": "", "test": "", "select": "a=b", "watch-interval": "1s", "config-url-watch-interval": "1s",
	"deprecation-list": "", "input-list": "", "output-list": "", "version": "", "sample-config": "",
	"plugin-directory": "/nonexistent", "config": "x.conf", "config-directory": "/nonexistent",
	"section-filter": "agent", "input-filter": "mem", "output-filter": "file", "aggregator-filter": "basicstats",
	"processor-filter": "rename", "secretstore-filter": "s", "strict-env-handling": "",
	"non-strict-env-handling": "",
}

func TestEveryUpstreamGlobalFlagIsDefined(t *testing.T) {
	help := run(t, "--help")
	require.Equal(t, 0, help.code, help.stderr)
	// All of them on one command line with --help last: each is parsed (an
	// undefined one fails, naming it) and nothing runs.
	var args []string
	for name, value := range upstreamGlobalFlags {
		require.Contains(t, help.stdout, "--"+name+" ", "--help lacks --%s", name)
		args = append(args, "--"+name)
		if value != "" {
			args = append(args, value)
		}
	}
	r := run(t, append(args, "--help")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stderr, "flag provided but not defined")
	require.Equal(t, help.stdout, r.stdout)
}

// version and --version print one line shaped like upstream's release
// `telegraf version`, "Telegraf <version> (git: <branch>@<commit>)": the same
// words up to the parenthesis, then one parenthesised part naming this
// build. Outside -short the shape is read from upstream's own output (built
// with its release ldflags); in the -short loop from the pinned version.
func TestVersionHasUpstreamsReleaseShape(t *testing.T) {
	prefix := "Telegraf " + strings.TrimPrefix(buildinfo.UpstreamVersion(), "v") + " "
	if !testing.Short() {
		up := startProcess(t, upstreamBinary(t), nil, "version")
		require.Equal(t, 0, up.waitExit(t, 30*time.Second).ExitCode())
		line := up.logText()
		require.Regexp(t, `^Telegraf [0-9]+\.[0-9]+\.[0-9]+ \(git: [^@ ]+@[0-9a-f]+\)\n$`, line, "upstream is not a release build")
		prefix, _, _ = strings.Cut(line, "(")
	}
	shape := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `\([^()]+\)\n$`)
	var outputs []string
	for _, args := range []string{"version", "--version"} {
		r := run(t, args)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, shape, r.stdout)
		require.Contains(t, r.stdout, "(telegraf-tkgi ", "then this build")
		outputs = append(outputs, r.stdout)
	}
	require.Equal(t, outputs[0], outputs[1])
}

const memDiscardConf = `
[agent]
  interval = "1s"
  flush_interval = "1s"
[[inputs.mem]]
  [inputs.mem.labels]
    app = "x"
[[inputs.cpu]]
  [inputs.cpu.labels]
    app = "y"
[[outputs.discard]]
`

func TestUnknownFilterNamesRunTheRest(t *testing.T) {
	conf := writeFile(t, t.TempDir(), "t.conf", memDiscardConf)
	r := run(t, "--config", conf, "--input-filter", "mem:nosuch", "--output-filter", "nosuch:discard", "--once")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "Loaded inputs: mem\n")
	require.Contains(t, r.stderr, "Loaded outputs: discard\n")

	// A filter that matches no configured input leaves nothing to run.
	r = run(t, "--config", conf, "--input-filter", "nosuch", "--once")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "no inputs found")
}

func TestSelectRunsOnlyMatchingLabels(t *testing.T) {
	conf := writeFile(t, t.TempDir(), "t.conf", memDiscardConf)
	r := run(t, "--config", conf, "--test", "--select", "app=x")
	require.Equal(t, 0, r.code, r.stderr)
	got := names(parseLines(t, r.stdout))
	require.True(t, got["mem"], r.stdout)
	require.False(t, got["cpu"], r.stdout)

	// Repeated options are alternatives; wildcards match.
	r = run(t, "--config", conf, "--test", "--select", "app=x", "--select", "app=?")
	require.Equal(t, 0, r.code, r.stderr)
	got = names(parseLines(t, r.stdout))
	require.True(t, got["mem"] && got["cpu"], r.stdout)

	r = run(t, "--config", conf, "--test", "--select", "app")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, `invalid selector "app"`)
}

func TestPprofOnTakenPortStopsTheAgent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	conf := writeFile(t, t.TempDir(), "t.conf", strings.Replace(memDiscardConf, `"1s"`, `"1h"`, 2))
	// Without the failure the agent would run for the 2-minute limit of run.
	r := run(t, "--config", conf, "--pprof-addr", ln.Addr().String())
	require.Equal(t, 0, r.code, r.stderr) // upstream exits 0 here too
	require.Contains(t, r.stderr, "Serving pprof on "+ln.Addr().String()+" failed, stopping")
	require.Contains(t, r.stderr, "address already in use")
}

func TestCommandLineConflictsAndUnsupported(t *testing.T) {
	conf := writeFile(t, t.TempDir(), "t.conf", memDiscardConf)
	r := run(t, "--config", conf, "--strict-env-handling", "--non-strict-env-handling", "--once")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "cannot be given together")

	r = run(t, "--config", conf, "--plugin-directory", t.TempDir(), "--once")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "no support for external")
}

func TestListFlagsPrintAndExit(t *testing.T) {
	r := run(t, "--input-list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "Available Input Plugins:\n")
	require.Contains(t, r.stdout, "\n  kube_telemetry\n")

	r = run(t, "--output-list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "\n  vmware_telemetry\n")

	r = run(t, "--deprecation-list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "Deprecated Output Plugins:\n  outputs.kafka/")

	r = run(t, "--sample-config", "--section-filter", "inputs", "--input-filter", "mem")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "[[inputs.mem]]")
	require.NotContains(t, r.stdout, "\n[[outputs.")

	// Secret stores have their section, commented unless filtered in.
	r = run(t, "config")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "\n# [[secretstores.jose]]")
	r = run(t, "config", "--section-filter", "secretstores", "--secretstore-filter", "jose")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "\n[[secretstores.jose]]")
	require.NotContains(t, r.stdout, "secretstores.http")
}

func TestSecretsJoseStore(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "secrets")
	conf := writeFile(t, dir, "s.conf", `
[[secretstores.jose]]
  id = "mystore"
  path = "`+store+`"

[[secretstores.jose]]
  id = "other"
  path = "`+filepath.Join(dir, "other")+`"
  password = "other-pw"
`)
	secrets := func(args ...string) result {
		return run(t, append([]string{"--config", conf, "--password", "pw", "secrets"}, args...)...)
	}
	r := secrets("set", "mystore", "token", "s3cr3t")
	require.Equal(t, 0, r.code, r.stderr)
	entries, err := os.ReadDir(store)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	raw, err := os.ReadFile(filepath.Join(store, entries[0].Name()))
	require.NoError(t, err)
	require.NotContains(t, string(raw), "s3cr3t", "the jose store keeps values encrypted")

	r = secrets("get", "mystore", "token")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "mystore:token = s3cr3t\n", r.stdout)

	r = secrets("list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "Known secrets for store \"mystore\":\n    token                           \n"+
		"Known secrets for store \"other\":\n", r.stdout)

	r = secrets("list", "--reveal-secret", "mystore")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "    token                           s3cr3t\n")

	// --secretstore-filter names secret store plugins (not ids), as upstream.
	r = run(t, "--config", conf, "--password", "pw", "--secretstore-filter", "http:jose", "secrets", "list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "Known secrets for store \"other\":\n")
	r = run(t, "--config", conf, "--password", "pw", "--secretstore-filter", "http", "secrets", "list")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stdout)

	r = run(t, "--config", conf, "--password", "wrong", "secrets", "get", "mystore", "token")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "unable to get secret")
	require.NotContains(t, r.stdout+r.stderr, "s3cr3t")

	r = secrets("get", "nostore", "token")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, `unable to get secret store "nostore"`)

	r = secrets("get", "mystore")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "invalid number of arguments")
}

func TestSecretStoreLoadsAtRun(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.lp")
	conf := writeFile(t, dir, "s.conf", `
[agent]
  interval = "1s"
  flush_interval = "1s"
[[secretstores.jose]]
  id = "mystore"
  path = "`+filepath.Join(dir, "secrets")+`"
[[inputs.mem]]
  [inputs.mem.tags]
    plain = "yes"
[[outputs.file]]
  files = ["`+out+`"]
`)
	r := run(t, "--config", conf, "--password", "pw", "secrets", "set", "mystore", "k", "v")
	require.Equal(t, 0, r.code, r.stderr)
	r = run(t, "--config", conf, "--password", "pw", "--once")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "Loaded secretstores: mystore\n")

	r = run(t, "--config", conf, "--password", "pw", "--once", "--print-plugin-config-source")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, conf, "the plugin sources name the file")
}

// The http secret store against a real HTTP server: a plugin's secret
// (inputs.prometheus' password) resolves from it when the agent starts and
// reaches the scraped server.
func TestSecretsHTTPStoreResolvesPluginSecret(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/secrets", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"scrape_password": "s3cr3t-from-store"}`)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "agent" || pass != "s3cr3t-from-store" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "# TYPE scraped_ok gauge\nscraped_ok 1\n")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	conf := writeFile(t, t.TempDir(), "s.conf", `
[agent]
  omit_hostname = true
[[secretstores.http]]
  id = "web"
  url = "`+srv.URL+`/secrets"
  token = "t0ken"
[[inputs.prometheus]]
  urls = ["`+srv.URL+`/metrics"]
  username = "agent"
  password = "@{web:scrape_password}"
`)
	r := run(t, "--config", conf, "--test")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "Loaded secretstores: web\n")
	// The scrape succeeded, so the password came from the store.
	require.True(t, names(parseLines(t, r.stdout))["scraped_ok"], r.stdout+r.stderr)
	require.NotContains(t, r.stdout+r.stderr, "s3cr3t-from-store")

	// Like upstream, the http store downloads only when a plugin refers to
	// it, so `secrets get` (which loads no plugin) does not find the key.
	r = run(t, "--config", conf, "secrets", "get", "web", "scrape_password")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "unable to get secret: not found")
}
