// Command hostile-listener attacks the built telegraf-tkgi running the
// server role (configs/server.conf, given only its environment: token, TLS
// certificate, state directory) with every kind of request a hostile or
// broken client can send, all at once, while real agents post valid
// batches. It samples the server's resident memory and compares its peak
// (VmHWM) with the bound the listener computes from its settings (README
// "Memory"; logged at startup as "Peak memory bound N bytes").
//
// Attacks, each by concurrent clients on loopback, for -duration:
//   - expanding bodies: zstd and gzip of tiny valid lines just under
//     max_decompressed_size (refused at max_batch_metrics while decoding),
//     lines of another measurement under max_batch_metrics (decoded whole,
//     then refused by the dictionary), and a few valid batches at
//     max_batch_metrics (stored: they fill max_undelivered_bytes);
//   - event arrays: a few KB of zstd expanding to a million events;
//   - slow bodies and slow headers (slowloris), up to -slow connections;
//   - long values: 60 KiB tag values, oversized headers, long query ids;
//   - many distinct batch ids: one-line valid batches, each a new key.
//
// It fails (exit 1) if the peak RSS exceeds the bound, or if any agent
// batch is not answered 201 (or 200 duplicate) within the deadline, or is
// not in the lake exactly once.
//
// With -jetstream the server is one scaled-out replica
// (configs/server-jetstream.conf) on a local three-node NATS cluster, and
// the lake consumer (configs/lake-jetstream.conf) writes the lake; the
// bound then counts the replica's encoding slots and NATS connection.
//
// Usage: go run ./scripts/hostile-listener -bin bin/telegraf-tkgi [-size small|full] [-jetstream]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/loopback"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/nodebatch"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// size is one scale of the run.
type size struct {
	duration  time.Duration
	overrides string // listener settings added to server.conf ("" keeps it as shipped)

	maxBody         int // as configured, for the slow bodies
	maxDecompressed int // as configured, for the bombs
	maxMetrics      int
	bombs           int // concurrent expanding-body clients
	storedBombs     int // valid batches at max_batch_metrics, stored (bounded: they go to the lake)
	events          int
	slow            int // slow connections held open (more than max_connections)
	longValues      int
	ids             int
	agents          int
	agentBatch      int
	agentInterval   time.Duration
}

var sizes = map[string]size{
	// make test: smaller limits so that a short run fills them.
	"small": {
		duration: 12 * time.Second,
		overrides: `
  read_timeout = "3s"
  max_body_size = "1MiB"
  max_decompressed_size = "4MiB"
  max_batch_metrics = 20000
  max_connections = 96
  max_body_buffer = "4MiB"
  max_undelivered_bytes = "16MiB"
  dedup_max_entries = 20000
`,
		maxBody: 1 << 20, maxDecompressed: 4 << 20, maxMetrics: 20000,
		bombs: 3, storedBombs: 3, events: 1, slow: 128, longValues: 1, ids: 1,
		agents: 2, agentBatch: 200, agentInterval: 500 * time.Millisecond,
	},
	// make bench-listener-hostile: configs/server.conf as shipped (defaults).
	"full": {
		duration: 60 * time.Second,
		maxBody:  4 << 20, maxDecompressed: 32 << 20, maxMetrics: 50000,
		bombs: 6, storedBombs: 8, events: 2, slow: 640, longValues: 2, ids: 4,
		agents: 4, agentBatch: 1000, agentInterval: 500 * time.Millisecond,
	},
}

const (
	agentCollector = "real-agent"
	bombCollector  = "hostile"
)

var (
	token  = randomHex(16)
	client *http.Client // the attackers', keeping connections alive
	// agentClient opens a connection per batch, as an agent posting every
	// minute does: it must get one while slow clients hold the others.
	agentClient *http.Client
	base        string // https://127.0.0.1:port
)

func main() {
	bin := flag.String("bin", "bin/telegraf-tkgi", "telegraf-tkgi binary")
	conf := flag.String("conf", "", "server configuration (default configs/server.conf, or configs/server-jetstream.conf with -jetstream; its service_address and prometheus listen are moved to free loopback ports)")
	useJetStream := flag.Bool("jetstream", false, "run the scaled-out replica (server-jetstream.conf) on a local three-node NATS cluster, with the lake consumer (lake-jetstream.conf) writing the lake")
	sizeName := flag.String("size", "small", "small (make test) or full (make bench-listener-hostile)")
	duration := flag.Duration("duration", 0, "attack duration (default per size)")
	flag.Parse()
	sz, ok := sizes[*sizeName]
	if !ok {
		fail("unknown -size %q: use small or full", *sizeName)
	}
	if *duration > 0 {
		sz.duration = *duration
	}
	if *conf == "" {
		*conf = "configs/server.conf"
		if *useJetStream {
			*conf = "configs/server-jetstream.conf"
		}
	}

	work, err := os.MkdirTemp("", "hostile-listener")
	check(err)
	defer os.RemoveAll(work)
	certFile, keyFile, pool := selfSigned(work)
	client = &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 64,
		},
	}

	agentClient = &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}

	port, promPort := freePort(), freePort() // prometheus_client is moved out of the way, not read
	base = fmt.Sprintf("https://127.0.0.1:%d", port)
	confPath := filepath.Join(work, "server.conf")
	check(os.WriteFile(confPath, []byte(serverConf(*conf, port, promPort, sz.overrides)), 0o600))

	env := append(os.Environ(),
		"TELEMETRY_TOKEN="+token, "TELEMETRY_EVENTS_TOKEN="+token,
		"TELEMETRY_TLS_CERT="+certFile, "TELEMETRY_TLS_KEY="+keyFile,
		"TELEMETRY_STATE_DIR="+work,
		fmt.Sprintf("TELEMETRY_LISTEN=127.0.0.1:%d", port),
		fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", promPort))
	tool := &toolTB{dir: work}
	defer tool.cleanup()
	var stopLake func()
	if *useJetStream {
		natsBin, err := testnats.Binary()
		check(err)
		cluster := testnats.Launch(tool, natsBin)
		env = append(env, "TELEMETRY_NATS_SERVERS="+strings.Join(cluster.URLs(), ","))
		lakeEnv := append(slices.Clone(env), fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", freePort()))
		stopLake = startProcess(*bin, filepath.Join(filepath.Dir(*conf), "lake-jetstream.conf"), lakeEnv, filepath.Join(work, "lake.log"))
		defer stopLake()
	}

	logPath := filepath.Join(work, "server.log")
	stop := startProcess(*bin, confPath, env, logPath)
	defer stop()
	pid := serverPID
	if err := loopback.WaitPort(fmt.Sprintf("127.0.0.1:%d", port), 30*time.Second); err != nil {
		stop()
		out, _ := os.ReadFile(logPath)
		fail("server did not start: %v\n%s", err, out)
	}
	bound := readBound(logPath)
	idle := rss(pid, "VmRSS")
	fmt.Printf("hostile-listener: size %s, %s of attacks; server pid %d, %d MiB resident at rest, bound %d MiB\n",
		*sizeName, sz.duration, pid, idle>>10, bound>>20)

	ctx, cancel := context.WithTimeout(context.Background(), sz.duration)
	defer cancel()
	var sampled atomic.Int64
	samplerStop, samplerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			sampled.Store(max(sampled.Load(), rss(pid, "VmRSS")))
			select {
			case <-samplerStop:
				return
			case <-tick.C:
			}
		}
	}()

	st := newStats()
	var wg sync.WaitGroup
	run := func(name string, n int, f func(ctx context.Context, worker int, st *attackStats)) {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f(ctx, i, st.get(name))
			}()
		}
	}
	bodies := newBombs(sz)
	run("zstd bomb, tiny valid lines over max_batch_metrics", (sz.bombs+1)/2, func(ctx context.Context, _ int, as *attackStats) {
		loop(ctx, as, func() int { return postBatch(ctx, bodies.zstdOverCount, "zstd", randomHex(8)) })
	})
	run("gzip bomb, tiny lines under max_batch_metrics, refused by the dictionary", sz.bombs/2, func(ctx context.Context, _ int, as *attackStats) {
		loop(ctx, as, func() int { return postBatch(ctx, bodies.gzipUnlisted, "gzip", randomHex(8)) })
	})
	run("valid batches at max_batch_metrics (stored)", 1, func(ctx context.Context, _ int, as *attackStats) {
		stored := 0
		loop(ctx, as, func() int {
			if stored >= sz.storedBombs {
				return -1
			}
			code := postBatch(ctx, bodies.zstdValidAtCount, "zstd", randomHex(8))
			if code == http.StatusCreated {
				stored++
			}
			return code
		})
	})
	run("event array bombs, 1M events", sz.events, func(ctx context.Context, i int, as *attackStats) {
		loop(ctx, as, func() int {
			i++
			return postEvents(ctx, bodies.events[i%len(bodies.events)])
		})
	})
	run("slow bodies and headers", sz.slow, func(ctx context.Context, i int, as *attackStats) {
		loop(ctx, as, func() int { return slowloris(ctx, port, sz.maxBody-1, i%4 == 0) })
	})
	run("long values, headers and ids", sz.longValues, func(ctx context.Context, i int, as *attackStats) {
		n := 0
		loop(ctx, as, func() int {
			n++
			switch n % 3 {
			case 0:
				return postBatch(ctx, bodies.longValues, "zstd", randomHex(8))
			case 1:
				return postRaw(ctx, base+telemetry.DefaultPath+"?_c="+strings.Repeat("c", 8<<10)+"&_i="+randomHex(16), nil)
			default:
				return postRaw(ctx, base+telemetry.DefaultPath+"?_c=x&_i="+randomHex(16), map[string]string{"X-Pad": strings.Repeat("p", 48<<10)})
			}
		})
	})
	run("many distinct batch ids", sz.ids, func(ctx context.Context, i int, as *attackStats) {
		loop(ctx, as, func() int { return postBatch(ctx, bodies.oneLine, "zstd", randomHex(16)) })
	})

	agents := make([]*agent, sz.agents)
	var agentWG sync.WaitGroup
	for i := range agents {
		agents[i] = &agent{instance: randomHex(telemetry.InstanceIDBytes), batch: sz.agentBatch}
		agentWG.Add(1)
		go func() {
			defer agentWG.Done()
			agents[i].run(ctx, sz.agentInterval, sz.duration+90*time.Second)
		}()
	}

	<-ctx.Done()
	wg.Wait()
	agentWG.Wait()
	hwm := rss(pid, "VmHWM")
	anon, file := rss(pid, "RssAnon"), rss(pid, "RssFile")
	want := 0
	for _, a := range agents {
		want += a.stored * a.batch
	}
	// With JetStream a batch is answered once it is in the stream; the
	// lake consumer writes it a moment later.
	lake := countLake(filepath.Join(work, "telemetry.jsonl"))
	for deadline := time.Now().Add(time.Minute); *useJetStream && lake < want && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		lake = countLake(filepath.Join(work, "telemetry.jsonl"))
	}
	close(samplerStop)
	<-samplerDone
	stop()

	st.print()
	failed := false
	var sent, stored, lost, metricsSent int
	var lat []time.Duration
	for _, a := range agents {
		sent += a.sent
		stored += a.stored
		lost += a.lost
		metricsSent += a.stored * a.batch
		lat = append(lat, a.latencies...)
	}
	fmt.Printf("\nagents: %d batches of %d metrics sent, %d stored (201/200), %d lost; %d retries; time to stored p50 %s, p99 %s, max %s\n",
		sent, sz.agentBatch, stored, lost, sumRetries(agents), pct(lat, 0.5), pct(lat, 0.99), pct(lat, 1))
	fmt.Printf("lake: %d of %d agent metrics present\n", lake, metricsSent)
	fmt.Printf("peak RSS %d MiB (VmHWM; polled VmRSS max %d MiB), bound %d MiB (%.0f%%), at rest %d MiB; at the end %d MiB anonymous, %d MiB file-backed\n",
		hwm>>10, sampled.Load()>>10, bound>>20, 100*float64(hwm<<10)/float64(bound), idle>>10, anon>>10, file>>10)
	if hwm<<10 > bound {
		fmt.Println("FAIL: peak RSS above the bound")
		failed = true
	}
	if lost > 0 || stored != sent || lake != metricsSent {
		fmt.Println("FAIL: agent batches lost")
		failed = true
	}
	if sent == 0 {
		fmt.Println("FAIL: no agent batch sent")
		failed = true
	}
	if failed {
		os.Exit(1)
	}
	fmt.Println("PASS")
}

// serverPID is the server's process id, once startProcess started it.
var serverPID int

// startProcess runs bin with conf and env, its output in logPath, and
// returns what stops it (SIGTERM, then SIGKILL after 30 s).
func startProcess(bin, conf string, env []string, logPath string) (stop func()) {
	logFile, err := os.Create(logPath)
	check(err)
	cmd := exec.Command(bin, "--config", conf)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	check(cmd.Start())
	if filepath.Base(logPath) == "server.log" {
		serverPID = cmd.Process.Pid
	}
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // exits anyway
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() //nolint:errcheck // exit status of a terminated process
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill() //nolint:errcheck // last resort
		}
		logFile.Close()
	}
}

// toolTB gives testnats what it needs from a test, in a tool.
type toolTB struct {
	dir      string
	n        int
	cleanups []func()
}

func (*toolTB) Helper() {}

func (*toolTB) Fatalf(format string, args ...any) { fail(format, args...) }

func (t *toolTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (t *toolTB) TempDir() string {
	t.n++
	dir := filepath.Join(t.dir, fmt.Sprintf("nats%d", t.n))
	check(os.MkdirAll(dir, 0o700))
	return dir
}

func (t *toolTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// serverConf is the shipped configuration with its ports moved to free
// loopback ones and, for the small size, smaller limits.
func serverConf(path string, port, promPort int, overrides string) string {
	data, err := os.ReadFile(path)
	check(err)
	s := string(data)
	replace := func(old, new string) {
		if !strings.Contains(s, old) {
			fail("%s has no %q", path, old)
		}
		s = strings.Replace(s, old, new, 1)
	}
	// The scaled-out replica takes its ports from the environment.
	if !strings.Contains(s, "${TELEMETRY_LISTEN") {
		replace(`service_address = ":8443"`, fmt.Sprintf(`service_address = "127.0.0.1:%d"`, port))
		replace(`listen = ":9273"`, fmt.Sprintf(`listen = "127.0.0.1:%d"`, promPort))
	}
	if overrides != "" {
		replace("[[inputs.vmware_telemetry_listener]]\n", "[[inputs.vmware_telemetry_listener]]\n"+strings.TrimPrefix(overrides, "\n"))
	}
	return s
}

var boundRe = regexp.MustCompile(`Peak memory bound (\d+) bytes`)

// readBound is the bound the listener logged at startup.
func readBound(logPath string) int64 {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(logPath)
		if m := boundRe.FindSubmatch(data); m != nil {
			v, _ := strconv.ParseInt(string(m[1]), 10, 64)
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
	fail("the server did not log its peak memory bound")
	return 0
}

// bombs are the attack bodies, built once.
type bombs struct {
	zstdOverCount, gzipUnlisted, zstdValidAtCount, longValues, oneLine []byte
	events                                                             [][]byte
}

func newBombs(sz size) *bombs {
	tiny := func(i int) string {
		return fmt.Sprintf("kube_telemetry_nodes,cluster_uid=%0*x total=3i,ready=3i,not_ready=0i\n", telemetry.PseudonymLength, i%7)
	}
	var over, unlisted, atCount, long bytes.Buffer
	for i := 0; over.Len() < sz.maxDecompressed-200; i++ {
		over.WriteString(tiny(i))
	}
	for i := 0; i < sz.maxMetrics && unlisted.Len() < sz.maxDecompressed-200; i++ {
		fmt.Fprintf(&unlisted, "kube_telemetry_nodez,cluster_uid=%0*x total=3i,ready=3i,not_ready=0i\n", telemetry.PseudonymLength, i%7)
	}
	for i := 0; i < sz.maxMetrics; i++ {
		atCount.WriteString(tiny(i))
	}
	for i := 0; long.Len() < sz.maxDecompressed-(64<<10); i++ {
		fmt.Fprintf(&long, "kube_telemetry_nodes,cluster_uid=%s total=%di\n", strings.Repeat(string(rune('a'+i%26)), 60<<10), i)
	}
	evs := make([][]byte, 2)
	for k, doc := range []string{"{}", `{"type":"a"}`} {
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range 1 << 20 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(doc)
		}
		b.WriteByte(']')
		evs[k] = zstdBytes(b.Bytes())
	}
	b := &bombs{
		zstdOverCount:    zstdBytes(over.Bytes()),
		gzipUnlisted:     gzipBytes(unlisted.Bytes()),
		zstdValidAtCount: zstdBytes(atCount.Bytes()),
		longValues:       zstdBytes(long.Bytes()),
		oneLine:          zstdBytes([]byte(tiny(1))),
		events:           evs,
	}
	fmt.Printf("bodies: zstd bomb %d B -> %d MiB; gzip %d B -> %d MiB; valid at max_batch_metrics %d B -> %d MiB; long values %d B -> %d MiB; events %d/%d B -> 1M events\n",
		len(b.zstdOverCount), over.Len()>>20, len(b.gzipUnlisted), unlisted.Len()>>20, len(b.zstdValidAtCount), atCount.Len()>>20,
		len(b.longValues), long.Len()>>20, len(evs[0]), len(evs[1]))
	return b
}

func postBatch(ctx context.Context, body []byte, encoding, key string) int {
	return post(ctx, base+telemetry.DefaultPath+"?_c="+bombCollector+"&_i="+randomHex(telemetry.InstanceIDBytes), body, map[string]string{
		"Content-Type": telemetry.ContentType, "Content-Encoding": encoding, telemetry.HeaderLevel: "standard",
		telemetry.HeaderIdempotencyKey: key,
	})
}

func postEvents(ctx context.Context, body []byte) int {
	return post(ctx, base+"/ph/api/hyper/events?_c=tkgi-api&_i=api", body, map[string]string{
		"Content-Type": "application/json", "Content-Encoding": "zstd", telemetry.HeaderLevel: "standard",
	})
}

func postRaw(ctx context.Context, url string, headers map[string]string) int {
	h := map[string]string{"Content-Type": telemetry.ContentType, telemetry.HeaderLevel: "standard"}
	for k, v := range headers {
		h[k] = v
	}
	return post(ctx, url, []byte("x f=1i\n"), h)
}

// post answers the status, 0 for a transport error.
func post(ctx context.Context, url string, body []byte, headers map[string]string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	check(err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	keepAnswer(resp.StatusCode, msg)
	return resp.StatusCode
}

// slowloris opens a TLS connection and sends a request's headers (all, or
// half when headersOnly) and then one byte a second of a body announcing 4
// MiB, until the server gives up on it (read_timeout) or the run ends.
func slowloris(ctx context.Context, port, contentLength int, headersOnly bool) int {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // our own server on loopback
	c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return 0
	}
	defer c.Close()
	head := fmt.Sprintf("POST %s?_c=slow&_i=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nTelemetry-Level: standard\r\nContent-Length: %d\r\n\r\n",
		telemetry.DefaultPath, randomHex(telemetry.InstanceIDBytes), token, contentLength)
	if headersOnly {
		head = head[:len(head)/2]
	}
	if _, err := io.WriteString(c, head); err != nil {
		return 0
	}
	line := []byte("kube_telemetry_nodes,cluster_uid=" + strings.Repeat("0", telemetry.PseudonymLength) + " total=1i\n")
	closed := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			closed <- 0
			return
		}
		resp.Body.Close()
		closed <- resp.StatusCode
	}()
	for i := 0; ; i++ {
		select {
		case code := <-closed:
			return code
		case <-ctx.Done():
			return heldToTheEnd
		case <-time.After(time.Second):
		}
		if !headersOnly {
			if _, err := c.Write(line[i%len(line) : i%len(line)+1]); err != nil {
				return <-closed
			}
		}
	}
}

// heldToTheEnd counts a slow connection the run ended, not the server.
const heldToTheEnd = 1

// loop runs one attack until ctx ends; f answers a status, 0 for a
// transport error, -1 for nothing done.
func loop(ctx context.Context, as *attackStats, f func() int) {
	for ctx.Err() == nil {
		code := f()
		if code == -1 {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if ctx.Err() != nil && code == 0 {
			return
		}
		as.add(code)
		if code == 0 { // the server closed on us: do not spin
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// agent posts valid batches as outputs.vmware_telemetry does (zstd, level
// standard, an Idempotency-Key kept across retries) and retries every
// refusal after its Retry-After, until stored or the deadline.
type agent struct {
	instance  string
	batch     int
	sent      int
	stored    int
	lost      int
	retries   int
	latencies []time.Duration
}

func (a *agent) run(ctx context.Context, interval, deadline time.Duration) {
	end := time.Now().Add(deadline)
	enc, _ := zstd.NewWriter(nil)
	for seq := 0; ctx.Err() == nil; seq++ {
		body := enc.EncodeAll(agentPayload(a.instance, seq, a.batch), nil)
		key := fmt.Sprintf("%s-%d", a.instance[:8], seq)
		a.sent++
		start := time.Now()
		if a.deliver(body, key, end) {
			a.stored++
			a.latencies = append(a.latencies, time.Since(start))
		} else {
			a.lost++
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

func (a *agent) deliver(body []byte, key string, end time.Time) bool {
	for time.Now().Before(end) {
		req, err := http.NewRequest(http.MethodPost, base+telemetry.DefaultPath+"?_c="+agentCollector+"&_i="+a.instance, bytes.NewReader(body))
		check(err)
		req.Header.Set("Content-Type", telemetry.ContentType)
		req.Header.Set("Content-Encoding", "zstd")
		req.Header.Set(telemetry.HeaderLevel, "standard")
		req.Header.Set(telemetry.HeaderIdempotencyKey, key)
		req.Header.Set("Authorization", "Bearer "+token)
		wait := time.Second
		resp, err := agentClient.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated, http.StatusOK:
				return true
			case http.StatusTooManyRequests, http.StatusServiceUnavailable:
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
					wait = time.Duration(s) * time.Second
				}
			default:
				fmt.Printf("agent batch %s refused for good: %s %s\n", key, resp.Status, msg)
				return false
			}
		}
		a.retries++
		time.Sleep(wait)
	}
	return false
}

// agentPayload is one batch of per-node metrics the dictionary allows at
// standard, as a large cluster's agent sends.
func agentPayload(instance string, seq, n int) []byte {
	node := func(i int) string { return nodebatch.Pseudonym(uint64(i)) }
	return nodebatch.Lines(instance[:telemetry.PseudonymLength], node, seq, n)
}

func sumRetries(as []*agent) int {
	n := 0
	for _, a := range as {
		n += a.retries
	}
	return n
}

// countLake counts the agents' metrics in the lake, once every agent
// batch answered: the file output wrote them before the 201.
func countLake(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	want := []byte(`"collector":"` + agentCollector + `"`)
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), want) {
			n++
		}
	}
	return n
}

type attackStats struct {
	mu    sync.Mutex
	codes map[int]int
}

func (a *attackStats) add(code int) {
	a.mu.Lock()
	a.codes[code]++
	a.mu.Unlock()
}

// answers keeps the first answer's body per status, for the report.
var answers sync.Map // int -> string

func keepAnswer(code int, body []byte) {
	if code >= 400 {
		answers.LoadOrStore(code, strings.TrimSpace(string(body)))
	}
}

type stats struct {
	mu    sync.Mutex
	order []string
	by    map[string]*attackStats
}

func newStats() *stats { return &stats{by: map[string]*attackStats{}} }

func (s *stats) get(name string) *attackStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.by[name]; ok {
		return a
	}
	a := &attackStats{codes: map[int]int{}}
	s.by[name] = a
	s.order = append(s.order, name)
	return a
}

func (s *stats) print() {
	fmt.Println("\nattack                                                              answers (status: count; 0 = connection closed, 1 = still open at the end)")
	for _, name := range s.order {
		a := s.by[name]
		codes := make([]int, 0, len(a.codes))
		for c := range a.codes {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		parts := make([]string, 0, len(codes))
		for _, c := range codes {
			parts = append(parts, fmt.Sprintf("%d: %d", c, a.codes[c]))
		}
		fmt.Printf("  %-66s %s\n", name, strings.Join(parts, ", "))
	}
	fmt.Println("first answer per status:")
	answers.Range(func(k, v any) bool {
		fmt.Printf("  %d %.160s\n", k, v)
		return true
	})
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))].Round(time.Millisecond)
}

// rss reads a /proc/PID/status field in KiB.
func rss(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}

func selfSigned(dir string) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	check(err)
	kder, err := x509.MarshalECPrivateKey(key)
	check(err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	check(os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	check(os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := x509.ParseCertificate(der)
	check(err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func zstdBytes(b []byte) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	check(err)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	check(err)
	w.Write(b) //nolint:errcheck // bytes.Buffer
	check(w.Close())
	return buf.Bytes()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	return hex.EncodeToString(b)
}

// freePort is a free loopback port; the tool cannot run without one.
func freePort() int {
	port, err := loopback.FreePort()
	check(err)
	return port
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hostile-listener: "+format+"\n", args...)
	os.Exit(1)
}
