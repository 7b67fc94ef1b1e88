// Command bench-listener loads telegraf-tkgi's inputs.vmware_telemetry_listener
// and stock inputs.http_listener_v2 (both compiled into the same binary) with
// the same batches from N concurrent agents on loopback, one after the other
// in one run, and prints requests/s, metrics/s, p50/p99 latency and the
// server's peak RSS side by side with ratios.
//
// The listener gets zstd bodies with a fresh Idempotency-Key each (so
// decompression, the dictionary check and de-duplication all run) and
// answers only once the output wrote the batch (acknowledge = "delivered");
// http_listener_v2 cannot decode zstd, so it gets the same line protocol
// gzip-compressed, the only compression both accept, and answers as soon as
// it parsed the body. Both write to outputs.discard.
//
// With -jetstream it compares instead the listener with its embedded store
// (one replica) against one and three replicas on a three-node NATS
// JetStream cluster on loopback (nats-server from scripts/nats-server.sh),
// counting the NATS servers' CPU in the JetStream rows.
//
// Usage: go run ./scripts/bench-listener -bin bin/telegraf-tkgi [-agents 32] [-duration 20s] [-jetstream]
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/loopback"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/nodebatch"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

var profileDir string

type target struct {
	name string
	// one configuration and URL per replica; agent a posts to a's replica
	confs    []string
	paths    []string
	headers  map[string]string
	bodies   [][]byte
	encoding string
	keyed    bool
	// extraPIDs are counted in the CPU figure too (the NATS servers)
	extraPIDs []int
	// nats, when set, is the cluster whose CPU is also split by role
	nats *testnats.Cluster
}

type result struct {
	target   string
	requests int64
	metrics  int64
	refused  map[int]int64
	errors   int64
	elapsed  time.Duration
	lat      []time.Duration
	peakRSS  int64 // KiB
	cpuTicks int64
	roles    natsRoles
}

func main() {
	bin := flag.String("bin", "bin/telegraf-tkgi", "telegraf-tkgi binary")
	agents := flag.Int("agents", 32, "concurrent agents (HTTP clients, keep-alive)")
	duration := flag.Duration("duration", 20*time.Second, "load duration per server")
	warmup := flag.Duration("warmup", 3*time.Second, "load before measuring, per server")
	batch := flag.Int("batch", 1000, "metrics per request")
	distinct := flag.Int("payloads", 64, "distinct payloads cycled through")
	rounds := flag.Int("rounds", 3, "rounds; the servers alternate within each, so load on the machine hits them alike")
	accepted := flag.Bool("accepted", true, `also run the listener with acknowledge = "accepted"`)
	withJetStream := flag.Bool("jetstream", false, "compare 1 replica embedded, 1 and 3 replicas on a local three-node NATS JetStream cluster instead")
	flag.StringVar(&profileDir, "profile", "", "write each server's CPU profile of the measured period to this directory")
	flag.Parse()

	work, err := os.MkdirTemp("", "bench-listener")
	check(err)
	defer os.RemoveAll(work)

	plain := make([][]byte, *distinct)
	zbodies := make([][]byte, *distinct)
	gbodies := make([][]byte, *distinct)
	var plainBytes, zBytes, gBytes int
	enc, err := zstd.NewWriter(nil)
	check(err)
	for i := range plain {
		plain[i] = payload(i, *batch)
		zbodies[i] = enc.EncodeAll(plain[i], nil)
		gbodies[i] = gzipBytes(plain[i])
		plainBytes += len(plain[i])
		zBytes += len(zbodies[i])
		gBytes += len(gbodies[i])
	}
	fmt.Printf("payload: %d metrics/request, %d bytes line protocol, zstd %d bytes, gzip %d bytes (averages)\n",
		*batch, plainBytes / *distinct, zBytes / *distinct, gBytes / *distinct)

	listenerPort, acceptedPort, v2Port := freePort(), freePort(), freePort()
	targets := []target{
		{
			name:     "vmware_telemetry_listener",
			confs:    []string{listenerConf(*batch, listenerPort, "delivered", filepath.Join(work, "dedup.log"))},
			paths:    []string{listenerURL(listenerPort)},
			headers:  map[string]string{"Content-Type": telemetry.ContentType, telemetry.HeaderLevel: "standard", "Content-Encoding": "zstd"},
			bodies:   zbodies,
			encoding: "zstd",
			keyed:    true,
		},
		{
			name:     "listener (accepted)",
			confs:    []string{listenerConf(*batch, acceptedPort, "accepted", filepath.Join(work, "dedup-accepted.log"))},
			paths:    []string{listenerURL(acceptedPort)},
			headers:  map[string]string{"Content-Type": telemetry.ContentType, telemetry.HeaderLevel: "standard", "Content-Encoding": "zstd"},
			bodies:   zbodies,
			encoding: "zstd",
			keyed:    true,
		},
		{
			name: "http_listener_v2",
			confs: []string{fmt.Sprintf(`
[agent]
  interval = "10s"
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = %d
  metric_buffer_limit = 200000
  omit_hostname = true
[[inputs.http_listener_v2]]
  service_address = "127.0.0.1:%d"
  paths = ["/write"]
  data_format = "influx"
[[outputs.discard]]
`, *batch, v2Port)},
			paths:    []string{fmt.Sprintf("http://127.0.0.1:%d/write", v2Port)},
			headers:  map[string]string{"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"},
			bodies:   gbodies,
			encoding: "gzip",
		},
	}

	if !*accepted {
		targets = slices.Delete(targets, 1, 2)
	}
	base := len(targets) - 1 // http_listener_v2
	if *withJetStream {
		targets, base = jetStreamTargets(work, *batch, zbodies), 0
	}
	total := make([]result, len(targets))
	perRound := make([][]float64, len(targets))
	for round := 0; round < *rounds; round++ {
		for i, tg := range targets {
			r, err := run(*bin, work, tg, *agents, *batch, *warmup, *duration)
			check(err)
			fmt.Printf("round %d %-28s %8.0f metrics/s\n", round+1, tg.name, float64(r.metrics)/r.elapsed.Seconds())
			perRound[i] = append(perRound[i], float64(r.metrics)/r.elapsed.Seconds())
			total[i] = merge(total[i], r)
		}
	}
	runCleanups()
	report(total, perRound, base, *agents, *batch, *rounds)
}

func merge(a, b result) result {
	if a.refused == nil {
		a.refused = map[int]int64{}
	}
	a.target = b.target
	a.requests += b.requests
	a.metrics += b.metrics
	for k, v := range b.refused {
		a.refused[k] += v
	}
	a.errors += b.errors
	a.elapsed += b.elapsed
	a.lat = append(a.lat, b.lat...)
	a.peakRSS = max(a.peakRSS, b.peakRSS)
	a.cpuTicks += b.cpuTicks
	a.roles.add(b.roles)
	return a
}

func run(bin, work string, tg target, agents, batch int, warmup, duration time.Duration) (result, error) {
	var procs []*exec.Cmd
	defer func() {
		for _, cmd := range procs {
			cmd.Process.Signal(os.Interrupt) //nolint:errcheck // stopping
			cmd.Wait()                       //nolint:errcheck // stopping
		}
	}()
	pprofAddr := ""
	for i, conf := range tg.confs {
		// --config takes a comma-separated list: keep commas out of the name
		name := fmt.Sprintf("%s-%d", strings.NewReplacer(" ", "_", ",", "").Replace(tg.name), i)
		confPath := filepath.Join(work, name+".conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			return result{}, err
		}
		logf, err := os.Create(filepath.Join(work, name+".log"))
		if err != nil {
			return result{}, err
		}
		defer logf.Close()
		args := []string{"--config", confPath}
		if profileDir != "" && i == 0 {
			pprofAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
			args = append(args, "--pprof-addr", pprofAddr)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		procs = append(procs, cmd)
		u := strings.TrimPrefix(tg.paths[i], "http://")
		if err := loopback.WaitPort(u[:strings.Index(u, "/")], 15*time.Second); err != nil {
			log, _ := os.ReadFile(logf.Name())
			return result{}, fmt.Errorf("%s did not start: %w\n%s", name, err, log)
		}
	}
	pids := slices.Clone(tg.extraPIDs)
	for _, cmd := range procs {
		pids = append(pids, cmd.Process.Pid)
	}

	var (
		measuring atomic.Bool
		stop      atomic.Bool
		requests  atomic.Int64
		metrics   atomic.Int64
		errCount  atomic.Int64
		mu        sync.Mutex
		refused   = map[int]int64{}
		lats      []time.Duration
		wg        sync.WaitGroup
		seq       atomic.Int64
		// keys unique to this run: the listener's de-duplication (its
		// file, the shared bucket) outlives a run, and a key seen before
		// is answered 200 duplicate without storing anything
		keyPrefix = fmt.Sprintf("bench-%x-", rand.Uint64())
	)
	for a := 0; a < agents; a++ {
		wg.Add(1)
		go func(a int) {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}, Timeout: 60 * time.Second}
			var mine []time.Duration
			for i := a; !stop.Load(); i++ {
				body := tg.bodies[i%len(tg.bodies)]
				req, _ := http.NewRequest(http.MethodPost, tg.paths[a%len(tg.paths)], bytes.NewReader(body))
				for k, v := range tg.headers {
					req.Header.Set(k, v)
				}
				if tg.keyed {
					req.Header.Set(telemetry.HeaderIdempotencyKey, keyPrefix+strconv.FormatInt(seq.Add(1), 10))
				}
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if measuring.Load() {
						errCount.Add(1)
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck // draining for keep-alive
				resp.Body.Close()
				lat := time.Since(start)
				if !measuring.Load() {
					continue
				}
				if resp.Header.Get(telemetry.HeaderDuplicate) == "true" {
					// stored before: not a batch stored now
					mu.Lock()
					refused[statusDuplicate]++
					mu.Unlock()
				} else if resp.StatusCode/100 == 2 {
					requests.Add(1)
					metrics.Add(int64(batch))
					mine = append(mine, lat)
				} else {
					mu.Lock()
					refused[resp.StatusCode]++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}(a)
	}
	time.Sleep(warmup)
	var natsBefore, natsAfter natsSample
	if tg.nats != nil {
		var err error
		if natsBefore, err = natsLeaders(tg.nats); err != nil {
			stop.Store(true)
			wg.Wait()
			return result{}, err
		}
		natsBefore.ticks = nodeTicks(tg.nats)
	}
	ticksBefore := cpuTicks(pids)
	measuring.Store(true)
	begin := time.Now()
	if pprofAddr != "" {
		go saveProfile(pprofAddr, duration, filepath.Join(profileDir, strings.ReplaceAll(tg.name, " ", "_")+".pprof"))
	}
	time.Sleep(duration)
	measuring.Store(false)
	elapsed := time.Since(begin)
	ticksAfter := cpuTicks(pids)
	var roles natsRoles
	if tg.nats != nil {
		ticks := nodeTicks(tg.nats)
		var err error
		if natsAfter, err = natsLeaders(tg.nats); err != nil {
			stop.Store(true)
			wg.Wait()
			return result{}, err
		}
		natsAfter.ticks = ticks
		roles = rolesBetween(tg.nats.Names(), natsBefore, natsAfter, metrics.Load(), ticksAfter-ticksBefore)
	}
	stop.Store(true)
	wg.Wait()
	var peak int64
	for _, cmd := range procs {
		peak = max(peak, peakRSS(cmd.Process.Pid))
	}

	return result{
		target: tg.name, requests: requests.Load(), metrics: metrics.Load(), refused: refused,
		errors: errCount.Load(), elapsed: elapsed, lat: lats, peakRSS: peak, cpuTicks: ticksAfter - ticksBefore,
		roles: roles,
	}, nil
}

func report(rs []result, perRound [][]float64, baseIdx, agents, batch, rounds int) {
	fmt.Printf("\n%d agents on loopback, %d metrics per request, %d rounds (totals over rounds)\n", agents, batch, rounds)
	fmt.Printf("%-28s %10s %12s %10s %10s %10s %10s %s\n", "server", "req/s", "metrics/s", "p50", "p99", "peak RSS", "CPU us/m", "refused/errors")
	rate := func(r result, n int64) float64 { return float64(n) / r.elapsed.Seconds() }
	cpuPerMetric := func(r result) float64 { return float64(r.cpuTicks) * 1e4 / float64(max(r.metrics, 1)) } // ticks are 10 ms
	for _, r := range rs {
		slices.Sort(r.lat)
		fmt.Printf("%-28s %10.0f %12.0f %10s %10s %8.1fMB %10.2f %s/%d\n", r.target,
			rate(r, r.requests), rate(r, r.metrics),
			pct(r.lat, 0.50).Round(100*time.Microsecond), pct(r.lat, 0.99).Round(100*time.Microsecond),
			float64(r.peakRSS)/1024, cpuPerMetric(r), statusCounts(r.refused), r.errors)
	}
	for _, r := range rs {
		reportRoles(r.target, r.roles)
	}
	base := rs[baseIdx]
	for i, r := range rs {
		if i == baseIdx {
			continue
		}
		ratio := func(x, y float64) string {
			if y == 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.2fx", x/y)
		}
		fmt.Printf("%-28s %10s %12s %10s %10s %10s %10s   per round: %s\n", "ratio "+r.target+" / "+base.target,
			ratio(rate(r, r.requests), rate(base, base.requests)), ratio(rate(r, r.metrics), rate(base, base.metrics)),
			ratio(float64(pct(r.lat, 0.5)), float64(pct(base.lat, 0.5))), ratio(float64(pct(r.lat, 0.99)), float64(pct(base.lat, 0.99))),
			ratio(float64(r.peakRSS), float64(base.peakRSS)), ratio(cpuPerMetric(r), cpuPerMetric(base)), roundRatios(perRound[i], perRound[baseIdx]))
	}
}

func roundRatios(a, b []float64) string {
	parts := make([]string, 0, len(a))
	for i := range a {
		parts = append(parts, fmt.Sprintf("%.2fx", a[i]/max(b[i], 1)))
	}
	return strings.Join(parts, " ")
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// scramble spreads i over the bits of a pseudonym, so the payload
// compresses like real ones.
func scramble(i uint64) uint64 {
	return (i * 0x9e3779b97f4a7c15) >> (64 - 8*telemetry.PseudonymBytes)
}

// payload is one agent batch of kube_telemetry-shaped metrics the data
// dictionary allows at standard: per-node series, as a large cluster sends.
func payload(seed, n int) []byte {
	node := func(i int) string { return nodebatch.Pseudonym(scramble(uint64(seed*n + i))) }
	return nodebatch.Lines(nodebatch.Pseudonym(scramble(uint64(seed))), node, seed, n)
}

func saveProfile(addr string, d time.Duration, path string) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-listener: profile:", err)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench-listener: profile:", err)
	}
}

func gzipBytes(data []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(data) //nolint:errcheck // bytes.Buffer
	w.Close()
	return buf.Bytes()
}

// freePort is a free loopback port; the tool cannot run without one.
func freePort() int {
	port, err := loopback.FreePort()
	check(err)
	return port
}

// peakRSS is the process's high-water resident set (VmHWM) in KiB.
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	return 0
}

// cpuTicks is user+system CPU of the processes in clock ticks (1/100 s).
func cpuTicks(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		total += utime + stime
	}
	return total
}

func check(err error) {
	if err != nil {
		runCleanups()
		fmt.Fprintln(os.Stderr, "bench-listener:", err)
		os.Exit(1)
	}
}

// listenerConf is the listener's configuration for one acknowledge mode.
func listenerConf(batch, port int, acknowledge, dedupFile string) string {
	return fmt.Sprintf(`
[agent]
  interval = "10s"
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = %d
  metric_buffer_limit = 200000
  omit_hostname = true
[[inputs.vmware_telemetry_listener]]
  service_address = "127.0.0.1:%d"
  allow_anonymous = true
  acknowledge = %q
  max_undelivered_batches = 256
  ## Throughput, not memory, is measured here (hostile-listener does that).
  max_undelivered_bytes = "512MiB"
  dedup_file = %q
[[outputs.discard]]
`, batch, port, acknowledge, dedupFile)
}

// statusDuplicate counts 200 answers marked duplicate with the refusals:
// a batch answered so was not stored by the run.
const statusDuplicate = 0

// statusCounts prints refusals as "503x4 429x1" (duplicates as "dupx3"),
// or "0" when there were none.
func statusCounts(m map[int]int64) string {
	if len(m) == 0 {
		return "0"
	}
	codes := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		if c == statusDuplicate {
			parts = append(parts, fmt.Sprintf("dupx%d", m[c]))
			continue
		}
		parts = append(parts, fmt.Sprintf("%dx%d", c, m[c]))
	}
	return strings.Join(parts, " ")
}
