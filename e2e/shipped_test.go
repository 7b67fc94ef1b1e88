package e2e_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The operator's path, as shipped: the telemetry server started the way
// configs/systemd/telegraf-tkgi-server.service starts it (its ExecStart,
// EnvironmentFile, LoadCredential and StateDirectory, as an unprivileged
// user without capabilities) with configs/server.conf unmodified, and the
// agent started the way the Deployment that `kubectl apply -k configs/`
// created on the real kube-apiserver runs it (its args, environment from
// the settings ConfigMap and the Secrets configs/README.md has the operator
// create, its volumes mounted at their paths, the pod's ServiceAccount
// token minted for it under the shipped RBAC, its user), with
// configs/agent.conf unmodified. Each process has its own mount and network
// namespaces, so every absolute path and fixed port of the shipped files is
// used as is. Over TLS with a private CA the agent trusts and a token on
// both sides, the lake holds every batch once.
func TestShippedPair(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes: agent.conf gathers within 60s and flushes every 60-75s")
	}
	requireRoot(t)
	f := newFixture(t)
	agentToken := "agents-" + randomToken(t)
	pki := testpki.NewFor(t, []string{"telemetry.tkgi-system.svc", outsideServer})
	createAgentObjects(t, f.cluster, pki, agentToken)

	// Each pair in its own namespaces: they run side by side.
	t.Run("direct", func(t *testing.T) {
		t.Parallel()
		runShippedPair(t, pki, agentToken, false)
	})
	// settings.env edited as an operator behind a corporate proxy would:
	// HTTPS_PROXY set, the vendor's server on an outside name. The
	// telemetry goes through Debian's tinyproxy; the Kubernetes API calls
	// (to a service host not in NO_PROXY) do not.
	t.Run("behind a proxy", func(t *testing.T) {
		t.Parallel()
		runShippedPair(t, pki, agentToken, true)
	})
}

const (
	agentNamespace = "telegraf-tkgi"
	// The agent pod's API server: what KUBERNETES_SERVICE_HOST names,
	// mapped to the service IP in the pod's /etc/hosts. A name the test
	// apiserver's certificate carries, not in settings.env's NO_PROXY.
	apiServiceHost = "kubernetes"
	apiServiceIP   = "10.96.0.1"
	// The vendor's telemetry server behind the proxy.
	outsideServer = "telemetry.example.com"
	// The transient user systemd's DynamicUser= would pick.
	serverUID = 61900
)

func runShippedPair(t *testing.T, pki *testpki.PKI, agentToken string, viaProxy bool) {
	f := newFixture(t)
	c := f.cluster

	// --- The server, as its systemd unit starts it.
	srv, server, serverNS := f.startUnitServer(pki, agentToken)

	var proxyAddr, proxyLog string
	if viaProxy {
		proxyAddr, proxyLog = startProxyIn(t, f.dir, server.cmd.Process.Pid)
	}

	// --- The agent, as the Deployment runs it.
	pod := agentPod(t, c, f.dir)
	if viaProxy {
		pod.env["HTTPS_PROXY"] = "http://" + proxyAddr
		pod.env["TELEMETRY_URL"] = strings.Replace(pod.env["TELEMETRY_URL"], "telemetry.tkgi-system.svc", outsideServer, 1)
	}
	stdin, agent := f.startAgentPod(pod)
	agentNS := joinNetNS(t, agent.cmd.Process.Pid)
	apiHostPort := strings.TrimPrefix(c.APIURL, "https://")
	relay(agentNS.listen(t, net.JoinHostPort(apiServiceIP, "443")), func() (net.Conn, error) {
		return net.DialTimeout("tcp", apiHostPort, 5*time.Second)
	})
	if viaProxy {
		relay(agentNS.listen(t, proxyAddr), func() (net.Conn, error) { return serverNS.dial(proxyAddr) })
	} else {
		relay(agentNS.listen(t, "127.0.0.1:8443"), func() (net.Conn, error) { return serverNS.dial("127.0.0.1:8443") })
	}
	_, err := io.WriteString(stdin, "start\n")
	require.NoError(t, err)
	require.NoError(t, stdin.Close())

	// agent.conf gathers once at start (within collection_jitter, 60s) and
	// flushes every 60s (+15s jitter): the first batches reach the lake
	// within about two minutes.
	lake := filepath.Join(srv.stateDir, "telemetry.jsonl")
	pollUntil(t, 4*time.Minute, func() bool {
		for _, m := range readLake(t, lake) {
			if m.Name == "kube_telemetry_cluster" {
				return true
			}
		}
		return false
	}, func() string {
		return "no kube_telemetry_cluster in the lake; agent log:\n" + tail(agent.logText(), 30) +
			"\nserver log:\n" + tail(server.logText(), 30)
	})

	// Every metric the agent sent is in the lake once: the agent's own
	// statistics (inputs.internal, every 60s, on its prometheus_client)
	// and the listener's agree with the lake.
	var a, s map[string]float64
	var records int
	pollUntil(t, 3*time.Minute, func() bool {
		records = len(readLake(t, lake))
		var errA, errS error
		a, errA = scrapeIn(agentNS, "127.0.0.1:9273")
		s, errS = scrapeIn(serverNS, "127.0.0.1:9273")
		if errA != nil || errS != nil {
			return false
		}
		sent := a["internal_vmware_telemetry_metrics_sent"]
		return records > 0 && float64(records) == sent && sent == s["internal_vmware_telemetry_listener_metrics_stored"] &&
			a["internal_vmware_telemetry_batches_sent"] > 0 &&
			a["internal_vmware_telemetry_batches_sent"] == s["internal_vmware_telemetry_listener_batches_stored"]
	}, func() string {
		return fmt.Sprintf("statistics never agreed with the lake (%d records): agent metrics_sent %v batches_sent %v "+
			"batches_rejected %v; listener metrics_stored %v batches_stored %v auth_failures %v",
			records, a["internal_vmware_telemetry_metrics_sent"], a["internal_vmware_telemetry_batches_sent"],
			a["internal_vmware_telemetry_batches_rejected"], s["internal_vmware_telemetry_listener_metrics_stored"],
			s["internal_vmware_telemetry_listener_batches_stored"], s["internal_vmware_telemetry_listener_auth_failures"])
	})
	require.Zero(t, a["internal_vmware_telemetry_batches_rejected"], "the server refused batches")
	require.Zero(t, a["internal_vmware_telemetry_duplicates"], "the agent was told a batch was stored before")
	require.Zero(t, s["internal_vmware_telemetry_listener_auth_failures"])
	require.Zero(t, s["internal_vmware_telemetry_listener_duplicates"])
	batchesSent := a["internal_vmware_telemetry_batches_sent"]

	agent.stop()
	server.stop()
	lakeMetrics := readLake(t, lake)
	require.Len(t, lakeMetrics, records, "the agent's last flush sent metrics it had not counted")
	seen := map[string]bool{}
	names := map[string]int{}
	for _, m := range lakeCanonical(t, lakeMetrics, "standard") {
		require.False(t, seen[m], "stored twice: %s", m)
		seen[m] = true
	}
	for _, m := range lakeMetrics {
		names[m.Name]++
	}
	for _, want := range []string{"kube_telemetry_cluster", "kube_telemetry_nodes", "kube_telemetry_pods", "kube_telemetry_objects"} {
		require.NotZero(t, names[want], "no %s in the lake", want)
	}
	// Standard level: the cluster's node names never reach the lake.
	lakeText, err := os.ReadFile(lake)
	require.NoError(t, err)
	nodeNames, err := c.Kubectl(c.AdminKubeconfig, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
	require.NoError(t, err)
	for _, n := range strings.Fields(nodeNames) {
		require.NotContains(t, string(lakeText), `"`+n+`"`)
	}
	for _, line := range strings.Split(agent.logText(), "\n") {
		require.NotContains(t, line, " E! ", "the agent logged an error")
	}
	t.Logf("%d metrics in %v batches sent by the agent, stored by the listener and in the lake once; measurements: %v",
		records, batchesSent, names)

	if viaProxy {
		data, err := os.ReadFile(proxyLog)
		require.NoError(t, err)
		var requests []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "Request (file descriptor") {
				requests = append(requests, line)
			}
		}
		require.NotEmpty(t, requests, "the telemetry did not go through the proxy")
		for _, r := range requests {
			require.Contains(t, r, "CONNECT "+outsideServer+":8443", "only the telemetry may go through the proxy")
			require.NotContains(t, r, apiServiceHost+":")
		}
		t.Logf("tinyproxy: %d requests, all CONNECT %s:8443; none to the API server", len(requests), outsideServer)
	}
}

// --- The server side: configs/systemd.

// startUnitServer starts the server the way its systemd unit does, in its
// own namespaces, and waits until it listens on :8443.
func (f *fixture) startUnitServer(pki *testpki.PKI, agentToken string) (serverSetup, *process, *netns) {
	t := f.t
	t.Helper()
	srv := serverFromUnit(t, repoRoot(t), f.dir, pki, agentToken)
	server := f.startInNamespaces("server", srv.script, srv.env, nil)
	serverNS := joinNetNS(t, server.cmd.Process.Pid)
	waitListening(t, serverNS, "127.0.0.1:8443", server)
	return srv, server, serverNS
}

type serverSetup struct {
	script   string
	env      []string
	stateDir string
}

// serverFromUnit prepares configs/systemd/telegraf-tkgi-server.service as
// the operator installs it: the environment file with the tokens filled
// in, the TLS certificate and key where LoadCredential= reads them.
func serverFromUnit(t *testing.T, root, dir string, pki *testpki.PKI, agentToken string) serverSetup {
	t.Helper()
	return fromUnit(t, root, dir, unitInstall{
		unit: "telegraf-tkgi-server",
		env: map[string]string{
			"TELEMETRY_TOKEN":        agentToken,
			"TELEMETRY_EVENTS_TOKEN": "events-" + randomToken(t),
		},
		files: map[string]string{"/etc/telegraf-tkgi/tls/server.crt": pki.CertFile, "/etc/telegraf-tkgi/tls/server.key": pki.KeyFile},
	})
}

// unitInstall is what the operator does for one of configs/systemd's
// units: the values set in its environment file, and the files installed
// on the machine (path there -> the test's file).
type unitInstall struct {
	unit  string
	env   map[string]string
	files map[string]string
	// wait: the script reads a line on stdin before the exec, so the test
	// can put relays into the unit's network namespace first.
	wait bool
}

// fromUnit reads the unit's ExecStart, EnvironmentFile, LoadCredential=
// and StateDirectory= and prepares what systemd would: the environment
// file as the operator edits it, the credentials directory, the state
// directory owned by the service's user, the role's shipped configuration
// at the path ExecStart reads, the operator's other files at theirs.
func fromUnit(t *testing.T, root, dir string, in unitInstall) serverSetup {
	t.Helper()
	unitPath := filepath.Join(root, "configs", "systemd", in.unit+".service")
	unit := unitDirectives(t, unitPath)
	unitName := filepath.Base(unitPath)
	execStart := strings.Fields(unitOne(t, unit, "ExecStart"))
	require.Equal(t, "--config", execStart[1])

	var mounts []bindMount
	// The operator installs the role's configuration where ExecStart reads it.
	mounts = append(mounts, bindMount{src: filepath.Join(root, "configs", filepath.Base(execStart[2])), dst: execStart[2]})

	// EnvironmentFile, with the operator's values.
	envTemplate, err := os.ReadFile(filepath.Join(root, "configs", "systemd", in.unit+".env"))
	require.NoError(t, err)
	filled := string(envTemplate)
	for k, v := range in.env {
		line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + `=.*$`)
		require.Regexp(t, line, filled, "the environment file has no %s= line", k)
		filled = line.ReplaceAllLiteralString(filled, k+"="+v)
	}
	envFile := filepath.Join(dir, in.unit+".env")
	require.NoError(t, os.WriteFile(envFile, []byte(filled), 0o600))
	mounts = append(mounts, bindMount{src: envFile, dst: unitOne(t, unit, "EnvironmentFile")})
	env := parseEnvFile(t, filled)

	// LoadCredential=name:path: the operator's files, copied by systemd
	// into the unit's credentials directory, owned by the service's user.
	credentials := map[string]bool{}
	if len(unit["LoadCredential"]) > 0 {
		creds := filepath.Join(dir, in.unit+"-credentials")
		require.NoError(t, os.Mkdir(creds, 0o500))
		for _, lc := range unit["LoadCredential"] {
			name, path, ok := strings.Cut(lc, ":")
			require.True(t, ok, "LoadCredential=%s", lc)
			src, ok := in.files[path]
			require.True(t, ok, "LoadCredential of %s: the test does not know that file", path)
			credentials[path] = true
			data, err := os.ReadFile(src)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(creds, name), data, 0o400))
			require.NoError(t, os.Chown(filepath.Join(creds, name), serverUID, serverUID))
		}
		require.NoError(t, os.Chown(creds, serverUID, serverUID))
		credsDir := "/run/credentials/" + unitName
		mounts = append(mounts, bindMount{src: creds, dst: credsDir})
		env = append(env, "CREDENTIALS_DIRECTORY="+credsDir)
	}
	for dst, src := range in.files {
		if !credentials[dst] {
			mounts = append(mounts, bindMount{src: src, dst: dst})
		}
	}

	var state string
	if len(unit["StateDirectory"]) > 0 {
		state = filepath.Join(dir, in.unit+"-state")
		require.NoError(t, os.Mkdir(state, 0o700))
		require.NoError(t, os.Chown(state, serverUID, serverUID))
		stateDir := "/var/lib/" + unitOne(t, unit, "StateDirectory")
		mounts = append(mounts, bindMount{src: state, dst: stateDir})
		env = append(env, "STATE_DIRECTORY="+stateDir)
	}

	env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	script := namespaceScript(mounts, nil, in.wait) + execAs(serverUID, serverUID, execStart)
	return serverSetup{script: script, env: env, stateDir: state}
}

func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = append(out[k], v)
		}
	}
	return out
}

func unitOne(t *testing.T, unit map[string][]string, key string) string {
	t.Helper()
	require.Len(t, unit[key], 1, "the unit must set %s= once", key)
	return unit[key][0]
}

// parseEnvFile reads KEY=VALUE lines as systemd's EnvironmentFile= does
// (comments and blank lines skipped, surrounding quotes removed).
func parseEnvFile(t *testing.T, text string) []string {
	t.Helper()
	var env []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "environment file line %q", line)
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		env = append(env, k+"="+v)
	}
	return env
}

// startProxyIn starts Debian's tinyproxy (scripts/tinyproxy.sh) in the
// server's network namespace, resolving the outside server's name to it.
func startProxyIn(t *testing.T, dir string, serverPID int) (addr, log string) {
	t.Helper()
	script := filepath.Join(repoRoot(t), "scripts", "tinyproxy.sh")
	proxyDir := filepath.Join(dir, "tinyproxy")
	hosts := filepath.Join(dir, "proxy-hosts")
	require.NoError(t, os.WriteFile(hosts, []byte("127.0.0.1 localhost "+outsideServer+"\n"), 0o644))
	cmd := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", serverPID), "unshare", "--mount", "sh", "-c",
		`mount --bind "$1" /etc/hosts && exec "$2" start "$3"`, "sh", hosts, script, proxyDir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "scripts/tinyproxy.sh start: %s", stderr.String())
	t.Cleanup(func() { _ = exec.Command(script, "stop", proxyDir).Run() })
	return strings.TrimSpace(string(out)), filepath.Join(proxyDir, "tinyproxy.log")
}

// --- The agent side: the Deployment on the real apiserver.

type podSetup struct {
	command []string
	env     map[string]string
	mounts  []bindMount
	uid     int
	gid     int
}

// deploymentSpec is what the test reads of the applied Deployment.
type deploymentSpec struct {
	Spec struct {
		Template struct {
			Spec struct {
				ServiceAccountName string
				SecurityContext    struct{ RunAsUser, RunAsGroup, FSGroup *int }
				Containers         []struct {
					Args    []string
					EnvFrom []struct{ ConfigMapRef, SecretRef *struct{ Name string } }
					Env     []struct {
						Name, Value string
						ValueFrom   *struct {
							FieldRef     *struct{ FieldPath string }
							SecretKeyRef *struct{ Name, Key string }
						}
					}
					VolumeMounts []struct {
						Name, MountPath string
						ReadOnly        bool
					}
				}
				Volumes []struct {
					Name      string
					ConfigMap *struct{ Name string }
					Secret    *struct{ SecretName string }
					EmptyDir  *struct{}
				}
			}
		}
	}
}

func kubectlFor(t *testing.T, c *testkube.Cluster) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, err := c.Kubectl(c.AdminKubeconfig, args...)
		require.NoError(t, err, "kubectl %s: %s", strings.Join(args, " "), out)
		return out
	}
}

// createAgentObjects applies the kustomization and creates the Secrets and
// the CA ConfigMap with configs/README.md's commands.
func createAgentObjects(t *testing.T, c *testkube.Cluster, pki *testpki.PKI, agentToken string) {
	t.Helper()
	kubectl := kubectlFor(t, c)
	kubectl("apply", "-k", filepath.Join(repoRoot(t), "configs"))
	ns := []string{"-n", agentNamespace}
	for _, obj := range []string{"secret/telegraf-tkgi-telemetry-token", "secret/telegraf-tkgi-pseudonym-key", "configmap/telegraf-tkgi-telemetry-ca"} {
		kubectl(append(ns, "delete", obj, "--ignore-not-found")...)
	}
	kubectl(append(ns, "create", "secret", "generic", "telegraf-tkgi-telemetry-token", "--from-literal=token="+agentToken)...)
	kubectl(append(ns, "create", "secret", "generic", "telegraf-tkgi-pseudonym-key", "--from-literal=key="+pseudonymKey)...)
	kubectl(append(ns, "create", "configmap", "telegraf-tkgi-telemetry-ca", "--from-file=ca.crt="+pki.CertFile)...)
}

// agentPod lays out what the kubelet would give the applied Deployment's
// container.
func agentPod(t *testing.T, c *testkube.Cluster, dir string) podSetup {
	t.Helper()
	kubectl := kubectlFor(t, c)
	ns := []string{"-n", agentNamespace}
	var d deploymentSpec
	require.NoError(t, json.Unmarshal([]byte(kubectl(append(ns, "get", "deployment/telegraf-tkgi-agent", "-o", "json")...)), &d))
	spec := d.Spec.Template.Spec
	require.Len(t, spec.Containers, 1)
	ctr := spec.Containers[0]
	data := func(kind, name string) map[string]string {
		var obj struct{ Data map[string]string }
		require.NoError(t, json.Unmarshal([]byte(kubectl(append(ns, "get", kind+"/"+name, "-o", "json")...)), &obj))
		if kind == "secret" {
			for k, v := range obj.Data {
				b, err := base64.StdEncoding.DecodeString(v)
				require.NoError(t, err)
				obj.Data[k] = string(b)
			}
		}
		return obj.Data
	}

	pod := podSetup{
		// The image's ENTRYPOINT is /usr/bin/telegraf-tkgi; the test mounts
		// the binary in /usr/local/bin, which it can cover with a tmpfs.
		command: append([]string{"/usr/local/bin/telegraf-tkgi"}, ctr.Args...),
		env: map[string]string{
			"PATH":                    "/usr/local/bin:/usr/bin:/bin",
			"KUBERNETES_SERVICE_HOST": apiServiceHost,
			"KUBERNETES_SERVICE_PORT": "443",
		},
		uid: *spec.SecurityContext.RunAsUser,
		gid: *spec.SecurityContext.RunAsGroup,
	}
	for _, ef := range ctr.EnvFrom {
		require.NotNil(t, ef.ConfigMapRef, "envFrom other than a ConfigMap")
		for k, v := range data("configmap", ef.ConfigMapRef.Name) {
			pod.env[k] = v
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			pod.env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			require.Equal(t, "metadata.namespace", e.ValueFrom.FieldRef.FieldPath)
			pod.env[e.Name] = agentNamespace
		case e.ValueFrom.SecretKeyRef != nil:
			v, ok := data("secret", e.ValueFrom.SecretKeyRef.Name)[e.ValueFrom.SecretKeyRef.Key]
			require.True(t, ok, "secret %s has no key %s", e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			pod.env[e.Name] = v
		}
	}

	// Volumes, as the kubelet mounts them (files 0644, emptyDir owned by
	// the fsGroup).
	volumes := filepath.Join(dir, "volumes")
	for _, vm := range ctr.VolumeMounts {
		src := filepath.Join(volumes, vm.Name)
		require.NoError(t, os.MkdirAll(src, 0o755))
		var files map[string]string
		for _, v := range spec.Volumes {
			if v.Name != vm.Name {
				continue
			}
			switch {
			case v.ConfigMap != nil:
				files = data("configmap", v.ConfigMap.Name)
			case v.Secret != nil:
				files = data("secret", v.Secret.SecretName)
			case v.EmptyDir != nil:
				require.NoError(t, os.Chown(src, pod.uid, *spec.SecurityContext.FSGroup))
			}
		}
		for name, content := range files {
			require.NoError(t, os.WriteFile(filepath.Join(src, name), []byte(content), 0o644))
		}
		pod.mounts = append(pod.mounts, bindMount{src: src, dst: vm.MountPath})
	}

	// The ServiceAccount, as the kubelet projects it.
	sa := filepath.Join(volumes, "serviceaccount")
	require.NoError(t, os.MkdirAll(sa, 0o755))
	token := strings.TrimSpace(kubectl(append(ns, "create", "token", spec.ServiceAccountName, "--duration", "1h")...))
	ca, err := os.ReadFile(c.CAFile)
	require.NoError(t, err)
	for name, content := range map[string]string{"token": token, "ca.crt": string(ca), "namespace": agentNamespace} {
		require.NoError(t, os.WriteFile(filepath.Join(sa, name), []byte(content), 0o644))
	}
	pod.mounts = append(pod.mounts, bindMount{src: sa, dst: "/var/run/secrets/kubernetes.io/serviceaccount"})

	// The pod's /etc/hosts: the cluster's names (the service DNS the
	// relay stands in for).
	hosts := filepath.Join(dir, "agent-hosts")
	require.NoError(t, os.WriteFile(hosts, []byte(fmt.Sprintf("127.0.0.1 localhost telemetry.tkgi-system.svc\n%s %s\n",
		apiServiceIP, apiServiceHost)), 0o644))
	nsswitch := filepath.Join(dir, "agent-nsswitch.conf")
	require.NoError(t, os.WriteFile(nsswitch, []byte("hosts: files\n"), 0o644))
	pod.mounts = append(pod.mounts, bindMount{src: hosts, dst: "/etc/hosts"}, bindMount{src: nsswitch, dst: "/etc/nsswitch.conf"})
	return pod
}

// startAgentPod starts the agent in its own namespaces; it waits for a line
// on the returned writer (the test's relays in place) before it execs.
func (f *fixture) startAgentPod(pod podSetup) (io.WriteCloser, *process) {
	f.t.Helper()
	script := namespaceScript(pod.mounts, []string{"ip addr add " + apiServiceIP + "/32 dev lo"}, true) +
		execAs(pod.uid, pod.gid, pod.command)
	env := make([]string, 0, len(pod.env))
	for k, v := range pod.env {
		env = append(env, k+"="+v)
	}
	r, w, err := os.Pipe()
	require.NoError(f.t, err)
	p := f.startInNamespaces("agent", script, env, r)
	r.Close()
	return w, p
}

// --- Namespaces.

type bindMount struct{ src, dst string }

// namespaceScript sets up a fresh network namespace (loopback up, plus
// netSetup) and a private mount namespace in which /etc, /run, /var/lib and
// /usr/local/bin hold only the given bind mounts and the binary, then (wait)
// reads one line of stdin before the exec that follows.
func namespaceScript(mounts []bindMount, netSetup []string, wait bool) string {
	var b strings.Builder
	b.WriteString("set -e\nip link set lo up\n")
	for _, s := range netSetup {
		b.WriteString(s + "\n")
	}
	b.WriteString("binary=$TELEGRAF_TKGI_BIN_SRC setpriv=$SETPRIV\nunset TELEGRAF_TKGI_BIN_SRC SETPRIV\n")
	for _, base := range []string{"/etc", "/run", "/var/lib", "/usr/local/bin"} {
		fmt.Fprintf(&b, "mount -t tmpfs -o mode=0755 tmpfs %s\n", base)
	}
	for _, m := range mounts {
		fmt.Fprintf(&b, "if [ -d %[1]s ]; then mkdir -p %[2]s; else mkdir -p \"$(dirname %[2]s)\" && touch %[2]s; fi\nmount --bind %[1]s %[2]s\n",
			shellQuote(m.src), shellQuote(m.dst))
	}
	b.WriteString("touch /usr/local/bin/telegraf-tkgi\nmount --bind \"$binary\" /usr/local/bin/telegraf-tkgi\n")
	if wait {
		b.WriteString("read -r _\n")
	}
	return b.String()
}

// execAs runs argv as uid:gid with no capabilities and no way to gain any
// (DynamicUser= with CapabilityBoundingSet= and NoNewPrivileges=, or the
// pod's runAsUser with capabilities dropped).
func execAs(uid, gid int, argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	return fmt.Sprintf("exec \"$setpriv\" --reuid=%d --regid=%d --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- %s\n",
		uid, gid, strings.Join(quoted, " "))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// startInNamespaces runs script under `unshare --net --mount` with exactly
// env (plus the binary's and setpriv's locations for the script).
func (f *fixture) startInNamespaces(name, script string, env []string, stdin *os.File) *process {
	f.t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	require.NoError(f.t, err, "setpriv (util-linux)")
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(append([]string(nil), env...), "TELEGRAF_TKGI_BIN_SRC="+f.bin, "SETPRIV="+setpriv)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	return f.launch(name, cmd)
}

// scrapeIn reads a prometheus_client endpoint inside a namespace: the sum
// of each metric's samples by name.
func scrapeIn(n *netns, addr string) (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return n.dial(addr) },
	}}
	resp, err := client.Get((&url.URL{Scheme: "http", Host: addr, Path: "/metrics"}).String())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return sampleSums(resp.Body)
}

// sampleSums reads the Prometheus text format: the sum of each metric's
// samples by name.
func sampleSums(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		name, _, _ := strings.Cut(fields[0], "{")
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
}

// pollUntil checks cond every half second until it holds, failing with msg()
// after timeout.
func pollUntil(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	f, err := os.Open("/dev/urandom")
	require.NoError(t, err)
	defer f.Close()
	_, err = io.ReadFull(f, b)
	require.NoError(t, err)
	return fmt.Sprintf("%x", b)
}

// The server's unit alone: started the way its ExecStart, EnvironmentFile,
// LoadCredential= and StateDirectory= say, as an unprivileged user without
// capabilities, configs/server.conf answers a batch over TLS with the
// token 201, stores it in the state directory's lake, and refuses a
// request without the token.
func TestServerUnitStartsServer(t *testing.T) {
	requireRoot(t)
	bin := testbin.Path(t)
	f := &fixture{t: t, bin: bin, dir: t.TempDir()}
	require.NoError(t, os.Chmod(f.dir, 0o755))
	pki := testpki.NewFor(t, []string{"telemetry.tkgi-system.svc"})
	token := "agents-" + randomToken(t)
	srv := serverFromUnit(t, repoRoot(t), f.dir, pki, token)
	server := f.startInNamespaces("server", srv.script, srv.env, nil)
	ns := joinNetNS(t, server.cmd.Process.Pid)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pki.Pool, ServerName: "telemetry.tkgi-system.svc"},
		DialContext:     func(context.Context, string, string) (net.Conn, error) { return ns.dial("127.0.0.1:8443") },
	}}
	body := fmt.Sprintf("kube_telemetry_pods,cluster_uid=%s total=3i 1700000000000000000\n", strings.Repeat("ab", telemetry.PseudonymLength/2))
	post := func(token string) (int, error) {
		req, err := http.NewRequest(http.MethodPost, "https://telemetry.tkgi-system.svc:8443"+telemetry.DefaultPath+
			"?_c="+collectorID+"&_i=0123456789abcdef0123456789abcdef", strings.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", telemetry.ContentType)
		req.Header.Set(telemetry.HeaderLevel, "standard")
		req.Header.Set(telemetry.HeaderIdempotencyKey, "unit-"+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var status int
	var err error
	pollUntil(t, time.Minute, func() bool { status, err = post(token); return err == nil },
		func() string { return fmt.Sprintf("no answer on :8443 (%v):\n%s", err, tail(server.logText(), 20)) })
	require.Equal(t, http.StatusCreated, status)
	status, err = post("")
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, status)
	server.stop()

	lake := readLake(t, filepath.Join(srv.stateDir, "telemetry.jsonl"))
	require.Len(t, lake, 1)
	require.Equal(t, "kube_telemetry_pods", lake[0].Name)
	st, err := os.Stat(filepath.Join(srv.stateDir, "listener-dedup.log"))
	require.NoError(t, err)
	require.Equal(t, uint32(serverUID), st.Sys().(*syscall.Stat_t).Uid, "the state is written by the service's user")
}
