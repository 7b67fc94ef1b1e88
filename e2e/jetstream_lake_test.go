package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/nodebatch"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The lake consumer as shipped (configs/lake-jetstream.conf, ack_wait
// shortened through TELEMETRY_LAKE_ACK_WAIT so the test does not wait the
// default 2m) stopped with SIGTERM a third of the way through a steady flow
// of batches and killed with SIGKILL two thirds of the way, started again
// each time. Every acknowledged batch reaches the lake; the stop leaves no
// batch written and unmarked. The known window (a batch written, the process killed before its
// key reached the lake bucket) can write a batch twice: after dropping
// repeated records by batch_key every batch is there exactly once, and the
// raw repeats, if any, are limited to the batches in flight at the kill
// (max_undelivered_batches). The restarted consumer's own metrics on its
// prometheus_client show it caught up.
func TestJetStreamLakeConsumerKilledMidRun(t *testing.T) {
	const (
		agentToken      = "jetstream-lake-kill-agent-token"
		agents          = 4
		batchesPerAgent = 60
		metricsPerBatch = 40
		// As configs/lake-jetstream.conf sets it.
		maxUndelivered = 16
		ackWait        = "TELEMETRY_LAKE_ACK_WAIT=10s"
	)
	j := newJetStreamFixture(t, agentToken, "jetstream-lake-kill-events-token")
	_, port := j.replica("replica")
	url := fmt.Sprintf("https://127.0.0.1:%d%s?_c=%s&_i=", port, telemetry.DefaultPath, collectorID)
	first, _ := j.lakeWith("lake", ackWait)

	client := j.client(agents)
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	var (
		acked    sync.Map // "instance/key"
		done     atomic.Int64
		stopOnce sync.Once
		stopping = make(chan struct{})
		killOnce sync.Once
		killing  = make(chan struct{})
		wg       sync.WaitGroup
	)
	failures := make(chan error, agents*batchesPerAgent)
	start := time.Now()
	for a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			instance := fmt.Sprintf("%0*x", telemetry.InstanceIDLength, 2000+a)
			clusterUID := nodebatch.Pseudonym(uint64(2000 + a))
			// A steady flow (about 25 batches/s together) rather than a
			// burst, so the kill lands while the lake is writing.
			tick := time.NewTicker(150 * time.Millisecond)
			defer tick.Stop()
			for b := range batchesPerAgent {
				<-tick.C
				key := fmt.Sprintf("agent%d-batch%d", a, b)
				node := func(i int) string { return nodebatch.Pseudonym(uint64(a*100000 + b*100 + i)) }
				body := enc.EncodeAll(nodebatch.Lines(clusterUID, node, b, metricsPerBatch), nil)
				if err := postUntilStored(client, url+instance, agentToken, key, body); err != nil {
					failures <- err
				} else {
					acked.Store(instance+"/"+key, true)
				}
				switch done.Add(1) {
				case agents * batchesPerAgent / 3:
					stopOnce.Do(func() { close(stopping) })
				case agents * batchesPerAgent * 2 / 3:
					killOnce.Do(func() { close(killing) })
				}
			}
		}()
	}

	// A third of the way: SIGTERM, as a rolling update stops it. The
	// consumer waits for the outputs' last flush and settles what they
	// held, so every batch in the lake is marked in the lake bucket and
	// none can be written again.
	<-stopping
	// On a loaded machine the consumer may still be starting: stop it
	// only once it writes.
	pollUntil(t, time.Minute, func() bool { return len(readLake(t, j.lakeFile())) > 0 },
		func() string { return "the lake consumer wrote nothing: " + tail(first.logText(), 20) })
	first.stop()
	inLake := map[string]bool{}
	for _, m := range readLake(t, j.lakeFile()) {
		inLake[m.Tags["instance"]+"/"+fmt.Sprint(m.RawFields["batch_key"])] = true
	}
	_, js := j.cluster.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bucket, err := js.KeyValue(ctx, "TKGI_TELEMETRY_LAKE")
	require.NoError(t, err)
	marked, err := bucket.Keys(ctx)
	if !errors.Is(err, jetstream.ErrNoKeysFound) {
		require.NoError(t, err)
	}
	// Whether the outputs held batches at that moment depends on the
	// flush; TestStopSettlesWhatTheOutputsHold holds some for certain.
	waited := regexp.MustCompile(`Waiting up to 10s for the outputs to write the (\d+) batches`).FindStringSubmatch(first.logText())
	held := "0"
	if waited != nil {
		held = waited[1]
	}
	t.Logf("SIGTERM to the lake consumer %s in, %d batches acknowledged: the outputs held %s; %d batches in the lake, %d marked",
		time.Since(start).Round(100*time.Millisecond), done.Load(), held, len(inLake), len(marked))
	require.Positive(t, len(inLake), "the lake was being written when the consumer stopped")
	require.Len(t, marked, len(inLake), "every batch in the lake is marked once the consumer stopped")
	require.NotContains(t, first.logText(), "not yet written")
	second, _ := j.lakeWith("lake-second", ackWait)
	written := len(readLake(t, j.lakeFile()))

	// Two thirds of the way: SIGKILL, no flush, no settling.
	<-killing
	var before int
	pollUntil(t, time.Minute, func() bool { before = len(readLake(t, j.lakeFile())); return before > written },
		func() string { return "the second lake consumer wrote nothing: " + tail(second.logText(), 20) })
	second.kill()
	t.Logf("SIGKILL to the lake consumer %s in, %d of %d batches acknowledged, %d records in the lake",
		time.Since(start).Round(100*time.Millisecond), done.Load(), agents*batchesPerAgent, before)
	restarted, metricsPort := j.lakeWith("lake-third", ackWait)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	want := map[string]bool{}
	acked.Range(func(k, _ any) bool { want[k.(string)] = true; return true })
	require.Len(t, want, agents*batchesPerAgent, "every batch answered 201 or 200")

	// records[batch][node series and time] counts each record's copies.
	var records map[string]map[string]int
	var raw int
	read := func() {
		records, raw = map[string]map[string]int{}, 0
		for _, m := range readLake(t, j.lakeFile()) {
			raw++
			key, _ := m.RawFields["batch_key"].(string)
			batch := m.Tags["instance"] + "/" + key
			if records[batch] == nil {
				records[batch] = map[string]int{}
			}
			records[batch][fmt.Sprintf("%s %s %d", m.Name, m.Tags["node"], m.Timestamp)]++
		}
	}
	pollUntil(t, 2*time.Minute, func() bool {
		read()
		for k := range want {
			if len(records[k]) < metricsPerBatch {
				return false
			}
		}
		return true
	}, func() string {
		return fmt.Sprintf("the lake holds %d of %d batches completely", complete(records, metricsPerBatch), len(want))
	})
	caughtUp := time.Since(start)

	var missing, unknown, overCopied []string
	repeated, whole, repeatedRecords := 0, 0, 0
	for k := range want {
		if n := len(records[k]); n != metricsPerBatch {
			missing = append(missing, fmt.Sprintf("%s (%d distinct records)", k, n))
		}
	}
	for k, copies := range records {
		if !want[k] {
			unknown = append(unknown, k)
			continue
		}
		twice := 0
		for record, n := range copies {
			if n > 2 {
				overCopied = append(overCopied, fmt.Sprintf("%s: %s %d times", k, record, n))
			}
			if n > 1 {
				twice++
				repeatedRecords += n - 1
			}
		}
		if twice > 0 {
			repeated++
			if twice == len(copies) {
				whole++
			}
		}
	}
	t.Logf("lake caught up %s after the start: %d batches, %d raw records for %d distinct; %d batches with repeated records (%d whole, %d partial), %d repeated records",
		caughtUp.Round(100*time.Millisecond), len(records), raw, len(want)*metricsPerBatch, repeated, whole, repeated-whole, repeatedRecords)
	require.Empty(t, missing, "acknowledged batches incomplete in the lake after dropping repeated records")
	require.Empty(t, unknown, "lake records of batches never acknowledged (or not batches)")
	require.Empty(t, overCopied, "one kill writes a record at most twice")
	require.LessOrEqual(t, repeated, maxUndelivered, "only batches in flight at the kill are written again")

	// The restarted consumer says the same on its prometheus_client
	// (inputs read every 10s): no lag, nothing waiting, batches written.
	m := waitCaughtUp(t, metricsPort, 1)
	t.Logf("restarted consumer: %v batches written, %v skipped as written before; stream holds %v messages on %v replicas in sync",
		m["internal_vmware_telemetry_stream_batches_written"], m["internal_vmware_telemetry_stream_batches_skipped"],
		m["vmware_telemetry_stream_consumer_stream_messages"], m["vmware_telemetry_stream_consumer_stream_replicas_current"])
	require.Equal(t, float64(len(want)), m["vmware_telemetry_stream_consumer_stream_messages"])
	require.Equal(t, float64(3), m["vmware_telemetry_stream_consumer_stream_replicas_current"])
	require.Contains(t, restarted.logText(), "Consuming stream")
}

// waitCaughtUp waits until the lake consumer's prometheus_client on port
// shows no lag, nothing unacknowledged and at least written batches
// written, and returns its metrics.
func waitCaughtUp(t *testing.T, port int, written int) map[string]float64 {
	t.Helper()
	var m map[string]float64
	pollUntil(t, time.Minute, func() bool {
		var err error
		m, err = scrape(port)
		_, hasState := m["vmware_telemetry_stream_consumer_pending"]
		return err == nil && hasState && m["vmware_telemetry_stream_consumer_pending"] == 0 &&
			m["vmware_telemetry_stream_consumer_ack_pending"] == 0 &&
			m["internal_vmware_telemetry_stream_batches_written"] >= float64(written)
	}, func() string { return fmt.Sprintf("lake consumer's metrics: %v", m) })
	return m
}

// complete counts the batches with at least n distinct records.
func complete(records map[string]map[string]int, n int) int {
	c := 0
	for _, r := range records {
		if len(r) >= n {
			c++
		}
	}
	return c
}

// A lake output that fails for a while: the lake consumer (the shipped
// input settings; the lake an HTTP endpoint through stock outputs.http,
// with a buffer of ten batches) keeps what the output could not write in
// the stream. While the lake answers 503 the output's buffer overflows,
// the batches it drops go back to the stream and come again (counted in
// batches_dropped_by_outputs), and once the lake answers again every
// acknowledged batch is in it: nothing is lost, repeats only of batches
// dropped and delivered again, each record once by batch_key. The
// consumer's metrics show the lag and the drops meanwhile.
func TestJetStreamLakeOutputFailsThenRecovers(t *testing.T) {
	const (
		agentToken      = "jetstream-lake-fail-agent-token"
		metricsPerBatch = 40
		before, during  = 20, 60
	)
	j := newJetStreamFixture(t, agentToken, "jetstream-lake-fail-events-token")
	_, port := j.replica("replica")
	url := fmt.Sprintf("https://127.0.0.1:%d%s?_c=%s&_i=", port, telemetry.DefaultPath, collectorID)

	var (
		failing atomic.Bool
		refused atomic.Int64
		mu      sync.Mutex
		records = map[string]map[string]int{} // batch -> record -> copies
		raw     int
	)
	lake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			refused.Add(1)
			http.Error(w, "lake unavailable", http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Metrics []lakeMetric `json:"metrics"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range body.Metrics {
			raw++
			batch := m.Tags["instance"] + "/" + fmt.Sprint(m.RawFields["batch_key"])
			if records[batch] == nil {
				records[batch] = map[string]int{}
			}
			records[batch][fmt.Sprintf("%s %s %d", m.Name, m.Tags["node"], m.Timestamp)]++
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer lake.Close()

	metricsPort := freePort(t)
	conf := fmt.Sprintf(`[agent]
  interval = "2s"
  round_interval = false
  omit_hostname = true
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = 200
  ## Ten batches: a lake down for seconds overflows it.
  metric_buffer_limit = %d

[[inputs.vmware_telemetry_stream]]
  servers = ["${TELEMETRY_NATS_SERVERS}"]
  durable = "tkgi-lake"
  max_undelivered_batches = 16

[[inputs.internal]]

[[outputs.http]]
  namedrop = ["internal_*", "vmware_telemetry_stream_consumer"]
  url = %q
  data_format = "json"
  json_timestamp_units = "1ms"

[[outputs.prometheus_client]]
  namepass = ["internal_*", "vmware_telemetry_stream_consumer"]
  listen = "127.0.0.1:%d"
  metric_version = 2
`, 10*metricsPerBatch, lake.URL, metricsPort)
	confPath := filepath.Join(j.dir, "lake-http.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))
	cmd := exec.Command(j.bin, "--config", confPath)
	cmd.Env = j.env
	consumer := j.launch("lake-http", cmd)
	waitPort(t, metricsPort)

	client := j.client(2)
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	instance := fmt.Sprintf("%0*x", telemetry.InstanceIDLength, 3000)
	post := func(from, to int) {
		for b := from; b < to; b++ {
			node := func(i int) string { return nodebatch.Pseudonym(uint64(b*100 + i)) }
			body := enc.EncodeAll(nodebatch.Lines(nodebatch.Pseudonym(3000), node, b, metricsPerBatch), nil)
			require.NoError(t, postUntilStored(client, url+instance, agentToken, fmt.Sprintf("batch%d", b), body))
		}
	}
	distinct := func() (complete int) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range records {
			if len(r) == metricsPerBatch {
				complete++
			}
		}
		return complete
	}

	post(0, before)
	pollUntil(t, time.Minute, func() bool { return distinct() == before },
		func() string { return fmt.Sprintf("%d of %d batches in the lake", distinct(), before) })

	failing.Store(true)
	post(before, before+during)
	var m map[string]float64
	pollUntil(t, time.Minute, func() bool {
		m, _ = scrape(metricsPort)
		return m["internal_vmware_telemetry_stream_batches_dropped_by_outputs"] >= 5 &&
			m["vmware_telemetry_stream_consumer_pending"] > 0
	}, func() string {
		return fmt.Sprintf("no overflow or no lag shown: %v\n%s", m, tail(consumer.logText(), 20))
	})
	failing.Store(false)
	t.Logf("the lake answered 503 to %d writes; recovered with %v batches dropped by the outputs, %v pending, %v unacknowledged",
		refused.Load(), m["internal_vmware_telemetry_stream_batches_dropped_by_outputs"],
		m["vmware_telemetry_stream_consumer_pending"], m["vmware_telemetry_stream_consumer_ack_pending"])
	require.Contains(t, consumer.logText(), "an output's buffer is full")

	pollUntil(t, 2*time.Minute, func() bool { return distinct() == before+during },
		func() string { return fmt.Sprintf("%d of %d batches in the lake", distinct(), before+during) })
	m = waitCaughtUp(t, metricsPort, before+during)

	mu.Lock()
	defer mu.Unlock()
	repeated := 0
	for batch, copies := range records {
		require.Len(t, copies, metricsPerBatch, "batch %s complete", batch)
		for _, n := range copies {
			if n > 1 {
				repeated++
				break
			}
		}
	}
	require.Len(t, records, before+during, "only the acknowledged batches")
	t.Logf("lake: %d batches, %d raw records for %d distinct, %d batches with repeated records; consumer: %v batches written, %v dropped by the outputs and delivered again; outputs: %v metrics dropped",
		len(records), raw, (before+during)*metricsPerBatch, repeated,
		m["internal_vmware_telemetry_stream_batches_written"], m["internal_vmware_telemetry_stream_batches_dropped_by_outputs"],
		m["internal_write_metrics_dropped"])
	require.Contains(t, consumer.logText(), "The outputs write again")
	require.Positive(t, m["internal_vmware_telemetry_stream_batches_dropped_by_outputs"])
}
