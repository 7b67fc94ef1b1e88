package e2e_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/nodebatch"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The scaled-out server as shipped (configs/server-jetstream.conf three
// times, configs/lake-jetstream.conf once) on a real three-node NATS
// cluster. Simulated agents spread their tries over the replicas, retry on
// another replica, and sometimes send a try to two replicas at once; one
// replica and one NATS server are killed mid-run. Every batch answered
// 201 or 200 is in the lake exactly once, and nothing else is.
func TestJetStreamReplicasStoreEachBatchOnce(t *testing.T) {
	const agentToken = "jetstream-e2e-agent-token"
	j := newJetStreamFixture(t, agentToken, "jetstream-e2e-events-token")
	var replicas []*process
	var urls []string
	for i := range 3 {
		p, port := j.replica(fmt.Sprintf("replica-%d", i))
		replicas = append(replicas, p)
		urls = append(urls, fmt.Sprintf("https://127.0.0.1:%d%s?_c=%s&_i=", port, telemetry.DefaultPath, collectorID))
	}
	// Batches whose acknowledgement is lost with the killed NATS server
	// come again after ack_wait: 20s rather than the shipped 2m keeps the
	// test short.
	consumer, _ := j.lakeWith("lake", "TELEMETRY_LAKE_ACK_WAIT=20s")

	const (
		agents          = 6
		batchesPerAgent = 40
		metricsPerBatch = 40
	)
	client := j.client(2)
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)

	var (
		acked    sync.Map // "instance/key" -> status
		answers  sync.Map // status -> *atomic.Int64
		done     atomic.Int64
		killOnce sync.Once
		killed   = make(chan struct{})
	)
	count := func(status int) {
		v, _ := answers.LoadOrStore(status, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	post := func(url, key string, body []byte) int {
		status := postBatch(client, url, agentToken, key, body)
		count(status)
		return status
	}

	var wg sync.WaitGroup
	failures := make(chan string, agents*batchesPerAgent)
	for a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(a), 7))
			instance := fmt.Sprintf("%0*x", telemetry.InstanceIDLength, 1000+a)
			clusterUID := nodebatch.Pseudonym(uint64(1000 + a))
			for b := range batchesPerAgent {
				key := fmt.Sprintf("agent%d-batch%d", a, b)
				node := func(i int) string { return nodebatch.Pseudonym(uint64(a*100000 + b*100 + i)) }
				body := enc.EncodeAll(nodebatch.Lines(clusterUID, node, b, metricsPerBatch), nil)
				replica := rng.IntN(len(urls))
				deadline := time.Now().Add(3 * time.Minute)
				for try := 0; ; try++ {
					var status int
					if try == 0 && b%5 == 0 {
						// An agent whose first try timed out while the
						// server still stores it: two tries at once on two
						// replicas.
						var second atomic.Int64
						var pair sync.WaitGroup
						pair.Add(1)
						go func() {
							defer pair.Done()
							second.Store(int64(post(urls[(replica+1)%len(urls)]+instance, key, body)))
						}()
						status = post(urls[replica]+instance, key, body)
						pair.Wait()
						if s := int(second.Load()); s/100 == 2 && status/100 != 2 {
							status = s
						}
					} else {
						status = post(urls[replica]+instance, key, body)
					}
					if status == http.StatusCreated || status == http.StatusOK {
						acked.Store(instance+"/"+key, status)
						break
					}
					if status == http.StatusBadRequest || status == http.StatusUnprocessableEntity || status == http.StatusUnauthorized {
						failures <- fmt.Sprintf("%s: refused %d", key, status)
						break
					}
					if time.Now().After(deadline) {
						failures <- fmt.Sprintf("%s: no 2xx within 3m (last %d)", key, status)
						break
					}
					// Retry on another replica; the simulated agents wait
					// less than the server's Retry-After to keep the test
					// short.
					replica = (replica + 1) % len(urls)
					time.Sleep(100 * time.Millisecond)
				}
				if done.Add(1) == agents*batchesPerAgent/3 {
					killOnce.Do(func() { close(killed) })
				}
			}
		}()
	}

	<-killed
	replicas[0].kill()
	j.cluster.Kill(1)
	t.Log("killed replica-0 and NATS server n2")
	wg.Wait()
	close(failures)
	for msg := range failures {
		t.Error(msg)
	}

	want := map[string]bool{}
	acked.Range(func(k, _ any) bool { want[k.(string)] = true; return true })
	require.Len(t, want, agents*batchesPerAgent, "every batch answered 201 or 200")

	// The lake catches up: every acknowledged batch, each metric once.
	lake := j.lakeFile()
	var perBatch map[string]int
	deadline := time.Now().Add(3 * time.Minute)
	for {
		perBatch = map[string]int{}
		for _, m := range readLake(t, lake) {
			key, _ := m.RawFields["batch_key"].(string)
			perBatch[m.Tags["instance"]+"/"+key]++
		}
		complete := true
		for k := range want {
			if perBatch[k] < metricsPerBatch {
				complete = false
				break
			}
		}
		if complete || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var missing, doubled, unknown []string
	for k := range want {
		switch n := perBatch[k]; {
		case n < metricsPerBatch:
			missing = append(missing, fmt.Sprintf("%s (%d metrics)", k, n))
		case n > metricsPerBatch:
			doubled = append(doubled, fmt.Sprintf("%s (%d metrics)", k, n))
		}
	}
	for k := range perBatch {
		if !want[k] {
			unknown = append(unknown, k)
		}
	}
	var summary []string
	answers.Range(func(k, v any) bool {
		summary = append(summary, strconv.Itoa(k.(int))+":"+strconv.FormatInt(v.(*atomic.Int64).Load(), 10))
		return true
	})
	t.Logf("answers by status (0: no answer): %s; lake holds %d batches", strings.Join(summary, " "), len(perBatch))
	require.Empty(t, missing, "acknowledged batches missing from the lake")
	require.Empty(t, doubled, "batches in the lake more than once")
	require.Empty(t, unknown, "lake records of batches never acknowledged")
	require.Contains(t, consumer.logText(), "Consuming stream")
}
