package e2e_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The scaled-out roles outside Kubernetes, each started the way its
// systemd unit starts it (configs/systemd: ExecStart, EnvironmentFile as
// the operator fills it, LoadCredential, StateDirectory, a transient user
// without capabilities, its own mount and network namespaces) with its
// shipped configuration unmodified, on a real three-node NATS cluster: a
// listener replica (telegraf-tkgi-server-jetstream), the lake consumer
// (telegraf-tkgi-lake) and the relay (telegraf-tkgi-relay) to an upstream
// server started from telegraf-tkgi-server.service. Every batch the replica
// answered 201 is in the lake once, with its batch key, and upstream once.
func TestJetStreamUnitsStoreAndRelay(t *testing.T) {
	requireRoot(t)
	f := &fixture{t: t, bin: testbin.Path(t), dir: t.TempDir()}
	require.NoError(t, os.Chmod(f.dir, 0o755))
	cluster := testnats.Start(t)
	root := repoRoot(t)
	const installation, upstream = "telemetry.tkgi-system.svc", "telemetry.example.com"
	pki := testpki.NewFor(t, []string{installation, upstream})
	agentToken, upstreamToken := "agents-"+randomToken(t), "upstream-"+randomToken(t)
	natsServers := strings.Join(cluster.URLs(), ",")

	// The vendor's server, as telegraf-tkgi-server.service runs it.
	up := serverFromUnit(t, root, f.dir, pki, upstreamToken)
	upProc := f.startInNamespaces("upstream", up.script, up.env, nil)
	upNS := joinNetNS(t, upProc.cmd.Process.Pid)
	waitListening(t, upNS, "127.0.0.1:8443", upProc)

	// Each JetStream role reaches the NATS servers at the addresses its
	// environment file names, relayed into its namespace.
	withNATS := func(ns *netns) {
		for _, u := range cluster.URLs() {
			addr := strings.TrimPrefix(u, "nats://")
			relay(ns.listen(t, addr), func() (net.Conn, error) { return net.Dial("tcp", addr) })
		}
	}
	replica, replicaProc, replicaNS := f.startUnit(root, unitInstall{
		unit: "telegraf-tkgi-server-jetstream",
		env: map[string]string{
			"TELEMETRY_TOKEN":        agentToken,
			"TELEMETRY_EVENTS_TOKEN": "events-" + randomToken(t),
			"TELEMETRY_NATS_SERVERS": natsServers,
		},
		files: map[string]string{"/etc/telegraf-tkgi/tls/server.crt": pki.CertFile, "/etc/telegraf-tkgi/tls/server.key": pki.KeyFile},
	}, withNATS)
	require.Empty(t, replica.stateDir, "the replica keeps no state")
	waitListening(t, replicaNS, "127.0.0.1:8443", replicaProc)

	lake, lakeProc, _ := f.startUnit(root, unitInstall{
		unit: "telegraf-tkgi-lake",
		env:  map[string]string{"TELEMETRY_NATS_SERVERS": natsServers},
	}, withNATS)

	// The relay resolves the upstream's name to its namespace's loopback
	// (/etc/hosts), where the upstream's port is relayed; it trusts the
	// upstream's CA from the file the operator installed.
	hosts := filepath.Join(f.dir, "relay-hosts")
	require.NoError(t, os.WriteFile(hosts, []byte("127.0.0.1 localhost "+upstream+"\n"), 0o644))
	ca, err := os.ReadFile(pki.CertFile)
	require.NoError(t, err)
	upstreamCA := filepath.Join(f.dir, "upstream-ca.crt") // install -m 0644, as relay.env says
	require.NoError(t, os.WriteFile(upstreamCA, ca, 0o644))
	_, relayProc, _ := f.startUnit(root, unitInstall{
		unit: "telegraf-tkgi-relay",
		env: map[string]string{
			"TELEMETRY_NATS_SERVERS":   natsServers,
			"TELEMETRY_UPSTREAM_URL":   "https://" + upstream + ":8443" + telemetry.DefaultPath,
			"TELEMETRY_UPSTREAM_TOKEN": upstreamToken,
			"TELEMETRY_UPSTREAM_CA":    "/etc/telegraf-tkgi/upstream-ca.crt",
		},
		files: map[string]string{"/etc/telegraf-tkgi/upstream-ca.crt": upstreamCA, "/etc/hosts": hosts},
	}, func(ns *netns) {
		withNATS(ns)
		relay(ns.listen(t, "127.0.0.1:8443"), func() (net.Conn, error) { return upNS.dial("127.0.0.1:8443") })
	})

	// Agents post to the replica.
	const agents, batchesPerAgent, metricsPerBatch = 3, 10, 20
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pki.Pool, ServerName: installation, MinVersion: tls.VersionTLS12},
		DialContext:     func(context.Context, string, string) (net.Conn, error) { return replicaNS.dial("127.0.0.1:8443") },
	}}
	rb := newRelayBatches(t, agents, batchesPerAgent, metricsPerBatch)
	for _, key := range rb.keys {
		url := fmt.Sprintf("https://%s:8443%s?_c=%s&_i=%s", installation, telemetry.DefaultPath, collectorID, rb.instances[key])
		require.Equal(t, http.StatusCreated, postBatch(client, url, agentToken, key, rb.bodies[key]), "batch %s:\n%s", key, tail(replicaProc.logText(), 20))
	}
	total := agents * batchesPerAgent * metricsPerBatch

	lakeFile := filepath.Join(lake.stateDir, "telemetry.jsonl")
	upFile := filepath.Join(up.stateDir, "telemetry.jsonl")
	pollUntil(t, 2*time.Minute, func() bool {
		return len(readLake(t, lakeFile)) >= total && len(readLake(t, upFile)) >= total
	}, func() string {
		return fmt.Sprintf("lake %d, upstream %d of %d records\nlake:\n%s\nrelay:\n%s", len(readLake(t, lakeFile)), len(readLake(t, upFile)), total,
			tail(lakeProc.logText(), 20), tail(relayProc.logText(), 20))
	})
	// Stopped as systemd stops them (SIGTERM): nothing more arrives.
	relayProc.stop()
	lakeProc.stop()
	upProc.stop()

	// The lake: every batch once, by its batch key.
	perKey := map[string]int{}
	for _, m := range readLake(t, lakeFile) {
		key, _ := m.RawFields["batch_key"].(string)
		perKey[key]++
	}
	require.Len(t, perKey, agents*batchesPerAgent)
	for key, n := range perKey {
		require.Equal(t, metricsPerBatch, n, "batch %s in the lake", key)
	}
	// Upstream: every batch once, counted by its node series (the
	// upstream's records carry no batch key).
	rb.requireOnce(t, upFile)
	st, err := os.Stat(lakeFile)
	require.NoError(t, err)
	require.Equal(t, uint32(serverUID), st.Sys().(*syscall.Stat_t).Uid, "the lake is written by the service's user")
	t.Logf("%d batches of %d metrics: in the lake once each (by batch key), upstream once each (by series)", agents*batchesPerAgent, metricsPerBatch)
}

// startUnit starts one of configs/systemd's units as installed, in its own
// namespaces; setup runs in its network namespace before the exec.
func (f *fixture) startUnit(root string, in unitInstall, setup func(*netns)) (serverSetup, *process, *netns) {
	f.t.Helper()
	in.wait = true
	u := fromUnit(f.t, root, f.dir, in)
	r, w, err := os.Pipe()
	require.NoError(f.t, err)
	p := f.startInNamespaces(in.unit, u.script, u.env, r)
	r.Close()
	defer w.Close()
	ns := joinNetNS(f.t, p.cmd.Process.Pid)
	setup(ns)
	_, err = w.Write([]byte("\n"))
	require.NoError(f.t, err)
	return u, p, ns
}

// waitListening waits until addr accepts connections in ns.
func waitListening(t *testing.T, ns *netns, addr string, p *process) {
	t.Helper()
	pollUntil(t, time.Minute, func() bool {
		conn, err := ns.dial(addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, func() string { return p.name + " never listened on " + addr + ":\n" + tail(p.logText(), 20) })
}
