package e2e_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
)

// configs/node.conf, unmodified, reads the kubelet's /metrics/resource on
// https://${NODE_IP}:10250 with the pod's ServiceAccount token and verifies
// the kubelet's certificate against the ServiceAccount's ca.crt: a kubelet
// serving a certificate from the cluster CA is read, a self-signed one is
// refused. The kubelet here is a stand-in serving recorded resource
// metrics on the pod's network namespace's 10250; the ServiceAccount files
// are mounted at their path.
func TestNodeConfVerifiesKubeletTLS(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t)
	clusterCA := testpki.New(t)
	selfSigned := testpki.New(t)
	for _, tc := range []struct {
		name    string
		serving *testpki.PKI
		want    string
	}{
		{name: "kubelet certificate from the cluster CA", serving: clusterCA, want: "node_cpu_usage_seconds_total=1234.5"},
		{name: "self-signed kubelet certificate", serving: selfSigned, want: "x509: certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fixture{t: t, bin: bin, dir: t.TempDir()}
			require.NoError(t, os.Chmod(f.dir, 0o755))
			out := runNodeConf(t, f, clusterCA, tc.serving)
			require.Contains(t, out, tc.want)
			if tc.serving == clusterCA {
				require.Contains(t, out, `container_memory_working_set_bytes`)
				require.NotContains(t, out, " E! ")
			}
		})
	}
}

// runNodeConf runs `telegraf-tkgi --config node.conf --test` for its
// kubelet input as the DaemonSet would, against a kubelet serving with
// serving's certificate, and returns its output.
func runNodeConf(t *testing.T, f *fixture, clusterCA, serving *testpki.PKI) string {
	t.Helper()
	root := repoRoot(t)
	saToken := "node-sa-" + randomToken(t)
	sa := filepath.Join(f.dir, "serviceaccount")
	require.NoError(t, os.Mkdir(sa, 0o755))
	ca, err := os.ReadFile(clusterCA.CertFile)
	require.NoError(t, err)
	for name, content := range map[string]string{"token": saToken, "ca.crt": string(ca), "namespace": agentNamespace} {
		require.NoError(t, os.WriteFile(filepath.Join(sa, name), []byte(content), 0o644))
	}
	mounts := []bindMount{
		{src: filepath.Join(root, "configs", "node.conf"), dst: "/etc/telegraf-tkgi/node.conf"},
		{src: sa, dst: "/var/run/secrets/kubernetes.io/serviceaccount"},
	}
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "NODE_NAME=node-7", "NODE_IP=127.0.0.1",
		"HOST_PROC=/proc", "HOST_SYS=/sys", "HOST_MOUNT_PREFIX=/"}
	settings, err := os.ReadFile(filepath.Join(root, "configs", "settings.env"))
	require.NoError(t, err)
	env = append(env, parseEnvFile(t, string(settings))...)
	script := namespaceScript(mounts, nil, true) + execAs(65532, 65532,
		[]string{"/usr/local/bin/telegraf-tkgi", "--config", "/etc/telegraf-tkgi/node.conf", "--test", "--input-filter", "prometheus"})
	r, w, err := os.Pipe()
	require.NoError(t, err)
	p := f.startInNamespaces("node", script, env, r)
	r.Close()

	ns := joinNetNS(t, p.cmd.Process.Pid)
	ln := ns.listen(t, "127.0.0.1:10250")
	kubelet := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			if req.Header.Get("Authorization") != "Bearer "+saToken {
				http.Error(rw, "Unauthorized", http.StatusUnauthorized)
				return
			}
			if req.URL.Path != "/metrics/resource" {
				// nodes/proxy territory: the DaemonSet may not ask.
				http.Error(rw, "Forbidden", http.StatusForbidden)
				return
			}
			rw.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = io.WriteString(rw, kubeletResourceMetrics)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{serving.Cert}},
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = kubelet.ServeTLS(ln, "", "") }()

	t.Cleanup(func() { kubelet.Close() })
	_, err = io.WriteString(w, "start\n")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.kill()
		t.Fatalf("telegraf-tkgi --test did not finish within a minute:\n%s", tail(p.logText(), 20))
	}
	out := p.logText()
	t.Logf("node.conf --test:\n%s", tail(out, 8))
	return out
}

// What a kubelet's /metrics/resource serves (v1.30+, abridged).
var kubeletResourceMetrics = strings.Join([]string{
	"# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds",
	"# TYPE node_cpu_usage_seconds_total counter",
	"node_cpu_usage_seconds_total 1234.5 1700000000000",
	"# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes",
	"# TYPE node_memory_working_set_bytes gauge",
	"node_memory_working_set_bytes 2.147483648e+09 1700000000000",
	"# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes",
	"# TYPE container_memory_working_set_bytes gauge",
	`container_memory_working_set_bytes{container="web",namespace="shop",pod="web-0"} 1.2e+07 1700000000000`,
	"",
}, "\n")
