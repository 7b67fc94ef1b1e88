package configs_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
)

const namespace = "telegraf-tkgi"

func TestMain(m *testing.M) {
	code := m.Run()
	testkube.Stop()
	os.Exit(code)
}

func kubectl(t *testing.T, c *testkube.Cluster, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(c.AdminKubeconfig, args...)
	require.NoError(t, err, "kubectl %s:\n%s", strings.Join(args, " "), out)
	return out
}

// applied applies the kustomization and the sidecar example once per run.
func applied(t *testing.T) *testkube.Cluster {
	t.Helper()
	c := testkube.Get(t)
	kubectl(t, c, "apply", "-k", ".")
	kubectl(t, c, "-n", namespace, "apply", "-f", "kubernetes/examples/sidecar.yaml")
	return c
}

func TestManifestsApplyOnRealAPIServer(t *testing.T) {
	c := applied(t)
	for _, object := range []string{
		"namespace/" + namespace,
		"clusterrole/telegraf-tkgi-kube-telemetry", "clusterrolebinding/telegraf-tkgi-agent",
		"clusterrole/telegraf-tkgi-node", "clusterrolebinding/telegraf-tkgi-node",
		"-n " + namespace + " serviceaccount/telegraf-tkgi-agent",
		"-n " + namespace + " deployment/telegraf-tkgi-agent",
		"-n " + namespace + " daemonset/telegraf-tkgi-node",
		"-n " + namespace + " service/telegraf-tkgi-node",
		"-n " + namespace + " service/telegraf-tkgi-agent",
		"-n " + namespace + " configmap/telegraf-tkgi-sidecar",
		"-n " + namespace + " deployment/example-app",
		"-n " + namespace + " networkpolicy/telegraf-tkgi-metrics",
	} {
		kubectl(t, c, append(append([]string{"get"}, strings.Fields(object)...), "-o", "name")...)
	}

	// The agent runs as exactly one hardened replica.
	out := kubectl(t, c, "-n", namespace, "get", "deployment/telegraf-tkgi-agent", "-o",
		"jsonpath={.spec.replicas} {.spec.template.spec.securityContext.runAsNonRoot} "+
			"{.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem} "+
			"{.spec.template.spec.containers[0].resources.limits.memory} "+
			"{.spec.template.spec.containers[0].livenessProbe.httpGet.port}")
	require.Equal(t, "1 true true 256Mi health", out)

	// The telemetry server's token comes from its Secret, its CA is
	// mounted read-only where agent.conf's tls_ca points.
	out = kubectl(t, c, "-n", namespace, "get", "deployment/telegraf-tkgi-agent", "-o",
		`jsonpath={.spec.template.spec.containers[0].env[?(@.name=="TELEMETRY_TOKEN")].valueFrom.secretKeyRef.name} `+
			`{.spec.template.spec.containers[0].volumeMounts[?(@.name=="telemetry-ca")].mountPath} `+
			`{.spec.template.spec.containers[0].volumeMounts[?(@.name=="telemetry-ca")].readOnly} `+
			`{.spec.template.spec.volumes[?(@.name=="telemetry-ca")].configMap.name}`)
	require.Equal(t, "telegraf-tkgi-telemetry-token /etc/telegraf-tkgi-ca true telegraf-tkgi-telemetry-ca", out)
	agentConf, err := os.ReadFile("agent.conf")
	require.NoError(t, err)
	require.Contains(t, string(agentConf), `token = "${TELEMETRY_TOKEN}"`)
	require.Contains(t, string(agentConf), `tls_ca = "/etc/telegraf-tkgi-ca/ca.crt"`)

	// The generated ConfigMaps carry the files config check validates.
	for _, role := range []string{"agent", "node"} {
		name := strings.TrimSpace(kubectl(t, c, "-n", namespace, "get", "configmap", "-o", "name",
			"-l", "app.kubernetes.io/part-of=telegraf-tkgi", "--sort-by=.metadata.name"))
		require.Contains(t, name, "telegraf-tkgi-"+role+"-")
		var cm string
		for _, n := range strings.Fields(name) {
			if strings.HasPrefix(n, "configmap/telegraf-tkgi-"+role+"-") {
				cm = n
			}
		}
		data := kubectl(t, c, "-n", namespace, "get", cm, "-o", "jsonpath={.data."+role+"\\.conf}")
		want, err := os.ReadFile(role + ".conf")
		require.NoError(t, err)
		require.Equal(t, string(want), data)
	}
}

// The headless Service must name the port prometheus_client listens on, so
// Prometheus's endpoints discovery reaches every node pod: the field
// report's "the Service does not follow the port" trap.
func TestNodeServiceFollowsPrometheusPort(t *testing.T) {
	c := applied(t)
	out := kubectl(t, c, "-n", namespace, "get", "service/telegraf-tkgi-node", "-o",
		"jsonpath={.spec.clusterIP} {.spec.ports[0].name} {.spec.ports[0].targetPort}")
	require.Equal(t, "None metrics metrics", out)

	port := kubectl(t, c, "-n", namespace, "get", "daemonset/telegraf-tkgi-node", "-o",
		`jsonpath={.spec.template.spec.containers[0].ports[?(@.name=="metrics")].containerPort}`)
	conf, err := os.ReadFile("node.conf")
	require.NoError(t, err)
	require.Contains(t, string(conf), fmt.Sprintf("listen = \":%s\"", port),
		"node.conf's prometheus_client must listen on the DaemonSet's metrics port %s", port)
}

func agentToken(t *testing.T, c *testkube.Cluster) string {
	t.Helper()
	return strings.TrimSpace(kubectl(t, c, "-n", namespace, "create", "token", "telegraf-tkgi-agent", "--duration", "10m"))
}

func canI(t *testing.T, c *testkube.Cluster, token string, args ...string) bool {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", "/dev/null", "--server", c.APIURL,
		"--certificate-authority", c.CAFile, "--token", token, "auth", "can-i"}, args...)...)
	// "no" exits 1; scope warnings go to stderr.
	out, _ := cmd.Output()
	answer := strings.TrimSpace(string(out))
	require.Contains(t, []string{"yes", "no"}, answer, "kubectl auth can-i %v: %s", args, out)
	return answer == "yes"
}

// The agent's ServiceAccount may read exactly what kube_telemetry lists.
func TestAgentServiceAccountIsLeastPrivilege(t *testing.T) {
	c := applied(t)
	token := agentToken(t, c)

	allowed := [][]string{
		{"list", "nodes"}, {"list", "pods", "-A"}, {"list", "namespaces"}, {"get", "namespaces/kube-system"},
		{"list", "services", "-A"}, {"list", "persistentvolumes"}, {"list", "persistentvolumeclaims", "-A"},
		{"list", "deployments.apps", "-A"}, {"list", "replicasets.apps", "-A"}, {"list", "statefulsets.apps", "-A"},
		{"list", "daemonsets.apps", "-A"}, {"list", "jobs.batch", "-A"}, {"list", "cronjobs.batch", "-A"},
		{"list", "ingresses.networking.k8s.io", "-A"}, {"list", "ingressclasses.networking.k8s.io"},
		{"list", "storageclasses.storage.k8s.io"}, {"list", "csidrivers.storage.k8s.io"},
		{"list", "customresourcedefinitions.apiextensions.k8s.io"},
	}
	for _, a := range allowed {
		require.True(t, canI(t, c, token, a...), "the agent must be allowed to %v", a)
	}
	denied := [][]string{
		{"list", "secrets", "-A"}, {"get", "secrets", "-n", "kube-system"}, {"list", "configmaps", "-A"},
		{"watch", "pods", "-A"}, {"get", "pods", "-n", "default"}, {"create", "pods", "-n", namespace},
		{"delete", "nodes"}, {"update", "deployments.apps", "-A"}, {"list", "events", "-A"},
		{"get", "nodes", "--subresource", "proxy"}, {"create", "serviceaccounts/token", "-A"},
	}
	for _, d := range denied {
		require.False(t, canI(t, c, token, d...), "the agent must not be allowed to %v", d)
	}
}

// With only that ServiceAccount token, kube_telemetry collects everything
// and reports no error.
func TestAgentServiceAccountCanCollect(t *testing.T) {
	binary := testbin.Path(t)
	c := applied(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(agentToken(t, c)), 0o600))
	conf := filepath.Join(dir, "agent.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
[agent]
  omit_hostname = true
[[inputs.kube_telemetry]]
  url = %q
  bearer_token_file = %q
  tls_ca = %q
`, c.APIURL, tokenFile, c.CAFile)), 0o600))

	cmd := exec.Command(binary, "--config", conf, "--test")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	require.NotContains(t, stderr.String(), "E! ", "collection with the agent's ServiceAccount reported errors")
	for _, m := range []string{"kube_telemetry_cluster", "kube_telemetry_nodes", "kube_telemetry_pods", "kube_telemetry_objects"} {
		require.Contains(t, string(out), "> "+m+",", "missing %s in:\n%s", m, out)
	}
}

// The node DaemonSet reads the kubelet's metrics with a ServiceAccount that
// may get nodes/metrics and nodes/stats, never nodes/proxy (which reaches
// the kubelet's exec and run endpoints), and verifies the kubelet's
// certificate against the cluster CA.
func TestNodeDaemonSetIsLeastPrivilege(t *testing.T) {
	rendered, err := exec.Command("kubectl", "kustomize", ".").Output()
	require.NoError(t, err, "kubectl kustomize")
	for _, doc := range strings.Split(string(rendered), "\n---\n") {
		if strings.Contains(doc, "kind: ClusterRole\n") || strings.Contains(doc, "kind: Role\n") {
			require.NotContains(t, doc, "nodes/proxy", "a rendered role grants nodes/proxy:\n%s", doc)
		}
	}

	c := applied(t)
	token := strings.TrimSpace(kubectl(t, c, "-n", namespace, "create", "token", "telegraf-tkgi-node", "--duration", "10m"))
	require.True(t, canI(t, c, token, "get", "nodes", "--subresource", "metrics"))
	require.True(t, canI(t, c, token, "get", "nodes", "--subresource", "stats"))
	for _, d := range [][]string{
		{"get", "nodes", "--subresource", "proxy"}, {"create", "nodes", "--subresource", "proxy"},
		{"list", "pods", "-A"}, {"list", "secrets", "-A"}, {"get", "nodes", "--subresource", "log"},
	} {
		require.False(t, canI(t, c, token, d...), "the node DaemonSet must not be allowed to %v", d)
	}

	conf, err := os.ReadFile("node.conf")
	require.NoError(t, err)
	require.NotContains(t, string(conf), "insecure_skip_verify")
	require.Contains(t, string(conf), `tls_ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"`)
	require.Contains(t, string(conf), `urls = ["https://${NODE_IP}:10250/metrics/resource"]`)
}

// The metrics ports (real node, pod and cluster names) admit only the
// monitoring namespace's Prometheus, for the agent and the node pods alike.
func TestMetricsNetworkPolicy(t *testing.T) {
	c := applied(t)
	out := kubectl(t, c, "-n", namespace, "get", "networkpolicy/telegraf-tkgi-metrics", "-o",
		"jsonpath={.spec.podSelector.matchLabels} {.spec.policyTypes} "+
			"{.spec.ingress[0].from[0].namespaceSelector.matchLabels} {.spec.ingress[0].from[0].podSelector.matchLabels} "+
			"{.spec.ingress[0].ports[0].port} {.spec.ingress}")
	require.Equal(t, `{"app.kubernetes.io/name":"telegraf-tkgi"} ["Ingress"] `+
		`{"kubernetes.io/metadata.name":"monitoring"} {"app.kubernetes.io/name":"prometheus"} metrics `+
		`[{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}],"ports":[{"port":"metrics","protocol":"TCP"}]}]`, out)
	// It selects both workloads' pods: their templates carry the label.
	for _, w := range []string{"deployment/telegraf-tkgi-agent", "daemonset/telegraf-tkgi-node"} {
		label := kubectl(t, c, "-n", namespace, "get", w, "-o", `jsonpath={.spec.template.metadata.labels.app\.kubernetes\.io/name}`)
		require.Equal(t, "telegraf-tkgi", label, w)
	}
}

// The server's Kubernetes variant applies as documented: its ConfigMap from
// configs/server.conf, its Secrets, then its own kustomization.
func TestServerVariantApplies(t *testing.T) {
	c := testkube.Get(t)
	createServerObjects(t, c,
		[]string{"create", "configmap", "telegraf-tkgi-server", "--from-file=server.conf"},
		[]string{"create", "secret", "generic", "telegraf-tkgi-server-tokens", "--from-literal=token=agents", "--from-literal=events-token=events"},
	)
	kubectl(t, c, "apply", "-k", "kubernetes/server")
	out := kubectl(t, c, "-n", "tkgi-system", "get", "statefulset/telegraf-tkgi-server", "-o",
		"jsonpath={.spec.replicas} {.spec.template.spec.automountServiceAccountToken} "+
			"{.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem} "+
			"{.spec.volumeClaimTemplates[0].metadata.name} "+
			`{.spec.template.spec.containers[0].env[?(@.name=="TELEMETRY_EVENTS_TOKEN")].valueFrom.secretKeyRef.key} `+
			`{.spec.template.spec.containers[0].env[?(@.name=="TELEMETRY_STATE_DIR")].value}`)
	require.Equal(t, "1 false true state events-token /var/lib/telegraf-tkgi", out)
	// The agents' default TELEMETRY_URL names this Service.
	port := kubectl(t, c, "-n", "tkgi-system", "get", "service/telemetry", "-o", "jsonpath={.spec.ports[0].port}")
	settings, err := os.ReadFile("settings.env")
	require.NoError(t, err)
	require.Contains(t, string(settings), "TELEMETRY_URL=https://telemetry.tkgi-system.svc:"+port+"/")
	data := kubectl(t, c, "-n", "tkgi-system", "get", "configmap/telegraf-tkgi-server", "-o", `jsonpath={.data.server\.conf}`)
	want, err := os.ReadFile("server.conf")
	require.NoError(t, err)
	require.Equal(t, string(want), data)
}

// haNamespace is where the high-availability component is applied in the
// tests, beside the base in its own namespace: its cluster-scoped objects
// render exactly as the base's.
const haNamespace = "telegraf-tkgi-ha-test"

// renderHA builds configs/ with the component kubernetes/ha enabled, as an
// operator's uncommented `components:` would, into haNamespace.
func renderHA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	wd, err := os.Getwd()
	require.NoError(t, err)
	rel, err := filepath.Rel(dir, wd)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(fmt.Sprintf(`
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
  - %s
components:
  - %s
`, haNamespace, rel, filepath.Join(rel, "kubernetes", "ha"))), 0o600))
	out, err := exec.Command("kubectl", "kustomize", dir).CombinedOutput()
	require.NoError(t, err, "kubectl kustomize with kubernetes/ha: %s", out)
	return string(out)
}

// The HA component applies on the real API server: two replicas on
// different nodes, replaced one at a time, never both evicted, electing a
// leader (LEADER_ELECTION reaches agent.conf's leader_election).
func TestHAComponentAppliesOnRealAPIServer(t *testing.T) {
	c := applied(t) // the base first: its cluster-scoped objects are shared
	rendered := renderHA(t)
	cmd := exec.Command("kubectl", "--kubeconfig", c.AdminKubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(rendered)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	get := func(object, jsonpath string) string {
		return kubectl(t, c, "-n", haNamespace, "get", object, "-o", "jsonpath="+jsonpath)
	}
	require.Equal(t, "2 RollingUpdate 0 1 kubernetes.io/hostname",
		get("deployment/telegraf-tkgi-agent", "{.spec.replicas} {.spec.strategy.type} "+
			"{.spec.strategy.rollingUpdate.maxSurge} {.spec.strategy.rollingUpdate.maxUnavailable} "+
			"{.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey}"))
	// The anti-affinity selects the agent's own pods.
	require.Equal(t, `{"app.kubernetes.io/component":"agent","app.kubernetes.io/name":"telegraf-tkgi"}`,
		get("deployment/telegraf-tkgi-agent", "{.spec.template.spec.affinity.podAntiAffinity."+
			"requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels}"))
	require.Equal(t, `1 {"app.kubernetes.io/component":"agent","app.kubernetes.io/name":"telegraf-tkgi"}`,
		get("poddisruptionbudget/telegraf-tkgi-agent", "{.spec.minAvailable} {.spec.selector.matchLabels}"))

	// The settings the pods read turn leader election on, and agent.conf
	// takes it from there.
	settings := get("deployment/telegraf-tkgi-agent", "{.spec.template.spec.containers[0].envFrom[0].configMapRef.name}")
	require.Equal(t, "true", get("configmap/"+settings, "{.data.LEADER_ELECTION}"))
	agentConf, err := os.ReadFile("agent.conf")
	require.NoError(t, err)
	require.Contains(t, string(agentConf), `leader_election = "${LEADER_ELECTION}"`)
	env, err := os.ReadFile("settings.env")
	require.NoError(t, err)
	require.Contains(t, string(env), "LEADER_ELECTION=false\n", "the base runs one replica without election")

	// The lease Role is a Role in the agent's namespace, bound to its
	// ServiceAccount.
	require.Equal(t, "Role telegraf-tkgi-agent-lease ServiceAccount telegraf-tkgi-agent",
		get("rolebinding/telegraf-tkgi-agent-lease", "{.roleRef.kind} {.roleRef.name} {.subjects[0].kind} {.subjects[0].name}"))
}

// The lease rights are the Lease's alone: get and update on that one Lease,
// create in that namespace; nothing on other Leases, in other namespaces,
// or beyond.
func TestHALeaseRoleIsLeastPrivilege(t *testing.T) {
	c := applied(t)
	rendered := renderHA(t)
	cmd := exec.Command("kubectl", "--kubeconfig", c.AdminKubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(rendered)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	// The RoleBinding's subject is the agent's ServiceAccount in its
	// namespace: the base's here.
	require.Equal(t, namespace, kubectl(t, c, "-n", haNamespace, "get", "rolebinding/telegraf-tkgi-agent-lease",
		"-o", "jsonpath={.subjects[0].namespace}"))
	token := agentToken(t, c)

	lease := "leases.coordination.k8s.io/telegraf-tkgi-kube-telemetry"
	for _, a := range [][]string{
		{"get", lease, "-n", haNamespace}, {"update", lease, "-n", haNamespace},
		{"create", "leases.coordination.k8s.io", "-n", haNamespace},
	} {
		require.True(t, canI(t, c, token, a...), "the agent must be allowed to %v", a)
	}
	for _, d := range [][]string{
		{"get", "leases.coordination.k8s.io/other", "-n", haNamespace},
		{"update", "leases.coordination.k8s.io/other", "-n", haNamespace},
		{"delete", lease, "-n", haNamespace}, {"patch", lease, "-n", haNamespace},
		{"list", "leases.coordination.k8s.io", "-n", haNamespace}, {"watch", "leases.coordination.k8s.io", "-n", haNamespace},
		{"create", "leases.coordination.k8s.io", "-n", "kube-system"}, {"get", lease, "-n", "kube-system"},
		{"update", "leases.coordination.k8s.io/kube-controller-manager", "-n", "kube-system"},
		{"list", "leases.coordination.k8s.io", "-A"},
		{"get", "secrets", "-n", haNamespace}, {"create", "pods", "-n", haNamespace},
	} {
		require.False(t, canI(t, c, token, d...), "the agent must not be allowed to %v", d)
	}
}

// createServerObjects creates, in the server's namespace, what
// configs/README.md has the operator create with kubectl before applying a
// server variant (as apply, so a second test's objects replace the first's).
func createServerObjects(t *testing.T, c *testkube.Cluster, creates ...[]string) {
	t.Helper()
	kubectl(t, c, "apply", "-f", "kubernetes/server/namespace.yaml")
	for _, args := range creates {
		manifest := kubectl(t, c, append(append([]string{"-n", "tkgi-system"}, args...), "--dry-run=client", "-o", "yaml")...)
		cmd := exec.Command("kubectl", "--kubeconfig", c.AdminKubeconfig, "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
}

// jetStreamObjects are the scaled-out server's ConfigMaps and Secrets.
var jetStreamObjects = [][]string{
	{"create", "configmap", "telegraf-tkgi-server-jetstream", "--from-file=server-jetstream.conf"},
	{"create", "configmap", "telegraf-tkgi-lake", "--from-file=lake-jetstream.conf"},
	{"create", "secret", "generic", "telegraf-tkgi-server-tokens", "--from-literal=token=agents", "--from-literal=events-token=events"},
}

// The scaled-out server's variant applies as documented: the namespace,
// its ConfigMaps from the shipped configurations, its Secrets, then its own
// kustomization; the replicas and the lake consumer name the NATS servers
// the StatefulSet runs.
func TestServerJetStreamVariantApplies(t *testing.T) {
	c := testkube.Get(t)
	createServerObjects(t, c, jetStreamObjects...)
	kubectl(t, c, "apply", "-k", "kubernetes/server-jetstream")
	ns := []string{"-n", "tkgi-system"}
	require.Equal(t, "3", kubectl(t, c, append(ns, "get", "deployment/telegraf-tkgi-server", "-o", "jsonpath={.spec.replicas}")...))
	require.Equal(t, "3", kubectl(t, c, append(ns, "get", "statefulset/nats", "-o", "jsonpath={.spec.replicas}")...))
	require.Equal(t, "1", kubectl(t, c, append(ns, "get", "statefulset/telegraf-tkgi-lake", "-o", "jsonpath={.spec.replicas}")...))
	natsConf := kubectl(t, c, append(ns, "get", "configmap/nats", "-o", `jsonpath={.data.nats\.conf}`)...)
	envPath := `jsonpath={.spec.template.spec.containers[0].env[?(@.name=="TELEMETRY_NATS_SERVERS")].value}`
	for _, w := range []string{"deployment/telegraf-tkgi-server", "statefulset/telegraf-tkgi-lake"} {
		servers := kubectl(t, c, append(ns, "get", w, "-o", envPath)...)
		require.Len(t, strings.Split(servers, ","), 3, w)
		for i, u := range strings.Split(servers, ",") {
			host := fmt.Sprintf("nats-%d.nats.tkgi-system.svc", i)
			require.Equal(t, "nats://"+host+":4222", u, w)
			require.Contains(t, natsConf, "nats-route://"+host+":6222")
		}
	}
	data := kubectl(t, c, append(ns, "get", "configmap/telegraf-tkgi-server-jetstream", "-o", `jsonpath={.data.server-jetstream\.conf}`)...)
	want, err := os.ReadFile("server-jetstream.conf")
	require.NoError(t, err)
	require.Equal(t, string(want), data)
}

// The installation's variant with the relay applies as documented (the
// scaled-out server's objects, the relay's ConfigMap from
// configs/relay-jetstream.conf and its upstream Secret without the
// optional events key); the relay, the listener replicas and the lake
// consumer each get exactly the environment their configuration reads.
func TestServerJetStreamRelayVariantApplies(t *testing.T) {
	c := testkube.Get(t)
	createServerObjects(t, c, append(jetStreamObjects,
		[]string{"create", "configmap", "telegraf-tkgi-relay", "--from-file=relay-jetstream.conf"},
		[]string{"create", "secret", "generic", "telegraf-tkgi-relay-upstream", "--from-literal=token=upstream"},
	)...)
	kubectl(t, c, "apply", "-k", "kubernetes/server-jetstream-relay")
	ns := []string{"-n", "tkgi-system"}
	get := func(object, jsonpath string) string {
		return kubectl(t, c, append(ns, "get", object, "-o", "jsonpath="+jsonpath)...)
	}
	// The scaled-out server is all there, and one relay beside it.
	require.Equal(t, "3 3 1", get("deployment/telegraf-tkgi-server", "{.spec.replicas} ")+
		get("statefulset/nats", "{.spec.replicas} ")+get("statefulset/telegraf-tkgi-lake", "{.spec.replicas}"))
	relay := "deployment/telegraf-tkgi-relay"
	require.Equal(t, "1 Recreate false true true 65532 RuntimeDefault false [\"ALL\"]",
		get(relay, "{.spec.replicas} {.spec.strategy.type} {.spec.template.spec.automountServiceAccountToken} "+
			"{.spec.template.spec.securityContext.runAsNonRoot} "+
			"{.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem} "+
			"{.spec.template.spec.securityContext.runAsUser} {.spec.template.spec.securityContext.seccompProfile.type} "+
			"{.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation} "+
			"{.spec.template.spec.containers[0].securityContext.capabilities.drop}"))
	require.Equal(t, "metrics metrics 1Gi", get(relay, "{.spec.template.spec.containers[0].readinessProbe.tcpSocket.port} "+
		"{.spec.template.spec.containers[0].livenessProbe.tcpSocket.port} {.spec.template.spec.containers[0].resources.limits.memory}"))
	// It reads the same NATS servers as the replicas, and the shipped
	// configuration.
	envPath := `{.spec.template.spec.containers[0].env[?(@.name=="TELEMETRY_NATS_SERVERS")].value}`
	require.Equal(t, get("deployment/telegraf-tkgi-server", envPath), get(relay, envPath))
	want, err := os.ReadFile("relay-jetstream.conf")
	require.NoError(t, err)
	require.Equal(t, string(want), get("configmap/telegraf-tkgi-relay", `{.data.relay-jetstream\.conf}`))
	require.Equal(t, "/etc/telegraf-tkgi/relay-jetstream.conf", get(relay, "{.spec.template.spec.containers[0].args[1]}"))
	require.Equal(t, "true", get(relay, `{.spec.template.spec.volumes[?(@.name=="upstream-ca")].configMap.optional}`),
		"the upstream CA is optional")

	// The environment of every telegraf-tkgi workload here against the
	// configuration it runs.
	for _, w := range []struct{ object, conf string }{
		{"deployment/telegraf-tkgi-server", "server-jetstream.conf"},
		{"statefulset/telegraf-tkgi-lake", "lake-jetstream.conf"},
		{relay, "relay-jetstream.conf"},
	} {
		given := podEnv(t, c, "tkgi-system", w.object)
		conf := readConfEnv(t, w.conf)
		if w.object == relay {
			require.Contains(t, given, "TELEMETRY_UPSTREAM_URL")
			require.True(t, given["TELEMETRY_UPSTREAM_EVENTS_TOKEN"], "the events token is an optional Secret key")
			withoutPendingRelayEvents(t, conf, given)
		}
		require.Empty(t, conf.envMismatches(given), "the environment of %s against %s", w.object, w.conf)
	}

	// The NetworkPolicy: the relay's pods, Prometheus in, NATS, DNS and
	// the upstream or proxy out.
	np := "networkpolicy/telegraf-tkgi-relay"
	require.Equal(t, `{"app.kubernetes.io/component":"relay","app.kubernetes.io/name":"telegraf-tkgi"} ["Ingress","Egress"]`,
		get(np, "{.spec.podSelector.matchLabels} {.spec.policyTypes}"))
	require.Equal(t, `{"app.kubernetes.io/component":"relay","app.kubernetes.io/name":"telegraf-tkgi"}`,
		get(relay, "{.spec.template.metadata.labels}"), "the policy selects the relay's pods")
	require.Equal(t, "metrics", get(np, "{.spec.ingress[0].ports[0].port}"))
	require.Equal(t, `{"app.kubernetes.io/name":"nats"} 4222`, get(np, "{.spec.egress[0].to[0].podSelector.matchLabels} {.spec.egress[0].ports[0].port}"))
	require.Equal(t, "nats", get("statefulset/nats", `{.spec.template.metadata.labels.app\.kubernetes\.io/name}`))
	require.Equal(t, "53 53", get(np, "{.spec.egress[1].ports[*].port}"))
	require.Equal(t, "0.0.0.0/0 443 3128", get(np, "{.spec.egress[2].to[0].ipBlock.cidr} {.spec.egress[2].ports[*].port}"))
	require.Len(t, strings.Fields(get(np, "{.spec.egress[*].ports[0].port}")), 3, "egress: NATS, DNS and the upstream only")
}

// podEnv is the environment an applied workload gives its first container:
// each env entry (true when it is a Secret key marked optional, which may
// be absent) and every key of the ConfigMaps it takes whole (envFrom).
func podEnv(t *testing.T, c *testkube.Cluster, ns, object string) map[string]bool {
	t.Helper()
	var w struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						EnvFrom []struct{ ConfigMapRef *struct{ Name string } }
						Env     []struct {
							Name      string
							ValueFrom *struct {
								SecretKeyRef *struct {
									Name, Key string
									Optional  bool
								}
							}
						}
					}
				}
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(kubectl(t, c, "-n", ns, "get", object, "-o", "json")), &w))
	container := w.Spec.Template.Spec.Containers[0]
	given := map[string]bool{}
	for _, e := range container.Env {
		given[e.Name] = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Optional
	}
	for _, from := range container.EnvFrom {
		require.NotNil(t, from.ConfigMapRef, "%s: envFrom other than a ConfigMap", object)
		var data map[string]string
		require.NoError(t, json.Unmarshal([]byte(kubectl(t, c, "-n", ns, "get", "configmap/"+from.ConfigMapRef.Name, "-o", "jsonpath={.data}")), &data))
		for k := range data {
			given[k] = false
		}
	}
	return given
}
