// Package e2e_test runs the built telegraf-tkgi ($TELEGRAF_TKGI_BIN) in both
// roles against a real kube-apiserver: the agent (inputs.kube_telemetry into
// outputs.vmware_telemetry, plus a raw tap of what it gathered) and the
// telemetry server (inputs.vmware_telemetry_listener into outputs.file, the
// JSON-lines data lake). Each test compares the lake with the raw tap passed
// through the data dictionary at the agent's level: every gathered metric
// must be in the lake exactly once, and nothing else.
package e2e_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// A small fixed set of metrics per gather, for the fault tests.
var fewResources = []string{"namespaces", "storageclasses", "ingressclasses"}

// converge waits until the lake holds as many metrics as the agent has
// gathered (passed through the dictionary) so far.
func converge(t *testing.T, raw, lake, level string) {
	t.Helper()
	require.Eventually(t, func() bool {
		want := expected(t, readRaw(t, raw), telemetry.Level(level), "")
		return len(want) > 0 && len(readLake(t, lake)) >= len(want)
	}, 2*time.Minute, 250*time.Millisecond, "the lake never caught up with the agent")
}

// finish stops the agent (its last flush goes to the live server), then the
// server, and compares the lake with everything the agent gathered.
func finish(t *testing.T, agent, server *process, raw, lake string) {
	t.Helper()
	agent.stop()
	server.stop()
	gathered := readRaw(t, raw)
	requireGatheredInContract(t, gathered)
	want := expected(t, gathered, telemetry.LevelStandard, "")
	got := lakeCanonical(t, readLake(t, lake), string(telemetry.LevelStandard))
	requireSameMultiset(t, want, got)
	t.Logf("%d metrics gathered, %d sent at standard, %d in the lake: none lost, none twice", len(gathered), len(want), len(got))
}

// At each level the lake holds exactly what the dictionary allows of what
// kube_telemetry gathered, with pseudonyms in place of identifying values,
// the customer identity only at enhanced, and nothing at none.
func TestLevelsEndToEnd(t *testing.T) {
	for _, level := range []string{"standard", "enhanced", "none"} {
		t.Run(level, func(t *testing.T) {
			f := newFixture(t)
			port := freePort(t)
			lake, raw := filepath.Join(f.dir, "lake.jsonl"), filepath.Join(f.dir, "raw.lp")
			server := f.startServer(serverOpts{port: port, lake: lake})
			customer := ""
			if level == "enhanced" {
				customer = "C-0042"
			}
			agent := f.start("agent", f.agentConf(agentOpts{url: serverURL(port), level: level, customer: customer, raw: raw}), "--once")
			agent.wait(3 * time.Minute)
			server.stop()

			gathered := readRaw(t, raw)
			require.NotEmpty(t, gathered, "kube_telemetry gathered nothing")
			requireGatheredInContract(t, gathered)
			lakeMetrics := readLake(t, lake)
			if level == "none" {
				require.Empty(t, lakeMetrics, "level none must send nothing")
				return
			}
			want := expected(t, gathered, telemetry.Level(level), customer)
			got := lakeCanonical(t, lakeMetrics, level)
			requireSameMultiset(t, want, got)

			// The identifying values the cluster has never reach the lake.
			lakeText, err := os.ReadFile(lake)
			require.NoError(t, err)
			identifying := map[string]bool{clusterName: true}
			for _, m := range gathered {
				for _, k := range []string{"node", "cluster_uid", "cluster_name", "storage_class"} {
					if v, ok := m.GetTag(k); ok && len(v) > 3 {
						identifying[v] = true
					}
				}
			}
			for v := range identifying {
				require.NotContains(t, string(lakeText), `"`+v+`"`, "identifying value %q reached the lake", v)
			}
			for _, m := range lakeMetrics {
				if level == "enhanced" {
					require.Equal(t, customer, m.Tags[telemetry.TagCustomerNumber])
				} else {
					require.NotContains(t, m.Tags, telemetry.TagCustomerNumber)
				}
			}
			t.Logf("level %s: %d metrics gathered, %d in the lake, %d identifying values kept out", level, len(gathered), len(got), len(identifying))
		})
	}
}

// The server is down for several flush intervals and gathers, then comes
// back: everything gathered meanwhile arrives, once.
func TestServerDownThenBack(t *testing.T) {
	f := newFixture(t)
	port := freePort(t)
	lake, raw := filepath.Join(f.dir, "lake.jsonl"), filepath.Join(f.dir, "raw.lp")
	agent := f.start("agent", f.agentConf(agentOpts{url: serverURL(port), level: "standard", resources: fewResources, raw: raw}))

	// Five flush intervals and two or three gathers with nothing listening.
	time.Sleep(6 * time.Second)
	require.NotEmpty(t, readRaw(t, raw))
	requireAgentErrors(t, agent, "connection refused")

	server := f.startServer(serverOpts{port: port, lake: lake})
	converge(t, raw, lake, "standard")
	finish(t, agent, server, raw, lake)
}

// The server is killed (SIGKILL) while a request waits for its batch to be
// written, then restarted with the same de-duplication log and lake: the
// agent's retry stores the batch, once.
func TestServerKilledMidRequest(t *testing.T) {
	f := newFixture(t)
	serverPort := freePort(t)
	lake, raw := filepath.Join(f.dir, "lake.jsonl"), filepath.Join(f.dir, "raw.lp")
	fwd := newForwarder(t, serverPort)
	// A 4s lake flush: each request waits up to 4s for its 201.
	server := f.startServer(serverOpts{port: serverPort, lake: lake, flushInterval: "4s"})
	agent := f.start("agent", f.agentConf(agentOpts{url: serverURL(fwd.port), level: "standard", resources: fewResources, raw: raw, timeout: "15s"}))

	select {
	case <-fwd.inFlight:
	case <-time.After(time.Minute):
		t.Fatal("no request reached the server")
	}
	server.kill()
	time.Sleep(3 * time.Second) // the agent's retries fail meanwhile
	requireAgentErrors(t, agent, "EOF|connection reset|connection refused")

	server = f.startServer(serverOpts{port: serverPort, lake: lake})
	converge(t, raw, lake, "standard")
	finish(t, agent, server, raw, lake)
}

// The agent is restarted during an outage with Telegraf's disk buffer: what
// the first run gathered survives in the buffer and arrives once the server
// is back, with what the second run gathered.
func TestAgentRestartDuringOutageWithDiskBuffer(t *testing.T) {
	f := newFixture(t)
	port := freePort(t)
	lake, raw := filepath.Join(f.dir, "lake.jsonl"), filepath.Join(f.dir, "raw.lp")
	conf := f.agentConf(agentOpts{url: serverURL(port), level: "standard", resources: fewResources, raw: raw, diskBuffer: true})

	first := f.start("agent", conf)
	time.Sleep(5 * time.Second)
	first.stop() // its last flush fails: the metrics stay in the disk buffer
	gatheredBefore := len(readRaw(t, raw))
	require.NotZero(t, gatheredBefore)

	second := f.start("agent", conf)
	time.Sleep(4 * time.Second)
	server := f.startServer(serverOpts{port: port, lake: lake})
	converge(t, raw, lake, "standard")
	finish(t, second, server, raw, lake)
	t.Logf("%d metrics were gathered by the first run, before the restart", gatheredBefore)
}

// A slow server: every request waits up to 5s for the lake's flush, longer
// than the agent's 2s timeout, so the agent gives up and retries the same
// batch while the first attempt is still in the server. The retry waits for
// that attempt and gets 200 duplicate: stored once. (The agent gathers every
// 6s: a server slower than the agents' production falls behind for good,
// which is what 429 and the agents' buffers are for.)
func TestSlowServer(t *testing.T) {
	f := newFixture(t)
	port := freePort(t)
	lake, raw := filepath.Join(f.dir, "lake.jsonl"), filepath.Join(f.dir, "raw.lp")
	server := f.startServer(serverOpts{port: port, lake: lake, flushInterval: "5s"})
	agent := f.start("agent", f.agentConf(agentOpts{url: serverURL(port), level: "standard", resources: fewResources,
		raw: raw, timeout: "2s", interval: "6s"}))

	require.Eventually(t, func() bool {
		return strings.Contains(server.logText(), "was stored before")
	}, 2*time.Minute, 250*time.Millisecond, "no retry of a stored batch reached the server")
	converge(t, raw, lake, "standard")
	requireAgentErrors(t, agent, "Client.Timeout|deadline exceeded|timeout")
	finish(t, agent, server, raw, lake)
}

// Through Debian's tinyproxy, killed and restarted several times while
// requests pass through it: dropped connections are retried, nothing is lost
// or stored twice.
func TestProxyDropsConnections(t *testing.T) {
	f := newFixture(t)
	port := freePort(t)
	lake, raw := filepath.Join(f.dir, "lake.jsonl"), filepath.Join(f.dir, "raw.lp")
	script := filepath.Join(repoRoot(t), "scripts", "tinyproxy.sh")
	proxyDir := filepath.Join(f.dir, "tinyproxy")
	out, err := exec.Command(script, "start", proxyDir).Output()
	require.NoError(t, err, "scripts/tinyproxy.sh start")
	proxyAddr := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command(script, "stop", proxyDir).Run() })

	// Requests wait up to 2s in the server, so some are in the proxy when
	// it dies.
	server := f.startServer(serverOpts{port: port, lake: lake, flushInterval: "2s"})
	agent := f.start("agent", f.agentConf(agentOpts{url: serverURL(port), level: "standard", resources: fewResources, raw: raw, proxy: "http://" + proxyAddr}))

	var restarted *exec.Cmd
	defer func() {
		if restarted != nil {
			_ = restarted.Process.Kill()
			_ = restarted.Wait()
		}
	}()
	proxyLog := filepath.Join(proxyDir, "tinyproxy.log")
	posts := func() int {
		data, _ := os.ReadFile(proxyLog)
		return strings.Count(string(data), "POST http")
	}
	for i := 0; i < 4; i++ {
		// Kill the proxy while a request is in it: a new POST came through
		// and the server holds it until its next flush.
		before := posts()
		require.Eventually(t, func() bool { return posts() > before }, time.Minute, 50*time.Millisecond, "no request through the proxy")
		time.Sleep(300 * time.Millisecond)
		if restarted == nil {
			require.NoError(t, exec.Command(script, "stop", proxyDir).Run())
		} else {
			_ = restarted.Process.Kill()
			_ = restarted.Wait()
		}
		time.Sleep(time.Second)
		// The same configuration, so the same port.
		restarted = exec.Command("tinyproxy", "-d", "-c", filepath.Join(proxyDir, "tinyproxy.conf"))
		require.NoError(t, restarted.Start())
	}
	converge(t, raw, lake, "standard")
	requireAgentErrors(t, agent, "EOF|connection reset|502 Bad Gateway")
	finish(t, agent, server, raw, lake)

	require.NotZero(t, posts(), "the agent did not go through the proxy")
}

// requireAgentErrors shows that the fault happened: the agent's output logged
// errors matching pattern. They are logged, for the report.
func requireAgentErrors(t *testing.T, agent *process, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	var hits []string
	for _, line := range strings.Split(agent.logText(), "\n") {
		if (strings.Contains(line, " E! ") || strings.Contains(line, " W! ")) && re.MatchString(line) {
			hits = append(hits, line)
		}
	}
	require.NotEmpty(t, hits, "the agent logged no error matching %q: the fault did not happen", pattern)
	t.Logf("agent errors during the fault (%d), first: %s", len(hits), hits[0])
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Dir(wd)
}

// configs/server.conf as shipped (ports moved to free ones): a batch is
// stored in the JSON-lines lake, its retry is a duplicate, and the
// listener's statistics reach prometheus_client, not the lake.
func TestServerConf(t *testing.T) {
	f := newFixture(t)
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "configs", "server.conf"))
	require.NoError(t, err)
	port, promPort := freePort(t), freePort(t)
	conf := strings.Replace(string(data), `service_address = ":8443"`, fmt.Sprintf(`service_address = "127.0.0.1:%d"`, port), 1)
	conf = strings.Replace(conf, `listen = ":9273"`, fmt.Sprintf(`listen = "127.0.0.1:%d"`, promPort), 1)
	require.NotEqual(t, string(data), conf)
	pki := testpki.New(t)
	t.Setenv("TELEMETRY_TOKEN", token)
	t.Setenv("TELEMETRY_EVENTS_TOKEN", token+"-events")
	t.Setenv("TELEMETRY_TLS_CERT", pki.CertFile)
	t.Setenv("TELEMETRY_TLS_KEY", pki.KeyFile)
	t.Setenv("TELEMETRY_STATE_DIR", f.dir)
	server := f.start("server", conf)
	waitPort(t, port)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}}

	body := []byte(fmt.Sprintf("kube_telemetry_pods,cluster_uid=%s total=12i,running=10i,pending=2i 1700000000000000000\n",
		strings.Repeat("ab", telemetry.PseudonymLength/2)))
	post := func() *http.Response {
		url := strings.Replace(serverURL(port), "http://", "https://", 1)
		req, err := http.NewRequest(http.MethodPost, url+"?_c="+collectorID+"&_i=0123456789abcdef0123456789abcdef", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", telemetry.ContentType)
		req.Header.Set(telemetry.HeaderLevel, "standard")
		req.Header.Set(telemetry.HeaderIdempotencyKey, "server-conf-1")
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, http.StatusCreated, post().StatusCode)
	resp := post()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "true", resp.Header.Get(telemetry.HeaderDuplicate))

	lake := filepath.Join(f.dir, "telemetry.jsonl")
	require.Len(t, readLake(t, lake), 1)
	require.Eventually(t, func() bool {
		r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
		if err != nil {
			return false
		}
		defer r.Body.Close()
		text, _ := io.ReadAll(r.Body)
		return strings.Contains(string(text), `internal_vmware_telemetry_listener_duplicates`)
	}, 90*time.Second, time.Second, "the listener's statistics never reached prometheus_client")
	server.stop()
	require.FileExists(t, filepath.Join(f.dir, "listener-dedup.log"))
	for _, m := range readLake(t, lake) {
		require.NotContains(t, m.Name, "internal_", "self-metrics must stay out of the lake")
	}
}
