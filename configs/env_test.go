package configs_test

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// confVar matches a Telegraf environment reference: ${NAME} or
// ${NAME:-default}.
var confVar = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)(:?-[^}]*)?\}`)

var systemProxyOn = regexp.MustCompile(`^\s*use_system_proxy\s*=\s*true\b`)

// proxyVars are read from the process environment by use_system_proxy,
// not through ${...} in the file.
var proxyVars = []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}

// confEnv is what a role's configuration reads from its environment.
type confEnv struct {
	// required are read without a default: unset, startup fails.
	required map[string]bool
	// optional are read with a default.
	optional map[string]bool
	// systemProxy: the file sets use_system_proxy, so the proxy
	// variables are read too.
	systemProxy bool
}

func readConfEnv(t *testing.T, path string) confEnv {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return parseConfEnv(string(data))
}

func parseConfEnv(text string) confEnv {
	e := confEnv{required: map[string]bool{}, optional: map[string]bool{}}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if systemProxyOn.MatchString(line) {
			e.systemProxy = true
		}
		for _, m := range confVar.FindAllStringSubmatch(line, -1) {
			if m[2] == "" {
				e.required[m[1]] = true
			} else {
				e.optional[m[1]] = true
			}
		}
	}
	for k := range e.required {
		delete(e.optional, k)
	}
	return e
}

// envMismatches compares what a deployment gives a process (variable ->
// whether its source may be absent: an optional Secret key) with what its
// configuration reads: every required variable is given by a source that
// is always there, and nothing is given that the configuration does not
// read.
func (e confEnv) envMismatches(given map[string]bool) []string {
	var out []string
	for k := range e.required {
		switch optional, ok := given[k]; {
		case !ok:
			out = append(out, fmt.Sprintf("%s: read without a default, not given", k))
		case optional:
			out = append(out, fmt.Sprintf("%s: read without a default, given by an optional source", k))
		}
	}
	for k := range given {
		if e.required[k] || e.optional[k] || (e.systemProxy && contains(proxyVars, k)) {
			continue
		}
		out = append(out, fmt.Sprintf("%s: given, read nowhere", k))
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// relayEventsVars are the upstream events endpoint and its token, given
// to the relay for its events_url and events_token options.
var relayEventsVars = []string{"TELEMETRY_UPSTREAM_EVENTS_URL", "TELEMETRY_UPSTREAM_EVENTS_TOKEN"}

// withoutPendingRelayEvents takes the events pair out of what a relay is
// given while the relay has no events options (its sample.conf, the
// options this build compiles, names no events_url), so the deployments
// may carry them ahead of it; once it has them, relay-jetstream.conf must
// read both, with a default.
func withoutPendingRelayEvents(t *testing.T, conf confEnv, given map[string]bool) {
	t.Helper()
	sample, err := os.ReadFile("../plugins/inputs/vmware_telemetry_stream/sample.conf")
	require.NoError(t, err)
	if strings.Contains(string(sample), "events_url") {
		for _, k := range relayEventsVars {
			require.True(t, conf.optional[k], "relay-jetstream.conf must read %s with a default (it is optional)", k)
		}
		return
	}
	t.Logf("the relay has no events_url option: %v stay unread", relayEventsVars)
	for _, k := range relayEventsVars {
		delete(given, k)
	}
}

func TestEnvMismatches(t *testing.T) {
	conf := `
[[inputs.x]]
  url = "${URL}"
  ca = "${CA:-}"
  # token = "${COMMENTED}"
  use_system_proxy = true
  listen = "${LISTEN:-:9273}"
`
	for _, tc := range []struct {
		name  string
		conf  string
		given map[string]bool
		want  []string
	}{
		{name: "required and optional given, proxy read by use_system_proxy", conf: conf,
			given: map[string]bool{"URL": false, "CA": false, "HTTPS_PROXY": false}},
		{name: "an optional one may be left out", conf: conf, given: map[string]bool{"URL": false}},
		{name: "a required one missing", conf: conf, given: map[string]bool{"CA": false},
			want: []string{"URL: read without a default, not given"}},
		{name: "a required one from an optional Secret key", conf: conf, given: map[string]bool{"URL": true},
			want: []string{"URL: read without a default, given by an optional source"}},
		{name: "a commented reference is not read", conf: conf, given: map[string]bool{"URL": false, "COMMENTED": false},
			want: []string{"COMMENTED: given, read nowhere"}},
		{name: "proxy variables without use_system_proxy are read nowhere", conf: `url = "${URL}"`,
			given: map[string]bool{"URL": false, "NO_PROXY": false},
			want:  []string{"NO_PROXY: given, read nowhere"}},
		{name: "a variable read with and without default is required", conf: "a = \"${A:-x}\"\nb = \"${A}\"",
			given: map[string]bool{}, want: []string{"A: read without a default, not given"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, parseConfEnv(tc.conf).envMismatches(tc.given))
		})
	}
}
