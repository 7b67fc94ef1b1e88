package configs_test

import (
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
)

const unitFile = "systemd/telegraf-tkgi-server.service"

// systemd-analyze verify accepts the server's unit, and its security
// report rates it OK: no capabilities, read-only system, private /tmp and
// devices, a system-call filter. ExecStart's binary is bind-mounted into a
// private mount namespace, as verify checks that it exists.
func TestServerUnitVerifies(t *testing.T) {
	binary := testbin.Path(t)
	require.Zero(t, os.Geteuid(), "this test mounts the binary at the unit's ExecStart path in a private mount namespace: run it as root (make test in the CI container does)")
	unit, err := os.ReadFile(unitFile)
	require.NoError(t, err)
	execStart := strings.Fields(directive(t, string(unit), "ExecStart")[0])
	script := `mount -t tmpfs tmpfs "$(dirname "$1")" && touch "$1" && mount --bind "$2" "$1" && ` +
		`systemd-analyze verify "$3" && systemd-analyze security --offline=true --no-pager "$3"`
	out, err := exec.Command("unshare", "--mount", "sh", "-c", script, "sh", execStart[0], binary, unitFile).CombinedOutput()
	require.NoError(t, err, "%s", out)
	m := regexp.MustCompile(`Overall exposure level for telegraf-tkgi-server.service: ([0-9.]+) (\w+)`).FindStringSubmatch(string(out))
	require.NotNil(t, m, "no exposure level in:\n%s", out)
	level, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.LessOrEqual(t, level, 2.0, "systemd-analyze security rates the unit %s %s:\n%s", m[1], m[2], out)
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])

	for _, want := range []string{
		"DynamicUser=yes", "StateDirectory=telegraf-tkgi", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"NoNewPrivileges=yes", "CapabilityBoundingSet=", "SystemCallFilter=@system-service", "Restart=on-failure",
	} {
		k, v, _ := strings.Cut(want, "=")
		require.Contains(t, directive(t, string(unit), k), v, "the unit must set %s", want)
	}
}

// The environment file names every variable configs/server.conf reads,
// and the events endpoint's own token.
func TestServerEnvironmentFile(t *testing.T) {
	env, err := os.ReadFile("systemd/telegraf-tkgi-server.env")
	require.NoError(t, err)
	conf, err := os.ReadFile("server.conf")
	require.NoError(t, err)
	keys := map[string]bool{}
	for _, line := range strings.Split(string(env), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			keys[k] = true
		}
	}
	var missing []string
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)\}`).FindAllStringSubmatch(string(conf), -1) {
		if !keys[m[1]] {
			missing = append(missing, m[1])
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "server.conf reads variables the environment file does not set")
	require.True(t, keys["TELEMETRY_EVENTS_TOKEN"], "the events endpoint's token")
}

// directive returns the values of key in a unit file.
func directive(t *testing.T, unit, key string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
			out = append(out, strings.TrimSpace(v))
		}
	}
	require.NotEmpty(t, out, "no %s= in the unit", key)
	return out
}
