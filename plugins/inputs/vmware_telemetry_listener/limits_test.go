package vmware_telemetry_listener

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"
)

func TestRequestLimitsRefusedWhileDecoding(t *testing.T) {
	ts := startListener(t, func(l *Listener) {
		l.MaxBatchMetrics = 10
		l.MaxLineSize = config.Size(1 << 10)
	})
	var oneEvent = `{"type":"cluster.create.succeeded"}`
	events := func(n int, event string) []byte {
		return []byte("[" + strings.TrimSuffix(strings.Repeat(event+",", n), ",") + "]")
	}
	// A body whose tail would be refused otherwise: the answer shows that
	// decoding stopped at the limit and never reached it.
	badTail := func(b []byte) []byte { return append(b, "\nbroken line\n"...) }
	tests := []struct {
		name     string
		p        post
		wantCode int
		wantMsg  string
	}{
		{"batch at the metric cap stored", post{body: validBatch(10)}, http.StatusCreated, "stored 10 metrics"},
		{"batch over the metric cap", post{body: badTail(validBatch(11))}, http.StatusRequestEntityTooLarge,
			"more than 10 metrics in one request (max_batch_metrics); split the batch"},
		{"zstd batch over the metric cap", post{body: zstdBytes(t, badTail(validBatch(1000))), encoding: "zstd"}, http.StatusRequestEntityTooLarge,
			"max_batch_metrics"},
		{"events at the cap stored", post{path: "events", body: events(10, oneEvent), query: "_c=tkgi-api&_i=api-1"}, http.StatusCreated, "stored 10 metrics"},
		{"events over the cap", post{path: "events", body: append(events(11, oneEvent), "garbage"...), query: "_c=tkgi-api&_i=api-1"},
			http.StatusRequestEntityTooLarge, "more than 10 events in one request (max_batch_metrics)"},
		{"an event larger than max_line_size", post{path: "events", query: "_c=tkgi-api&_i=api-1",
			body: []byte(`[{"type":"a","attributes":{"s":"` + strings.Repeat("x", 2<<10) + `"}}]`)},
			http.StatusRequestEntityTooLarge, "event 0 is larger than max_line_size (1024 bytes)"},
		{"a huge array of empty objects", post{path: "events", query: "_c=tkgi-api&_i=api-1", encoding: "zstd",
			body: zstdBytes(t, events(1<<20, "{}"))}, http.StatusBadRequest, `event 0: "type" is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, msg := ts.do(tt.p)
			require.Equal(t, tt.wantCode, resp.StatusCode, msg)
			require.Contains(t, msg, tt.wantMsg)
		})
	}
	ts.requireServing()
}

func TestEventsOverDecompressedSize(t *testing.T) {
	ts := startListener(t, func(l *Listener) {
		l.MaxBodySize = config.Size(16 << 10)
		l.MaxDecompressedSize = config.Size(64 << 10)
	})
	event := `{"type":"a","attributes":{"s":"` + strings.Repeat("x", 1000) + `"}}`
	body := "[" + strings.TrimSuffix(strings.Repeat(event+",", 100), ",") + "]"
	resp, msg := ts.do(post{path: ts.l.EventsPath, query: "_c=tkgi-api&_i=api-1", encoding: "gzip", body: gzipBytes(t, []byte(body))})
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, msg)
	require.Contains(t, msg, "max_decompressed_size")
}

// The measurement: a few KB of zstd expanding to a 31 MiB array of
// empty objects took the listener past 2 GB; decoded as a stream, each
// refused at the count limit, the heap grows by a few MiB.
func TestEventArrayBombBoundedMemory(t *testing.T) {
	ts := startListener(t, nil)
	var typed bytes.Buffer
	typed.WriteByte('[')
	for i := range 1 << 20 {
		if i > 0 {
			typed.WriteByte(',')
		}
		typed.WriteString(`{"type":"a"}`)
	}
	typed.WriteByte(']')
	body := zstdBytes(t, typed.Bytes())
	t.Logf("%d MiB of events compressed to %d bytes", typed.Len()>>20, len(body))
	typed = bytes.Buffer{}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := samplePeakHeap(func() {
		resp, msg := ts.do(post{path: ts.l.EventsPath, query: "_c=tkgi-api&_i=api-1", encoding: "zstd", body: body})
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, msg)
		require.Contains(t, msg, "more than 10000 events in one request (the events endpoint's limit)")
	})
	growth := int64(peak) - int64(before.HeapAlloc)
	t.Logf("heap growth refusing the array: %.1f MiB", float64(growth)/(1<<20))
	require.Less(t, growth, int64(48<<20))
}

func TestUndeliveredBytesBudget(t *testing.T) {
	// One batch of 20 valid lines costs about 17 KB by the estimate.
	oneBatch := validBatch(20)
	ts := startListener(t, func(l *Listener) {
		l.MaxUndeliveredBytes = config.Size(admitStep + 8<<10)
		l.RetryAfter = configDuration(3 * time.Second)
	})
	ts.pipe.hold()
	first := make(chan int, 1)
	go func() {
		resp, msg := ts.do(post{body: oneBatch, key: "first"})
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("first batch: %d %s", resp.StatusCode, msg)
		}
		first <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return ts.l.tracker.undelivered() == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Positive(t, ts.l.undeliveredBytes.inUse())

	tests := []struct {
		name     string
		body     []byte
		wantCode int
		wantMsg  string
	}{
		{"budget full: come back later", oneBatch, http.StatusTooManyRequests,
			"decoded batches waiting for the outputs fill max_undelivered_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, msg := ts.do(post{body: tt.body, key: "second"})
			require.Equal(t, tt.wantCode, resp.StatusCode, msg)
			require.Contains(t, msg, tt.wantMsg)
			if tt.wantCode == http.StatusTooManyRequests {
				require.Equal(t, "3", resp.Header.Get("Retry-After"))
			}
		})
	}

	ts.pipe.release()
	require.Equal(t, http.StatusCreated, <-first)
	require.Eventually(t, func() bool { return ts.l.undeliveredBytes.inUse() == 0 }, 5*time.Second, 5*time.Millisecond)
	// Recovered: the refused batch's retry is stored.
	resp, msg := ts.do(post{body: oneBatch, key: "second"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	// A batch larger than the whole budget can never fit: split it.
	resp, msg = ts.do(post{body: validBatch(400), key: "third"})
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, msg)
	require.Contains(t, msg, "take more than max_undelivered_bytes")
	require.Eventually(t, func() bool { return ts.l.undeliveredBytes.inUse() == 0 }, 5*time.Second, 5*time.Millisecond)
}

// slowRequest sends a request's headers and the first part of a body that
// announces more, then stalls; closing it ends the request.
func slowRequest(t *testing.T, ts *testServer, contentLength int, sent []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.l.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s?_c=slow&_i=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nTelemetry-Level: standard\r\nContent-Length: %d\r\n\r\n",
		ts.l.Path, testInstance, testToken, contentLength)
	_, err = c.Write(sent)
	require.NoError(t, err)
	return c
}

func TestSlowBodiesHoldNoSlot(t *testing.T) {
	ts := startListener(t, func(l *Listener) {
		l.MaxUndeliveredBatches = 1
		l.ReadTimeout = configDuration(30 * time.Second)
	})
	// More slow senders than decoding and pipeline slots together.
	n := decodeSlots() + ts.l.MaxUndeliveredBatches + 4
	for range n {
		slowRequest(t, ts, 1<<20, []byte(validLine(1)))
	}
	require.Eventually(t, func() bool { return ts.l.bodies.inUse() > 0 }, 5*time.Second, 5*time.Millisecond)
	// Each holds the bytes it sent (one chunk), not what it announced.
	require.LessOrEqual(t, ts.l.bodies.inUse(), int64(n*bodyChunk))
	require.Zero(t, ts.l.tracker.undelivered())
	require.Empty(t, ts.l.decoding)

	start := time.Now()
	ts.requireServing()
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestBodyBufferFullThenRecovers(t *testing.T) {
	ts := startListener(t, func(l *Listener) {
		l.MaxBodySize = config.Size(96 << 10)
		l.MaxBodyBuffer = config.Size(96 << 10)
		l.RetryAfter = configDuration(2 * time.Second)
	})
	// A sender that sent 64 KiB of a 96 KiB body and stalls.
	slow := slowRequest(t, ts, 96<<10, bytes.Repeat([]byte("x"), 64<<10))
	require.Eventually(t, func() bool { return ts.l.bodies.inUse() >= 64<<10 }, 5*time.Second, 5*time.Millisecond)

	big := validBatch(600) // about 70 KB, uncompressed
	require.Greater(t, len(big), 40<<10)
	resp, msg := ts.do(post{body: big})
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, msg)
	require.Contains(t, msg, "max_body_buffer")
	require.Equal(t, "2", resp.Header.Get("Retry-After"))

	slow.Close()
	require.Eventually(t, func() bool { return ts.l.bodies.inUse() == 0 }, 5*time.Second, 5*time.Millisecond)
	resp, msg = ts.do(post{body: big})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
}

func TestLongValuesRefusedNotKept(t *testing.T) {
	ts := startListener(t, nil)
	long := strings.Repeat("k", 10<<10)
	tests := []struct {
		name     string
		p        post
		wantCode int
		wantMsg  string
	}{
		{"long idempotency key", post{body: validBatch(1), key: long}, http.StatusBadRequest, "Idempotency-Key"},
		{"long collector", post{body: validBatch(1), query: "_c=" + long + "&_i=" + testInstance}, http.StatusBadRequest, "_c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, msg := ts.do(tt.p)
			require.Equal(t, tt.wantCode, resp.StatusCode, msg)
			require.Contains(t, msg, tt.wantMsg)
			require.Less(t, len(msg), 512, "the answer does not echo the long value")
		})
	}
	// Headers beyond maxHeaderBytes are refused before the handler.
	c, err := net.Dial("tcp", ts.l.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	go fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nX-Long: %s\r\n\r\n", ts.l.Path, strings.Repeat("v", 24<<10))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	// Keys at the limit are remembered as fixed-size digests.
	for i := range 100 {
		key := fmt.Sprintf("%0128d", i)
		resp, msg := ts.do(post{body: validBatch(1), key: key})
		require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	}
	require.Equal(t, 100, ts.l.dedup.len())
	var k dedupKey
	require.Len(t, k, 16)
}

func TestInstanceMustBePseudonym(t *testing.T) {
	ts := startListener(t, nil)
	tests := []struct {
		name     string
		path     string
		instance string
		wantCode int
	}{
		{"pseudonym", "", testInstance, http.StatusCreated},
		{"name", "", "inst-1", http.StatusBadRequest},
		{"upper case hex", "", strings.ToUpper(testInstance), http.StatusBadRequest},
		{"one digit short", "", testInstance[1:], http.StatusBadRequest},
		{"one digit long", "", testInstance + "0", http.StatusBadRequest},
		{"cluster name", "", "prod-cluster-acme", http.StatusBadRequest},
		{"events: the platform API's id", "events", "api-1", http.StatusCreated},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := post{body: validBatch(1), query: "_c=c&_i=" + tt.instance, key: "k" + strconv.Itoa(i)}
			if tt.path == "events" {
				p.path, p.body = ts.l.EventsPath, []byte(`{"type":"a"}`)
			}
			resp, msg := ts.do(p)
			require.Equal(t, tt.wantCode, resp.StatusCode, msg)
			if tt.wantCode == http.StatusBadRequest {
				require.Contains(t, msg, "instance pseudonym, 32 lowercase hex digits")
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	ts := startListener(t, func(l *Listener) { l.MaxConnections = 2 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ts.l.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		held = append(held, c)
	}
	// The third connection is accepted by the kernel but not served.
	third, err := net.Dial("tcp", ts.l.Addr().String())
	require.NoError(t, err)
	defer third.Close()
	var wg sync.WaitGroup
	answered := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		if err := req.Write(third); err != nil {
			answered <- err.Error()
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(third), req)
		if err != nil {
			answered <- err.Error()
			return
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained only
		resp.Body.Close()
		answered <- resp.Status
	}()
	select {
	case s := <-answered:
		t.Fatalf("third connection served while two were open: %s", s)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close()
	select {
	case s := <-answered:
		require.Equal(t, "404 Not Found", s)
	case <-time.After(5 * time.Second):
		t.Fatal("third connection not served after one closed")
	}
	wg.Wait()
}

func TestSlowBodyTimesOut(t *testing.T) {
	ts := startListener(t, func(l *Listener) { l.ReadTimeout = configDuration(300 * time.Millisecond) })
	c := slowRequest(t, ts, 1<<10, []byte("kube_"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(msg))
	require.Contains(t, string(msg), "read_timeout")
	require.Eventually(t, func() bool { return ts.l.bodies.inUse() == 0 }, 5*time.Second, 5*time.Millisecond)
}

func TestRefusalsCutLongInput(t *testing.T) {
	ts := startListener(t, nil)
	name := strings.Repeat("m", 50<<10)
	resp, msg := ts.do(post{body: []byte(name + " f=1i\n")})
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, msg)
	require.Less(t, len(msg), maxMessage+32)
	require.Contains(t, msg, "... (cut)")
}

func TestRefusedBatchesGiveEverythingBack(t *testing.T) {
	ts := startListener(t, func(l *Listener) { l.MaxBatchMetrics = 5 })
	tests := []struct {
		name     string
		p        post
		wantCode int
	}{
		{"empty body", post{body: nil}, http.StatusBadRequest},
		{"empty event array", post{path: "events", body: []byte("[]"), query: "_c=a&_i=b"}, http.StatusBadRequest},
		{"malformed", post{body: []byte("m f=\n")}, http.StatusBadRequest},
		{"over the cap", post{body: validBatch(6)}, http.StatusRequestEntityTooLarge},
		{"refused by the dictionary", post{body: []byte("secret_inventory f=1i\n")}, http.StatusUnprocessableEntity},
		{"stored", post{body: validBatch(5)}, http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, msg := ts.do(tt.p)
			require.Equal(t, tt.wantCode, resp.StatusCode, msg)
			require.Eventually(t, func() bool {
				return ts.l.tracker.undelivered() == 0 && ts.l.undeliveredBytes.inUse() == 0 && ts.l.bodies.inUse() == 0 && len(ts.l.decoding) == 0
			}, 5*time.Second, 5*time.Millisecond, "slots and budgets given back")
		})
	}
}
