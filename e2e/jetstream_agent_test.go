package e2e_test

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The real agent (agent's kube_telemetry into outputs.vmware_telemetry, over
// TLS) against the scaled-out server as shipped: three replicas
// (server-jetstream.conf) behind a round-robin TCP load balancer, a
// three-node NATS cluster, the lake consumer (lake-jetstream.conf). A
// replica and a NATS server are killed while the agent sends: its
// connections break, its retries land on the other replicas, and every
// metric it gathered is in the lake exactly once.
func TestRealAgentThroughLoadBalancerToReplicas(t *testing.T) {
	f := newFixture(t)
	j := newJetStreamFixture(t, token, "jetstream-agent-events-token")
	var replicas []*process
	var ports []int
	for i := range 3 {
		p, port := j.replica(fmt.Sprintf("replica-%d", i))
		replicas = append(replicas, p)
		ports = append(ports, port)
	}
	consumer := j.lake("lake")
	lb := newRoundRobin(t, ports)

	raw := filepath.Join(f.dir, "raw.lp")
	agent := f.start("agent", f.agentConf(agentOpts{
		url:   fmt.Sprintf("https://127.0.0.1:%d%s", lb.port, telemetry.DefaultPath),
		level: "standard", resources: fewResources, raw: raw, tlsCA: j.pki.CertFile,
	}))

	// A few collections, then the replica holding the agent's keep-alive
	// connection and a NATS server die.
	require.Eventually(t, func() bool { return len(readLake(t, j.lakeFile())) >= 10 },
		time.Minute, 250*time.Millisecond, "the agent's batches reach the lake through the load balancer")
	victim := lb.lastBackend()
	replicas[victim].kill()
	j.cluster.Kill(1)
	t.Logf("killed replica-%d (the agent's connection) and NATS server n2", victim)
	killed := time.Now()
	time.Sleep(8 * time.Second) // four more collections on what is left
	// The agent catches up on the replicas left (its retries were
	// answered 503 while the stream moved its leader), then stops: its
	// last flush goes to a live replica. An agent stopped while its batch
	// is still unsent would lose it (memory buffer), which is not what is
	// tested here.
	converge(t, raw, j.lakeFile(), "standard")
	t.Logf("the lake caught up %s after the kills", time.Since(killed).Round(time.Second))
	agent.stop()
	converge(t, raw, j.lakeFile(), "standard")
	time.Sleep(2 * time.Second) // a late second copy would land within the lake's flush_interval
	consumer.stop()

	gathered := readRaw(t, raw)
	want := expected(t, gathered, telemetry.LevelStandard, "")
	lake := readLake(t, j.lakeFile())
	for i := range lake {
		lake[i].Timestamp *= int64(time.Millisecond) // the shipped lake writes milliseconds
	}
	got := lakeCanonical(t, lake, string(telemetry.LevelStandard))
	requireSameMultiset(t, want, got)
	t.Logf("%d metrics gathered, %d sent at standard, %d in the lake: none lost, none twice; %d connections balanced",
		len(gathered), len(want), len(got), lb.served())
}

// roundRobin is a TCP load balancer on loopback: each new connection goes
// to the next backend that accepts it.
type roundRobin struct {
	port     int
	backends []int
	next     atomic.Int64
	count    atomic.Int64
	last     atomic.Int64
}

func newRoundRobin(t *testing.T, backends []int) *roundRobin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lb := &roundRobin{port: ln.Addr().(*net.TCPAddr).Port, backends: backends}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go lb.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return lb
}

func (lb *roundRobin) served() int { return int(lb.count.Load()) }

// lastBackend is the index of the backend of the newest connection.
func (lb *roundRobin) lastBackend() int { return int(lb.last.Load()) }

func (lb *roundRobin) serve(client net.Conn) {
	defer client.Close()
	var backend net.Conn
	for range lb.backends {
		i := int(lb.next.Add(1)) % len(lb.backends)
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", lb.backends[i]), time.Second)
		if err == nil {
			backend = c
			lb.last.Store(int64(i))
			break
		}
	}
	if backend == nil {
		return
	}
	defer backend.Close()
	lb.count.Add(1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(client, backend)
		client.Close()
	}()
	_, _ = io.Copy(backend, client)
	backend.Close()
	wg.Wait()
}
