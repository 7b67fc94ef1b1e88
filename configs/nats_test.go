package configs_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/loopback"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
)

// configs/nats/nats-server.conf, on three "machines" on loopback (each node's
// addresses, ports and store directory moved, the routes' host names
// pointed at the other nodes, nothing else changed), forms a JetStream
// cluster that keeps an R3 stream, takes a message of the largest batch
// size, and reports healthy on its monitoring port.
func TestNATSServerConfFormsCluster(t *testing.T) {
	bin := testnats.Server(t)
	shipped, err := os.ReadFile("nats/nats-server.conf")
	require.NoError(t, err)
	dir := t.TempDir()
	port := func() int {
		p, err := loopback.FreePort()
		require.NoError(t, err)
		return p
	}
	type node struct{ client, route, monitor int }
	nodes := []node{{port(), port(), port()}, {port(), port(), port()}, {port(), port(), port()}}
	var urls []string
	for i, n := range nodes {
		conf := string(shipped)
		for _, r := range [][2]string{
			{"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", n.client)},
			{"listen: 0.0.0.0:6222", fmt.Sprintf("listen: 127.0.0.1:%d", n.route)},
			{"http: 127.0.0.1:8222", fmt.Sprintf("http: 127.0.0.1:%d", n.monitor)},
			{"store_dir: /var/lib/nats", fmt.Sprintf("store_dir: %q", filepath.Join(dir, fmt.Sprintf("nats-%d", i+1)))},
			{"nats-1.example.com:6222", fmt.Sprintf("127.0.0.1:%d", nodes[0].route)},
			{"nats-2.example.com:6222", fmt.Sprintf("127.0.0.1:%d", nodes[1].route)},
			{"nats-3.example.com:6222", fmt.Sprintf("127.0.0.1:%d", nodes[2].route)},
		} {
			require.Contains(t, conf, r[0], "nats-server.conf changed: the test moves %q", r[0])
			conf = strings.Replace(conf, r[0], r[1], 1)
		}
		path := filepath.Join(dir, fmt.Sprintf("nats-%d.conf", i+1))
		require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("nats-%d.log", i+1)))
		require.NoError(t, err)
		cmd := exec.Command(bin, "-c", path)
		cmd.Env = append(os.Environ(), fmt.Sprintf("NATS_SERVER_NAME=nats-%d", i+1))
		cmd.Stdout, cmd.Stderr = logf, logf
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logf.Close()
		})
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.client))
	}
	logs := func() string {
		var b strings.Builder
		for i := range nodes {
			data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("nats-%d.log", i+1)))
			fmt.Fprintf(&b, "--- nats-%d\n%s", i+1, data)
		}
		return b.String()
	}

	nc, err := nats.Connect(strings.Join(urls, ","), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The meta leader is elected once the routes connect; until then
	// creating a stream fails.
	var stream jetstream.Stream
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		stream, err = js.CreateStream(attempt, jetstream.StreamConfig{
			Name: "TKGI_TELEMETRY", Subjects: []string{"tkgi.telemetry.batches"}, Replicas: 3, Storage: jetstream.FileStorage,
		})
		cancelAttempt()
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "no R3 stream: %v\n%s", err, logs())
		time.Sleep(500 * time.Millisecond)
	}
	require.GreaterOrEqual(t, nc.MaxPayload(), int64(testnats.MaxPayload), "max_payload below the listener's largest batch")
	_, err = js.Publish(ctx, "tkgi.telemetry.batches", make([]byte, testnats.MaxPayload-1024))
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.State.Msgs)
	require.Equal(t, "tkgi-telemetry", info.Cluster.Name)
	require.NotEmpty(t, info.Cluster.Leader)
	require.Len(t, info.Cluster.Replicas, 2, "three copies: the leader and two replicas")
	names := map[string]bool{info.Cluster.Leader: true}
	for _, r := range info.Cluster.Replicas {
		names[r.Name] = true
	}
	require.Equal(t, map[string]bool{"nats-1": true, "nats-2": true, "nats-3": true}, names, "each node names itself from NATS_SERVER_NAME")
	for i, n := range nodes {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", n.monitor))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "nats-%d /healthz", i+1)
	}
}
