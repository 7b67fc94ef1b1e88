package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// configServer serves a config over HTTP, failing the first failures GETs
// with 503; HEAD answers carry Last-Modified for the URL watcher.
type configServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     string
	modified time.Time
	failures int
	gets     int
	requests int
}

func newConfigServer(t *testing.T, body string, failures int) *configServer {
	t.Helper()
	s := &configServer{body: body, failures: failures, modified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests++
		if r.Method == http.MethodGet {
			s.gets++
			if s.gets <= s.failures {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Last-Modified", s.modified.Format(http.TimeFormat))
		_, _ = w.Write([]byte(s.body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *configServer) set(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
	s.modified = s.modified.Add(time.Hour)
}

// failFromNow makes every further GET fail.
func (s *configServer) failFromNow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = 1 << 30
}

func (s *configServer) requestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *configServer) getCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// SIGTERM while a --config URL is being retried ends the process at once,
// by the signal, as it ends upstream (which has no handler installed yet).
func TestStopDuringRemoteConfigRetries(t *testing.T) {
	for _, f := range flavours(t) {
		t.Run(f.name, func(t *testing.T) {
			srv := newConfigServer(t, "", 1<<30)
			p := startProcess(t, f.binary, nil, "--config", srv.URL+"/telegraf.conf")
			p.waitLog(t, "Error getting HTTP config (attempt 0 of 3)", 1, 30*time.Second)
			began := time.Now()
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			state := p.waitExit(t, 5*time.Second)
			t.Logf("%s stopped %s after SIGTERM", f.name, time.Since(began).Round(time.Millisecond))
			status := state.Sys().(syscall.WaitStatus)
			require.True(t, status.Signaled(), "ended by the signal, got %s", state)
			require.Equal(t, syscall.SIGTERM, status.Signal())
		})
	}
}

// The same during a reload: upstream waits out its retries (about 30 s)
// there; telegraf-tkgi stops at once, cleanly (the previous agent has
// flushed already).
func TestStopDuringRemoteConfigRetriesOnReload(t *testing.T) {
	out := filepath.Join(t.TempDir(), "metrics.out")
	srv := newConfigServer(t, fileOutputConfig(out, "1")+"[[inputs.mem]]\n", 0)
	p := startProcess(t, binary, nil, "--config", srv.URL+"/telegraf.conf")
	waitMetric(t, out, "generation=1", 30*time.Second)
	srv.failFromNow()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	p.waitLog(t, "Error getting HTTP config (attempt 0 of 3)", 1, 30*time.Second)
	began := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	state := p.waitExit(t, 5*time.Second)
	t.Logf("stopped %s after SIGTERM", time.Since(began).Round(time.Millisecond))
	require.Equal(t, 0, state.ExitCode())
	require.Contains(t, p.logText(), "Received terminated while reloading the configuration, stopping")
}

// --config-url-retry-attempts N makes N+1 attempts 10 s apart, as upstream
// does; an invalid count fails at once.
func TestConfigURLRetryAttempts(t *testing.T) {
	conf := "[[inputs.mem]]\n"
	cases := []struct {
		name     string
		failures int
		attempts string
		wantCode int
		wantGets int
		slow     bool
	}{
		{name: "invalid count", failures: 1 << 30, attempts: "-2", wantCode: 1, wantGets: 0},
		{name: "gives up after one retry", failures: 1 << 30, attempts: "1", wantCode: 1, wantGets: 2, slow: true},
		{name: "second attempt succeeds", failures: 1, attempts: "1", wantCode: 0, wantGets: 2, slow: true},
	}
	for _, f := range flavours(t) {
		for _, tc := range cases {
			if tc.slow && testing.Short() {
				continue // 10 s of upstream's fixed retry interval
			}
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				srv := newConfigServer(t, conf, tc.failures)
				p := startProcess(t, f.binary, nil, "--config", srv.URL+"/telegraf.conf", "--config-url-retry-attempts", tc.attempts, "--test")
				state := p.waitExit(t, 60*time.Second)
				require.Equal(t, tc.wantCode, state.ExitCode())
				require.Equal(t, tc.wantGets, srv.getCount())
			})
		}
	}
}

// --config-url-watch-interval reloads when the URL's Last-Modified changes.
func TestConfigURLWatchInterval(t *testing.T) {
	for _, f := range flavours(t) {
		t.Run(f.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "metrics.out")
			srv := newConfigServer(t, fileOutputConfig(out, "1")+"[[inputs.mem]]\n", 0)
			p := startProcess(t, f.binary, nil, "--config", srv.URL+"/telegraf.conf", "--config-url-watch-interval", "200ms")
			waitMetric(t, out, "generation=1", 30*time.Second)
			// The watcher's first check is its baseline (upstream's too):
			// a change before it would never be seen as one.
			require.Eventually(t, func() bool { return srv.requestCount() >= 2 }, 30*time.Second, 20*time.Millisecond,
				"the watcher never checked the URL")
			srv.set(fileOutputConfig(out, "2") + "[[inputs.mem]]\n")
			waitMetric(t, out, "generation=2", 30*time.Second)
			require.Equal(t, 1, strings.Count(p.logText(), f.reloaded))
			require.Equal(t, 0, p.stop(t, f))
		})
	}
}

// The deprecated agent setting logtarget behaves as upstream: "stderr"
// ignores logfile (with a warning), "file" uses it, "eventlog" and unknown
// values fail on Linux.
func TestLogtargetLikeUpstream(t *testing.T) {
	cases := []struct {
		target    string
		wantCode  int
		wantFile  bool
		wantInLog string
	}{
		{target: "stderr", wantCode: 0, wantFile: false, wantInLog: `Agent setting "logtarget" is deprecated`},
		{target: "file", wantCode: 0, wantFile: true, wantInLog: `Agent setting "logtarget" is deprecated`},
		{target: "eventlog", wantCode: 1, wantInLog: "eventlog"},
		{target: "syslog", wantCode: 1, wantInLog: `invalid deprecated 'logtarget' setting "syslog"`},
	}
	for _, f := range flavours(t) {
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.target, func(t *testing.T) {
				dir := t.TempDir()
				logfile := filepath.Join(dir, "telegraf.log")
				conf := writeFile(t, dir, "telegraf.conf", `
[agent]
  logtarget = "`+tc.target+`"
  logfile = "`+logfile+`"
[[inputs.mem]]
[[outputs.file]]
  files = ["`+filepath.Join(dir, "metrics.out")+`"]
`)
				p := startProcess(t, f.binary, nil, "--config", conf, "--once")
				state := p.waitExit(t, 60*time.Second)
				require.Equal(t, tc.wantCode, state.ExitCode())
				require.Contains(t, p.logText(), tc.wantInLog)
				data, err := os.ReadFile(logfile)
				if tc.wantFile {
					require.NoError(t, err)
					require.Contains(t, string(data), "Loaded inputs: mem")
				} else {
					require.True(t, os.IsNotExist(err), "no log file written")
				}
				if tc.wantCode == 0 && !tc.wantFile {
					require.Contains(t, p.logText(), "Loaded inputs: mem")
				}
			})
		}
	}
}

// `config check` accepts fragments and substitutes environment variables
// non-strictly by default, warning that the agent is strict, as upstream's
// does; --strict-env-handling makes it strict and silent about it, and
// real errors still fail.
func TestConfigCheckLikeUpstream(t *testing.T) {
	const nonString = "[agent]\n  interval = ${PARITY_INTERVAL}\n[[inputs.mem]]\n"
	cases := []struct {
		name     string
		content  string
		flags    []string
		wantCode int
		// wantEnvWarning: the check says how it handles environment variables.
		wantEnvWarning bool
	}{
		{name: "inputs only", content: "[[inputs.mem]]\n", wantEnvWarning: true},
		{name: "outputs only", content: "[[outputs.file]]\n", wantEnvWarning: true},
		{name: "empty file", content: "", wantEnvWarning: true},
		{name: "variable in a non-string setting", content: nonString, wantEnvWarning: true},
		{name: "variable in a non-string setting, strict", content: nonString, flags: []string{"--strict-env-handling"}, wantCode: 1},
		{name: "variable in a non-string setting, non-strict", content: nonString, flags: []string{"--non-strict-env-handling"}},
		{name: "both env flags", content: "", flags: []string{"--strict-env-handling", "--non-strict-env-handling"}, wantCode: 1},
		{name: "unknown option", content: "[[inputs.mem]]\n  no_such_option = 1\n", wantCode: 1, wantEnvWarning: true},
	}
	for _, f := range flavours(t) {
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				conf := writeFile(t, t.TempDir(), "fragment.conf", tc.content)
				args := append(append([]string{"config", "check"}, tc.flags...), "--config", conf)
				p := startProcess(t, f.binary, []string{`PARITY_INTERVAL="5s"`}, args...)
				require.Equal(t, tc.wantCode, p.waitExit(t, 60*time.Second).ExitCode())
				warned := regexp.MustCompile(`(?m) W! .*nvironment variable`).MatchString(p.logText())
				require.Equal(t, tc.wantEnvWarning, warned, p.logText())
			})
		}
	}
}

// `config migrate` writes <file>.migrated with upstream's migrations,
// byte for byte what upstream writes, and refuses to overwrite it
// without --force.
func TestConfigMigrateLikeUpstream(t *testing.T) {
	const deprecated = `[agent]
  logtarget = "file"
  logfile = "/var/log/telegraf/telegraf.log"
[[inputs.cpu]]
  fieldpass = ["usage_idle"]
[[outputs.file]]
`
	results := map[string]string{}
	for _, f := range flavours(t) {
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := writeFile(t, dir, "telegraf.conf", deprecated)
			current := writeFile(t, dir, "current.conf", "[[inputs.mem]]\n")
			migrate := func(args ...string) int {
				p := startProcess(t, f.binary, nil, append([]string{"config", "migrate"}, args...)...)
				return p.waitExit(t, 60*time.Second).ExitCode()
			}
			require.Equal(t, 0, migrate("--config", conf, "--config", current))
			data, err := os.ReadFile(conf + ".migrated")
			require.NoError(t, err)
			require.NotContains(t, string(data), "logtarget")
			require.NotContains(t, string(data), "fieldpass")
			_, err = os.Stat(current + ".migrated")
			require.True(t, os.IsNotExist(err), "nothing to migrate, nothing written")
			results[f.name] = string(data)

			require.Equal(t, 1, migrate("--config", conf))
			require.Equal(t, 0, migrate("--config", conf, "--force"))
		})
	}
	if up, ok := results["upstream"]; ok {
		require.Equal(t, up, results["telegraf-tkgi"])
	}
}
