package kube_telemetry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/testutil"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The integration tests run against a real kube-apiserver and etcd, seeded
// by kubeseed with a known cluster whose ground truth (the seed summary) the
// metrics must equal. With KUBE_TEST_ENV pointing at the env file of a
// running scripts/kube-apiserver-up.sh cluster, that one is used (seeded
// here if still empty, else KUBE_SEED_SUMMARY must name its summary);
// without it, the first integration test starts a private cluster in a
// temporary state dir and TestMain stops it.

const (
	seedNodes    = 30
	seedPods     = 600
	seedValue    = 7
	testPageSize = 50
)

// seedSummary is the shared seed summary contract (kubeseed -summary).
type seedSummary struct {
	KubeSystemUID string `json:"kube_system_uid"`
	ServerVersion string `json:"server_version"`
	Nodes         []struct {
		Name                     string `json:"name"`
		Role                     string `json:"role"`
		OSImage                  string `json:"os_image"`
		KernelVersion            string `json:"kernel_version"`
		OperatingSystem          string `json:"operating_system"`
		Architecture             string `json:"architecture"`
		KubeletVersion           string `json:"kubelet_version"`
		ContainerRuntimeVersion  string `json:"container_runtime_version"`
		Ready                    bool   `json:"ready"`
		ReadyStatus              string `json:"ready_status"`
		MemoryPressure           bool   `json:"memory_pressure"`
		DiskPressure             bool   `json:"disk_pressure"`
		PIDPressure              bool   `json:"pid_pressure"`
		NetworkUnavailable       bool   `json:"network_unavailable"`
		Unschedulable            bool   `json:"unschedulable"`
		CPUCapacityMillicores    int64  `json:"cpu_capacity_millicores"`
		MemoryCapacityBytes      int64  `json:"memory_capacity_bytes"`
		PodsCapacity             int64  `json:"pods_capacity"`
		CPUAllocatableMillicores int64  `json:"cpu_allocatable_millicores"`
		MemoryAllocatableBytes   int64  `json:"memory_allocatable_bytes"`
		PodsAllocatable          int64  `json:"pods_allocatable"`
		GPUCapacity              int64  `json:"gpu_capacity"`
		GPUAllocatable           int64  `json:"gpu_allocatable"`
	} `json:"nodes"`
	Pods    map[string]int64 `json:"pods"`
	Objects map[string]int64 `json:"objects"`
	Storage []struct {
		StorageClass           string `json:"storage_class"`
		Provisioner            string `json:"provisioner"`
		PersistentVolumes      int64  `json:"persistent_volumes"`
		PersistentVolumeClaims int64  `json:"persistent_volume_claims"`
		PVCapacityBytes        int64  `json:"pv_capacity_bytes"`
		PVCRequestedBytes      int64  `json:"pvc_requested_bytes"`
	} `json:"storage"`
	Addons []struct {
		Addon    string `json:"addon"`
		Category string `json:"category"`
		Kind     string `json:"kind"`
		Version  string `json:"version"`
		Desired  int64  `json:"desired"`
		Ready    int64  `json:"ready"`
	} `json:"addons"`
	CNI string `json:"cni"`
}

type testCluster struct {
	env     map[string]string
	summary *seedSummary
}

var (
	clusterOnce sync.Once
	cluster     *testCluster
	clusterErr  error
	// stopCluster stops a cluster this test binary started itself.
	stopCluster func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stopCluster != nil {
		stopCluster()
	}
	testkube.Stop()
	os.Exit(code)
}

// realCluster returns the seeded test cluster, starting it on first use.
// Under -short, the fast loop, the test is skipped; otherwise it fails
// (never skips) when no cluster can be had, saying how to start one.
func realCluster(t *testing.T) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real kube-apiserver (started by the test); runs without -short")
	}
	clusterOnce.Do(func() { cluster, clusterErr = setupCluster() })
	if clusterErr != nil {
		require.FailNow(t, "no kube-apiserver for the integration tests", "%v\n\nStart one with "+
			"`scripts/kube-apiserver-up.sh` and run the tests with KUBE_TEST_ENV=.cache/kube-run/env, "+
			"or leave KUBE_TEST_ENV unset so the tests start their own (needs go, openssl, curl, kubectl).", clusterErr)
	}
	return cluster
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func setupCluster() (*testCluster, error) {
	envFile := os.Getenv("KUBE_TEST_ENV")
	if envFile == "" {
		state, err := os.MkdirTemp("", "kube-telemetry-it-")
		if err != nil {
			return nil, err
		}
		up := exec.Command(filepath.Join(repoRoot(), "scripts", "kube-apiserver-up.sh"), state)
		up.Stdout, up.Stderr = os.Stderr, os.Stderr
		stopCluster = func() {
			down := exec.Command(filepath.Join(repoRoot(), "scripts", "kube-apiserver-down.sh"), "--purge", state)
			down.Stdout, down.Stderr = os.Stderr, os.Stderr
			if err := down.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "stopping the test kube-apiserver failed: %v\n", err)
			}
		}
		if err := up.Run(); err != nil {
			return nil, fmt.Errorf("scripts/kube-apiserver-up.sh %s failed: %w", state, err)
		}
		envFile = filepath.Join(state, "env")
	}
	env, err := readEnv(envFile)
	if err != nil {
		return nil, err
	}
	summaryFile := os.Getenv("KUBE_SEED_SUMMARY")
	if summaryFile == "" {
		summaryFile = filepath.Join(env["KUBE_TEST_DIR"], "kube-telemetry-seed.json")
		seed := exec.Command(env["KUBESEED"], "-kubeconfig", env["KUBECONFIG_ADMIN"],
			"-nodes", fmt.Sprint(seedNodes), "-pods", fmt.Sprint(seedPods), "-seed", fmt.Sprint(seedValue),
			"-summary", summaryFile)
		var out bytes.Buffer
		seed.Stdout, seed.Stderr = &out, &out
		if err := seed.Run(); err != nil {
			return nil, fmt.Errorf("seeding with %s failed: %w\n%s(a cluster seeded before: set KUBE_SEED_SUMMARY to its summary)",
				env["KUBESEED"], err, out.String())
		}
	}
	data, err := os.ReadFile(summaryFile)
	if err != nil {
		return nil, fmt.Errorf("reading the seed summary: %w", err)
	}
	var s seedSummary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decoding the seed summary %s: %w", summaryFile, err)
	}
	return &testCluster{env: env, summary: &s}, nil
}

func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the env file of scripts/kube-apiserver-up.sh: %w", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	for _, k := range []string{"KUBE_API_URL", "KUBE_CA_FILE", "KUBECONFIG_ADMIN", "KUBECONFIG_TELEGRAF",
		"KUBECONFIG_TELEGRAF_LIMITED", "KUBE_TOKEN_TELEGRAF", "KUBESEED", "KUBE_TEST_DIR"} {
		if env[k] == "" {
			return nil, fmt.Errorf("%s has no %s", path, k)
		}
	}
	return env, sc.Err()
}

// expected builds, from the seed summary alone, every metric one gather must
// produce (timings excluded). pageSize 0: unpaginated lists.
func (s *seedSummary) expected(clusterName string, pageSize int64) []telegraf.Metric {
	now := time.Unix(0, 0)
	m := func(name string, tags map[string]string, fields map[string]any) telegraf.Metric {
		tags["cluster_uid"] = s.KubeSystemUID
		if clusterName != "" {
			tags["cluster_name"] = clusterName
		}
		return metric.New(name, tags, fields, now)
	}
	var out []telegraf.Metric

	items := map[string]int64{
		"pods":  s.Pods["total"],
		"nodes": int64(len(s.Nodes)),
	}
	for _, r := range resources {
		if r.objectsField != "" {
			items[r.name] = s.Objects[r.objectsField]
		}
	}
	var pages int64
	for _, r := range resources {
		p := int64(1)
		if pageSize > 0 {
			p = max(1, (items[r.name]+pageSize-1)/pageSize)
		}
		pages += p
		out = append(out, m("kube_telemetry_resource", map[string]string{"resource": r.name}, map[string]any{
			"items": items[r.name], "pages": p, "duration_seconds": 0.0, "errors": int64(0), "restarts": int64(0),
		}))
	}
	out = append(out, m("kube_telemetry_cluster", map[string]string{}, map[string]any{
		"server_version": s.ServerVersion, "platform": runtime.GOOS + "/" + runtime.GOARCH, "cni": s.CNI,
		"collection_seconds": 0.0, "api_requests": pages + 2, "pages": pages,
		"errors": int64(0), "resources": int64(len(resources)),
	}))

	nodes := map[string]any{}
	for _, k := range []string{"total", "ready", "not_ready", "unknown", "memory_pressure", "disk_pressure",
		"pid_pressure", "network_unavailable", "unschedulable"} {
		nodes[k] = int64(0)
	}
	inc := func(k string, b bool) {
		if b {
			nodes[k] = nodes[k].(int64) + 1
		}
	}
	roles := map[string]int64{}
	for _, n := range s.Nodes {
		inc("total", true)
		inc("ready", n.ReadyStatus == "True")
		inc("not_ready", n.ReadyStatus == "False")
		inc("unknown", n.ReadyStatus != "True" && n.ReadyStatus != "False")
		inc("memory_pressure", n.MemoryPressure)
		inc("disk_pressure", n.DiskPressure)
		inc("pid_pressure", n.PIDPressure)
		inc("network_unavailable", n.NetworkUnavailable)
		inc("unschedulable", n.Unschedulable)
		roles[n.Role]++
		out = append(out, m("kube_telemetry_node", map[string]string{
			"node": n.Name, "role": n.Role, "os_image": n.OSImage, "kernel_version": n.KernelVersion,
			"operating_system": n.OperatingSystem, "architecture": n.Architecture,
			"kubelet_version": n.KubeletVersion, "container_runtime_version": n.ContainerRuntimeVersion,
		}, map[string]any{
			"ready": n.Ready, "cpu_capacity_millicores": n.CPUCapacityMillicores,
			"memory_capacity_bytes": n.MemoryCapacityBytes, "pods_capacity": n.PodsCapacity,
			"cpu_allocatable_millicores": n.CPUAllocatableMillicores,
			"memory_allocatable_bytes":   n.MemoryAllocatableBytes, "pods_allocatable": n.PodsAllocatable,
			"gpu_capacity": n.GPUCapacity, "gpu_allocatable": n.GPUAllocatable,
		}))
	}
	out = append(out, m("kube_telemetry_nodes", map[string]string{}, nodes))
	for role, n := range roles {
		out = append(out, m("kube_telemetry_node_role", map[string]string{"role": role}, map[string]any{"nodes": n}))
	}

	pods := map[string]any{}
	for k, v := range s.Pods {
		pods[k] = v
	}
	out = append(out, m("kube_telemetry_pods", map[string]string{}, pods))
	objects := map[string]any{}
	for k, v := range s.Objects {
		objects[k] = v
	}
	out = append(out, m("kube_telemetry_objects", map[string]string{}, objects))
	for _, st := range s.Storage {
		out = append(out, m("kube_telemetry_storage",
			map[string]string{"storage_class": st.StorageClass, "provisioner": st.Provisioner},
			map[string]any{"persistent_volumes": st.PersistentVolumes, "pv_capacity_bytes": st.PVCapacityBytes,
				"persistent_volume_claims": st.PersistentVolumeClaims, "pvc_requested_bytes": st.PVCRequestedBytes}))
	}
	for _, a := range s.Addons {
		out = append(out, m("kube_telemetry_addon",
			map[string]string{"addon": a.Addon, "category": a.Category, "kind": a.Kind, "version": a.Version},
			map[string]any{"desired": a.Desired, "ready": a.Ready}))
	}
	return out
}

func startPlugin(t *testing.T, k *KubeTelemetry) *KubeTelemetry {
	t.Helper()
	if k.PageSize == 0 {
		k.PageSize = testPageSize
	}
	if k.ListStrategy == "" {
		// Most tests count pages; the strategies have tests of their own.
		k.ListStrategy = strategyPaginated
	}
	if k.ResponseTimeout == 0 {
		k.ResponseTimeout = defaultResponseTimeout
	}
	if k.AddonNamespaces == nil {
		k.AddonNamespaces = defaultAddonNamespaces
	}
	k.Log = testutil.Logger{}
	require.NoError(t, k.Init())
	require.NoError(t, k.Start(nil))
	t.Cleanup(k.Stop)
	return k
}

// gatherClean starts the plugin and gathers once, without errors.
func gatherClean(t *testing.T, k *KubeTelemetry) *testutil.Accumulator {
	t.Helper()
	startPlugin(t, k)
	var acc testutil.Accumulator
	require.NoError(t, k.Gather(&acc))
	require.Empty(t, acc.Errors)
	return &acc
}

func TestIntegrationMetricsEqualSeed(t *testing.T) {
	c := realCluster(t)
	for _, tt := range []struct {
		strategy string
		pageSize int64 // the limit of the lists: 0 unpaginated
	}{
		{strategy: strategyAuto, pageSize: 0}, // v1.36: unpaginated
		{strategy: strategyUnpaginated, pageSize: 0},
		{strategy: strategyPaginated, pageSize: testPageSize},
	} {
		t.Run(tt.strategy, func(t *testing.T) {
			acc := gatherClean(t, &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"], ClusterName: "it",
				ListStrategy: tt.strategy})
			testutil.RequireMetricsEqual(t, c.summary.expected("it", tt.pageSize), acc.GetTelegrafMetrics(),
				testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings)
		})
	}

	// The summary itself is not trivial: every counter the contract has is
	// exercised by the seed.
	for _, k := range []string{"pending", "running", "succeeded", "failed", "unknown",
		"qos_guaranteed", "qos_burstable", "qos_best_effort", "init_containers"} {
		require.Positive(t, c.summary.Pods[k], "seed has no pods counted in %s", k)
	}
	for k, v := range c.summary.Objects {
		require.Positive(t, v, "seed has no %s", k)
	}
	require.Greater(t, c.summary.Pods["total"], int64(testPageSize), "the pods list must span several pages")
}

// TestIntegrationGatherMatchesDictionary: what the plugin emits on a real,
// seeded API server is exactly what the data dictionary lists, with the
// same types: nothing emitted that the dictionary lacks (the policy would
// drop it without a word) and nothing listed that is never emitted.
func TestIntegrationGatherMatchesDictionary(t *testing.T) {
	c := realCluster(t)
	acc := gatherClean(t, &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"], ClusterName: "it"})
	requireNoMismatch(t, mismatches("the gather", gatheredShape(acc.GetTelegrafMetrics()),
		"the data dictionary", dictionaryShape(telemetry.DefaultDictionary())))
}

func TestIntegrationPageSizes(t *testing.T) {
	c := realCluster(t)
	for _, size := range []int64{1, 7, 500, 5000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if size == 1 {
				// One item per page is hundreds of requests: keep to the
				// cheap resources, with the pods list in it.
				k := startPlugin(t, &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"], PageSize: size,
					ResourceInclude: []string{"pods", "nodes", "namespaces"}})
				var acc testutil.Accumulator
				require.NoError(t, k.Gather(&acc))
				require.Empty(t, acc.Errors)
				res := findMetric(t, &acc, "kube_telemetry_resource", "resource", "pods")
				require.Equal(t, c.summary.Pods["total"], res.Fields["pages"])
				pods, _ := acc.Get("kube_telemetry_pods")
				require.Equal(t, c.summary.Pods["total"], pods.Fields["total"])
				return
			}
			k := startPlugin(t, &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"], PageSize: size})
			var acc testutil.Accumulator
			require.NoError(t, k.Gather(&acc))
			require.Empty(t, acc.Errors)
			testutil.RequireMetricsEqual(t, c.summary.expected("", size), acc.GetTelegrafMetrics(),
				testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings)
		})
	}
}

func TestIntegrationLimitedToken(t *testing.T) {
	c := realCluster(t)
	k := startPlugin(t, &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF_LIMITED"]})
	var acc testutil.Accumulator
	require.NoError(t, k.Gather(&acc))
	require.Len(t, acc.Errors, 1)
	require.EqualError(t, acc.Errors[0], `listing persistentvolumes failed: forbidden: grant "list" on "persistentvolumes" `+
		`(cluster scope, apiGroup "") to the agent's ServiceAccount: persistentvolumes is forbidden: `+
		`User "telegraf-limited" cannot list resource "persistentvolumes" in API group "" at the cluster scope`)

	var expected []telegraf.Metric
	for _, m := range c.summary.expected("", testPageSize) {
		switch m.Name() {
		case "kube_telemetry_resource":
			if m.Tags()["resource"] == "persistentvolumes" {
				m.AddField("items", int64(0))
				m.AddField("pages", int64(0))
				m.AddField("errors", int64(1))
			}
		case "kube_telemetry_cluster":
			pvPages := max(1, (c.summary.Objects["persistent_volumes"]+testPageSize-1)/testPageSize)
			pages := m.Fields()["pages"].(int64) - pvPages
			m.AddField("pages", pages)
			m.AddField("api_requests", pages+3) // /version, kube-system and the forbidden list
			m.AddField("errors", int64(1))
			m.AddField("resources", int64(len(resources)-1))
		case "kube_telemetry_objects":
			m.RemoveField("persistent_volumes")
		case "kube_telemetry_storage":
			m.RemoveField("persistent_volumes")
			m.RemoveField("pv_capacity_bytes")
		}
		expected = append(expected, m)
	}
	testutil.RequireMetricsEqual(t, expected, acc.GetTelegrafMetrics(),
		testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings)
}

// expireOnce answers the first continue request for one resource with the
// 410 Expired the API server sends when etcd has compacted the list's
// snapshot; everything else reaches the real API server.
type expireOnce struct {
	next     http.RoundTripper
	path     string
	expired  atomic.Int64
	requests atomic.Int64
}

func (e *expireOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == e.path {
		e.requests.Add(1)
		if req.URL.Query().Get("continue") != "" && e.expired.CompareAndSwap(0, 1) {
			body := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",` +
				`"message":"The provided continue parameter is too old to display a consistent list result. ` +
				`You can start a new list without the continue parameter.","reason":"Expired","code":410}`
			return &http.Response{
				StatusCode: http.StatusGone, Status: "410 Gone", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header:  http.Header{"Content-Type": []string{"application/json"}},
				Body:    io.NopCloser(strings.NewReader(body)),
				Request: req, ContentLength: int64(len(body)),
			}, nil
		}
	}
	return e.next.RoundTrip(req)
}

func (e *expireOnce) WrappedRoundTripper() http.RoundTripper { return e.next }

func TestIntegrationExpiredContinue(t *testing.T) {
	c := realCluster(t)
	for _, tc := range []struct{ resource, path string }{
		{resource: "pods", path: "/api/v1/pods"},                     // typed, protobuf
		{resource: "replicasets", path: "/apis/apps/v1/replicasets"}, // metadata-only
	} {
		t.Run(tc.resource, func(t *testing.T) {
			wrapper := &expireOnce{path: tc.path}
			k := &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"]}
			k.wrapTransport = func(rt http.RoundTripper) http.RoundTripper { wrapper.next = rt; return wrapper }
			acc := gatherClean(t, k)
			require.Equal(t, int64(1), wrapper.expired.Load())

			// Counts are exact (the pages before the 410 were dropped);
			// the restart is counted; the page before the 410 and the
			// whole list again were fetched.
			items := c.summary.Objects[resourceByName(tc.resource).objectsField]
			if tc.resource == "pods" {
				items = c.summary.Pods["total"]
			}
			pages := (items + testPageSize - 1) / testPageSize
			require.Greater(t, pages, int64(1))
			res := findMetric(t, acc, "kube_telemetry_resource", "resource", tc.resource)
			require.Equal(t, items, res.Fields["items"])
			require.Equal(t, int64(1), res.Fields["restarts"])
			require.Equal(t, pages+1, res.Fields["pages"])
			require.Equal(t, pages+2, wrapper.requests.Load())

			var expected []telegraf.Metric
			for _, m := range c.summary.expected("", testPageSize) {
				switch {
				case m.Name() == "kube_telemetry_resource" && m.Tags()["resource"] == tc.resource:
					m.AddField("restarts", int64(1))
					m.AddField("pages", pages+1)
				case m.Name() == "kube_telemetry_cluster":
					m.AddField("pages", m.Fields()["pages"].(int64)+1)
					m.AddField("api_requests", m.Fields()["api_requests"].(int64)+2)
				}
				expected = append(expected, m)
			}
			testutil.RequireMetricsEqual(t, expected, acc.GetTelegrafMetrics(),
				testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings)
		})
	}
}

// TestIntegrationConnectionModes: url with a token (secret or file) and
// Telegraf's TLS options reach the same cluster as the kubeconfig; a wrong
// token is one clear error.
func TestIntegrationConnectionModes(t *testing.T) {
	c := realCluster(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(c.env["KUBE_TOKEN_TELEGRAF"]+"\n"), 0o600))
	tlsCfg := tls.ClientConfig{TLSCA: c.env["KUBE_CA_FILE"]}
	tests := []struct {
		name    string
		plugin  *KubeTelemetry
		wantErr string
	}{
		{name: "url and bearer_token", plugin: &KubeTelemetry{URL: c.env["KUBE_API_URL"],
			BearerToken: config.NewSecret([]byte(c.env["KUBE_TOKEN_TELEGRAF"])), ClientConfig: tlsCfg}},
		{name: "url and bearer_token_file", plugin: &KubeTelemetry{URL: c.env["KUBE_API_URL"],
			BearerTokenFile: tokenFile, ClientConfig: tlsCfg}},
		{name: "kubeconfig context", plugin: &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"],
			Context: "telegraf@kube-test"}},
		{name: "wrong token", plugin: &KubeTelemetry{URL: c.env["KUBE_API_URL"],
			BearerToken: config.NewSecret([]byte("not-a-token")), ClientConfig: tlsCfg},
			wantErr: "kubernetes API server " + c.env["KUBE_API_URL"] + " rejected the credentials " +
				"(check bearer_token, bearer_token_file or the kubeconfig user): the server has asked for the client to provide credentials"},
		{name: "untrusted server", plugin: &KubeTelemetry{URL: c.env["KUBE_API_URL"],
			BearerToken: config.NewSecret([]byte(c.env["KUBE_TOKEN_TELEGRAF"]))},
			wantErr: "kubernetes API server " + c.env["KUBE_API_URL"] + " unreachable: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.plugin.ResourceInclude = []string{"pods", "nodes"}
			k := startPlugin(t, tt.plugin)
			var acc testutil.Accumulator
			err := k.Gather(&acc)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Empty(t, acc.GetTelegrafMetrics())
				return
			}
			require.NoError(t, err)
			require.Empty(t, acc.Errors)
			pods, ok := acc.Get("kube_telemetry_pods")
			require.True(t, ok)
			require.Equal(t, c.summary.Pods["total"], pods.Fields["total"])
			require.Equal(t, c.summary.KubeSystemUID, pods.Tags["cluster_uid"])
		})
	}
}

// TestIntegrationSteadyState: repeated gathers reuse the clients and leave
// neither goroutines nor heap behind.
func TestIntegrationSteadyState(t *testing.T) {
	c := realCluster(t)
	k := startPlugin(t, &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"]})
	clients := k.clients
	gather := func() {
		var acc testutil.Accumulator
		require.NoError(t, k.Gather(&acc))
		require.Empty(t, acc.Errors)
	}
	gather()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	for range 10 {
		gather()
	}
	require.Same(t, clients, k.clients)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	require.LessOrEqual(t, runtime.NumGoroutine(), goroutines+2)
	require.Less(t, after.HeapAlloc, before.HeapAlloc+4<<20, "heap grew from %d to %d bytes over 10 gathers",
		before.HeapAlloc, after.HeapAlloc)
}

// recorder keeps what went over the wire.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	log  []exchange
}

type exchange struct {
	method, path, accept, userAgent, contentType string
	query                                        url.Values
	status                                       int
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.log = append(r.log, exchange{method: req.Method, path: req.URL.Path, query: req.URL.Query(),
		accept: req.Header.Get("Accept"), userAgent: req.Header.Get("User-Agent"),
		contentType: resp.Header.Get("Content-Type"), status: resp.StatusCode})
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) WrappedRoundTripper() http.RoundTripper { return r.next }

// TestIntegrationWireFormat: what the API server actually sees. Lists have
// no resourceVersion (consistent reads) and no server-side timeout, are
// answered in protobuf, and the counted resources are metadata-only; on
// this v1.36 server "auto" asks for each whole list in one request,
// "paginated" for limit=page_size pages.
func TestIntegrationWireFormat(t *testing.T) {
	c := realCluster(t)
	for _, strategy := range []string{strategyAuto, strategyPaginated} {
		t.Run(strategy, func(t *testing.T) {
			requireWireFormat(t, c, strategy)
		})
	}
}

func requireWireFormat(t *testing.T, c *testCluster, strategy string) {
	rec := &recorder{}
	k := &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"], ListStrategy: strategy}
	k.wrapTransport = func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec }
	gatherClean(t, k)
	paginated := strategy == strategyPaginated

	metadataOnly := map[string]bool{}
	for _, r := range resources {
		metadataOnly[r.name] = r.metadataOnly
	}
	require.GreaterOrEqual(t, len(rec.log), 2+len(resources))
	require.Equal(t, "/version", rec.log[0].path)
	require.Equal(t, "/api/v1/namespaces/kube-system", rec.log[1].path)
	listed := map[string]int{}
	for _, x := range rec.log {
		require.Equal(t, http.MethodGet, x.method)
		require.Equal(t, http.StatusOK, x.status, x.path)
		require.Equal(t, userAgent, x.userAgent)
		if x.path == "/version" || x.path == "/api/v1/namespaces/kube-system" {
			continue
		}
		res := x.path[strings.LastIndex(x.path, "/")+1:]
		listed[res]++
		if paginated {
			require.Equal(t, []string{fmt.Sprint(testPageSize)}, x.query["limit"], x.path)
		} else {
			require.NotContains(t, x.query, "limit", x.path)
		}
		require.NotContains(t, x.query, "timeout", x.path)
		require.NotContains(t, x.query, "resourceVersion", x.path)
		require.NotContains(t, x.query, "resourceVersionMatch", x.path)
		require.Equal(t, listed[res] > 1, x.query.Get("continue") != "", "%s page %d", x.path, listed[res])
		require.True(t, strings.HasPrefix(x.contentType, "application/vnd.kubernetes.protobuf"),
			"%s answered in %q", x.path, x.contentType)
		require.Equal(t, metadataOnly[res], strings.Contains(x.accept, "as=PartialObjectMetadataList"),
			"%s Accept: %s", x.path, x.accept)
	}
	require.Len(t, listed, len(resources))
	pods := c.summary.Pods["total"]
	if paginated {
		require.Equal(t, int((pods+testPageSize-1)/testPageSize), listed["pods"])
	} else {
		require.Equal(t, 1, listed["pods"])
	}
}

// kubectlAdmin runs kubectl as the cluster's admin, stdin from in.
func kubectlAdmin(t *testing.T, c *testCluster, in string, args ...string) string {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", c.env["KUBECONFIG_ADMIN"]}, args...)...)
	cmd.Stdin = strings.NewReader(in)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "kubectl %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// TestIntegrationIdentityForbidden: a ServiceAccount token (in namespace
// default: a namespace of its own would change the counts) bound to the
// shipped ClusterRole with its namespaces rule cut down. Every other metric
// is still reported, without cluster_uid, and the error names the rule.
func TestIntegrationIdentityForbidden(t *testing.T) {
	c := realCluster(t)
	shipped, err := os.ReadFile(filepath.Join(repoRoot(), "configs", "kubernetes", "base", "clusterrole.yaml"))
	require.NoError(t, err)
	const nsRule = "  - apiGroups: [\"\"]\n    resources: [namespaces]\n    verbs: [get, list]\n"
	require.Contains(t, string(shipped), nsRule)
	identityErr := `getting namespace kube-system (the cluster's identity) failed: forbidden: ` +
		`grant "get" on "namespaces" named "kube-system" (cluster scope, apiGroup "") to the agent's ServiceAccount; ` +
		`the metrics carry no cluster_uid until then; or set cluster_id: namespaces "kube-system" is forbidden: ` +
		`User "system:serviceaccount:default:%s" cannot get resource "namespaces" in API group "" in the namespace "kube-system"`
	tests := []struct {
		name, account, rule string
		clusterID           string
		wantErrors          []string
		listed              bool // namespaces listed
	}{
		{name: "list but no get", account: "no-get", rule: "  - apiGroups: [\"\"]\n    resources: [namespaces]\n    verbs: [list]\n",
			wantErrors: []string{fmt.Sprintf(identityErr, "no-get")}, listed: true},
		{name: "no namespaces rule at all", account: "no-namespaces", rule: "",
			wantErrors: []string{fmt.Sprintf(identityErr, "no-namespaces"),
				`listing namespaces failed: forbidden: grant "list" on "namespaces" (cluster scope, apiGroup "") to the agent's ServiceAccount: ` +
					`namespaces is forbidden: User "system:serviceaccount:default:no-namespaces" cannot list resource "namespaces" in API group "" at the cluster scope`}},
		{name: "cluster_id: kube-system not needed", account: "no-get-with-id", clusterID: "tkgi-it-cluster",
			rule: "  - apiGroups: [\"\"]\n    resources: [namespaces]\n    verbs: [list]\n", listed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role := "kube-telemetry-it-" + tt.account
			manifest := strings.Replace(strings.Replace(string(shipped), nsRule, tt.rule, 1),
				"name: telegraf-tkgi-kube-telemetry\n", "name: "+role+"\n", 1)
			kubectlAdmin(t, c, manifest, "apply", "-f", "-")
			kubectlAdmin(t, c, fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata:
  name: %[1]s
  namespace: default
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: %[2]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: %[2]s
subjects:
  - kind: ServiceAccount
    name: %[1]s
    namespace: default
`, tt.account, role), "apply", "-f", "-")
			token := strings.TrimSpace(kubectlAdmin(t, c, "", "-n", "default", "create", "token", tt.account, "--duration", "10m"))
			// RBAC changes reach the authorizer's cache within moments.
			k := startPlugin(t, &KubeTelemetry{URL: c.env["KUBE_API_URL"], BearerToken: config.NewSecret([]byte(token)),
				ClientConfig: tls.ClientConfig{TLSCA: c.env["KUBE_CA_FILE"]}, ClusterID: tt.clusterID})
			var acc testutil.Accumulator
			require.Eventually(t, func() bool {
				acc = testutil.Accumulator{}
				require.NoError(t, k.Gather(&acc))
				_, ok := acc.Get("kube_telemetry_pods")
				return ok
			}, 30*time.Second, 500*time.Millisecond, "the ServiceAccount never got its ClusterRole")

			var got []string
			for _, err := range acc.Errors {
				got = append(got, err.Error())
			}
			require.ElementsMatch(t, tt.wantErrors, got)

			var expected []telegraf.Metric
			for _, m := range c.summary.expected("", testPageSize) {
				if tt.clusterID != "" {
					m.AddTag("cluster_uid", tt.clusterID)
				} else {
					m.RemoveTag("cluster_uid")
				}
				switch {
				case tt.listed:
				case m.Name() == "kube_telemetry_resource" && m.Tags()["resource"] == "namespaces":
					m.AddField("items", int64(0))
					m.AddField("pages", int64(0))
					m.AddField("errors", int64(1))
				case m.Name() == "kube_telemetry_objects":
					m.RemoveField("namespaces")
				case m.Name() == "kube_telemetry_cluster":
					m.AddField("pages", m.Fields()["pages"].(int64)-1)
					m.AddField("errors", int64(1))
					m.AddField("resources", int64(len(resources)-1))
				}
				expected = append(expected, m)
			}
			testutil.RequireMetricsEqual(t, expected, acc.GetTelegrafMetrics(),
				testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings, testutil.IgnoreFields("api_requests"))
		})
	}
}
