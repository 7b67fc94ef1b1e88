package kube_telemetry

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ktesting "k8s.io/client-go/testing"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
)

func TestInitValidation(t *testing.T) {
	tests := []struct {
		name      string
		configure func(*KubeTelemetry)
		wantErr   string
	}{
		{name: "defaults: in-cluster", configure: func(*KubeTelemetry) {}},
		{name: "url with token", configure: func(k *KubeTelemetry) {
			k.URL = "https://10.0.0.1:6443"
			k.BearerToken = config.NewSecret([]byte("t"))
			k.ClientConfig = tls.ClientConfig{TLSCA: "/ca.pem"}
		}},
		{name: "kubeconfig with context", configure: func(k *KubeTelemetry) { k.Kubeconfig = "/kc"; k.Context = "admin" }},
		{name: "page_size zero", configure: func(k *KubeTelemetry) { k.PageSize = 0 },
			wantErr: "page_size must be between 1 and 5000, got 0"},
		{name: "page_size too big", configure: func(k *KubeTelemetry) { k.PageSize = 5001 },
			wantErr: "page_size must be between 1 and 5000, got 5001"},
		{name: "list_strategy paginated", configure: func(k *KubeTelemetry) { k.ListStrategy = "paginated" }},
		{name: "list_strategy unset is auto", configure: func(k *KubeTelemetry) { k.ListStrategy = "" }},
		{name: "list_strategy unknown", configure: func(k *KubeTelemetry) { k.ListStrategy = "watch" },
			wantErr: `list_strategy must be one of "auto", "unpaginated", "paginated", got "watch"`},
		{name: "response_timeout zero", configure: func(k *KubeTelemetry) { k.ResponseTimeout = 0 },
			wantErr: "response_timeout must be positive, got 0s"},
		{name: "url without scheme", configure: func(k *KubeTelemetry) { k.URL = "10.0.0.1:6443" },
			wantErr: `url "10.0.0.1:6443" must be an http(s) URL of the API server`},
		{name: "url and kubeconfig", configure: func(k *KubeTelemetry) { k.URL = "https://a:6443"; k.Kubeconfig = "/kc" },
			wantErr: "url and kubeconfig are mutually exclusive"},
		{name: "both tokens", configure: func(k *KubeTelemetry) {
			k.URL = "https://a:6443"
			k.BearerToken = config.NewSecret([]byte("t"))
			k.BearerTokenFile = "/token"
		}, wantErr: "bearer_token and bearer_token_file are mutually exclusive"},
		{name: "token without url", configure: func(k *KubeTelemetry) { k.BearerToken = config.NewSecret([]byte("t")) },
			wantErr: "bearer_token is used only with url"},
		{name: "token file without url", configure: func(k *KubeTelemetry) { k.BearerTokenFile = "/token"; k.Kubeconfig = "/kc" },
			wantErr: "bearer_token_file is used only with url"},
		{name: "tls without url", configure: func(k *KubeTelemetry) { k.InsecureSkipVerify = true },
			wantErr: "the tls_* and insecure_skip_verify options are used only with url"},
		{name: "context without kubeconfig", configure: func(k *KubeTelemetry) { k.Context = "admin" },
			wantErr: "context is used only with kubeconfig"},
		{name: "unknown resource included", configure: func(k *KubeTelemetry) { k.ResourceInclude = []string{"pods", "pod"} },
			wantErr: `resource_include: "pod" matches no resource; valid resources: cronjobs, csidrivers, ` +
				`customresourcedefinitions, daemonsets, deployments, ingressclasses, ingresses, jobs, namespaces, nodes, ` +
				`persistentvolumeclaims, persistentvolumes, pods, replicasets, services, statefulsets, storageclasses`},
		{name: "unknown resource excluded", configure: func(k *KubeTelemetry) { k.ResourceExclude = []string{"secrets"} },
			wantErr: `resource_exclude: "secrets" matches no resource; valid resources: cronjobs, csidrivers,`},
		{name: "glob matching", configure: func(k *KubeTelemetry) { k.ResourceInclude = []string{"persistent*"} }},
		{name: "addon namespace not a name", configure: func(k *KubeTelemetry) { k.AddonNamespaces = []string{"kube-system", "NSX System"} },
			wantErr: `addon_namespaces: "NSX System" is not a namespace name`},
		{name: "api proxy", configure: func(k *KubeTelemetry) { k.HTTPProxyURL = "http://proxy.example:3128" }},
		{name: "api proxy without scheme", configure: func(k *KubeTelemetry) { k.HTTPProxyURL = "proxy.example:3128" },
			wantErr: `http_proxy_url "proxy.example:3128" must be an http, https or socks5 URL`},
		{name: "nothing left", configure: func(k *KubeTelemetry) { k.ResourceExclude = []string{"*"} },
			wantErr: "resource_include and resource_exclude leave no resource to collect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &KubeTelemetry{PageSize: defaultPageSize, ResponseTimeout: defaultResponseTimeout, ListStrategy: strategyAuto}
			tt.configure(k)
			err := k.Init()
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotEmpty(t, k.selected)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestSelectResources(t *testing.T) {
	names := func(rs []resource) []string {
		out := make([]string, 0, len(rs))
		for _, r := range rs {
			out = append(out, r.name)
		}
		return out
	}
	tests := []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{name: "include globs", include: []string{"persistent*", "nodes"},
			want: []string{"nodes", "persistentvolumeclaims", "persistentvolumes"}},
		{name: "exclude wins", include: []string{"persistent*", "nodes"}, exclude: []string{"persistentvolumes"},
			want: []string{"nodes", "persistentvolumeclaims"}},
		{name: "exclude only", exclude: []string{"pods", "*set*"},
			want: []string{"nodes", "services", "deployments", "persistentvolumeclaims", "persistentvolumes", "jobs", "cronjobs",
				"ingresses", "namespaces", "customresourcedefinitions", "ingressclasses", "storageclasses", "csidrivers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectResources(tt.include, tt.exclude)
			require.NoError(t, err)
			require.ElementsMatch(t, tt.want, names(got))
		})
	}
}

// TestSampleConfig loads sample.conf through Telegraf's own config loader,
// once as shipped and once with every option uncommented: each key must
// exist on the plugin (the loader rejects unused keys) and the shipped
// defaults must equal the creator's.
func TestSampleConfig(t *testing.T) {
	c := config.NewConfig()
	require.NoError(t, c.LoadConfigData([]byte(sampleConfig), config.EmptySourcePath))
	require.Len(t, c.Inputs, 1)
	k, ok := c.Inputs[0].Input.(*KubeTelemetry)
	require.True(t, ok)
	require.NoError(t, k.Init())
	require.Len(t, k.selected, len(resources))

	uncommented := regexp.MustCompile(`(?m)^  # ([a-z_]+ = )`).ReplaceAllString(sampleConfig, "  $1")
	// Telegraf reads the TLS files while loading: point them at real ones.
	pki := testpki.New(t)
	uncommented = strings.NewReplacer("/etc/telegraf/ca.pem", pki.CertFile, "/etc/telegraf/cert.pem", pki.CertFile,
		"/etc/telegraf/key.pem", pki.KeyFile).Replace(uncommented)
	c = config.NewConfig()
	require.NoError(t, c.LoadConfigData([]byte(uncommented), config.EmptySourcePath))
	k = c.Inputs[0].Input.(*KubeTelemetry)
	require.Equal(t, "https://10.0.0.1:6443", k.URL)
	require.Equal(t, "/etc/telegraf/kubeconfig", k.Kubeconfig)
	require.Equal(t, int64(defaultPageSize), k.PageSize)
	require.Equal(t, defaultResponseTimeout, k.ResponseTimeout)
	require.Equal(t, "kubernetes.default.svc", k.ServerName)
	// The sample lists every valid resource in the resource_include help.
	for _, name := range resourceNames() {
		require.Contains(t, sampleConfig, name)
	}
}

// expectedFixtureMetrics is what one gather of the unit-test cluster gives.
func expectedFixtureMetrics() []telegraf.Metric {
	now := time.Unix(0, 0)
	id := func(tags map[string]string) map[string]string {
		tags["cluster_uid"] = fixtureUID
		tags["cluster_name"] = "lab"
		return tags
	}
	m := func(name string, tags map[string]string, fields map[string]any) telegraf.Metric {
		return metric.New(name, id(tags), fields, now)
	}
	res := func(name string, items int64) telegraf.Metric {
		return m("kube_telemetry_resource", map[string]string{"resource": name},
			map[string]any{"items": items, "pages": int64(1), "duration_seconds": 0.0, "errors": int64(0), "restarts": int64(0)})
	}
	nodeTags := func(name, role string) map[string]string {
		return map[string]string{
			"node": name, "role": role, "os_image": "Ubuntu 22.04.4 LTS", "kernel_version": "5.15.0-105-generic",
			"operating_system": "linux", "architecture": "amd64", "kubelet_version": "v1.36.3",
			"container_runtime_version": "containerd://1.7.27",
		}
	}
	nodeFields := func(ready bool, gpuCap, gpuAlloc int64) map[string]any {
		return map[string]any{
			"ready": ready, "cpu_capacity_millicores": int64(4000), "memory_capacity_bytes": int64(16 << 30),
			"pods_capacity": int64(110), "cpu_allocatable_millicores": int64(3800),
			"memory_allocatable_bytes": int64(15 << 30), "pods_allocatable": int64(110),
			"gpu_capacity": gpuCap, "gpu_allocatable": gpuAlloc,
		}
	}
	addon := func(name, category, kind, version string, desired, ready int64) telegraf.Metric {
		return m("kube_telemetry_addon",
			map[string]string{"addon": name, "category": category, "kind": kind, "version": version},
			map[string]any{"desired": desired, "ready": ready})
	}
	return []telegraf.Metric{
		res("pods", 6), res("replicasets", 3), res("nodes", 4), res("services", 5), res("deployments", 5),
		res("persistentvolumeclaims", 2), res("persistentvolumes", 3), res("jobs", 2), res("cronjobs", 1),
		res("statefulsets", 1), res("daemonsets", 3), res("ingresses", 1), res("namespaces", 3),
		res("customresourcedefinitions", 2), res("ingressclasses", 1), res("storageclasses", 2), res("csidrivers", 1),
		m("kube_telemetry_nodes", map[string]string{}, map[string]any{
			"total": int64(4), "ready": int64(2), "not_ready": int64(1), "unknown": int64(1),
			"memory_pressure": int64(1), "disk_pressure": int64(1), "pid_pressure": int64(1),
			"network_unavailable": int64(1), "unschedulable": int64(1),
		}),
		m("kube_telemetry_node_role", map[string]string{"role": "control-plane,master"}, map[string]any{"nodes": int64(1)}),
		m("kube_telemetry_node_role", map[string]string{"role": "none"}, map[string]any{"nodes": int64(2)}),
		m("kube_telemetry_node_role", map[string]string{"role": "worker"}, map[string]any{"nodes": int64(1)}),
		m("kube_telemetry_node", nodeTags("master-0", "control-plane,master"), nodeFields(true, 0, 0)),
		m("kube_telemetry_node", nodeTags("worker-1", "worker"), nodeFields(true, 2, 1)),
		m("kube_telemetry_node", nodeTags("worker-2", "none"), nodeFields(false, 0, 0)),
		m("kube_telemetry_node", nodeTags("worker-3", "none"), nodeFields(false, 0, 0)),
		m("kube_telemetry_pods", map[string]string{}, map[string]any{
			"total": int64(6), "pending": int64(1), "running": int64(2), "succeeded": int64(1), "failed": int64(1),
			"unknown": int64(1), "qos_guaranteed": int64(1), "qos_burstable": int64(2), "qos_best_effort": int64(3),
			"containers": int64(9), "init_containers": int64(3),
		}),
		m("kube_telemetry_objects", map[string]string{}, map[string]any{
			"namespaces": int64(3), "deployments": int64(5), "replicasets": int64(3), "statefulsets": int64(1),
			"daemonsets": int64(3), "jobs": int64(2), "cronjobs": int64(1), "services": int64(5),
			"services_cluster_ip": int64(2), "services_node_port": int64(1), "services_load_balancer": int64(1),
			"services_external_name": int64(1), "services_headless": int64(1), "ingresses": int64(1),
			"ingress_classes": int64(1), "storage_classes": int64(2), "csi_drivers": int64(1),
			"persistent_volumes": int64(3), "persistent_volume_claims": int64(2), "crds": int64(2),
		}),
		m("kube_telemetry_storage", map[string]string{"storage_class": "none", "provisioner": "kubernetes.io/no-provisioner"},
			map[string]any{"persistent_volumes": int64(1), "pv_capacity_bytes": int64(1 << 30),
				"persistent_volume_claims": int64(1), "pvc_requested_bytes": int64(1 << 30)}),
		m("kube_telemetry_storage", map[string]string{"storage_class": "unused", "provisioner": "example.com/nfs"},
			map[string]any{"persistent_volumes": int64(0), "pv_capacity_bytes": int64(0),
				"persistent_volume_claims": int64(0), "pvc_requested_bytes": int64(0)}),
		m("kube_telemetry_storage", map[string]string{"storage_class": "vsan-default", "provisioner": "csi.vsphere.vmware.com"},
			map[string]any{"persistent_volumes": int64(2), "pv_capacity_bytes": int64(15 << 30),
				"persistent_volume_claims": int64(1), "pvc_requested_bytes": int64(8 << 30)}),
		addon("antrea", "cni", "DaemonSet", "v2.1.0", 4, 3),
		addon("kube-proxy", "other", "DaemonSet", "unknown", 4, 4),
		addon("vsphere-csi", "storage", "DaemonSet", "v3.3.1", 4, 4),
		addon("antrea", "cni", "Deployment", "v2.1.0", 1, 1),
		addon("coredns", "dns", "Deployment", "v1.11.3", 2, 2),
		addon("metrics-server", "metrics", "Deployment", "v0.7.2", 1, 0),
		m("kube_telemetry_cluster", map[string]string{}, map[string]any{
			"server_version": "v1.36.3", "platform": "linux/amd64", "cni": "antrea", "collection_seconds": 0.0,
			"api_requests": int64(0), "pages": int64(17), "errors": int64(0), "resources": int64(17),
		}),
	}
}

var ignoreTimings = testutil.IgnoreFields("duration_seconds", "collection_seconds")

func TestGatherFixture(t *testing.T) {
	k := newFixture(t).plugin(t, func(k *KubeTelemetry) { k.ClusterName = "lab" })
	var acc testutil.Accumulator
	require.NoError(t, k.Gather(&acc))
	require.Empty(t, acc.Errors)
	testutil.RequireMetricsEqual(t, expectedFixtureMetrics(), acc.GetTelegrafMetrics(),
		testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings)

	// One timestamp for the whole collection.
	metrics := acc.GetTelegrafMetrics()
	for _, m := range metrics {
		require.Equal(t, metrics[0].Time(), m.Time())
	}

	// A second gather reports the same, not twice as much: nothing
	// accumulates across gathers.
	acc.ClearMetrics()
	require.NoError(t, k.Gather(&acc))
	testutil.RequireMetricsEqual(t, expectedFixtureMetrics(), acc.GetTelegrafMetrics(),
		testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings)
}

func TestGatherForbidden(t *testing.T) {
	tests := []struct {
		name      string
		resource  string
		metadata  bool
		wantError string
		absent    []string // kube_telemetry_objects fields that must be missing
	}{
		{
			name: "persistentvolumes", resource: "persistentvolumes",
			wantError: `listing persistentvolumes failed: forbidden: grant "list" on "persistentvolumes" ` +
				`(cluster scope, apiGroup "") to the agent's ServiceAccount: persistentvolumes is forbidden: ` +
				`User "telegraf" cannot list resource "persistentvolumes" in API group "" at the cluster scope`,
			absent: []string{"persistent_volumes"},
		},
		{
			name: "pods", resource: "pods",
			wantError: `listing pods failed: forbidden: grant "list" on "pods" (all namespaces, apiGroup "") ` +
				`to the agent's ServiceAccount: pods is forbidden: User "telegraf" cannot list resource "pods" ` +
				`in API group "" at the cluster scope`,
		},
		{
			name: "replicasets (metadata list)", resource: "replicasets", metadata: true,
			wantError: `listing replicasets failed: forbidden: grant "list" on "replicasets" (all namespaces, apiGroup "apps") ` +
				`to the agent's ServiceAccount: replicasets.apps is forbidden: User "telegraf" cannot list resource ` +
				`"replicasets" in API group "apps" at the cluster scope`,
			absent: []string{"replicasets"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			res := resourceByName(tt.resource)
			forbid := func(ktesting.Action) (bool, kruntime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: res.group, Resource: res.name}, "",
					errors.New(`User "telegraf" cannot list resource "`+res.name+`" in API group "`+res.group+`" at the cluster scope`))
			}
			if tt.metadata {
				fx.meta.PrependReactor("list", tt.resource, forbid)
			} else {
				fx.kube.PrependReactor("list", tt.resource, forbid)
			}
			k := fx.plugin(t, func(k *KubeTelemetry) { k.ClusterName = "lab" })
			var acc testutil.Accumulator
			require.NoError(t, k.Gather(&acc))
			require.Len(t, acc.Errors, 1)
			require.EqualError(t, acc.Errors[0], tt.wantError)

			// Every other resource is still reported; the failed one is a
			// resource row with errors=1 and no data anywhere else.
			var expected []telegraf.Metric
			for _, m := range expectedFixtureMetrics() {
				switch {
				case m.Name() == "kube_telemetry_resource" && m.Tags()["resource"] == tt.resource:
					m.AddField("items", int64(0))
					m.AddField("pages", int64(0))
					m.AddField("errors", int64(1))
				case m.Name() == "kube_telemetry_pods" && tt.resource == "pods":
					continue
				case m.Name() == "kube_telemetry_storage" && tt.resource == "persistentvolumes":
					m.RemoveField("persistent_volumes")
					m.RemoveField("pv_capacity_bytes")
					// The class-less volumes' provisioner came from the PVs.
					if m.Tags()["storage_class"] == "none" {
						m.AddTag("provisioner", "unknown")
					}
				case m.Name() == "kube_telemetry_objects":
					for _, f := range tt.absent {
						m.RemoveField(f)
					}
				case m.Name() == "kube_telemetry_cluster":
					m.AddField("pages", int64(16))
					m.AddField("errors", int64(1))
					m.AddField("resources", int64(16))
				}
				expected = append(expected, m)
			}
			testutil.RequireMetricsEqual(t, expected, acc.GetTelegrafMetrics(),
				testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings)
		})
	}
}

func TestGatherExcluded(t *testing.T) {
	k := newFixture(t).plugin(t, func(k *KubeTelemetry) {
		k.ResourceInclude = []string{"nodes", "storageclasses", "persistentvolumeclaims"}
	})
	var acc testutil.Accumulator
	require.NoError(t, k.Gather(&acc))
	require.Empty(t, acc.Errors)
	seen := map[string]bool{}
	for _, m := range acc.GetTelegrafMetrics() {
		seen[m.Name()] = true
		if m.Name() == "kube_telemetry_resource" {
			require.Contains(t, []string{"nodes", "storageclasses", "persistentvolumeclaims"}, m.Tags()["resource"])
		}
	}
	require.False(t, seen["kube_telemetry_pods"])
	require.False(t, seen["kube_telemetry_addon"])
	obj, ok := acc.Get("kube_telemetry_objects")
	require.True(t, ok)
	require.Equal(t, map[string]any{"storage_classes": int64(2), "persistent_volume_claims": int64(2)}, obj.Fields)
	// No PV list: storage rows carry the claims only.
	for _, m := range acc.GetTelegrafMetrics() {
		if m.Name() == "kube_telemetry_storage" {
			require.NotContains(t, m.Fields(), "persistent_volumes")
			require.Contains(t, m.Fields(), "persistent_volume_claims")
		}
	}
	cni, ok := acc.StringField("kube_telemetry_cluster", "cni")
	require.True(t, ok)
	require.Equal(t, "unknown", cni)
}

// TestGatherUnreachable: a real TCP port with nothing behind it. Each
// gather returns one clear error and leaves no goroutine behind.
func TestGatherUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	k := &KubeTelemetry{
		URL: "https://" + addr, PageSize: defaultPageSize, ResponseTimeout: config.Duration(2 * time.Second),
		BearerToken: config.NewSecret([]byte("token")), Log: testutil.Logger{},
	}
	require.NoError(t, k.Init())
	require.NoError(t, k.Start(nil))
	defer k.Stop()

	var acc testutil.Accumulator
	err = k.Gather(&acc)
	require.ErrorContains(t, err, "kubernetes API server https://"+addr+" unreachable: ")
	require.ErrorContains(t, err, "connection refused")
	require.Empty(t, acc.GetTelegrafMetrics())

	before := runtime.NumGoroutine()
	for range 20 {
		require.Error(t, k.Gather(&acc))
	}
	require.Empty(t, acc.GetTelegrafMetrics())
	require.Empty(t, acc.Errors)
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+2 },
		5*time.Second, 50*time.Millisecond, "goroutines grew from %d to %d", before, runtime.NumGoroutine())
}

func TestStartConnectionErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(bad, []byte("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"), 0o600))
	tests := []struct {
		name      string
		configure func(*KubeTelemetry)
		wantErr   string
	}{
		{name: "missing kubeconfig", configure: func(k *KubeTelemetry) { k.Kubeconfig = filepath.Join(dir, "missing") },
			wantErr: `loading kubeconfig "` + filepath.Join(dir, "missing") + `" failed: `},
		{name: "context not in kubeconfig", configure: func(k *KubeTelemetry) { k.Kubeconfig = bad; k.Context = "prod" },
			wantErr: `context "prod" does not exist`},
		{name: "missing token file", configure: func(k *KubeTelemetry) {
			k.URL = "https://127.0.0.1:1"
			k.BearerTokenFile = filepath.Join(dir, "token")
		}, wantErr: "token"},
		{name: "missing CA file", configure: func(k *KubeTelemetry) {
			k.URL = "https://127.0.0.1:1"
			k.TLSCA = filepath.Join(dir, "ca.pem")
		}, wantErr: "tls options: "},
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		tests = append(tests, struct {
			name      string
			configure func(*KubeTelemetry)
			wantErr   string
		}{name: "in-cluster outside a pod", configure: func(*KubeTelemetry) {},
			wantErr: "neither url nor kubeconfig is set and the in-cluster ServiceAccount is unusable (not running in a pod?)"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &KubeTelemetry{PageSize: defaultPageSize, ResponseTimeout: defaultResponseTimeout, ListStrategy: strategyAuto}
			tt.configure(k)
			require.NoError(t, k.Init())
			err := k.Start(nil)
			require.ErrorContains(t, err, tt.wantErr)
			k.Stop()
		})
	}
}

func TestErrorHints(t *testing.T) {
	pods := resourceByName("pods")
	csi := resourceByName("csidrivers")
	tests := []struct {
		name string
		res  resource
		err  error
		want string
	}{
		{name: "unauthorized", res: pods, err: apierrors.NewUnauthorized("Unauthorized"),
			want: "listing pods failed: unauthorized: the API server rejected the agent's credentials; " +
				"check bearer_token, bearer_token_file or the kubeconfig user: Unauthorized"},
		{name: "not served", res: csi, err: apierrors.NewNotFound(schema.GroupResource{Group: "storage.k8s.io", Resource: "csidrivers"}, ""),
			want: `listing csidrivers failed: not served: the API server has no "csidrivers" in "storage.k8s.io/v1"; ` +
				`drop it with resource_exclude: csidrivers.storage.k8s.io "" not found`},
		{name: "timeout", res: pods, err: apierrors.NewTimeoutError("request did not complete", 1),
			want: "listing pods failed: timed out: raise response_timeout or lower page_size: " +
				"Timeout: request did not complete"},
		{name: "throttled", res: pods, err: apierrors.NewTooManyRequests("too many requests", 1),
			want: "listing pods failed: throttled: the API server's priority and fairness rejected the request; " +
				"raise page_size or the collection interval: too many requests"},
		{name: "stalled stream", res: pods, err: &stalledError{after: 10 * time.Second},
			want: "listing pods failed: stalled: raise response_timeout if the API server is overloaded (an unpaginated " +
				"list may take 6 times response_timeout to start): the API server sent nothing for 10s"},
		{name: "list never started", res: pods, err: &stalledError{after: time.Minute, firstByte: true},
			want: "listing pods failed: stalled: raise response_timeout if the API server is overloaded (an unpaginated " +
				"list may take 6 times response_timeout to start): the API server did not start answering within 1m0s"},
		{name: "collection bound", res: pods, err: &collectionTimeoutError{after: 5 * time.Minute},
			want: "listing pods failed: timed out: the whole collection is bounded; raise response_timeout or check " +
				"the API server's load: the collection took longer than 5m0s (30 times response_timeout)"},
		{name: "other", res: pods, err: errors.New("boom"), want: "listing pods failed: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newListError(tt.res, tt.err)
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, tt.err)
		})
	}
}

func TestResourceTableMatchesClusterRole(t *testing.T) {
	// Every resource the plugin lists has a "list" rule in the shipped
	// ClusterRole under its API group, and the role grants nothing else.
	role, err := os.ReadFile(filepath.Join("..", "..", "..", "configs", "kubernetes", "base", "clusterrole.yaml"))
	require.NoError(t, err)
	granted := parseClusterRole(t, string(role))
	want := map[string][]string{}
	for _, r := range resources {
		want[r.group+"/"+r.name] = []string{"list"}
	}
	want["/namespaces"] = []string{"get", "list"} // get: kube-system, the cluster's identity
	require.Equal(t, want, granted)
}

// parseClusterRole reads the flow-style rules of clusterrole.yaml into
// "group/resource" -> verbs.
func parseClusterRole(t *testing.T, yaml string) map[string][]string {
	t.Helper()
	list := func(s string) []string {
		s = strings.Trim(strings.TrimSpace(s), "[]")
		var out []string
		for _, v := range strings.Split(s, ",") {
			if v = strings.Trim(strings.TrimSpace(v), `"`); v != "" || strings.Contains(s, `""`) {
				out = append(out, v)
			}
		}
		return out
	}
	out := map[string][]string{}
	var groups, res []string
	for _, line := range strings.Split(yaml, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "- apiGroups:"):
			groups = list(strings.TrimPrefix(line, "- apiGroups:"))
			if len(groups) == 0 {
				groups = []string{""}
			}
		case strings.HasPrefix(line, "resources:"):
			res = list(strings.TrimPrefix(line, "resources:"))
		case strings.HasPrefix(line, "verbs:"):
			verbs := list(strings.TrimPrefix(line, "verbs:"))
			for _, g := range groups {
				for _, r := range res {
					out[g+"/"+r] = verbs
				}
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}
