package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/nodebatch"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The relay as TKGI runs it: agents post to the installation's server
// (configs/server-jetstream.conf on a real three-node NATS cluster);
// configs/relay-jetstream.conf forwards every stored batch through Debian's
// tinyproxy to the upstream (vendor's) server, configs/server.conf with
// its embedded de-duplication and file lake. The upstream is down when the
// first batches are stored, is stopped and started again mid-run, and the
// relay is killed (SIGKILL) and started again: every batch the
// installation acknowledged is in the upstream lake exactly once, and
// every relayed request went through the proxy.
func TestRelayForwardsEachBatchOnceThroughProxy(t *testing.T) {
	const agentToken, upstreamToken = "relay-e2e-agent-token", "relay-e2e-upstream-token"
	j := newJetStreamFixture(t, agentToken, "relay-e2e-events-token")
	f, pki, root, bin := j.fixture, j.pki, j.root, j.bin

	proxyDir := filepath.Join(f.dir, "proxy")
	script := filepath.Join(root, "scripts", "tinyproxy.sh")
	out, err := exec.Command(script, "start", proxyDir, "allow").Output()
	require.NoError(t, err, "scripts/tinyproxy.sh start")
	t.Cleanup(func() { _ = exec.Command(script, "stop", proxyDir).Run() })
	proxyAddr := strings.TrimSpace(string(out))

	installPort, installMetrics := freePort(t), freePort(t)
	upPort, upMetrics, relayMetrics := freePort(t), freePort(t), freePort(t)
	upDir := filepath.Join(f.dir, "upstream")
	require.NoError(t, os.MkdirAll(upDir, 0o700))

	// The upstream: server.conf with its ports moved off the defaults
	// (the installation's server runs on this machine too).
	shipped, err := os.ReadFile(filepath.Join(root, "configs", "server.conf"))
	require.NoError(t, err)
	upConf := strings.Replace(string(shipped), `service_address = ":8443"`, fmt.Sprintf(`service_address = "127.0.0.1:%d"`, upPort), 1)
	upConf = strings.Replace(upConf, `listen = ":9273"`, fmt.Sprintf(`listen = "127.0.0.1:%d"`, upMetrics), 1)
	require.NotEqual(t, string(shipped), upConf)
	upConfPath := filepath.Join(f.dir, "upstream.conf")
	require.NoError(t, os.WriteFile(upConfPath, []byte(upConf), 0o600))
	startUpstream := func(name string) *process {
		cmd := exec.Command(bin, "--config", upConfPath)
		cmd.Env = append(os.Environ(),
			"TELEMETRY_TOKEN="+upstreamToken,
			"TELEMETRY_EVENTS_TOKEN=relay-e2e-upstream-events",
			"TELEMETRY_TLS_CERT="+pki.CertFile,
			"TELEMETRY_TLS_KEY="+pki.KeyFile,
			"TELEMETRY_STATE_DIR="+upDir,
		)
		p := f.launch(name, cmd)
		waitPort(t, upPort)
		return p
	}

	j.run("installation", "server-jetstream.conf",
		fmt.Sprintf("TELEMETRY_LISTEN=127.0.0.1:%d", installPort),
		fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", installMetrics))
	waitPort(t, installPort)
	startRelay := func(name string) *process {
		p := j.run(name, "relay-jetstream.conf",
			fmt.Sprintf("TELEMETRY_UPSTREAM_URL=https://127.0.0.1:%d%s", upPort, telemetry.DefaultPath),
			"TELEMETRY_UPSTREAM_TOKEN="+upstreamToken,
			"TELEMETRY_UPSTREAM_CA="+pki.CertFile,
			"TELEMETRY_PROXY_URL=http://"+proxyAddr,
			fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", relayMetrics))
		waitPort(t, relayMetrics)
		return p
	}
	relay := startRelay("relay")

	const (
		agents          = 4
		batchesPerAgent = 30
		metricsPerBatch = 20
	)
	client := j.client(2)
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	// batchOf names each node series' batch, to count the upstream lake
	// (whose records carry no batch key) batch by batch.
	batchOf := map[string]string{}
	bodies := map[string][]byte{}
	instances := map[string]string{}
	var keys []string
	for a := range agents {
		instance := fmt.Sprintf("%0*x", telemetry.InstanceIDLength, 2000+a)
		clusterUID := nodebatch.Pseudonym(uint64(2000 + a))
		for b := range batchesPerAgent {
			key := fmt.Sprintf("agent%d-batch%d", a, b)
			node := func(i int) string { return nodebatch.Pseudonym(uint64(a*100000 + b*100 + i + 1)) }
			for i := range metricsPerBatch {
				batchOf[node(i)] = key
			}
			bodies[key] = enc.EncodeAll(nodebatch.Lines(clusterUID, node, b, metricsPerBatch), nil)
			instances[key] = instance
			keys = append(keys, key)
		}
	}
	// send stores the batches at the installation, each agent retrying
	// until 201 or 200.
	send := func(keys []string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(keys))
		for a := range agents {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, key := range keys {
					if !strings.HasPrefix(key, fmt.Sprintf("agent%d-", a)) {
						continue
					}
					errs <- postUntilStored(client, fmt.Sprintf("https://127.0.0.1:%d%s?_c=%s&_i=%s", installPort, telemetry.DefaultPath, collectorID, instances[key]),
						agentToken, key, bodies[key])
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	lake := filepath.Join(upDir, "telemetry.jsonl")
	perBatch := func() map[string]int {
		n := map[string]int{}
		for _, m := range readLake(t, lake) {
			if m.Name != "kube_telemetry_node" {
				continue
			}
			n[batchOf[m.Tags["node"]]]++
		}
		return n
	}

	// The upstream down: the relay keeps the batches in the stream.
	third := len(keys) / 3
	send(keys[:third])
	require.Eventually(t, func() bool { return strings.Contains(relay.logText(), "Relaying batch") }, time.Minute, 200*time.Millisecond,
		"the relay reports the upstream failing")
	up := startUpstream("upstream")
	require.Eventually(t, func() bool { return len(perBatch()) >= third/2 }, 3*time.Minute, 200*time.Millisecond)

	// The relay killed mid-stream, batches stored meanwhile, started again.
	relay.kill()
	send(keys[third : 2*third])
	relay = startRelay("relay-2")
	// What the killed relay held comes again after ack_wait (1m).
	require.Eventually(t, func() bool { return len(perBatch()) >= 2*third-third/2 }, 3*time.Minute, 200*time.Millisecond)

	// The upstream stopped and started again while batches keep coming.
	up.stop()
	send(keys[2*third:])
	startUpstream("upstream-2")

	var got map[string]int
	require.Eventually(t, func() bool {
		got = perBatch()
		for _, key := range keys {
			if got[key] < metricsPerBatch {
				return false
			}
		}
		return true
	}, 3*time.Minute, 500*time.Millisecond, "every acknowledged batch reaches the upstream lake")
	time.Sleep(3 * time.Second) // a late second copy would land within the lake's flush_interval
	got = perBatch()
	var wrong []string
	for _, key := range keys {
		if got[key] != metricsPerBatch {
			wrong = append(wrong, fmt.Sprintf("%s: %d metrics", key, got[key]))
		}
	}
	require.Empty(t, wrong, "each batch in the upstream lake exactly once")
	require.Len(t, got, len(keys), "nothing else in the upstream lake")

	proxyLog, err := os.ReadFile(filepath.Join(proxyDir, "tinyproxy.log"))
	require.NoError(t, err)
	require.Contains(t, string(proxyLog), fmt.Sprintf("CONNECT 127.0.0.1:%d", upPort), "the relay went through the proxy")
	require.Contains(t, relay.logText(), "Relaying stream")
}
