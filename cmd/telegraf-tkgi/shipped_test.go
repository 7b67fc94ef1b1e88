package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
)

// deployment is what the shipped manifests and the server's unit give the
// configurations in configs/: their environment, and the files they mount,
// laid out under a scratch root.
type deployment struct {
	state  string // /var/lib/telegraf-tkgi
	keyDir string // /etc/telegraf-tkgi-key, empty: before the first start
	env    []string
	paths  *strings.Replacer
}

func newDeployment(t *testing.T, root string) deployment {
	t.Helper()
	d := deployment{state: filepath.Join(root, "state"), keyDir: filepath.Join(root, "key")}
	caDir, saDir := filepath.Join(root, "telemetry-ca"), filepath.Join(root, "serviceaccount")
	for _, dir := range []string{d.state, d.keyDir, caDir, saDir} {
		require.NoError(t, os.MkdirAll(dir, 0o700))
	}
	pki := testpki.New(t)
	cert, err := os.ReadFile(pki.CertFile)
	require.NoError(t, err)
	// The telemetry server's CA (ConfigMap) and the pod's ServiceAccount.
	for _, dir := range []string{caDir, saDir} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), cert, 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(saDir, "token"), []byte("sa-token"), 0o600))

	settings, err := os.ReadFile("../../configs/settings.env")
	require.NoError(t, err)
	for _, line := range strings.Split(string(settings), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			d.env = append(d.env, line)
		}
	}
	d.env = append(d.env,
		"NODE_NAME=node-1", "NODE_IP=127.0.0.1", "POD_NAME=app-0", "POD_NAMESPACE=default",
		"APP_METRICS_URL=http://127.0.0.1:1/metrics", "CLUSTER_NAME=prod",
		"TELEMETRY_TOKEN=agents-token-0123456789", "TELEMETRY_EVENTS_TOKEN=events-token-0123456789",
		"TELEMETRY_TLS_CERT="+pki.CertFile, "TELEMETRY_TLS_KEY="+pki.KeyFile,
		"TELEMETRY_STATE_DIR="+d.state,
		// The scaled-out server roles and the relay (configs/*-jetstream.conf).
		"TELEMETRY_NATS_SERVERS=nats://127.0.0.1:4222",
		"TELEMETRY_UPSTREAM_URL=https://telemetry.example.com/ph/api/hyper/send",
		"TELEMETRY_UPSTREAM_TOKEN=upstream-token-0123456789",
		// No cluster to talk to: kube_telemetry fails fast.
		"KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=1",
	)
	d.paths = strings.NewReplacer(
		"/etc/telegraf-tkgi-key", d.keyDir,
		"/etc/telegraf-tkgi-ca", caDir,
		"/var/run/secrets/kubernetes.io/serviceaccount", saDir,
		"/var/lib/telegraf-tkgi", d.state,
	)
	return d
}

// localConf writes conf with the mounted paths moved under the scratch root.
func (d deployment) localConf(t *testing.T, conf string) string {
	t.Helper()
	data, err := os.ReadFile(conf)
	require.NoError(t, err)
	local := filepath.Join(t.TempDir(), filepath.Base(conf))
	require.NoError(t, os.WriteFile(local, []byte(d.paths.Replace(string(data))), 0o600))
	return local
}
