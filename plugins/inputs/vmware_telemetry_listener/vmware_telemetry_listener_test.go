package vmware_telemetry_listener

import (
	"bytes"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

func tokens(values ...string) []config.Secret {
	out := make([]config.Secret, 0, len(values))
	for _, v := range values {
		out = append(out, config.NewSecret([]byte(v)))
	}
	return out
}

func configDuration(d time.Duration) config.Duration { return config.Duration(d) }

func TestSampleConfigParses(t *testing.T) {
	c := config.NewConfig()
	require.NoError(t, c.LoadConfigData([]byte(sampleConfig), config.EmptySourcePath))
	require.Len(t, c.Inputs, 1)
	l := c.Inputs[0].Input.(*Listener)
	require.Equal(t, ":8443", l.ServiceAddress)
	require.Equal(t, ackDelivered, l.Acknowledge)
}

func TestInitRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name      string
		configure func(*Listener)
		want      string
	}{
		{"acknowledge", func(l *Listener) { l.Acknowledge = "sometimes" }, `acknowledge "sometimes"`},
		{"path", func(l *Listener) { l.Path = "ph/api" }, `path "ph/api" must start with '/'`},
		{"events path", func(l *Listener) { l.EventsPath = l.Path }, "events_path"},
		{"decompressed below body", func(l *Listener) { l.MaxDecompressedSize = l.MaxBodySize - 1 }, "max_decompressed_size"},
		{"line size", func(l *Listener) { l.MaxLineSize = 0 }, "max_line_size"},
		{"undelivered", func(l *Listener) { l.MaxUndeliveredBatches = 0 }, "max_undelivered_batches"},
		{"batch metrics", func(l *Listener) { l.MaxBatchMetrics = 0 }, "max_batch_metrics 0 must be at least 1"},
		{"connections", func(l *Listener) { l.MaxConnections = 0 }, "max_connections 0 must be at least 1"},
		{"body buffer below body", func(l *Listener) { l.MaxBodyBuffer = l.MaxBodySize - 1 }, "max_body_buffer"},
		{"undelivered bytes", func(l *Listener) { l.MaxUndeliveredBytes = 100 }, "max_undelivered_bytes 100 must be at least"},
		{"retry after", func(l *Listener) { l.RetryAfter = configDuration(time.Millisecond) }, "retry_after"},
		{"dedup entries", func(l *Listener) { l.DedupMaxEntries = 0 }, "dedup_max_entries"},
		{"tls", func(l *Listener) { l.TLSCert, l.TLSKey = "/nonexistent.pem", "/nonexistent.key" }, "tls options"},
		{"dictionary", func(l *Listener) { l.DictionaryFile = "/nonexistent/dictionary.toml" }, "dictionary"},

		{"no tokens", func(l *Listener) { l.Tokens = nil }, "tokens is empty, so any client could post batches; set tokens"},
		{"empty token", func(l *Listener) { l.Tokens = tokens(testToken, "") }, "tokens[1] is empty"},
		{"blank token", func(l *Listener) { l.Tokens = tokens(" \t\n") }, "tokens[0] is empty"},
		{"short token", func(l *Listener) { l.Tokens = tokens("s3cret") }, "tokens[0] is shorter than 16 characters"},
		{"unexpanded token", func(l *Listener) { l.Tokens = tokens("${TELEMETRY_TOKEN}") },
			`tokens[0] holds an unexpanded "${TELEMETRY_TOKEN}"; set that environment variable`},
		{"unexpanded inside a token", func(l *Listener) { l.Tokens = tokens(testToken, "prefix-${TOKEN_SUFFIX}") },
			`tokens[1] holds an unexpanded "${TOKEN_SUFFIX}"`},
		{"unexpanded events token", func(l *Listener) { l.EventsTokens = tokens("${TELEMETRY_EVENTS_TOKEN}") },
			`events_tokens[0] holds an unexpanded "${TELEMETRY_EVENTS_TOKEN}"`},
		{"short events token", func(l *Listener) { l.EventsTokens = tokens("events") }, "events_tokens[0] is shorter"},
		{"no events tokens", func(l *Listener) { l.EventsTokens = nil },
			`events_tokens is empty, so any client could post events (the agents' tokens are not accepted there); set events_tokens, or events_path = ""`},
		{"tokens over plain http", func(l *Listener) { l.AllowTokensOverHTTP = false },
			"tokens would travel in clear over plain HTTP: set tls_cert and tls_key, or allow_tokens_over_http = true"},
		{"events tokens over plain http", func(l *Listener) { l.AllowTokensOverHTTP, l.AllowAnonymous, l.Tokens = false, true, nil },
			"tokens would travel in clear over plain HTTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := validListener()
			tt.configure(l)
			err := l.Init()
			require.ErrorContains(t, err, tt.want)
			// Errors name the option, never the value.
			require.NotContains(t, err.Error(), testToken)
			require.NotContains(t, err.Error(), testEventsToken)
		})
	}
}

// validListener is a configuration Init accepts; the refusal tests change
// one thing in it.
func validListener() *Listener {
	l := inputs.Inputs["vmware_telemetry_listener"]().(*Listener)
	l.Log = testutil.Logger{Quiet: true}
	l.Tokens = tokens(testToken)
	l.EventsTokens = tokens(testEventsToken)
	l.AllowTokensOverHTTP = true
	return l
}

func TestInitAccepts(t *testing.T) {
	pki := testpki.New(t)
	tests := []struct {
		name      string
		configure func(*Listener)
	}{
		{"tokens over https", func(l *Listener) {
			l.AllowTokensOverHTTP = false
			l.TLSCert, l.TLSKey = pki.CertFile, pki.KeyFile
		}},
		{"tokens over http when allowed", func(*Listener) {}},
		{"anonymous when allowed", func(l *Listener) { l.Tokens, l.EventsTokens, l.AllowAnonymous = nil, nil, true }},
		{"anonymous over plain http needs no allow_tokens_over_http", func(l *Listener) {
			l.Tokens, l.EventsTokens, l.AllowAnonymous, l.AllowTokensOverHTTP = nil, nil, true, false
		}},
		{"events off need no events tokens", func(l *Listener) { l.EventsPath, l.EventsTokens = "", nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := validListener()
			tt.configure(l)
			require.NoError(t, l.Init())
		})
	}
}

func TestStoresBatchWithProvenance(t *testing.T) {
	for _, enc := range []string{"zstd", "gzip", "identity", ""} {
		t.Run("encoding "+enc, func(t *testing.T) {
			ts := startListener(t, nil)
			fixed := time.Unix(1_800_000_000, 123)
			ts.l.now = func() time.Time { return fixed }
			body := validBatch(3)
			switch enc {
			case "zstd":
				body = zstdBytes(t, body)
			case "gzip":
				body = gzipBytes(t, body)
			}
			resp, msg := ts.do(post{body: body, encoding: enc, key: "batch-1", query: "_c=tkgi-agent&_i=a1b2c3a1b2c3a1b2c3a1b2c3a1b2c3a1"})
			require.Equal(t, http.StatusCreated, resp.StatusCode, msg)

			want := make([]telegraf.Metric, 0, 3)
			for i := 0; i < 3; i++ {
				want = append(want, metric.New("kube_telemetry_nodes",
					map[string]string{"cluster_uid": pseudonym(i), "collector": "tkgi-agent", "instance": "a1b2c3a1b2c3a1b2c3a1b2c3a1b2c3a1", "level": "standard"},
					map[string]interface{}{"total": int64(3), "ready": int64(3), "not_ready": int64(0), "receive_time": fixed.UnixNano()},
					time.Unix(0, 1_700_000_000_000_000_000+int64(i))))
			}
			testutil.RequireMetricsEqual(t, want, ts.pipe.GetTelegrafMetrics())
		})
	}
}

// Every bad input gets its status, stores nothing, and the server keeps
// serving afterwards.
func TestBadInputs(t *testing.T) {
	valid := validBatch(5)
	z := zstdBytes(t, valid)
	g := gzipBytes(t, valid)
	corrupt := func(b []byte) []byte {
		c := bytes.Clone(b)
		for i := len(c) / 3; i < len(c)*2/3; i++ {
			c[i] ^= 0x5a
		}
		return c
	}

	tests := []struct {
		name string
		req  post
		code int
		want string
	}{
		{"missing token", post{body: valid, token: "-"}, http.StatusUnauthorized, "missing bearer token"},
		{"wrong token", post{body: valid, token: "guess"}, http.StatusUnauthorized, "not accepted"},
		{"GET", post{method: http.MethodGet}, http.StatusMethodNotAllowed, "use POST"},
		{"PUT", post{method: http.MethodPut, body: valid}, http.StatusMethodNotAllowed, "use POST"},
		{"unknown path", post{path: "/ph/api/hyper/other", body: valid}, http.StatusNotFound, ""},
		{"missing collector", post{query: "_i=x", body: valid}, http.StatusBadRequest, "_c"},
		{"missing instance", post{query: "_c=x", body: valid}, http.StatusBadRequest, "_i"},
		{"bad instance", post{query: "_c=x&_i=a%20b", body: valid}, http.StatusBadRequest, "_i"},
		{"missing level", post{body: valid, level: "-"}, http.StatusBadRequest, telemetry.HeaderLevel},
		{"unknown level", post{body: valid, level: "maximal"}, http.StatusBadRequest, "maximal"},
		{"level none", post{body: valid, level: "none"}, http.StatusUnprocessableEntity, "none"},
		{"bad idempotency key", post{body: valid, key: "has space"}, http.StatusBadRequest, telemetry.HeaderIdempotencyKey},
		{"missing content type", post{body: valid, ctype: "-"}, http.StatusUnsupportedMediaType, "Content-Type"},
		{"json content type", post{body: valid, ctype: "application/json"}, http.StatusUnsupportedMediaType, "application/json"},
		{"latin1 charset", post{body: valid, ctype: "text/plain; charset=iso-8859-1"}, http.StatusUnsupportedMediaType, "charset"},
		{"unknown encoding", post{body: valid, encoding: "br"}, http.StatusUnsupportedMediaType, "br"},
		{"truncated zstd", post{body: z[:len(z)/2], encoding: "zstd"}, http.StatusBadRequest, ""},
		{"corrupt zstd", post{body: corrupt(z), encoding: "zstd"}, http.StatusBadRequest, ""},
		{"not zstd", post{body: valid, encoding: "zstd"}, http.StatusBadRequest, ""},
		{"truncated gzip", post{body: g[:len(g)/2], encoding: "gzip"}, http.StatusBadRequest, ""},
		{"corrupt gzip", post{body: corrupt(g), encoding: "gzip"}, http.StatusBadRequest, ""},
		{"zstd labelled gzip", post{body: z, encoding: "gzip"}, http.StatusBadRequest, ""},
		{"malformed line protocol", post{body: []byte("kube_telemetry_nodes,cluster_uid=c total=\n")}, http.StatusBadRequest, ""},
		{"invalid utf-8", post{body: []byte("kube_telemetry_nodes,cluster_uid=c\xff\xfe total=1i\n")}, http.StatusBadRequest, "UTF-8"},
		{"empty body", post{body: nil}, http.StatusBadRequest, "no metrics"},
		{"oversized line", post{body: []byte("kube_telemetry_nodes,cluster_uid=" + strings.Repeat("a", 70_000) + " total=1i\n")},
			http.StatusBadRequest, "line 1 longer than 65536 bytes"},
		{"body over max_body_size", post{body: bytes.Repeat([]byte("x"), 5<<20)}, http.StatusRequestEntityTooLarge, "max_body_size"},
		{"chunked body over max_body_size", post{body: bytes.Repeat([]byte("x"), 5<<20), chunked: true},
			http.StatusRequestEntityTooLarge, "max_body_size"},
		{"measurement not in dictionary", post{body: []byte("secret_inventory,host=db01 users=5i\n")}, http.StatusUnprocessableEntity, "secret_inventory"},
		{"identity tag at standard", post{body: []byte("kube_telemetry_nodes,cluster_uid=" + pseudonym(1) + ",customer_number=C-42 total=1i\n")},
			http.StatusUnprocessableEntity, `tag "customer_number"`},
		{"raw value where a pseudonym belongs", post{body: []byte("kube_telemetry_node,node=worker-01.corp.example ready=true\n")},
			http.StatusUnprocessableEntity, `tag "node": value is not a pseudonym`},
		{"one bad metric refuses the batch", post{body: append(validBatch(3), []byte("kube_telemetry_nodes,cluster_uid="+pseudonym(1)+",hostname=db01 total=1i\n")...)},
			http.StatusUnprocessableEntity, `tag "hostname"`},
		{"host tag is never sent", post{body: []byte("kube_telemetry_nodes,host=agent-pod-1 total=1i\n")},
			http.StatusUnprocessableEntity, `tag "host"`},
		{"events: json content type required", post{path: defaultEventsPath, body: []byte(`{"type":"a"}`), ctype: telemetry.ContentType},
			http.StatusUnsupportedMediaType, "application/json"},
		{"events: bad document", post{path: defaultEventsPath, body: []byte(`{"type":"a","extra":1}`)}, http.StatusBadRequest, "extra"},
	}
	ts := startListener(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ts.pipe.GetTelegrafMetrics())
			resp, body := ts.do(tt.req)
			require.Equal(t, tt.code, resp.StatusCode, body)
			require.Contains(t, body, tt.want)
			require.Len(t, ts.pipe.GetTelegrafMetrics(), before, "nothing stored")
			ts.requireServing()
		})
	}
}

func TestDecompressionBombBoundedMemory(t *testing.T) {
	// 1 GiB of zeros; under -short 64 MiB, still twice
	// max_decompressed_size: the decoder reads no further than the limit
	// either way.
	bombSize := 1 << 30
	if testing.Short() {
		bombSize = 64 << 20
	}
	zeros := make([]byte, 1<<20)

	// Compressed streaming, so the test itself never holds a gigabyte.
	var zb bytes.Buffer
	zw, err := zstdWriter(&zb)
	require.NoError(t, err)
	var gb bytes.Buffer
	gw := gzipWriter(&gb)
	for written := 0; written < bombSize; written += len(zeros) {
		_, err := zw.Write(zeros)
		require.NoError(t, err)
		_, err = gw.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, gw.Close())
	t.Logf("%d MiB of zeros: zstd %d bytes, gzip %d bytes", bombSize>>20, zb.Len(), gb.Len())

	ts := startListener(t, nil)
	for _, tc := range []struct {
		encoding string
		body     []byte
	}{{"zstd", zb.Bytes()}, {"gzip", gb.Bytes()}} {
		t.Run(tc.encoding, func(t *testing.T) {
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			peak := samplePeakHeap(func() {
				resp, body := ts.do(post{body: tc.body, encoding: tc.encoding})
				require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, body)
				require.Contains(t, body, "max_decompressed_size")
			})
			growth := int64(peak) - int64(before.HeapAlloc)
			t.Logf("heap growth while refusing a %s bomb: %.1f MiB (limit %d MiB)", tc.encoding, float64(growth)/(1<<20), int64(ts.l.MaxDecompressedSize)>>20)
			// The stream decoder never holds the decompressed body: a few
			// MiB of decoder state, whatever the limit, far below 1 GiB.
			require.Less(t, growth, int64(32<<20))
			ts.requireServing()
		})
	}
}

// samplePeakHeap runs f while sampling HeapAlloc every millisecond.
func samplePeakHeap(f func()) uint64 {
	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	<-done
	return peak
}

func TestReplayedBatchStoredOnce(t *testing.T) {
	ts := startListener(t, nil)
	body := zstdBytes(t, validBatch(4))

	resp, msg := ts.do(post{body: body, encoding: "zstd", key: "b-1"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	require.Empty(t, resp.Header.Get(telemetry.HeaderDuplicate))

	for i := 0; i < 3; i++ {
		resp, msg = ts.do(post{body: body, encoding: "zstd", key: "b-1"})
		require.Equal(t, http.StatusOK, resp.StatusCode, msg)
		require.Equal(t, "true", resp.Header.Get(telemetry.HeaderDuplicate))
	}
	require.Equal(t, 4, ts.pipe.stored("kube_telemetry_nodes"))

	// The key is scoped by instance: another agent's batch with the same
	// key is its own.
	resp, msg = ts.do(post{body: body, encoding: "zstd", key: "b-1", query: "_c=tkgi-agent&_i=" + strings.Repeat("2", 32)})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	require.Equal(t, 8, ts.pipe.stored("kube_telemetry_nodes"))
	require.Equal(t, int64(3), ts.l.stats.duplicates.Get())
}

func TestConcurrentRetriesWhileInFlightStoredOnce(t *testing.T) {
	// Every request reads the clock once, when its headers are parsed,
	// just before it claims the key or waits for it.
	var arrived atomic.Int32
	ts := startListener(t, func(l *Listener) {
		l.now = func() time.Time { arrived.Add(1); return time.Now() }
	})
	arrived.Store(0) // Start read it too
	ts.pipe.hold()   // the first attempt waits for the outputs
	body := zstdBytes(t, validBatch(2))

	codes := make(chan int, 10)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := ts.do(post{body: body, encoding: "zstd", key: "same"})
			codes <- resp.StatusCode
		}()
	}
	// All ten are in: one holds the key, nine wait for it.
	require.Eventually(t, func() bool { return ts.l.tracker.undelivered() == 1 && arrived.Load() == 10 }, 5*time.Second, 5*time.Millisecond)
	ts.pipe.release()
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusOK: 9}, count)
	require.Equal(t, 2, ts.pipe.stored("kube_telemetry_nodes"))
}

func TestBackpressure(t *testing.T) {
	ts := startListener(t, func(l *Listener) {
		l.MaxUndeliveredBatches = 2
		l.RetryAfter = configDuration(7 * time.Second)
	})
	ts.pipe.hold()
	body := zstdBytes(t, validBatch(1))

	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, msg := ts.do(post{body: body, encoding: "zstd", key: "slot-" + strconv.Itoa(i)})
			require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
		}(i)
	}
	require.Eventually(t, func() bool { return ts.l.tracker.undelivered() == 2 }, 5*time.Second, 5*time.Millisecond)

	resp, msg := ts.do(post{body: body, encoding: "zstd", key: "third"})
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, msg)
	require.Equal(t, "7", resp.Header.Get("Retry-After"))

	ts.pipe.release()
	wg.Wait()
	// The refused batch's key was not kept: its retry is stored.
	resp, msg = ts.do(post{body: body, encoding: "zstd", key: "third"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	require.Equal(t, 3, ts.pipe.stored("kube_telemetry_nodes"))
}

func TestAckTimeoutThenRetryIsDuplicate(t *testing.T) {
	ts := startListener(t, func(l *Listener) { l.AckTimeout = configDuration(200 * time.Millisecond) })
	ts.pipe.hold()
	body := zstdBytes(t, validBatch(3))

	resp, msg := ts.do(post{body: body, encoding: "zstd", key: "slow"})
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, msg)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	// The batch is still in the pipeline; a retry now waits on it too.
	resp, msg = ts.do(post{body: body, encoding: "zstd", key: "slow"})
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, msg)

	ts.pipe.release()
	require.Eventually(t, func() bool { return ts.l.tracker.undelivered() == 0 }, 5*time.Second, 5*time.Millisecond)
	resp, msg = ts.do(post{body: body, encoding: "zstd", key: "slow"})
	require.Equal(t, http.StatusOK, resp.StatusCode, msg)
	require.Equal(t, 3, ts.pipe.stored("kube_telemetry_nodes"))
}

func TestDroppedByOutputsIsRetried(t *testing.T) {
	ts := startListener(t, nil)
	ts.pipe.hold()
	body := zstdBytes(t, validBatch(2))

	done := make(chan int)
	go func() {
		resp, _ := ts.do(post{body: body, encoding: "zstd", key: "dropped"})
		done <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return ts.l.tracker.undelivered() == 1 }, 5*time.Second, 5*time.Millisecond)
	ts.pipe.drop()
	require.Equal(t, http.StatusServiceUnavailable, <-done)

	// Not remembered: the retry is stored and acknowledged.
	resp, msg := ts.do(post{body: body, encoding: "zstd", key: "dropped"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
}

func TestAcknowledgeAccepted(t *testing.T) {
	ts := startListener(t, func(l *Listener) { l.Acknowledge = ackAccepted })
	ts.pipe.hold() // the outputs have not written anything yet
	body := zstdBytes(t, validBatch(2))
	resp, msg := ts.do(post{body: body, encoding: "zstd", key: "k"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	resp, msg = ts.do(post{body: body, encoding: "zstd", key: "k"})
	require.Equal(t, http.StatusOK, resp.StatusCode, msg)
	require.Equal(t, 1, ts.l.tracker.undelivered())
	ts.pipe.release()
	require.Eventually(t, func() bool { return ts.l.tracker.undelivered() == 0 }, 5*time.Second, 5*time.Millisecond)
}

func TestDedupSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.log")
	body := zstdBytes(t, validBatch(2))

	first := startListener(t, func(l *Listener) { l.DedupFile = path })
	resp, msg := first.do(post{body: body, encoding: "zstd", key: "across-restart"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	first.l.Stop()

	second := startListener(t, func(l *Listener) { l.DedupFile = path })
	resp, msg = second.do(post{body: body, encoding: "zstd", key: "across-restart"})
	require.Equal(t, http.StatusOK, resp.StatusCode, msg)
	require.Equal(t, "true", resp.Header.Get(telemetry.HeaderDuplicate))
	require.Zero(t, second.pipe.stored("kube_telemetry_nodes"))

	resp, msg = second.do(post{body: body, encoding: "zstd", key: "new-one"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
}

// Stop answers a request waiting for its batch 503 with Retry-After at
// once, then waits for the outputs to write the batch so its key is
// recorded: the agent's retry after the restart is a duplicate.
func TestStopAnswersWaitingRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.log")
	ts := startListener(t, func(l *Listener) { l.DedupFile = path; l.AckTimeout = configDuration(time.Minute) })
	ts.pipe.hold()
	body := zstdBytes(t, validBatch(2))

	type answer struct {
		code       int
		retryAfter string
		body       string
	}
	done := make(chan answer)
	go func() {
		resp, msg := ts.do(post{body: body, encoding: "zstd", key: "in-flight"})
		done <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), msg}
	}()
	require.Eventually(t, func() bool { return ts.l.tracker.undelivered() == 1 }, 5*time.Second, 5*time.Millisecond)

	stopped := make(chan struct{})
	go func() {
		ts.l.Stop()
		close(stopped)
	}()
	// Answered while the batch is still held: well before ack_timeout.
	got := <-done
	require.Equal(t, answer{http.StatusServiceUnavailable, "5", "the server is stopping; retry later\n"}, got)
	require.Equal(t, 1, ts.l.tracker.undelivered(), "answered only once the batch left the pipeline")

	// Telegraf keeps flushing outputs while inputs stop.
	ts.pipe.release()
	<-stopped

	// Closed for new requests.
	_, err := http.Post(ts.url+ts.l.Path, telemetry.ContentType, nil)
	require.Error(t, err)

	again := startListener(t, func(l *Listener) { l.DedupFile = path })
	resp, msg := again.do(post{body: body, encoding: "zstd", key: "in-flight"})
	require.Equal(t, http.StatusOK, resp.StatusCode, msg)
	require.Equal(t, "true", resp.Header.Get(telemetry.HeaderDuplicate))
}

func TestEvents(t *testing.T) {
	ts := startListener(t, nil)
	fixed := time.Unix(1_800_000_000, 0)
	ts.l.now = func() time.Time { return fixed }
	doc := []byte(`[{"type":"cluster.create.succeeded","id":"e1","time":"2026-01-02T15:04:05Z","attributes":{"plan":"small","workers":3}},
		{"type":"cluster.delete.started","severity":"warning"}]`)

	resp, msg := ts.do(post{path: ts.l.EventsPath, body: zstdBytes(t, doc), encoding: "zstd", key: "ev-1", query: "_c=tkgi-api&_i=api-1"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	resp, msg = ts.do(post{path: ts.l.EventsPath, body: doc, key: "ev-1", query: "_c=tkgi-api&_i=api-1"})
	require.Equal(t, http.StatusOK, resp.StatusCode, msg)

	prov := func(tags map[string]string) map[string]string {
		tags["collector"], tags["instance"], tags["level"] = "tkgi-api", "api-1", "standard"
		return tags
	}
	want := []telegraf.Metric{
		metric.New("tkgi_event",
			prov(map[string]string{"event_type": "cluster.create.succeeded", "severity": "info"}),
			map[string]interface{}{"event_id": "e1", "plan": "small", "workers": int64(3), "receive_time": fixed.UnixNano()},
			time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)),
		metric.New("tkgi_event",
			prov(map[string]string{"event_type": "cluster.delete.started", "severity": "warning"}),
			map[string]interface{}{"receive_time": fixed.UnixNano()},
			fixed),
	}
	testutil.RequireMetricsEqual(t, want, ts.pipe.GetTelegrafMetrics())
}

func TestEventsCanBeTurnedOff(t *testing.T) {
	ts := startListener(t, func(l *Listener) { l.EventsPath = "" })
	resp, _ := ts.do(post{path: defaultEventsPath, body: []byte(`{"type":"a"}`), ctype: "application/json"})
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestSelfMetrics(t *testing.T) {
	ts := startListener(t, nil)
	body := zstdBytes(t, validBatch(3))
	ts.do(post{body: body, encoding: "zstd", key: "s"})
	ts.do(post{body: body, encoding: "zstd", key: "s"})
	ts.do(post{body: body, encoding: "zstd", token: "wrong"})

	s := ts.l.stats
	require.Equal(t, int64(1), s.requests[endpointBatches][http.StatusCreated].Get())
	require.Equal(t, int64(1), s.requests[endpointBatches][http.StatusOK].Get())
	require.Equal(t, int64(1), s.requests[endpointBatches][http.StatusUnauthorized].Get())
	require.Equal(t, int64(3), s.metricsStored[endpointBatches].Get())
	require.Equal(t, int64(1), s.duplicates.Get())
	require.Equal(t, int64(len(body)), s.bytesRaw.Get())
	require.Equal(t, int64(len(validBatch(3))), s.bytesDecompressed.Get())
	require.Equal(t, int64(1), s.authFailures.Get())

	require.NoError(t, ts.l.Gather(nil))
	require.Equal(t, int64(1), s.dedupEntries.Get())
}
