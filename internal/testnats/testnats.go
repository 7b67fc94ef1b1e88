// Package testnats starts a real three-node NATS JetStream cluster on
// loopback for tests: nats-server built by scripts/nats-server.sh, random
// ports, JetStream stores in the test's temporary directory, and a node
// can be killed and restarted with its store to show what survives.
//
// Starting a cluster runs the built server: an integration test, skipped
// under `go test -short`. Tools (the listener benchmark) use Launch with
// their own TB.
package testnats

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/loopback"
)

// MaxPayload is the largest message the test cluster takes; the listener
// answers a batch beyond it 413, so the agent splits it.
const MaxPayload = 8 << 20

// TB is what the cluster needs from a test (testing.TB has it) or a tool.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Cluster is a running three-node JetStream cluster.
type Cluster struct {
	t     TB
	bin   string
	nodes []*node
}

type node struct {
	name    string
	port    int
	conf    string
	logPath string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Server returns the nats-server binary, building it on first use.
func Server(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real NATS JetStream cluster: an integration test, run without -short (make test)")
	}
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Binary returns the nats-server binary, building it on first use.
func Binary() (string, error) {
	binOnce.Do(func() {
		out, err := exec.Command(filepath.Join(repoRoot(), "scripts", "nats-server.sh")).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, ee.Stderr)
			}
			binErr = fmt.Errorf("scripts/nats-server.sh failed: %w", err)
			return
		}
		binPath = strings.TrimSpace(string(out))
	})
	return binPath, binErr
}

// Start starts three clustered nodes and waits until JetStream answers.
// They are killed when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	return Launch(t, Server(t))
}

// Launch starts three clustered nodes of bin and waits until JetStream
// answers; t's cleanup kills them.
func Launch(t TB, bin string) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c := &Cluster{t: t, bin: bin}
	clientPorts, routePorts := freePorts(t, 3), freePorts(t, 3)
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	for i := range 3 {
		n := &node{name: fmt.Sprintf("n%d", i+1), port: clientPorts[i]}
		store := filepath.Join(dir, n.name, "jetstream")
		n.conf = filepath.Join(dir, n.name+".conf")
		n.logPath = filepath.Join(dir, n.name+".log")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
max_payload: %d
jetstream {
  store_dir: %q
  max_memory_store: 64MB
  max_file_store: 2GB
}
cluster {
  name: tkgi-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, n.name, n.port, MaxPayload, store, routePorts[i], strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatalf("%v", err)
		}
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.Kill(i)
		}
	})
	for i := range c.nodes {
		c.start(i)
	}
	c.WaitJetStream(60 * time.Second)
	return c
}

// URLs are the client URLs of all nodes, comma-separated, as nats.Connect
// and the plugins' servers option take them.
func (c *Cluster) URLs() []string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.port))
	}
	return urls
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	n := c.nodes[i]
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	cmd := exec.Command(c.bin, "-c", n.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("starting nats-server %s: %v", n.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() //nolint:errcheck // the exit is what Kill waits for
		logf.Close()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	if err := loopback.WaitPort(fmt.Sprintf("127.0.0.1:%d", n.port), 20*time.Second); err != nil {
		c.t.Fatalf("nats-server %s: %v\n%s", n.name, err, c.Log(i))
	}
}

// Kill kills node i at once (SIGKILL: no clean leave) and waits for it to
// exit; its store stays for Restart.
func (c *Cluster) Kill(i int) {
	n := c.nodes[i]
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill() //nolint:errcheck // it may have exited already
	<-exited
}

// Restart starts node i again with its store; it rejoins the cluster.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(i)
}

// PIDs are the running nodes' process ids (the benchmark counts their CPU).
func (c *Cluster) PIDs() []int {
	var pids []int
	for _, n := range c.nodes {
		n.mu.Lock()
		if n.cmd != nil {
			pids = append(pids, n.cmd.Process.Pid)
		}
		n.mu.Unlock()
	}
	return pids
}

// Names are the nodes' server names, in node order (as JetStream's
// cluster info names a stream's leader).
func (c *Cluster) Names() []string {
	names := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		names[i] = n.name
	}
	return names
}

// PID is node i's process id, 0 while it is not running.
func (c *Cluster) PID(i int) int {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Log is node i's output so far, for failure messages.
func (c *Cluster) Log(i int) string {
	data, _ := os.ReadFile(c.nodes[i].logPath)
	return string(data)
}

// WaitJetStream waits until the cluster has a JetStream meta leader and
// answers account requests.
func (c *Cluster) WaitJetStream(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(strings.Join(c.URLs(), ","), nats.Timeout(time.Second))
		if err == nil {
			js, jerr := jetstream.New(nc)
			if jerr == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, jerr = js.AccountInfo(ctx)
				cancel()
			}
			nc.Close()
			if jerr == nil {
				return
			}
			err = jerr
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("JetStream did not answer within %s: %v\n%s", timeout, last, c.Log(0))
}

// Connect connects a client to all nodes; it is closed when the test ends.
func (c *Cluster) Connect() (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	nc, err := nats.Connect(strings.Join(c.URLs(), ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	return nc, js
}

func freePorts(t TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	seen := map[int]bool{}
	for len(ports) < n {
		p, err := loopback.FreePort()
		if err != nil {
			t.Fatalf("%v", err)
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
