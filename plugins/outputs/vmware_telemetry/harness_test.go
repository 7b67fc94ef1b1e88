package vmware_telemetry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/outputs"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/inputs/kube_telemetry"
)

// Proxies started by TestMain with scripts/tinyproxy.sh (Debian's
// tinyproxy): one that proxies, one that answers 403 to everyone, one that
// wants basic auth. TINYPROXY_ADDR (and TINYPROXY_LOG) point the tests at an
// instance started elsewhere for the allow case. With -short none is
// started and the tests that need one skip (requireProxies).
var proxies struct {
	allow, allowLog string
	deny            string
	auth            string // user "agent", password "s3cret"
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	code, err := runWithProxies(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: proxy tests need Debian's tinyproxy: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runWithProxies(m *testing.M) (int, error) {
	root, err := os.MkdirTemp("", "vmware-telemetry-proxies-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(root)
	script := filepath.Join("..", "..", "..", "scripts", "tinyproxy.sh")
	var started []string
	defer func() {
		for _, dir := range started {
			_ = exec.Command(script, "stop", dir).Run()
		}
	}()
	start := func(name string, args ...string) (string, string, error) {
		dir := filepath.Join(root, name)
		cmd := exec.Command(script, append([]string{"start", dir}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		started = append(started, dir)
		if err != nil {
			return "", "", fmt.Errorf("%s %s: %w: %s", script, name, err, stderr.String())
		}
		return strings.TrimSpace(string(out)), filepath.Join(dir, "tinyproxy.log"), nil
	}

	if addr := os.Getenv("TINYPROXY_ADDR"); addr != "" {
		proxies.allow, proxies.allowLog = addr, os.Getenv("TINYPROXY_LOG")
	} else if proxies.allow, proxies.allowLog, err = start("allow", "allow"); err != nil {
		return 0, err
	}
	if proxies.deny, _, err = start("deny", "deny"); err != nil {
		return 0, err
	}
	if proxies.auth, _, err = start("auth", "allow", "agent:s3cret"); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// requireProxies skips a test that needs the tinyproxy instances under
// -short, where TestMain starts none; without -short they always run.
func requireProxies(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Debian's tinyproxy; runs without -short")
	}
}

// nonLoopbackIP is an address of this machine the proxy tests can use: Go
// never proxies requests to loopback addresses, whatever HTTP_PROXY says.
func nonLoopbackIP(t testing.TB) string {
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && ipn.IP.IsGlobalUnicast() {
			return ipn.IP.String()
		}
	}
	require.FailNow(t, "this machine has no non-loopback IPv4 address; the environment proxy tests need one (Go never proxies loopback)")
	return ""
}

// received is one request the test server got.
type received struct {
	at      time.Time
	query   url.Values
	header  http.Header
	body    []byte // decompressed
	bodyLen int    // on the wire
	metrics []telegraf.Metric
	status  int
}

// server is a telemetry server for tests: it decodes batches with the
// shared codec, checks them against the dictionary like the listener does,
// stores each idempotency key once (200 with Telemetry-Duplicate for a
// replay, like the listener) and can be scripted per request.
type server struct {
	*httptest.Server
	t   testing.TB
	dec *telemetry.Decoder

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced when a request arrives or is answered
	requests []received
	stored   map[string][]telegraf.Metric // by idempotency key
	order    []string                     // keys in storing order
	conns    int
	arrived  int
	cert     *x509.Certificate // with TLS: the server's self-signed certificate
	// script answers request n (0-based); nil or status 0 stores normally.
	script func(n int, r *received, w http.ResponseWriter) int
}

func newServer(t testing.TB, host string) *server { return newServerTLS(t, host, false) }

func newServerTLS(t testing.TB, host string, useTLS bool) *server {
	dec, err := telemetry.NewDecoder(64<<20, 1<<20)
	require.NoError(t, err)
	s := &server{t: t, dec: dec, stored: map[string][]telegraf.Metric{}, changed: make(chan struct{})}
	ts := httptest.NewUnstartedServer(s)
	if host != "" {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		require.NoError(t, err)
		ts.Listener.Close()
		ts.Listener = l
	}
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.Server = ts
	if useTLS {
		// httptest's certificate covers loopback only; the proxy tests
		// need one for the machine's own address.
		ip := net.ParseIP(host)
		if ip == nil {
			ip = net.IPv4(127, 0, 0, 1)
		}
		pki := testpki.New(t, ip)
		s.cert = pki.Leaf
		ts.TLS = &tls.Config{Certificates: []tls.Certificate{pki.Cert}, MinVersion: tls.VersionTLS12}
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec := received{at: time.Now(), query: r.URL.Query(), header: r.Header.Clone(), bodyLen: len(body)}
	if r.URL.Path != telemetry.DefaultPath {
		http.NotFound(w, r)
		return
	}
	decompressed, closeDec, err := s.dec.Open(bytes.NewReader(body), r.Header.Get("Content-Encoding"))
	if err == nil {
		rec.body, err = io.ReadAll(decompressed)
		closeDec()
	}
	if err == nil {
		rec.metrics, _, err = s.dec.Decode(rec.body, telemetry.EncodingIdentity, time.Now())
	}
	if err != nil {
		s.t.Errorf("server could not decode a batch: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	level := telemetry.Level(r.Header.Get(telemetry.HeaderLevel))
	for _, m := range rec.metrics {
		if err := telemetry.DefaultDictionary().Check(m, level); err != nil {
			s.t.Errorf("server got a metric not allowed at level %s: %v", level, err)
		}
	}

	// Number requests as they arrive: a handler that cuts the connection
	// records its request only after the client may have retried.
	s.mu.Lock()
	n := s.arrived
	s.arrived++
	script := s.script
	s.notifyLocked()
	s.mu.Unlock()
	status := 0
	if script != nil {
		status = script(n, &rec, w)
	}
	if status == 0 {
		key := r.Header.Get(telemetry.HeaderIdempotencyKey)
		s.mu.Lock()
		_, dup := s.stored[key]
		if !dup {
			s.stored[key] = rec.metrics
			s.order = append(s.order, key)
		}
		s.mu.Unlock()
		if dup {
			w.Header().Set(telemetry.HeaderDuplicate, "true")
			status = http.StatusOK
		} else {
			status = http.StatusCreated
		}
		w.WriteHeader(status)
	}
	rec.status = status
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.notifyLocked()
	s.mu.Unlock()
}

// notifyLocked wakes whoever waits for a request; s.mu is held.
func (s *server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitArrived waits until n requests have arrived (answered or not).
func (s *server) waitArrived(n int) {
	s.t.Helper()
	s.waitCount(n, "arrived", func() int { return s.arrived })
}

// waitRecorded waits until n requests have been recorded with their
// answer: a handler that cuts the connection records its request after the
// client has already seen the cut, and may retry, first.
func (s *server) waitRecorded(n int) {
	s.t.Helper()
	s.waitCount(n, "recorded", func() int { return len(s.requests) })
}

// waitCount waits up to 10s until count (read under s.mu) reaches n.
func (s *server) waitCount(n int, what string, count func() int) {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		got, changed := count(), s.changed
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			require.FailNowf(s.t, "requests missing", "%d of %d requests %s in 10s", got, n, what)
		}
	}
}

// answer is a scripted answer other than storing: a status, with a
// Retry-After header and a body if set.
type answer struct {
	status     int
	retryAfter string
	body       string
}

func (a answer) write(w http.ResponseWriter) int {
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	if a.body != "" {
		http.Error(w, a.body, a.status)
	} else {
		w.WriteHeader(a.status)
	}
	return a.status
}

// refuseFirst answers the first n requests with a and stores the rest;
// n < 0 answers every request with a.
func (s *server) refuseFirst(n int, a answer) {
	s.setScript(func(i int, _ *received, w http.ResponseWriter) int {
		if n >= 0 && i >= n {
			return 0
		}
		return a.write(w)
	})
}

func (s *server) setScript(f func(n int, r *received, w http.ResponseWriter) int) {
	s.mu.Lock()
	s.script = f
	s.mu.Unlock()
}

func (s *server) reqs() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.requests...)
}

func (s *server) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// storedMetrics returns every stored metric, in storing order.
func (s *server) storedMetrics() []telegraf.Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []telegraf.Metric
	for _, k := range s.order {
		out = append(out, s.stored[k]...)
	}
	return out
}

func (s *server) endpoint() string { return s.URL + telemetry.DefaultPath }

// newOutput returns the registered plugin with its defaults, pointed at
// url, keyed from keyFile (created if absent), logging to a CaptureLogger.
func newOutput(t testing.TB, url, keyFile string, opts ...func(*VMwareTelemetry)) (*VMwareTelemetry, *testutil.CaptureLogger) {
	creator, ok := outputs.Outputs["vmware_telemetry"]
	require.True(t, ok, "plugin not registered")
	o := creator().(*VMwareTelemetry)
	log := &testutil.CaptureLogger{Name: "outputs.vmware_telemetry"}
	o.Log = log
	// Telegraf injects a collector tagged per plugin instance; without the
	// tag every test instance would share one set of global counters.
	o.Statistics = selfstat.NewCollector(map[string]string{"test_instance": strconv.FormatInt(instances.Add(1), 10)})
	o.URL = url
	if keyFile == "" {
		keyFile = filepath.Join(t.TempDir(), "key")
	}
	o.PseudonymKeyFile = keyFile
	o.RetryWithinWrite = 0
	o.UseSystemProxy = false // tests opt in
	for _, f := range opts {
		f(o)
	}
	return o, log
}

// instances numbers the outputs of tests that may run in parallel.
var instances atomic.Int64

func start(t testing.TB, o *VMwareTelemetry) {
	require.NoError(t, o.Init())
	require.NoError(t, o.Connect())
	t.Cleanup(func() { _ = o.Close() })
}

func withLevel(l string) func(*VMwareTelemetry) {
	return func(o *VMwareTelemetry) { o.ParticipationLevel = l }
}

func withIdentity(o *VMwareTelemetry) {
	o.CustomerNumber = "C-0042"
	o.InstallationLabel = "lab-east"
	o.InstallationType = "production"
}

// clock is a settable time source for backoff tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1800000000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func withJitter(f float64) func(*VMwareTelemetry) {
	return func(o *VMwareTelemetry) { o.jitter = func() float64 { return f } }
}

func withClock(c *clock) func(*VMwareTelemetry) {
	return func(o *VMwareTelemetry) { o.now = c.Now }
}

// withRetryWaits reports each wait for a retry on waits as it begins, so
// a test acts while the output waits instead of guessing when it does.
func withRetryWaits(waits chan<- time.Duration) func(*VMwareTelemetry) {
	return func(o *VMwareTelemetry) {
		o.sleep = func(ctx context.Context, d time.Duration) bool {
			waits <- d
			return sleepContext(ctx, d)
		}
	}
}

// receive waits for a value on ch, failing the test after 10s.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		require.FailNow(t, what+" did not happen in 10s")
	}
	var zero T
	return zero
}

var gatherTime = time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)

// kubeTelemetryMetrics is one gather of kube_telemetry for a cluster of
// nodes nodes: every measurement of its schema, with the agent's global
// host tag as Telegraf adds it.
func kubeTelemetryMetrics(nodes int, ts time.Time) []telegraf.Metric {
	return kubeTelemetryMetricsNamed(nodes, ts, func(i int) string { return "node-" + strconv.Itoa(i) + ".corp.example.com" })
}

// fixtureRow is one series of the fixture: its own tags and the field
// values a test relies on.
type fixtureRow struct {
	tags   map[string]string
	fields map[string]any
}

// kubeTelemetryMetricsNamed builds the gather from kube_telemetry's schema:
// each measurement it declares gets the rows below, every tag it declares
// needs a value there, and every field it declares is present, with the
// value below or a plain one of its type. A measurement, tag or field
// renamed in the schema either reaches these metrics or panics here,
// naming it.
func kubeTelemetryMetricsNamed(nodes int, ts time.Time, nodeName func(int) string) []telegraf.Metric {
	n := int64(nodes)
	rows := map[string][]fixtureRow{
		"kube_telemetry_cluster": {{fields: map[string]any{"server_version": "v1.36.3", "platform": "linux/amd64", "cni": "antrea",
			"collection_seconds": 1.25, "api_requests": int64(48), "pages": int64(40), "errors": int64(0), "resources": int64(17)}}},
		"kube_telemetry_nodes": {{fields: map[string]any{"total": n, "ready": n - 1, "not_ready": int64(1), "unknown": int64(0),
			"memory_pressure": int64(0), "disk_pressure": int64(0), "pid_pressure": int64(0), "network_unavailable": int64(0), "unschedulable": int64(1)}}},
		"kube_telemetry_node_role": {
			{tags: map[string]string{"role": "control-plane"}, fields: map[string]any{"nodes": int64(3)}},
			{tags: map[string]string{"role": "worker"}, fields: map[string]any{"nodes": n - 3}},
		},
		"kube_telemetry_pods": {{fields: map[string]any{"total": n * 30, "pending": int64(2), "running": n*30 - 4, "succeeded": int64(1),
			"failed": int64(1), "unknown": int64(0), "qos_guaranteed": int64(10), "qos_burstable": n * 20, "qos_best_effort": n*10 - 10,
			"containers": n * 45, "init_containers": n * 5}}},
		"kube_telemetry_objects": {{fields: map[string]any{"namespaces": int64(40), "deployments": int64(120), "replicasets": int64(300), "statefulsets": int64(8),
			"daemonsets": int64(6), "jobs": int64(20), "cronjobs": int64(4), "services": int64(150), "services_cluster_ip": int64(140), "services_node_port": int64(4),
			"services_load_balancer": int64(2), "services_external_name": int64(1), "services_headless": int64(3), "ingresses": int64(12), "ingress_classes": int64(1),
			"storage_classes": int64(2), "csi_drivers": int64(1), "persistent_volumes": int64(30), "persistent_volume_claims": int64(30), "crds": int64(55)}}},
		"kube_telemetry_storage": {{tags: map[string]string{"storage_class": "gold-vsan", "provisioner": "csi.vsphere.vmware.com"},
			fields: map[string]any{"persistent_volumes": int64(30), "persistent_volume_claims": int64(30), "pv_capacity_bytes": int64(30 << 30), "pvc_requested_bytes": int64(30 << 30)}}},
		"kube_telemetry_addon": {
			{tags: map[string]string{"addon": "antrea", "category": "cni", "kind": "DaemonSet", "version": "v2.1.0"},
				fields: map[string]any{"desired": n, "ready": n - 1}},
			{tags: map[string]string{"addon": "coredns", "category": "dns", "kind": "Deployment", "version": "v1.11.3_vmware.1"},
				fields: map[string]any{"desired": int64(2), "ready": int64(2)}},
		},
	}
	for _, r := range []string{"pods", "nodes", "services", "deployments", "persistentvolumes"} {
		rows["kube_telemetry_resource"] = append(rows["kube_telemetry_resource"], fixtureRow{tags: map[string]string{"resource": r},
			fields: map[string]any{"items": n * 30, "pages": int64(3), "duration_seconds": 0.125, "errors": int64(0), "restarts": int64(0)}})
	}
	for i := range nodes {
		role := "worker"
		if i < 3 {
			role = "control-plane"
		}
		rows["kube_telemetry_node"] = append(rows["kube_telemetry_node"], fixtureRow{
			tags: map[string]string{"node": nodeName(i), "role": role,
				"os_image": "Ubuntu 22.04.4 LTS", "kernel_version": "5.15.0-91-generic", "operating_system": "linux", "architecture": "amd64",
				"kubelet_version": "v1.36.3", "container_runtime_version": "containerd://1.7.2"},
			fields: map[string]any{"ready": i != 5, "cpu_capacity_millicores": int64(8000), "memory_capacity_bytes": int64(32 << 30), "pods_capacity": int64(110),
				"cpu_allocatable_millicores": int64(7800), "memory_allocatable_bytes": int64(31 << 30), "pods_allocatable": int64(110),
				"gpu_capacity": int64(0), "gpu_allocatable": int64(0)},
		})
	}
	common := map[string]string{"cluster_uid": "3f1e2d4c-5b6a-4c8d-9e0f-1a2b3c4d5e6f", "cluster_name": "payments-prod"}
	return fromSchema(rows, common, map[string]string{"host": "telemetry-agent-7f9c6d5b8-x2x9q"}, ts)
}

// fromSchema turns the rows of each measurement of kube_telemetry's schema
// into metrics, in the schema's order, and panics naming any measurement,
// tag or field the rows and the schema do not agree on. extra tags are
// added as they are (Telegraf's global tags).
func fromSchema(rows map[string][]fixtureRow, common, extra map[string]string, ts time.Time) []telegraf.Metric {
	schema, commonKeys := kube_telemetry.Schema()
	plain := map[string]any{"int": int64(1), "float": 0.5, "string": "x", "bool": true}
	for _, k := range commonKeys {
		if _, ok := common[k.Name]; !ok {
			panic(fmt.Sprintf("fixture: no value for the common tag %s of kube_telemetry's schema", k.Name))
		}
	}
	var out []telegraf.Metric
	declared := map[string]bool{}
	for _, m := range schema {
		declared[m.Name] = true
		if len(rows[m.Name]) == 0 {
			panic(fmt.Sprintf("fixture: no rows for %s of kube_telemetry's schema", m.Name))
		}
		for _, r := range rows[m.Name] {
			tags := make(map[string]string, len(common)+len(extra)+len(m.Tags))
			for k, v := range common {
				tags[k] = v
			}
			for k, v := range extra {
				tags[k] = v
			}
			for _, k := range m.Tags {
				v, ok := r.tags[k.Name]
				if !ok {
					panic(fmt.Sprintf("fixture: %s row without a value for its tag %s", m.Name, k.Name))
				}
				tags[k.Name] = v
			}
			fields := make(map[string]any, len(m.Fields))
			for _, k := range m.Fields {
				v, ok := r.fields[k.Name]
				if !ok {
					v = plain[k.Type]
				}
				fields[k.Name] = v
			}
			for k := range r.tags {
				if !slices.ContainsFunc(m.Tags, func(s kube_telemetry.SchemaKey) bool { return s.Name == k }) {
					panic(fmt.Sprintf("fixture: %s tag %s is not in kube_telemetry's schema", m.Name, k))
				}
			}
			for k := range r.fields {
				if _, ok := fields[k]; !ok {
					panic(fmt.Sprintf("fixture: %s field %s is not in kube_telemetry's schema", m.Name, k))
				}
			}
			out = append(out, metric.New(m.Name, tags, fields, ts))
		}
	}
	for name := range rows {
		if !declared[name] {
			panic(fmt.Sprintf("fixture: measurement %s is not in kube_telemetry's schema", name))
		}
	}
	return out
}

func secret(s string) config.Secret { return config.NewSecret([]byte(s)) }
