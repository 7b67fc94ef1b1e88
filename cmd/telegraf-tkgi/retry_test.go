package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// telemetryServer is a real loopback HTTP server standing in for the
// telemetry server: while failing it answers 503 and 429 in turn, both
// with Retry-After: 0; once healthy it stores each idempotency key once.
type telemetryServer struct {
	*httptest.Server
	t   *testing.T
	dec *telemetry.Decoder

	mu       sync.Mutex
	failing  bool
	token    string // when set, other bearer tokens get 401
	requests []telemetryRequest
	stored   map[string][]string // idempotency key -> lines
	stores   map[string]int      // idempotency key -> times stored
}

type telemetryRequest struct {
	at     time.Time
	key    string
	status int
}

func newTelemetryServer(t *testing.T) *telemetryServer {
	dec, err := telemetry.NewDecoder(64<<20, 1<<20)
	require.NoError(t, err)
	s := &telemetryServer{t: t, dec: dec, failing: true, stored: map[string][]string{}, stores: map[string]int{}}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

func (s *telemetryServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	key := r.Header.Get(telemetry.HeaderIdempotencyKey)
	s.mu.Lock()
	defer s.mu.Unlock()
	req := telemetryRequest{at: time.Now(), key: key}
	switch {
	case s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token:
		req.status = http.StatusUnauthorized
	case s.failing:
		req.status = http.StatusServiceUnavailable
		if len(s.requests)%2 == 1 {
			req.status = http.StatusTooManyRequests
		}
		w.Header().Set("Retry-After", "0")
	case s.stores[key] > 0:
		w.Header().Set(telemetry.HeaderDuplicate, "true")
		req.status = http.StatusOK
	default:
		decompressed, closeDec, err := s.dec.Open(bytes.NewReader(body), r.Header.Get("Content-Encoding"))
		var raw []byte
		if err == nil {
			raw, err = io.ReadAll(decompressed)
			closeDec()
		}
		if err != nil {
			s.t.Errorf("undecodable batch: %v", err)
			req.status = http.StatusBadRequest
			break
		}
		s.stored[key] = strings.Split(strings.TrimSpace(string(raw)), "\n")
		s.stores[key]++
		req.status = http.StatusCreated
	}
	s.requests = append(s.requests, req)
	w.WriteHeader(req.status)
}

func (s *telemetryServer) setFailing(f bool) {
	s.mu.Lock()
	s.failing = f
	s.mu.Unlock()
}

func (s *telemetryServer) setToken(token string) {
	s.mu.Lock()
	s.token = token
	s.mu.Unlock()
}

func (s *telemetryServer) reqs() []telemetryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]telemetryRequest(nil), s.requests...)
}

// Against a server answering 503 and 429 with Retry-After: 0, the agent
// retries no faster than its backoff, stops within 5 s of SIGTERM in the
// middle of a wait, and keeps the batch in its disk buffer; started again
// against the healthy server it delivers that batch exactly once, under
// the idempotency key it had while failing.
func TestAgentRetryDisciplineAndStop(t *testing.T) {
	if testing.Short() {
		t.Skip("a running agent against a real server over seconds: an integration test, run without -short (make test)")
	}
	// Watch the failing agent this long (shorter in the -short loop).
	observe := 5 * time.Second
	if testing.Short() {
		observe = 2 * time.Second
	}
	const (
		retryInitial = 400 * time.Millisecond
		retryMax     = 8 * time.Second
	)
	srv := newTelemetryServer(t)
	dir := t.TempDir()
	first := []string{
		"kube_telemetry_nodes,cluster_uid=3f1e2d4c,cluster_name=payments-prod total=5i,ready=4i,not_ready=1i 1777863721000000000",
		"kube_telemetry_pods,cluster_uid=3f1e2d4c,cluster_name=payments-prod total=150i,running=146i,pending=2i 1777863721000000000",
	}
	conf, data := writeTelemetryAgentConf(t, dir, first, srv.URL+"/ph/api/hyper/send", telemetryAgentSettings{
		agent: fmt.Sprintf("  statefile = %q\n  buffer_strategy = \"disk_write_through\"\n  buffer_directory = %q\n",
			filepath.Join(dir, "statefile.json"), filepath.Join(dir, "buffer")),
		output: fmt.Sprintf("  retry_initial = %q\n  retry_max = %q\n  retry_within_write = \"1m\"\n  max_attempts_per_write = 10\n",
			retryInitial.String(), retryMax.String()),
	})

	// Failing: watch the agent retry.
	agent := startAgent(t, conf)
	require.Eventually(t, func() bool { return len(srv.reqs()) > 0 }, 30*time.Second, 10*time.Millisecond, "no request")
	observeFrom := srv.reqs()[0].at
	require.Eventually(t, func() bool { return time.Since(observeFrom) >= observe }, 10*time.Second, 50*time.Millisecond)
	// SIGTERM in the middle of a wait: just after a request. The wait is
	// then 6.4 s or more (3.2 s in the -short loop): only an interrupted
	// wait lets the agent exit within 5 s.
	n := len(srv.reqs())
	require.Eventually(t, func() bool { return len(srv.reqs()) > n }, 10*time.Second, time.Millisecond)
	_, took := agent.stopBy(t, syscall.SIGTERM)
	failing := srv.reqs()
	t.Logf("%d requests while failing over %s; exit %s after SIGTERM", len(failing),
		failing[len(failing)-1].at.Sub(failing[0].at).Round(time.Millisecond), took.Round(time.Millisecond))
	require.Less(t, took, 5*time.Second, "SIGTERM must stop the agent within 5 s")

	// The backoff: the i-th wait is at least min(retry_max, retry_initial*2^(i-1)).
	require.GreaterOrEqual(t, len(failing), 3)
	key := failing[0].key
	require.NotEmpty(t, key)
	var statuses = map[int]int{}
	for i, r := range failing {
		statuses[r.status]++
		require.Equal(t, key, r.key, "request %d: the batch keeps its idempotency key across retries", i)
		if i == 0 {
			continue
		}
		floor := min(retryMax, retryInitial<<(i-1))
		gap := r.at.Sub(failing[i-1].at)
		require.GreaterOrEqual(t, gap, floor-5*time.Millisecond, "request %d came %s after the one before; the backoff allows no less than %s", i, gap, floor)
	}
	require.Positive(t, statuses[http.StatusServiceUnavailable])
	require.Positive(t, statuses[http.StatusTooManyRequests])
	// With Retry-After: 0 and no backoff it would have been hundreds.
	maxRequests := 1
	for elapsed, i := time.Duration(0), 1; ; i++ {
		elapsed += min(retryMax, retryInitial<<(i-1))
		if elapsed > failing[len(failing)-1].at.Sub(failing[0].at) {
			break
		}
		maxRequests++
	}
	require.LessOrEqual(t, len(failing), maxRequests)
	requireCleanStop(t, agent.logText())
	// The statefile remembers the pending batch by its key (Telegraf keeps
	// each plugin's state as base64 of its JSON).
	saved, err := os.ReadFile(filepath.Join(dir, "statefile.json"))
	require.NoError(t, err)
	var states map[string][]byte
	require.NoError(t, json.Unmarshal(saved, &states))
	var pending bool
	for _, st := range states {
		pending = pending || strings.Contains(string(st), `"pending":[{"key":"`+key+`"`)
	}
	require.True(t, pending, "statefile %s lacks pending batch %s", saved, key)

	// The batch is in the disk buffer: started again against the healthy
	// server, with other data to read now, it arrives once, same key.
	second := "kube_telemetry_nodes,cluster_uid=3f1e2d4c,cluster_name=payments-prod total=6i,ready=6i 1777864321000000000"
	require.NoError(t, os.WriteFile(data, []byte(second+"\n"), 0o600))
	srv.setFailing(false)
	agent = startAgent(t, conf)
	require.Eventually(t, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.stores[key] == 1 && len(srv.stored) == 2
	}, 30*time.Second, 10*time.Millisecond, "the buffered batch and the new metric were not both delivered")
	_, took = agent.stopBy(t, syscall.SIGTERM)
	require.Less(t, took, 5*time.Second)

	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.stored[key], len(first), "the buffered batch holds exactly the first gather")
	for k, n := range srv.stores {
		require.Equal(t, 1, n, "batch %s stored %d times", k, n)
	}
	var lines int
	for k, ls := range srv.stored {
		lines += len(ls)
		if k != key {
			require.Len(t, ls, 1, "the new batch holds the second gather")
			require.Contains(t, ls[0], "total=6i")
		}
	}
	require.Equal(t, len(first)+1, lines, "no metric lost, none twice")
	for _, r := range srv.requests[len(failing):] {
		require.NotEqual(t, http.StatusOK, r.status, "no batch was sent again after it was stored")
	}
}

// telemetryAgentSettings are what a test adds to the telemetry agent of
// writeTelemetryAgentConf: settings of [agent] and of the output, and more
// plugins.
type telemetryAgentSettings struct {
	agent, output, plugins string
}

// writeTelemetryAgentConf writes, in dir, an agent that reads lines once
// from a line-protocol file (data) and sends them to url with
// outputs.vmware_telemetry, the key in dir and no system proxy. Each call
// writes a new configuration file.
func writeTelemetryAgentConf(t *testing.T, dir string, lines []string, url string, s telemetryAgentSettings) (conf, data string) {
	t.Helper()
	data = filepath.Join(dir, "telemetry.lp")
	require.NoError(t, os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	f, err := os.CreateTemp(dir, "agent-*.conf")
	require.NoError(t, err)
	defer f.Close()
	_, err = fmt.Fprintf(f, `
[agent]
  interval = "1h"
  round_interval = false
  flush_interval = "100ms"
  flush_jitter = "0s"
  omit_hostname = true
%s
[[inputs.file]]
  files = [%q]
  data_format = "influx"

[[outputs.vmware_telemetry]]
  url = %q
  pseudonym_key_file = %q
  use_system_proxy = false
%s%s`, s.agent, data, url, filepath.Join(dir, "key"), s.output, s.plugins)
	require.NoError(t, err)
	return f.Name(), data
}

// requireCleanStop checks that the agent's log shows a clean stop.
func requireCleanStop(t *testing.T, log string) {
	t.Helper()
	require.Contains(t, log, "Received terminated, flushing and stopping")
	require.NotContains(t, log, "panic")
}

// A server refusing the agent's token (401): the agent keeps the batch,
// logs what to set, counts the refusal in its internal metrics and tries
// again no faster than its backoff; once the server takes the token, the
// same batch arrives once, without restarting the agent.
func TestAgentKeepsBatchOnRefusedToken(t *testing.T) {
	if testing.Short() {
		t.Skip("a running agent against a real server over seconds: an integration test, run without -short (make test)")
	}
	srv := newTelemetryServer(t)
	srv.setFailing(false)
	srv.setToken("the-servers-token")
	dir := t.TempDir()
	line := "kube_telemetry_nodes,cluster_uid=3f1e2d4c,cluster_name=payments-prod total=5i,ready=4i 1777863721000000000"
	internal := filepath.Join(dir, "internal.out")
	conf, _ := writeTelemetryAgentConf(t, dir, []string{line}, srv.URL+"/ph/api/hyper/send", telemetryAgentSettings{
		output: "  namepass = [\"kube_telemetry_*\"]\n  token = \"${TELEMETRY_TOKEN}\"\n  retry_initial = \"300ms\"\n  retry_max = \"1s\"\n",
		plugins: fmt.Sprintf(`
[[inputs.internal]]
  interval = "500ms"

[[outputs.file]]
  namepass = ["internal_vmware_telemetry"]
  files = [%q]
  data_format = "influx"
`, internal),
	})
	agent := startAgent(t, conf, "TELEMETRY_TOKEN=an-old-token")

	// Refused three times: logged, counted, nothing dropped.
	require.Eventually(t, func() bool { return len(srv.reqs()) >= 3 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		out, _ := os.ReadFile(internal)
		return strings.Contains(string(out), "refused_auth=3i") || strings.Contains(string(out), "refused_auth=4i")
	}, 30*time.Second, 50*time.Millisecond, "internal_vmware_telemetry does not count the refusals")
	logText := agent.logText()
	require.Contains(t, logText, "the telemetry server refused the token (401): set TELEMETRY_TOKEN / token to the server's token")
	require.Contains(t, logText, "E! [outputs.vmware_telemetry] Keeping batch")
	require.NotContains(t, logText, "Dropping batch")
	refused := srv.reqs()
	for i := 1; i < len(refused); i++ {
		require.GreaterOrEqual(t, refused[i].at.Sub(refused[i-1].at), 295*time.Millisecond, "refusals retried faster than retry_initial")
		require.Equal(t, refused[0].key, refused[i].key)
	}

	// The server now takes the agent's token: the kept batch arrives once.
	srv.setToken("an-old-token")
	require.Eventually(t, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.stores[refused[0].key] == 1
	}, 30*time.Second, 10*time.Millisecond, "the kept batch was not delivered")
	_, took := agent.stopBy(t, syscall.SIGTERM)
	require.Less(t, took, 5*time.Second)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.stored, 1)
	require.Len(t, srv.stored[refused[0].key], 1)
}
