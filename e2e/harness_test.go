package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkube.Stop()
	os.Exit(code)
}

const (
	token       = "e2e-telemetry-token"
	clusterName = "e2e-prod-cluster"
	collectorID = "telegraf-tkgi.v1"
)

// pseudonymKey is the agents' installation key: fixed, so the test can
// predict the pseudonyms.
var pseudonymKey = strings.Repeat("5e", 32)

var seedOnce sync.Once

// fixture is one test's binary, cluster and scratch directory.
type fixture struct {
	t       *testing.T
	bin     string
	cluster *testkube.Cluster
	dir     string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	bin := testbin.Path(t)
	c := testkube.Get(t)
	seedOnce.Do(func() {
		// The same cluster configs/monitoring_test.go seeds: the seeder is
		// deterministic, so seeding it twice is harmless.
		out, err := exec.Command(c.Kubeseed, "-kubeconfig", c.AdminKubeconfig, "-nodes", "12", "-pods", "120").CombinedOutput()
		require.NoError(t, err, "kubeseed: %s", out)
	})
	return &fixture{t: t, bin: bin, cluster: c, dir: t.TempDir()}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a running telegraf-tkgi.
type process struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (f *fixture) start(name, conf string, extraArgs ...string) *process {
	f.t.Helper()
	confPath := filepath.Join(f.dir, name+".conf")
	require.NoError(f.t, os.WriteFile(confPath, []byte(conf), 0o600))
	return f.launch(name, exec.Command(f.bin, append([]string{"--config", confPath}, extraArgs...)...))
}

// launch starts cmd with its output in <name>.log under the fixture's
// folder, kills it at the end of the test and shows the log's tail if the
// test failed.
func (f *fixture) launch(name string, cmd *exec.Cmd) *process {
	f.t.Helper()
	logPath := filepath.Join(f.dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(f.t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(f.t, cmd.Start())
	p := &process{t: f.t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	f.t.Cleanup(func() {
		p.kill()
		if f.t.Failed() {
			data, _ := os.ReadFile(logPath)
			f.t.Logf("%s log (tail):\n%s", name, tail(string(data), 60))
		}
	})
	return p
}

// stop asks for a clean shutdown (SIGTERM: inputs stop, outputs flush).
func (p *process) stop() {
	p.t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.kill()
		p.t.Fatalf("%s did not stop within 60s of SIGTERM", p.name)
	}
}

// kill is SIGKILL: no flush, no cleanup.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// wait waits for a process that exits by itself (--once).
func (p *process) wait(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
		require.NoError(p.t, p.err, "%s failed", p.name)
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("%s did not finish within %s", p.name, timeout)
	}
}

func (p *process) logText() string {
	data, _ := os.ReadFile(p.log)
	return string(data)
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func waitPort(t *testing.T, port int) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "nothing listening on port %d", port)
}

// serverOpts shapes the telemetry server (the listener into outputs.file).
type serverOpts struct {
	port int
	lake string
	// flushInterval of the lake; a long one with a huge batch size makes
	// every request wait that long for its 201 (a slow server).
	flushInterval string
	ackTimeout    string
	acknowledge   string
}

func (f *fixture) serverConf(o serverOpts) string {
	if o.flushInterval == "" {
		o.flushInterval = "500ms"
	}
	if o.ackTimeout == "" {
		o.ackTimeout = "20s"
	}
	if o.acknowledge == "" {
		o.acknowledge = "delivered"
	}
	batchSize := 1000
	if o.flushInterval != "500ms" {
		batchSize = 1000000 // only the timer flushes
	}
	return fmt.Sprintf(`
[agent]
  interval = "10s"
  flush_interval = %q
  flush_jitter = "0s"
  metric_batch_size = %d
  metric_buffer_limit = 2000000
  omit_hostname = true
  debug = true
[[inputs.vmware_telemetry_listener]]
  service_address = "127.0.0.1:%d"
  tokens = [%q]
  allow_tokens_over_http = true
  events_path = ""
  acknowledge = %q
  ack_timeout = %q
  dedup_file = %q
[[outputs.file]]
  files = [%q]
  data_format = "json"
  json_timestamp_units = "1ns"
`, o.flushInterval, batchSize, o.port, token, o.acknowledge, o.ackTimeout,
		filepath.Join(f.dir, "dedup.log"), o.lake)
}

func (f *fixture) startServer(o serverOpts) *process {
	f.t.Helper()
	p := f.start("server", f.serverConf(o))
	waitPort(f.t, o.port)
	return p
}

// agentOpts shapes the telemetry agent (kube_telemetry into
// vmware_telemetry, with a raw tap: the input's metrics as gathered).
type agentOpts struct {
	url      string
	level    string
	customer string
	// resources limits the lists (a small, fixed set of metrics per gather)
	resources  []string
	interval   string
	timeout    string
	diskBuffer bool
	proxy      string
	raw        string
	// tlsCA is the server certificate's CA, for an https url.
	tlsCA string
}

func (f *fixture) agentConf(o agentOpts) string {
	if o.interval == "" {
		o.interval = "2s"
	}
	if o.timeout == "" {
		o.timeout = "10s"
	}
	var agentExtra, inputExtra, outputExtra string
	if o.diskBuffer {
		agentExtra = fmt.Sprintf("  buffer_strategy = \"disk\"\n  buffer_directory = %q\n", filepath.Join(f.dir, "buffer"))
	}
	if len(o.resources) > 0 {
		q := make([]string, 0, len(o.resources))
		for _, r := range o.resources {
			q = append(q, strconv.Quote(r))
		}
		inputExtra = "  resource_include = [" + strings.Join(q, ", ") + "]\n"
	}
	if o.customer != "" {
		outputExtra += fmt.Sprintf("  customer_number = %q\n  installation_label = \"e2e\"\n", o.customer)
	}
	if o.proxy != "" {
		outputExtra += fmt.Sprintf("  use_system_proxy = false\n  http_proxy_url = %q\n", o.proxy)
	}
	if o.tlsCA != "" {
		outputExtra += fmt.Sprintf("  tls_ca = %q\n", o.tlsCA)
	}
	return fmt.Sprintf(`
[agent]
  interval = %q
  round_interval = false
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = 1000
  metric_buffer_limit = 100000
  omit_hostname = true
  debug = true
  statefile = %q
%s
[[inputs.kube_telemetry]]
  kubeconfig = %q
  cluster_name = %q
%s
[[outputs.file]]
  files = [%q]
  data_format = "influx"
[[outputs.vmware_telemetry]]
  url = %q
  participation_level = %q
  pseudonym_key = %q
  token = %q
  timeout = %q
  retry_initial = "200ms"
  retry_max = "1s"
  retry_within_write = "3s"
%s`, o.interval, filepath.Join(f.dir, "agent.state"), agentExtra,
		f.cluster.TelegrafKubeconfig, clusterName, inputExtra,
		o.raw, o.url, o.level, pseudonymKey, token, o.timeout, outputExtra)
}

func serverURL(port int) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", port, telemetry.DefaultPath)
}

// readRaw parses the agent's raw tap (line protocol).
func readRaw(t *testing.T, path string) []telegraf.Metric {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	// The file output may be writing a line right now: whole lines only.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	dec, err := telemetry.NewDecoder(1<<30, 1<<20)
	require.NoError(t, err)
	ms, _, err := dec.Decode(data, telemetry.EncodingIdentity, time.Now())
	require.NoError(t, err)
	return ms
}

// lakeMetric is one line of the lake (outputs.file, JSON).
type lakeMetric struct {
	Name      string                 `json:"name"`
	Tags      map[string]string      `json:"tags"`
	Fields    map[string]json.Number `json:"-"`
	RawFields map[string]any         `json:"fields"`
	Timestamp int64                  `json:"timestamp"`
}

func readLake(t *testing.T, path string) []lakeMetric {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []lakeMetric
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var m lakeMetric
		require.NoError(t, dec.Decode(&m), "lake line %q", sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// canonical renders a metric so the raw side and the lake side compare:
// numbers as float64 (JSON does not keep int and float apart).
func canonical(name string, tags map[string]string, fields map[string]any, ts int64) string {
	var b strings.Builder
	b.WriteString(name)
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, ",%s=%s", k, tags[k])
	}
	keys = keys[:0]
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		sep := ","
		if i == 0 {
			sep = " "
		}
		var v string
		switch x := fields[k].(type) {
		case json.Number:
			f, _ := x.Float64()
			v = strconv.FormatFloat(f, 'g', -1, 64)
		case int64:
			v = strconv.FormatFloat(float64(x), 'g', -1, 64)
		case uint64:
			v = strconv.FormatFloat(float64(x), 'g', -1, 64)
		case float64:
			v = strconv.FormatFloat(x, 'g', -1, 64)
		case string:
			v = strconv.Quote(x)
		default:
			v = fmt.Sprint(x)
		}
		fmt.Fprintf(&b, "%s%s=%s", sep, k, v)
	}
	fmt.Fprintf(&b, " %d", ts)
	return b.String()
}

// expected is what the lake must hold for the raw metrics: each passed
// through the output's policy at the level, with the agents' key.
func expected(t *testing.T, raw []telegraf.Metric, level telemetry.Level, customer string) []string {
	t.Helper()
	key, err := hex.DecodeString(pseudonymKey)
	require.NoError(t, err)
	ps, err := telemetry.NewPseudonymizer(key)
	require.NoError(t, err)
	var id telemetry.Identity
	if customer != "" {
		id = telemetry.Identity{CustomerNumber: customer, InstallationLabel: "e2e"}
	}
	policy, err := telemetry.NewPolicy(telemetry.DefaultDictionary(), level, ps, id)
	require.NoError(t, err)
	var out []string
	for _, m := range raw {
		sent, verdict := policy.Apply(m)
		if verdict != telemetry.Sent {
			continue
		}
		out = append(out, canonical(sent.Name(), sent.Tags(), sent.Fields(), sent.Time().UnixNano()))
	}
	return out
}

// lakeCanonical strips what the listener adds, after checking it.
func lakeCanonical(t *testing.T, lake []lakeMetric, level string) []string {
	t.Helper()
	out := make([]string, 0, len(lake))
	var instance string
	for _, m := range lake {
		require.Equal(t, collectorID, m.Tags["collector"], "collector tag")
		require.Equal(t, level, m.Tags["level"], "level tag")
		require.True(t, telemetry.IsInstanceID(m.Tags["instance"]), "instance tag %q is an instance id", m.Tags["instance"])
		if instance == "" {
			instance = m.Tags["instance"]
		}
		require.Equal(t, instance, m.Tags["instance"], "one instance")
		rt, ok := m.RawFields["receive_time"].(json.Number)
		require.True(t, ok, "receive_time field")
		_, err := rt.Int64()
		require.NoError(t, err, "receive_time is an integer")

		tags := make(map[string]string, len(m.Tags))
		for k, v := range m.Tags {
			if k != "collector" && k != "instance" && k != "level" {
				tags[k] = v
			}
		}
		// Through the scaled-out server, records also carry the agent's
		// batch key.
		if key, ok := m.RawFields["batch_key"]; ok {
			require.IsType(t, "", key, "batch_key field")
		}
		fields := make(map[string]any, len(m.RawFields))
		for k, v := range m.RawFields {
			if k != "receive_time" && k != "batch_key" {
				fields[k] = v
			}
		}
		out = append(out, canonical(m.Name, tags, fields, m.Timestamp))
	}
	return out
}

// requireSameMultiset: every expected metric is in the lake exactly as
// often as the agent gathered it (once), and nothing else is.
func requireSameMultiset(t *testing.T, want, got []string) {
	t.Helper()
	count := map[string]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		count[g]--
	}
	var missing, extra []string
	for k, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, k)
		}
		for ; n < 0; n++ {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("lake differs from what the agent gathered: %d expected, %d in the lake; %d missing (lost), %d extra (twice or never sent):\nmissing: %s\nextra: %s",
			len(want), len(got), len(missing), len(extra), head(missing, 5), head(extra, 5))
	}
}

func head(s []string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Join(s, "\n  ")
}

// forwarder is a TCP relay between the agent and the server that reports
// when a request went through and no response came back yet, so a test can
// kill the server mid-request; it survives the server restarting.
type forwarder struct {
	port     int
	inFlight chan struct{}
}

func newForwarder(t *testing.T, target int) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &forwarder{port: ln.Addr().(*net.TCPAddr).Port, inFlight: make(chan struct{}, 100)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.relay(c, target)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *forwarder) relay(client net.Conn, target int) {
	defer client.Close()
	server, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", target))
	if err != nil {
		return
	}
	defer server.Close()
	var answered sync.WaitGroup
	answered.Add(1)
	requestSent := make(chan struct{}, 1)
	var responded atomic.Bool
	go func() {
		defer answered.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				responded.Store(true)
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				client.Close()
				return
			}
		}
	}()
	go func() {
		_, _ = io.Copy(server, io.TeeReader(client, signalOnData{requestSent}))
		server.Close()
	}()
	select {
	case <-requestSent:
		// In flight: sent, and still unanswered a moment later.
		time.Sleep(200 * time.Millisecond)
		if !responded.Load() {
			select {
			case f.inFlight <- struct{}{}:
			default:
			}
		}
	case <-time.After(2 * time.Minute):
	}
	answered.Wait()
}

type signalOnData struct{ ch chan struct{} }

func (s signalOnData) Write(p []byte) (int, error) {
	if len(p) > 0 {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}
