package sinks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stopShared != nil {
		stopShared()
	}
	testkube.Stop()
	os.Exit(code)
}

const controllerNamespace = "telegraf-tkgi"

// env is a real kube-apiserver with configs/sinks/ applied (CRDs, the
// controller's RBAC) and one controller running in this process with its
// own ServiceAccount's token, so the shipped RBAC is what it has. One per
// test binary: controller-runtime names controllers process-wide.
type env struct {
	cluster *testkube.Cluster
	admin   client.Client
	kube    *kubernetes.Clientset
	cmName  string
	checker Checker
	// webhookPort serves the validating webhook; webhookCA is its
	// certificate (self-signed, for 127.0.0.1).
	webhookPort int
	webhookCA   []byte
}

var (
	sharedOnce sync.Once
	shared     *env
	sharedErr  error
	stopShared func()
)

func startEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real kube-apiserver")
	}
	c := testkube.Get(t)
	checker := testChecker(t)
	pki := testpki.New(t)
	sharedOnce.Do(func() {
		// The stand-in ServiceAccount directory must outlive this test.
		dir, err := os.MkdirTemp("", "sinks-sa-")
		if err != nil {
			sharedErr = err
			return
		}
		for _, f := range []string{"ca.crt", "token"} {
			b, err := os.ReadFile(filepath.Join(checker.ServiceAccountDir, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), b, 0o600)
			}
			if err != nil {
				sharedErr = err
				return
			}
		}
		certDir := filepath.Join(dir, "webhook")
		if sharedErr = os.Mkdir(certDir, 0o700); sharedErr != nil {
			return
		}
		for from, to := range map[string]string{pki.CertFile: "tls.crt", pki.KeyFile: "tls.key"} {
			b, err := os.ReadFile(from)
			if err == nil {
				err = os.WriteFile(filepath.Join(certDir, to), b, 0o600)
			}
			if err != nil {
				sharedErr = err
				return
			}
		}
		shared, stopShared, sharedErr = setupEnv(c, Checker{ServiceAccountDir: dir}, certDir)
		stop := stopShared
		stopShared = func() {
			if stop != nil {
				stop()
			}
			os.RemoveAll(dir)
		}
	})
	require.NoError(t, sharedErr)
	return shared
}

func setupEnv(c *testkube.Cluster, checker Checker, certDir string) (*env, func(), error) {
	if out, err := c.Kubectl(c.AdminKubeconfig, "apply", "-k", filepath.Join(testkube.RepoRoot(), "configs", "sinks")); err != nil {
		return nil, nil, fmt.Errorf("applying configs/sinks failed: %w: %s", err, out)
	}
	if out, err := c.Kubectl(c.AdminKubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/clustermetricsinks.pksapi.io", "crd/metricsinks.pksapi.io"); err != nil {
		return nil, nil, fmt.Errorf("waiting for the CRDs failed: %w: %s", err, out)
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, nil, err
	}
	adminCfg := restConfig(c, c.AdminToken)
	admin, err := client.New(adminCfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, err
	}
	kube, err := kubernetes.NewForConfig(adminCfg)
	if err != nil {
		return nil, nil, err
	}
	e := &env{cluster: c, admin: admin, kube: kube, cmName: "sinks-test-" + suffix(), checker: checker}
	if e.webhookCA, err = os.ReadFile(filepath.Join(certDir, "tls.crt")); err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	e.webhookPort = l.Addr().(*net.TCPAddr).Port
	l.Close()

	// ClusterMetricSinks are cluster-wide: a shared apiserver may hold an
	// earlier run's.
	if err := admin.DeleteAllOf(context.Background(), &ClusterMetricSink{}); err != nil {
		return nil, nil, err
	}
	token, err := e.mintToken(controllerNamespace, "telegraf-tkgi-sink-controller")
	if err != nil {
		return nil, nil, err
	}
	mgr, err := NewManager(restConfig(c, token), Options{
		Namespace: controllerNamespace, ConfigMapName: e.cmName, AgentImage: "telegraf-tkgi:test",
		MetricsAddr: "0", ProbeAddr: "0", Checker: checker,
		WebhookPort: e.webhookPort, WebhookCertDir: certDir,
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return e, func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(os.Stderr, "the sink controller stopped with an error: %v\n", err)
		}
		_ = admin.DeleteAllOf(context.Background(), &ClusterMetricSink{})
	}, nil
}

func restConfig(c *testkube.Cluster, token string) *rest.Config {
	return &rest.Config{Host: c.APIURL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile}}
}

func suffix() string { return fmt.Sprintf("%06x", rand.IntN(1<<24)) }

func kubectl(t *testing.T, c *testkube.Cluster, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(c.AdminKubeconfig, args...)
	require.NoError(t, err, "kubectl %s:\n%s", strings.Join(args, " "), out)
	return out
}

// mintToken mints a ServiceAccount token through the TokenRequest API.
func (e *env) mintToken(ns, sa string) (string, error) {
	tr, err := e.kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("minting a token for %s/%s failed: %w", ns, sa, err)
	}
	return tr.Status.Token, nil
}

func (e *env) namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := prefix + "-" + suffix()
	_, err := e.kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = e.kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return ns
}

// applyYAML applies a manifest with kubectl, as a user would.
func (e *env) applyYAML(t *testing.T, ns, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "sink.yaml")
	require.NoError(t, os.WriteFile(f, []byte(manifest), 0o600))
	args := []string{"apply", "-f", f}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	kubectl(t, e.cluster, args...)
}

// eventually polls cond until it holds or 30 s pass.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not reached in 30s; last state: %s", what, last)
}

// sinkStatus waits until the sink's status is about generation gen and
// returns it.
func (e *env) waitStatus(t *testing.T, obj client.Object, status func() *SinkStatus, gen int64) *SinkStatus {
	t.Helper()
	eventually(t, "status of "+obj.GetName(), func() (bool, string) {
		if err := e.admin.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		st := status()
		return st.ObservedGeneration == gen && len(st.Conditions) == 2, fmt.Sprintf("%+v", *st)
	})
	return status()
}

func condition(st *SinkStatus, typ string) metav1.Condition {
	c := meta.FindStatusCondition(st.Conditions, typ)
	if c == nil {
		return metav1.Condition{}
	}
	return *c
}

func TestCRDsApplyWithPrinterColumns(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t, "sinks-columns")
	e.applyYAML(t, ns, tenantSink("app", "prometheus_client", ":9273"))
	sink := &MetricSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}
	e.waitStatus(t, sink, func() *SinkStatus { return &sink.Status }, 1)
	out := kubectl(t, e.cluster, "-n", ns, "get", "metricsinks")
	require.Regexp(t, `NAME\s+READY\s+INVALID\s+INPUTS\s+OUTPUTS\s+AGE`, out)
	require.Regexp(t, `app\s+True\s+False\s+prometheus\s+prometheus_client`, out)

	// The structural schema refuses a plugin without a type at the door.
	f := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(f, []byte(`apiVersion: pksapi.io/v1beta1
kind: MetricSink
metadata: {name: untyped}
spec:
  outputs:
  - listen: ":9273"
`), 0o600))
	out, err := e.cluster.Kubectl(e.cluster.AdminKubeconfig, "-n", ns, "apply", "-f", f)
	require.Error(t, err)
	require.Contains(t, out, "spec.outputs[0].type: Required value")
}

func tenantSink(name, output, listen string) string {
	return fmt.Sprintf(`apiVersion: pksapi.io/v1beta1
kind: MetricSink
metadata:
  name: %s
spec:
  inputs:
  - type: prometheus
    monitor_kubernetes_pods: true
  outputs:
  - type: %s
    listen: %q
`, name, output, listen)
}

// The objects a MetricSink renders: exactly these, in its namespace, owned
// by it. No kube-controller-manager runs here, so the garbage collector
// never removes them after the sink is deleted; the owner references that
// make it do so on a real cluster are asserted instead.
func TestMetricSinkLifecycle(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	ns := e.namespace(t, "sinks-team")
	name := TenantObjectName("app")

	e.applyYAML(t, ns, tenantSink("app", "prometheus_client", ":9273"))
	sink := &MetricSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}
	st := e.waitStatus(t, sink, func() *SinkStatus { return &sink.Status }, 1)
	require.Equal(t, metav1.ConditionTrue, condition(st, ConditionReady).Status, "%+v", st)
	require.Equal(t, metav1.ConditionFalse, condition(st, ConditionInvalid).Status)

	// Exactly the five objects, all owned by the sink.
	require.Equal(t, []string{
		"ConfigMap/" + name, "Deployment/" + name, "Role/" + name, "RoleBinding/" + name, "Service/" + name, "ServiceAccount/" + name,
	}, e.rendered(t, ns))
	for _, obj := range []client.Object{&corev1.ConfigMap{}, &corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}, &appsv1.Deployment{}, &corev1.Service{}} {
		require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj))
		refs := obj.GetOwnerReferences()
		require.Len(t, refs, 1)
		require.Equal(t, "pksapi.io/v1beta1", refs[0].APIVersion)
		require.Equal(t, "MetricSink", refs[0].Kind)
		require.Equal(t, sink.UID, refs[0].UID)
		require.True(t, *refs[0].Controller)
	}
	var cm corev1.ConfigMap
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm))
	require.Contains(t, cm.Data[ConfigKey], fmt.Sprintf("monitor_kubernetes_pods_namespace = %q", ns))
	require.NoError(t, e.checker.Check([]byte(cm.Data[ConfigKey])))
	var role rbacv1.Role
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &role))
	require.Equal(t, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}, role.Rules)
	var deploy appsv1.Deployment
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &deploy))
	require.Equal(t, int32(1), *deploy.Spec.Replicas)
	pod := deploy.Spec.Template.Spec
	require.Equal(t, name, pod.ServiceAccountName)
	require.Equal(t, "telegraf-tkgi:test", pod.Containers[0].Image)
	require.Equal(t, []string{"--config", "/etc/telegraf-tkgi/telegraf.conf", "--watch-config", "notify"}, pod.Containers[0].Args)
	require.Equal(t, int32(9273), pod.Containers[0].Ports[0].ContainerPort)
	require.Equal(t, name, pod.Volumes[0].ConfigMap.Name)

	// An update re-renders in place: same Deployment (no pod deletion), new
	// configuration and port.
	e.applyYAML(t, ns, tenantSink("app", "prometheus_client", ":9274"))
	st = e.waitStatus(t, sink, func() *SinkStatus { return &sink.Status }, 2)
	require.Equal(t, metav1.ConditionTrue, condition(st, ConditionReady).Status, "%+v", st)
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm))
	require.Contains(t, cm.Data[ConfigKey], `listen = ":9274"`)
	var after appsv1.Deployment
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &after))
	require.Equal(t, deploy.UID, after.UID)
	require.Equal(t, int32(9274), after.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort)
	// The Service follows the port: the field report's complaint.
	var svc corev1.Service
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc))
	require.Equal(t, "None", svc.Spec.ClusterIP)
	require.Equal(t, int32(9274), svc.Spec.Ports[0].Port)
	require.Equal(t, "metrics", svc.Spec.Ports[0].TargetPort.StrVal)

	// A bad option: Invalid with the plugin's own message; the last valid
	// configuration keeps running.
	e.applyYAML(t, ns, strings.Replace(tenantSink("app", "prometheus_client", ":9274"), "listen:", "lisen:", 1))
	st = e.waitStatus(t, sink, func() *SinkStatus { return &sink.Status }, 3)
	require.Equal(t, metav1.ConditionTrue, condition(st, ConditionInvalid).Status, "%+v", st)
	require.Equal(t, metav1.ConditionFalse, condition(st, ConditionReady).Status)
	require.Contains(t, condition(st, ConditionInvalid).Message, `"lisen"`)
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm))
	require.Contains(t, cm.Data[ConfigKey], `listen = ":9274"`)

	// A kubelet input is refused.
	e.applyYAML(t, ns, `apiVersion: pksapi.io/v1beta1
kind: MetricSink
metadata:
  name: app
spec:
  inputs:
  - type: kubernetes
    url: https://10.0.0.1:10250
  outputs:
  - type: discard
`)
	st = e.waitStatus(t, sink, func() *SinkStatus { return &sink.Status }, 4)
	require.Equal(t, metav1.ConditionTrue, condition(st, ConditionInvalid).Status, "%+v", st)
	require.Contains(t, condition(st, ConditionInvalid).Message, `input "kubernetes" is not allowed in a MetricSink`)

	// An object deleted by hand is put back.
	e.applyYAML(t, ns, tenantSink("app", "prometheus_client", ":9275"))
	e.waitStatus(t, sink, func() *SinkStatus { return &sink.Status }, 5)
	require.NoError(t, e.admin.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}))
	eventually(t, "ConfigMap restored", func() (bool, string) {
		err := e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm)
		return err == nil && strings.Contains(cm.Data[ConfigKey], `":9275"`), fmt.Sprint(err)
	})

	// Without a prometheus_client output, the Service goes.
	e.applyYAML(t, ns, strings.Replace(tenantSink("app", "file", "unused"), "    listen: \"unused\"\n", "", 1))
	st = e.waitStatus(t, sink, func() *SinkStatus { return &sink.Status }, 6)
	require.Equal(t, metav1.ConditionTrue, condition(st, ConditionReady).Status, "%+v", st)
	require.NotContains(t, e.rendered(t, ns), "Service/"+name)

	// Deleting the sink: the objects stay only until the garbage collector
	// (not running here) follows their owner references.
	kubectl(t, e.cluster, "-n", ns, "delete", "metricsink", "app", "--wait=true")
	err := e.admin.Get(ctx, client.ObjectKeyFromObject(sink), sink)
	require.True(t, apierrors.IsNotFound(err), "%v", err)
}

// rendered lists the kinds and names of what the controller rendered in ns.
func (e *env) rendered(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	sel := client.MatchingLabels{managedByLabel: managedBy}
	lists := map[string]client.ObjectList{
		"ConfigMap": &corev1.ConfigMapList{}, "ServiceAccount": &corev1.ServiceAccountList{},
		"Role": &rbacv1.RoleList{}, "RoleBinding": &rbacv1.RoleBindingList{}, "Deployment": &appsv1.DeploymentList{},
		"Service": &corev1.ServiceList{},
	}
	for kind, list := range lists {
		require.NoError(t, e.admin.List(context.Background(), list, client.InNamespace(ns), sel))
		items, err := meta.ExtractList(list)
		require.NoError(t, err)
		for _, it := range items {
			names = append(names, kind+"/"+it.(client.Object).GetName())
		}
	}
	sort.Strings(names)
	return names
}

// A tenant's agent identity reads its own namespace's pods and nothing else.
func TestTenantTokenSeesOnlyItsNamespace(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	mine := e.namespace(t, "sinks-mine")
	other := e.namespace(t, "sinks-other")
	e.applyYAML(t, mine, tenantSink("app", "prometheus_client", ":9273"))
	sink := &MetricSink{ObjectMeta: metav1.ObjectMeta{Namespace: mine, Name: "app"}}
	st := e.waitStatus(t, sink, func() *SinkStatus { return &sink.Status }, 1)
	require.Equal(t, metav1.ConditionTrue, condition(st, ConditionReady).Status, "%+v", st)

	token, err := e.mintToken(mine, TenantObjectName("app"))
	require.NoError(t, err)
	tenant, err := kubernetes.NewForConfig(restConfig(e.cluster, token))
	require.NoError(t, err)
	_, err = tenant.CoreV1().Pods(mine).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	_, err = tenant.CoreV1().Pods(other).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "listing another namespace's pods: %v", err)
	_, err = tenant.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "listing all pods: %v", err)
	_, err = tenant.CoreV1().Secrets(mine).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "listing its own namespace's secrets: %v", err)
}

func TestClusterMetricSinks(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	key := client.ObjectKey{Namespace: controllerNamespace, Name: e.cmName}
	configMap := func(want ...string) string {
		t.Helper()
		var cm corev1.ConfigMap
		eventually(t, "cluster ConfigMap with "+strings.Join(want, ", "), func() (bool, string) {
			if err := e.admin.Get(ctx, key, &cm); err != nil {
				return false, err.Error()
			}
			return strings.Contains(cm.Data[ConfigKey], strings.Join(want, ", ")), cm.Data[ConfigKey]
		})
		return cm.Data[ConfigKey]
	}

	// No sink yet: a configuration that loads and discards.
	conf := configMap("no ClusterMetricSink exists")
	require.NoError(t, e.checker.Check([]byte(conf)))

	for _, f := range []string{"seed-clustermetricsink.yaml", "influxdb-clustermetricsink.yaml"} {
		kubectl(t, e.cluster, "apply", "-f", filepath.Join("testdata", f))
	}
	conf = configMap("central-influxdb, my-demo-sink")
	require.NoError(t, e.checker.Check([]byte(conf)))
	for _, want := range []string{"[[outputs.influxdb]]", "[[outputs.prometheus_client]]", "monitor_kubernetes_pods = true", ":10250/metrics/resource"} {
		require.Contains(t, conf, want)
	}
	for _, n := range []string{"my-demo-sink", "central-influxdb"} {
		s := &ClusterMetricSink{ObjectMeta: metav1.ObjectMeta{Name: n}}
		st := e.waitStatus(t, s, func() *SinkStatus { return &s.Status }, 1)
		require.Equal(t, metav1.ConditionTrue, condition(st, ConditionReady).Status, "%s: %+v", n, st)
	}

	// An invalid sink is left out and told why; the others stay.
	e.applyYAML(t, "", `apiVersion: pksapi.io/v1beta1
kind: ClusterMetricSink
metadata:
  name: broken
spec:
  outputs:
  - type: file
    filez: [stdout]
`)
	bad := &ClusterMetricSink{ObjectMeta: metav1.ObjectMeta{Name: "broken"}}
	st := e.waitStatus(t, bad, func() *SinkStatus { return &bad.Status }, 1)
	require.Equal(t, metav1.ConditionTrue, condition(st, ConditionInvalid).Status, "%+v", st)
	require.Contains(t, condition(st, ConditionInvalid).Message, `"filez"`)
	conf = configMap("central-influxdb, my-demo-sink")
	require.NotContains(t, conf, "filez")

	// A later sink on a port an earlier one listens on is left out and
	// told which sink has the port: one agent cannot listen twice.
	e.applyYAML(t, "", `apiVersion: pksapi.io/v1beta1
kind: ClusterMetricSink
metadata:
  name: port-clash
spec:
  inputs:
  - type: mem
  outputs:
  - type: prometheus_client
    listen: "0.0.0.0:9273"
`)
	clash := &ClusterMetricSink{ObjectMeta: metav1.ObjectMeta{Name: "port-clash"}}
	st = e.waitStatus(t, clash, func() *SinkStatus { return &clash.Status }, 1)
	require.Equal(t, metav1.ConditionTrue, condition(st, ConditionInvalid).Status, "%+v", st)
	require.Contains(t, condition(st, ConditionInvalid).Message, "port 9273 is already used by ClusterMetricSink my-demo-sink")
	conf = configMap("central-influxdb, my-demo-sink")
	require.NotContains(t, conf, "inputs.mem")
	require.NoError(t, e.checker.Check([]byte(conf)))
	kubectl(t, e.cluster, "delete", "clustermetricsink", "port-clash")

	// Deleting a sink re-renders without it.
	kubectl(t, e.cluster, "delete", "clustermetricsink", "central-influxdb")
	conf = configMap("from ClusterMetricSinks: my-demo-sink\n")
	require.NotContains(t, conf, "[[outputs.influxdb]]")
}
