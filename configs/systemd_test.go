package configs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
)

// systemdUnits are the shipped units: each role's configuration, its
// environment file and its state directory ("" for the stateless roles).
var systemdUnits = []struct {
	unit, conf, env, state string
	// nats: the unit runs nats-server, not telegraf-tkgi.
	nats bool
}{
	{unit: "telegraf-tkgi-server", conf: "server.conf", env: "server.env", state: "telegraf-tkgi"},
	{unit: "telegraf-tkgi-server-jetstream", conf: "server-jetstream.conf", env: "server-jetstream.env"},
	{unit: "telegraf-tkgi-lake", conf: "lake-jetstream.conf", env: "lake.env", state: "telegraf-tkgi-lake"},
	{unit: "telegraf-tkgi-relay", conf: "relay-jetstream.conf", env: "relay.env"},
	{unit: "telegraf-tkgi-nats", conf: "nats/nats-server.conf", env: "nats.env", state: "nats", nats: true},
}

// systemd-analyze verify accepts each unit, and its security report rates
// it OK: no capabilities, read-only system, private /tmp and devices, a
// system-call filter. ExecStart's binary is bind-mounted into a private
// mount namespace, as verify checks that it exists. Each unit reads the
// shipped configuration of its role and the environment file the README
// installs.
func TestUnitsVerify(t *testing.T) {
	binaries := map[bool]string{false: testbin.Path(t), true: testnats.Server(t)}
	require.Zero(t, os.Geteuid(), "this test mounts the binary at the unit's ExecStart path in a private mount namespace: run it as root (make test in the CI container does)")
	for _, u := range systemdUnits {
		t.Run(u.unit, func(t *testing.T) {
			unitFile := filepath.Join("systemd", u.unit+".service")
			unit, err := os.ReadFile(unitFile)
			require.NoError(t, err)
			execStart := strings.Fields(directive(t, string(unit), "ExecStart")[0])
			bin := "/usr/local/bin/telegraf-tkgi"
			if u.nats {
				bin = "/usr/local/bin/nats-server"
			}
			require.Equal(t, []string{bin, "--config", "/etc/telegraf-tkgi/" + filepath.Base(u.conf)}, execStart)
			require.Equal(t, []string{"/etc/telegraf-tkgi/" + u.env}, directive(t, string(unit), "EnvironmentFile"))
			script := `mount -t tmpfs tmpfs "$(dirname "$1")" && touch "$1" && mount --bind "$2" "$1" && ` +
				`systemd-analyze verify "$3" && systemd-analyze security --offline=true --no-pager "$3"`
			out, err := exec.Command("unshare", "--mount", "sh", "-c", script, "sh", execStart[0], binaries[u.nats], unitFile).CombinedOutput()
			require.NoError(t, err, "%s", out)
			m := regexp.MustCompile(`Overall exposure level for ` + regexp.QuoteMeta(u.unit) + `.service: ([0-9.]+) (\w+)`).FindStringSubmatch(string(out))
			require.NotNil(t, m, "no exposure level in:\n%s", out)
			level, err := strconv.ParseFloat(m[1], 64)
			require.NoError(t, err)
			require.LessOrEqual(t, level, 2.0, "systemd-analyze security rates the unit %s %s:\n%s", m[1], m[2], out)
			t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])

			for _, want := range []string{
				"DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
				"NoNewPrivileges=yes", "CapabilityBoundingSet=", "SystemCallFilter=@system-service", "Restart=on-failure",
			} {
				k, v, _ := strings.Cut(want, "=")
				require.Contains(t, directive(t, string(unit), k), v, "the unit must set %s", want)
			}
			directive(t, string(unit), "MemoryMax") // a bound on memory
			if u.state != "" {
				require.Equal(t, []string{u.state}, directive(t, string(unit), "StateDirectory"))
			} else {
				require.NotRegexp(t, `(?m)^StateDirectory=`, string(unit), "a stateless role writes nothing")
			}
		})
	}
}

// Each environment file gives exactly what its configuration reads: every
// variable read without a default, nothing read nowhere.
func TestUnitEnvironmentFiles(t *testing.T) {
	for _, u := range systemdUnits {
		t.Run(u.unit, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("systemd", u.unit+".env"))
			require.NoError(t, err)
			given := map[string]bool{}
			for _, line := range strings.Split(string(data), "\n") {
				if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") {
					given[k] = false
				}
			}
			if u.nats {
				// nats-server.conf reads $NATS_SERVER_NAME, nothing else.
				require.Equal(t, map[string]bool{"NATS_SERVER_NAME": false}, given)
				conf, err := os.ReadFile(u.conf)
				require.NoError(t, err)
				require.Contains(t, string(conf), "server_name: $NATS_SERVER_NAME\n")
				return
			}
			conf := readConfEnv(t, u.conf)
			if u.conf == "relay-jetstream.conf" {
				withoutPendingRelayEvents(t, conf, given)
			}
			require.Empty(t, conf.envMismatches(given), "%s.env against %s", u.unit, u.conf)
			if strings.HasPrefix(u.unit, "telegraf-tkgi-server") {
				require.Contains(t, given, "TELEMETRY_EVENTS_TOKEN", "the events endpoint's token")
			}
			// Credentials are read where the unit's LoadCredential puts them.
			unit, err := os.ReadFile(filepath.Join("systemd", u.unit+".service"))
			require.NoError(t, err)
			for _, lc := range regexp.MustCompile(`(?m)^LoadCredential=([^:]+):`).FindAllStringSubmatch(string(unit), -1) {
				require.Contains(t, string(data), "=/run/credentials/"+u.unit+".service/"+lc[1]+"\n")
			}
		})
	}
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
