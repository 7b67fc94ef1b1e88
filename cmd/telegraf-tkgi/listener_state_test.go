package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testdisk"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

const stateTestToken = "state-test-agents-token-0123456789"

// listenerServer is the telemetry server as a daemon: the listener on a
// free port into a JSON-lines lake.
type listenerServer struct {
	*process
	url string
}

func startListenerServer(t *testing.T, dir, dedupFile, lake, flushInterval string) *listenerServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	conf := writeFile(t, dir, "server.conf", fmt.Sprintf(`
[agent]
  interval = "60s"
  flush_interval = %q
  flush_jitter = "0s"
  metric_batch_size = 1000
  omit_hostname = true
[[inputs.vmware_telemetry_listener]]
  service_address = "127.0.0.1:%d"
  tokens = [%q]
  allow_tokens_over_http = true
  events_path = ""
  acknowledge = "delivered"
  ack_timeout = "30s"
  retry_after = "2s"
  dedup_file = %q
[[outputs.file]]
  files = [%q]
  data_format = "json"
  json_timestamp_units = "1ns"
`, flushInterval, port, stateTestToken, dedupFile, lake))
	p := startProcess(t, binary, nil, "--config", conf, "--debug")
	s := &listenerServer{process: p, url: fmt.Sprintf("http://127.0.0.1:%d%s", port, telemetry.DefaultPath)}
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "the server never listened")
	return s
}

type answer struct {
	code       int
	retryAfter string
	body       string
}

// post sends batch i under key.
func (s *listenerServer) post(t *testing.T, key string, i int) answer {
	t.Helper()
	a, err := s.send(http.DefaultClient, key, i, nil)
	require.NoError(t, err)
	return a
}

// send posts batch i under key with client; trace, if set, sees the
// request go out.
func (s *listenerServer) send(client *http.Client, key string, i int, trace *httptrace.ClientTrace) (answer, error) {
	line := fmt.Sprintf("kube_telemetry_nodes,cluster_uid=%0*x total=3i,ready=3i,not_ready=0i %d\n",
		telemetry.PseudonymLength, i, 1_700_000_000_000_000_000+int64(i))
	req, err := http.NewRequest(http.MethodPost, s.url+"?_c=state-test&_i=0123456789abcdef0123456789abcdef", strings.NewReader(line))
	if err != nil {
		return answer{}, err
	}
	if trace != nil {
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	}
	req.Header.Set("Authorization", "Bearer "+stateTestToken)
	req.Header.Set("Content-Type", telemetry.ContentType)
	req.Header.Set(telemetry.HeaderLevel, "standard")
	req.Header.Set(telemetry.HeaderIdempotencyKey, key)
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(body)}, err
}

// lakeTimes counts the lake's metrics by timestamp: one per stored batch.
func lakeTimes(t *testing.T, lake string) map[int64]int {
	t.Helper()
	data, err := os.ReadFile(lake)
	require.NoError(t, err)
	seen := make(map[int64]int)
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var m struct {
			Timestamp int64 `json:"timestamp"`
		}
		require.NoError(t, json.Unmarshal(line, &m))
		seen[m.Timestamp]++
	}
	return seen
}

// The built server with its de-duplication log on a real tmpfs: once the
// disk is full, a batch is answered 503 with Retry-After and the log says
// what to do; once space is freed the retry is stored; a request waiting at
// SIGTERM is answered 503 with Retry-After and its batch still recorded;
// after each restart every stored batch is a duplicate; the lake holds
// each batch once.
func TestListenerStateSurvivesFullDiskAndShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a real tmpfs and restarts the server: an integration test, run without -short (make test)")
	}
	disk := testdisk.Mount(t, 256<<10)
	if disk == "" {
		return // passed in a user namespace
	}
	dir := t.TempDir()
	dedupFile := filepath.Join(disk, "dedup.log")
	lake := filepath.Join(dir, "lake.jsonl")

	// Leave one page free: the log's first page, which holds 170 records.
	filler := testdisk.Fill(t, disk)
	info, err := os.Stat(filler)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(filler, info.Size()-4096))

	server := startListenerServer(t, dir, dedupFile, lake, "100ms")
	var stored []string
	refused := -1
	for i := 0; i < 400 && refused < 0; i++ {
		a := server.post(t, fmt.Sprintf("k-%d", i), i)
		switch a.code {
		case http.StatusCreated:
			stored = append(stored, fmt.Sprintf("k-%d", i))
		case http.StatusServiceUnavailable:
			require.Equal(t, "2", a.retryAfter)
			require.Contains(t, a.body, "cannot record batch keys right now")
			refused = i
		default:
			t.Fatalf("k-%d: %+v; stderr:\n%s", i, a, server.logText())
		}
	}
	require.GreaterOrEqual(t, refused, 100, "refused too early; stderr:\n%s", server.logText())
	t.Logf("%d batches stored in the last free page, batch %d refused", len(stored), refused)
	// The log line reaches stderr through a pipe, maybe after the answer.
	require.Eventually(t, func() bool {
		return strings.Contains(server.logText(), "cannot be written: reserving room in the de-duplication log: no space left on device")
	}, 10*time.Second, 50*time.Millisecond, "no log line for the operator")
	require.Contains(t, server.logText(), "free space on its filesystem, or point dedup_file elsewhere and restart")

	require.NoError(t, os.Remove(filler))
	key := fmt.Sprintf("k-%d", refused)
	require.Equal(t, http.StatusCreated, server.post(t, key, refused).code)
	stored = append(stored, key)
	require.Equal(t, http.StatusOK, server.post(t, key, refused).code)
	code, _ := server.stopBy(t, syscall.SIGTERM)
	require.Equal(t, 0, code)

	// Restart on the same log; the outputs flush every 5 s, so a new batch
	// waits for its flush while SIGTERM arrives.
	server = startListenerServer(t, dir, dedupFile, lake, "5s")
	for i, key := range stored {
		require.Equal(t, http.StatusOK, server.post(t, key, i).code, "%s was forgotten", key)
	}
	// A connection of its own: one kept idle since an earlier request is
	// closed by the shutdown if the request has not been read yet, and
	// the agent then retries after a transport error instead.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	sent := make(chan struct{})
	answered := make(chan answer, 1)
	failed := make(chan error, 1)
	go func() {
		a, err := server.send(fresh, "at-shutdown", 1000, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { close(sent) },
		})
		if err != nil {
			failed <- err
			return
		}
		answered <- a
	}()
	select {
	case <-sent:
	case err := <-failed:
		t.Fatalf("posting before shutdown: %v", err)
	}
	// SIGTERM once the batch waits in the pipeline: a request not yet
	// accepted when the listener closes is the agent's to retry.
	require.Eventually(t, func() bool {
		return strings.Contains(server.logText(), `Batch "at-shutdown" from`)
	}, 30*time.Second, 10*time.Millisecond, "the request never reached the pipeline")
	require.NoError(t, server.cmd.Process.Signal(syscall.SIGTERM))
	var a answer
	select {
	case a = <-answered:
	case err := <-failed:
		t.Fatalf("the request waiting at shutdown got no answer: %v; stderr:\n%s", err, server.logText())
	}
	require.Equal(t, answer{http.StatusServiceUnavailable, "2", "the server is stopping; retry later\n"}, a,
		"stderr:\n%s", server.logText())
	require.Equal(t, 0, server.waitExit(t, 30*time.Second).ExitCode())
	require.NotContains(t, server.logText(), "not yet written by the outputs")

	// The batch was written by the flush during Stop and its key recorded.
	server = startListenerServer(t, dir, dedupFile, lake, "100ms")
	require.Equal(t, http.StatusOK, server.post(t, "at-shutdown", 1000).code)
	code, _ = server.stopBy(t, syscall.SIGTERM)
	require.Equal(t, 0, code)

	times := lakeTimes(t, lake)
	require.Len(t, times, len(stored)+1)
	for ts, n := range times {
		require.Equal(t, 1, n, "batch with timestamp %d stored %d times", ts, n)
	}
}
