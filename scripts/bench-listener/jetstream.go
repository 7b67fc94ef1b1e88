package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// cleanups run when the tool ends, also on failure: they stop the NATS
// servers.
var cleanups []func()

func runCleanups() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

// tool is testnats's TB for a command: failing ends the tool.
type tool struct{ work string }

func (tool) Helper() {}

func (tool) Fatalf(format string, args ...any) { check(fmt.Errorf(format, args...)) }

func (tool) Cleanup(f func()) { cleanups = append(cleanups, f) }

func (t tool) TempDir() string {
	dir, err := os.MkdirTemp(t.work, "nats")
	check(err)
	return dir
}

// jetStreamTargets are the listener with its embedded store, then one and
// three replicas on a three-node NATS JetStream cluster on loopback (R3
// stream, shared key bucket); the NATS servers' CPU is counted in the
// JetStream rows. Nothing consumes the stream while measuring: the lake
// consumer is a separate process sized on its own.
func jetStreamTargets(work string, batch int, bodies [][]byte) []target {
	bin, err := testnats.Binary()
	check(err)
	cluster := testnats.Launch(tool{work: work}, bin)
	servers := cluster.URLs()
	headers := map[string]string{"Content-Type": telemetry.ContentType, telemetry.HeaderLevel: "standard", "Content-Encoding": "zstd"}
	replicas := func(name string, n int) target {
		tg := target{name: name, headers: headers, bodies: bodies, encoding: "zstd", keyed: true, extraPIDs: cluster.PIDs(), nats: cluster}
		for range n {
			port := freePort()
			tg.confs = append(tg.confs, jetStreamConf(batch, port, servers))
			tg.paths = append(tg.paths, listenerURL(port))
		}
		return tg
	}
	embedded := freePort()
	return []target{
		{
			name:  "embedded, 1 replica",
			confs: []string{listenerConf(batch, embedded, "delivered", work+"/dedup-embedded.log")},
			paths: []string{listenerURL(embedded)}, headers: headers, bodies: bodies, encoding: "zstd", keyed: true,
		},
		replicas("jetstream, 1 replica", 1),
		replicas("jetstream, 3 replicas", 3),
	}
}

func listenerURL(port int) string {
	return fmt.Sprintf("http://127.0.0.1:%d/ph/api/hyper/send?_c=bench&_i=0123456789abcdef0123456789abcdef", port)
}

// jetStreamConf is a listener replica handing batches to the stream.
func jetStreamConf(batch, port int, servers []string) string {
	return fmt.Sprintf(`
[agent]
  interval = "10s"
  flush_interval = "10s"
  metric_batch_size = %d
  omit_hostname = true
[[inputs.vmware_telemetry_listener]]
  service_address = "127.0.0.1:%d"
  allow_anonymous = true
  max_undelivered_batches = 256
  max_undelivered_bytes = "512MiB"
  [inputs.vmware_telemetry_listener.jetstream]
    servers = ["%s"]
[[outputs.discard]]
`, batch, port, strings.Join(servers, ","))
}
