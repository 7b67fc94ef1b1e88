package vmware_telemetry

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

func keys(reqs []received) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.header.Get(telemetry.HeaderIdempotencyKey)
	}
	return out
}

// requireStoredOnce checks that the server stored exactly what the level
// lets through of in: every metric once, none twice.
func requireStoredOnce(t *testing.T, srv *server, in []telegraf.Metric) {
	t.Helper()
	want := expected(t, telemetry.LevelStandard, testKeyHex, nil, in)
	testutil.RequireMetricsEqual(t, want, srv.storedMetrics(), testutil.SortMetrics())
}

// requireResentOnce writes in again after one request that kept it: the
// second request carries the first one's key, and the server holds every
// metric once.
func requireResentOnce(t *testing.T, o *VMwareTelemetry, srv *server, in []telegraf.Metric) {
	t.Helper()
	require.NoError(t, o.Write(in))
	reqs := srv.reqs()
	require.Len(t, reqs, 2)
	require.Equal(t, keys(reqs)[0], keys(reqs)[1])
	requireStoredOnce(t, srv, in)
}

func TestRetryAfterHonouredWithinWrite(t *testing.T) {
	t.Parallel() // waits in real time
	srv := newServer(t, "")
	srv.refuseFirst(1, answer{status: http.StatusTooManyRequests, retryAfter: "1"})
	o, log := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withJitter(0), func(o *VMwareTelemetry) {
		o.RetryWithinWrite = config.Duration(5 * time.Second)
	})
	start(t, o)
	in := kubeTelemetryMetrics(3, gatherTime)
	require.NoError(t, o.Write(in))

	reqs := srv.reqs()
	require.Len(t, reqs, 2)
	require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), time.Second, "the retry came before Retry-After")
	require.Equal(t, keys(reqs)[0], keys(reqs)[1], "a retry carries the same Idempotency-Key")
	require.Equal(t, int64(1), o.stats.retries.Get())
	require.Len(t, log.Warnings(), 1)
	require.Contains(t, log.Warnings()[0], "Retrying batch "+keys(reqs)[0]+" in 1s")
	requireStoredOnce(t, srv, in)
}

func TestRetryAfterBeyondWriteBudget(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := newServer(t, "")
			srv.refuseFirst(1, answer{status: status, retryAfter: "120"})
			clk := newClock()
			o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withClock(clk), withJitter(0))
			start(t, o)
			in := kubeTelemetryMetrics(3, gatherTime)

			began := time.Now()
			err := o.Write(in)
			require.ErrorContains(t, err, "next attempt in 2m0s")
			require.Less(t, time.Since(began), 5*time.Second, "Write must not block for Retry-After")
			require.Len(t, srv.reqs(), 1)

			// Before Retry-After: no request at all.
			clk.Add(119 * time.Second)
			require.ErrorContains(t, o.Write(in), "backing off until")
			require.Len(t, srv.reqs(), 1)

			// After: sent, with the same key.
			clk.Add(2 * time.Second)
			requireResentOnce(t, o, srv, in)
		})
	}
}

// A server error leaves the batch in Telegraf's buffer; Telegraf calls
// Write again with the same metrics and newer ones appended. The chunk
// that failed goes out again with the same key, the new metrics after it.
func TestServerErrorRetriedWithSameKeyAndAppendedMetrics(t *testing.T) {
	srv := newServer(t, "")
	srv.refuseFirst(2, answer{status: http.StatusInternalServerError, body: "database unavailable"})
	clk := newClock()
	o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withClock(clk))
	start(t, o)
	first := kubeTelemetryMetrics(3, gatherTime)
	later := kubeTelemetryMetrics(3, gatherTime.Add(time.Minute))

	require.ErrorContains(t, o.Write(first), "500 Internal Server Error: database unavailable")
	clk.Add(time.Hour)
	require.ErrorContains(t, o.Write(append(first, later...)), "attempt 2")
	clk.Add(time.Hour)
	require.NoError(t, o.Write(append(first, later...)))

	reqs := srv.reqs()
	require.Len(t, reqs, 4)
	k := keys(reqs)
	require.Equal(t, k[0], k[1])
	require.Equal(t, k[0], k[2])
	require.NotEqual(t, k[0], k[3])
	require.Len(t, reqs[2].metrics, len(first))
	require.Len(t, reqs[3].metrics, len(later))
	requireStoredOnce(t, srv, append(first, later...))
	require.Equal(t, int64(2), o.stats.retries.Get())
}

// The server stores the batch but the answer is lost (connection cut):
// the retry carries the same key, the server answers duplicate, and the
// batch is stored once.
func TestLostAnswerStoredOnce(t *testing.T) {
	srv := newServer(t, "")
	srv.setScript(func(n int, r *received, w http.ResponseWriter) int {
		if n == 0 {
			srv.mu.Lock()
			key := r.header.Get(telemetry.HeaderIdempotencyKey)
			srv.stored[key] = r.metrics
			srv.order = append(srv.order, key)
			srv.mu.Unlock()
			conn, _, err := w.(http.Hijacker).Hijack()
			require.NoError(t, err)
			conn.Close()
			return -1
		}
		return 0
	})
	clk := newClock()
	o, log := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withClock(clk))
	start(t, o)
	in := kubeTelemetryMetrics(4, gatherTime)

	require.ErrorContains(t, o.Write(in), "posting batch")
	clk.Add(time.Hour)
	require.NoError(t, o.Write(in))

	srv.waitRecorded(2)
	reqs := srv.reqs()
	require.Len(t, reqs, 2)
	require.Equal(t, keys(reqs)[0], keys(reqs)[1])
	// The cut request may be recorded after the retry: look for the 200.
	require.ElementsMatch(t, []int{-1, http.StatusOK}, []int{reqs[0].status, reqs[1].status})
	requireStoredOnce(t, srv, in)
	require.Equal(t, int64(1), o.stats.duplicates.Get())
	var dup bool
	for _, m := range log.Messages() {
		dup = dup || strings.Contains(m.Text, "(duplicate: stored before)")
	}
	require.True(t, dup)
}

// When a later chunk fails, the chunks before it were stored; the retry
// does not send them again, only the failed one (same key) and the rest.
func TestRetrySkipsChunksAlreadyStored(t *testing.T) {
	srv := newServer(t, "")
	srv.setScript(func(n int, _ *received, w http.ResponseWriter) int {
		if n == 1 {
			return answer{status: http.StatusBadGateway}.write(w)
		}
		return 0
	})
	clk := newClock()
	o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withClock(clk), func(o *VMwareTelemetry) {
		o.MaxPayloadBytes = 1024 // a few metrics per chunk
	})
	start(t, o)
	in := kubeTelemetryMetrics(40, gatherTime)

	require.Error(t, o.Write(in))
	attempted := keys(srv.reqs())
	require.Len(t, attempted, 2)
	clk.Add(time.Hour)
	require.NoError(t, o.Write(in))

	reqs := srv.reqs()
	k := keys(reqs)
	require.Equal(t, attempted[1], k[2], "the failed chunk is retried first, with its key")
	for _, key := range k[2:] {
		require.NotEqual(t, attempted[0], key, "the stored chunk is not sent again")
	}
	requireStoredOnce(t, srv, in)
	for _, r := range reqs {
		require.LessOrEqual(t, r.bodyLen, 1024, "body over max_payload_bytes")
	}
}

// 413 splits the batch into halves until the server takes them.
func Test413Splits(t *testing.T) {
	srv := newServer(t, "")
	const maxMetrics = 7
	srv.setScript(func(_ int, r *received, w http.ResponseWriter) int {
		if len(r.metrics) > maxMetrics {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return http.StatusRequestEntityTooLarge
		}
		return 0
	})
	o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex))
	start(t, o)
	in := kubeTelemetryMetrics(30, gatherTime)
	require.NoError(t, o.Write(in))

	var tooLarge, stored int
	for _, r := range srv.reqs() {
		switch r.status {
		case http.StatusRequestEntityTooLarge:
			tooLarge++
		case http.StatusCreated:
			stored++
			require.LessOrEqual(t, len(r.metrics), maxMetrics)
		}
	}
	require.Positive(t, tooLarge)
	require.Positive(t, stored)
	require.Equal(t, int64(tooLarge), o.stats.splits.Get())
	requireStoredOnce(t, srv, in)
}

// 400 and 422: the server will never take the batch. It is dropped with
// an error naming the status and the server's reason, and counted; the
// next batch goes out normally.
func TestRejectedBatchDropped(t *testing.T) {
	srv := newServer(t, "")
	srv.refuseFirst(1, answer{status: http.StatusUnprocessableEntity, body: "measurement kube_telemetry_node refused at level standard"})
	o, log := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex))
	start(t, o)
	in := kubeTelemetryMetrics(3, gatherTime)
	require.NoError(t, o.Write(in), "a refused batch is dropped, not retried")
	require.Len(t, log.Errors(), 1)
	require.Contains(t, log.Errors()[0], "Dropping batch "+keys(srv.reqs())[0])
	require.Contains(t, log.Errors()[0], "422 Unprocessable Entity: measurement kube_telemetry_node refused at level standard")
	require.Equal(t, int64(1), o.stats.batchesRejected.Get())
	require.Equal(t, int64(len(srv.reqs()[0].metrics)), o.stats.metricsRejected.Get())

	next := kubeTelemetryMetrics(3, gatherTime.Add(time.Minute))
	require.NoError(t, o.Write(next))
	require.Len(t, srv.reqs(), 2)
	requireStoredOnce(t, srv, next)
}

// Pending chunks are Telegraf plugin state: after a restart (statefile and
// disk buffer) the retried chunk carries the same key.
func TestPendingSurvivesRestart(t *testing.T) {
	srv := newServer(t, "")
	srv.refuseFirst(1, answer{status: http.StatusServiceUnavailable})
	key := writeKey(t, testKeyHex)
	first := kubeTelemetryMetrics(3, gatherTime)
	o, _ := newOutput(t, srv.endpoint(), key)
	start(t, o)
	require.Error(t, o.Write(first))
	state := o.GetState()
	require.NoError(t, o.Close())

	// The restarted agent's buffer holds the old metrics and new ones.
	restarted, _ := newOutput(t, srv.endpoint(), key)
	require.NoError(t, restarted.Init())
	require.NoError(t, restarted.SetState(state))
	require.NoError(t, restarted.Connect())
	defer restarted.Close()
	all := append(first, kubeTelemetryMetrics(3, gatherTime.Add(time.Minute))...)
	require.NoError(t, restarted.Write(all))

	k := keys(srv.reqs())
	require.Len(t, k, 3)
	require.Equal(t, k[0], k[1])
	requireStoredOnce(t, srv, all)

	// State of another key is ignored, not misapplied.
	other, _ := newOutput(t, srv.endpoint(), "")
	require.NoError(t, other.Init())
	require.NoError(t, other.SetState(state))
	require.Empty(t, other.pending)
	require.ErrorContains(t, other.SetState("junk"), "unknown")
}

// Close interrupts a write waiting to retry.
func TestCloseInterruptsRetryWait(t *testing.T) {
	srv := newServer(t, "")
	srv.refuseFirst(-1, answer{status: http.StatusServiceUnavailable, retryAfter: "30"})
	waits := make(chan time.Duration, 1)
	o, _ := newOutput(t, srv.endpoint(), "", withRetryWaits(waits), func(o *VMwareTelemetry) { o.RetryWithinWrite = config.Duration(time.Minute) })
	start(t, o)
	done := make(chan error)
	go func() { done <- o.Write(kubeTelemetryMetrics(2, gatherTime)) }()
	receive(t, waits, "the wait for a retry")
	require.NoError(t, o.Close())
	select {
	case err := <-done:
		require.ErrorContains(t, err, "503")
	case <-time.After(5 * time.Second):
		require.FailNow(t, "Write kept waiting after Close")
	}
}
