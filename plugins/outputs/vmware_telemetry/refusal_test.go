package vmware_telemetry

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// What each answer does to the batch: dropped only when the server says
// the payload itself is invalid; kept (error returned, Telegraf keeps it in
// its buffer) for everything that is the agent's configuration or the
// server's state, with a log line telling what to fix.
func TestStatusActions(t *testing.T) {
	tests := []struct {
		status  int
		kept    bool
		advice  string
		refused bool
	}{
		{http.StatusBadRequest, false, "calls the batch itself invalid", false},
		{http.StatusUnprocessableEntity, false, "calls the batch itself invalid", false},
		{http.StatusUnauthorized, true, "the telemetry server refused the token (401): set TELEMETRY_TOKEN / token to the server's token", true},
		{http.StatusForbidden, true, "refused this agent (403): check token", true},
		{http.StatusProxyAuthRequired, true, "the proxy wants credentials (407): set them in http_proxy_url", true},
		{http.StatusNotFound, true, "nothing takes batches at url (404): set url", false},
		{http.StatusMethodNotAllowed, true, "nothing takes batches at url (405)", false},
		{http.StatusUnsupportedMediaType, true, "set content_encoding", false},
		{http.StatusGone, true, "the server refused the request (410): check url, token", false},
		{http.StatusMovedPermanently, true, "url is redirected (301)", false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := newServer(t, "")
			srv.setScript(func(n int, _ *received, w http.ResponseWriter) int {
				if n == 0 {
					if tt.status == http.StatusMovedPermanently {
						w.Header().Set("Location", "https://elsewhere.example.com/")
					}
					return answer{status: tt.status, body: "refused by test"}.write(w)
				}
				return 0
			})
			clk := newClock()
			o, log := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withClock(clk), withJitter(0), func(o *VMwareTelemetry) {
				o.RetryWithinWrite = config.Duration(time.Minute) // no in-write retry for a refusal
			})
			start(t, o)
			in := kubeTelemetryMetrics(3, gatherTime)

			err := o.Write(in)
			require.Len(t, srv.reqs(), 1, "a refusal is not retried within the write")
			require.Len(t, log.Errors(), 1)
			require.Contains(t, log.Errors()[0], tt.advice)
			if !tt.kept {
				require.NoError(t, err)
				require.Contains(t, log.Errors()[0], "Dropping batch "+keys(srv.reqs())[0])
				require.Equal(t, int64(1), o.stats.batchesRejected.Get())
				require.Zero(t, o.stats.retries.Get())
				return
			}
			require.ErrorContains(t, err, "next attempt in 1s")
			require.Contains(t, log.Errors()[0], "Keeping batch "+keys(srv.reqs())[0])
			require.Zero(t, o.stats.batchesRejected.Get())
			require.Equal(t, int64(1), o.stats.retries.Get())
			if tt.refused {
				require.Equal(t, int64(1), o.stats.refusedAuth.Get())
			} else {
				require.Zero(t, o.stats.refusedAuth.Get())
			}

			// Fixed (here: the server takes it now): the same batch, same key.
			clk.Add(2 * time.Second)
			requireResentOnce(t, o, srv, in)
		})
	}
}

// A refused token keeps failing without a flood: one request per backoff,
// the waits growing, every batch kept.
func TestRefusedTokenBacksOff(t *testing.T) {
	srv := newServer(t, "")
	srv.setScript(func(_ int, r *received, w http.ResponseWriter) int {
		if r.header.Get("Authorization") != "Bearer right" {
			return answer{status: http.StatusUnauthorized, body: "unauthorized"}.write(w)
		}
		return 0
	})
	clk := newClock()
	o, log := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withClock(clk), withJitter(0), func(o *VMwareTelemetry) {
		o.Token = secret("wrong")
	})
	start(t, o)
	in := kubeTelemetryMetrics(3, gatherTime)
	var errs []string
	for range 40 { // flushes every 100ms for 4 s
		if err := o.Write(in); err != nil {
			errs = append(errs, err.Error())
		}
		clk.Add(100 * time.Millisecond)
	}
	require.Len(t, errs, 40, "no write succeeds and none drops the batch")
	// Attempts at 0, 1 s, 3 s (waits 1 s, 2 s, then 4 s).
	require.Len(t, srv.reqs(), 3)
	require.Equal(t, int64(3), o.stats.refusedAuth.Get())
	require.Zero(t, o.stats.batchesRejected.Get())
	for _, e := range log.Errors() {
		require.Contains(t, e, "set TELEMETRY_TOKEN / token to the server's token")
	}
}

// Retry-After: 0 (or any wait below the backoff) never makes the output
// retry faster than the backoff, and a write makes at most
// max_attempts_per_write attempts.
func TestRetryAfterZeroWaitsTheBackoff(t *testing.T) {
	t.Parallel() // waits in real time
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := newServer(t, "")
			srv.refuseFirst(-1, answer{status: status, retryAfter: "0"})
			o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), func(o *VMwareTelemetry) {
				o.RetryInitial = config.Duration(100 * time.Millisecond)
				o.RetryWithinWrite = config.Duration(time.Minute)
				o.MaxAttemptsPerWrite = 3
			})
			start(t, o)
			began := time.Now()
			require.ErrorContains(t, o.Write(kubeTelemetryMetrics(3, gatherTime)), "attempt 3")
			reqs := srv.reqs()
			require.Len(t, reqs, 3, "max_attempts_per_write")
			// Waits of at least 100 ms and 200 ms (the backoff), at most half again.
			require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), 100*time.Millisecond)
			require.GreaterOrEqual(t, reqs[2].at.Sub(reqs[1].at), 200*time.Millisecond)
			require.Less(t, time.Since(began), 5*time.Second)
			k := keys(reqs)
			require.Equal(t, k[0], k[1])
			require.Equal(t, k[0], k[2])
			// The next write comes only after the third wait (400 ms or more).
			require.ErrorContains(t, o.Write(kubeTelemetryMetrics(3, gatherTime)), "backing off until")
			require.Len(t, srv.reqs(), 3)
		})
	}
}

// Interrupt (the agent stopping) ends a wait for a retry at once, keeping
// the batch; the agent's last flush then fails at once while backing off
// longer than shutdownGrace.
func TestInterruptEndsRetryWait(t *testing.T) {
	srv := newServer(t, "")
	srv.refuseFirst(-1, answer{status: http.StatusServiceUnavailable, retryAfter: "30"})
	waits := make(chan time.Duration, 1)
	o, _ := newOutput(t, srv.endpoint(), "", withRetryWaits(waits), func(o *VMwareTelemetry) {
		o.RetryWithinWrite = config.Duration(time.Hour)
		o.MaxAttemptsPerWrite = 10
	})
	start(t, o)
	in := kubeTelemetryMetrics(2, gatherTime)
	done := make(chan error)
	go func() { done <- o.Write(in) }()
	receive(t, waits, "the wait for a retry")
	interrupted := time.Now()
	o.Interrupt()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "503")
		require.Less(t, time.Since(interrupted), time.Second)
	case <-time.After(5 * time.Second):
		require.FailNow(t, "Write kept waiting after Interrupt")
	}
	require.ErrorContains(t, o.Write(in), "backing off until")
	require.Len(t, srv.reqs(), 1)
	require.Len(t, o.pending, 1, "the batch is pending for the next start")
}

// The agent's last flush after Interrupt waits out a backoff shorter than
// shutdownGrace and sends: a memory-buffered batch is not lost at exit
// because the server failed a moment before the stop.
func TestLastFlushWaitsShortBackoff(t *testing.T) {
	t.Parallel() // waits in real time
	srv := newServer(t, "")
	srv.setScript(func(n int, _ *received, w http.ResponseWriter) int {
		if n == 0 {
			return answer{status: http.StatusServiceUnavailable, retryAfter: "0"}.write(w)
		}
		return answer{status: http.StatusCreated}.write(w)
	})
	o, _ := newOutput(t, srv.endpoint(), "", func(o *VMwareTelemetry) {
		o.RetryInitial = config.Duration(300 * time.Millisecond)
		o.MaxAttemptsPerWrite = 1
	})
	start(t, o)
	in := kubeTelemetryMetrics(2, gatherTime)
	require.ErrorContains(t, o.Write(in), "503")

	o.Interrupt()
	require.NoError(t, o.Write(in))
	reqs := srv.reqs()
	require.Len(t, reqs, 2)
	require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), 300*time.Millisecond, "the last flush kept the backoff")
	require.Equal(t, keys(reqs)[0], keys(reqs)[1])
	require.Empty(t, o.pending)
}

// A request hanging when the agent stops gets shutdownGrace, then ends.
func TestInterruptBoundsRequestInFlight(t *testing.T) {
	t.Parallel() // waits in real time
	srv := newServer(t, "")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv.setScript(func(_ int, _ *received, w http.ResponseWriter) int {
		<-release
		return answer{status: http.StatusServiceUnavailable}.write(w)
	})
	o, _ := newOutput(t, srv.endpoint(), "")
	start(t, o)
	done := make(chan error)
	go func() { done <- o.Write(kubeTelemetryMetrics(2, gatherTime)) }()
	srv.waitArrived(1)
	interrupted := time.Now()
	o.Interrupt()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "context canceled")
		require.GreaterOrEqual(t, time.Since(interrupted), shutdownGrace-100*time.Millisecond)
		require.Less(t, time.Since(interrupted), shutdownGrace+2*time.Second)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "the request outlived shutdownGrace")
	}
}

// Init writes nothing: a missing key file is checked (could it be
// created?) and created by Connect.
func TestInitCreatesNoKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "sub", "key")
	o, _ := newOutput(t, "https://telemetry.example.com", path)
	require.NoError(t, o.Init())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "Init created something")
	require.NoError(t, o.Connect())
	t.Cleanup(func() { _ = o.Close() })
	require.FileExists(t, path)
	require.NotEmpty(t, o.instance)

	// A path that can never be created is reported by Init.
	file := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	bad, _ := newOutput(t, "https://telemetry.example.com", filepath.Join(file, "key"))
	err = bad.Init()
	require.ErrorContains(t, err, "does not exist and cannot be created")
	require.ErrorContains(t, err, "is not a directory")

	// State saved before the key existed cannot match the new key: ignored.
	o2, _ := newOutput(t, "https://telemetry.example.com", filepath.Join(dir, "other", "key"))
	require.NoError(t, o2.Init())
	require.NoError(t, o2.SetState(State{Instance: "0123456789abcdef0123456789abcdef", Pending: []pendingChunk{{Key: "k", Lines: 1}}}))
	require.NoError(t, o2.Connect())
	t.Cleanup(func() { _ = o2.Close() })
	require.Empty(t, o2.pending)
}

// Credentials never appear in errors or logs: a proxy password, a
// password or query secret in url, however the request fails.
func TestCredentialsRedacted(t *testing.T) {
	const password = "pr0xy-s3cret-pw"
	const querySecret = "q-s3cret-apikey-value"
	srv := newServer(t, "")

	check := func(t *testing.T, err error, logs ...string) {
		t.Helper()
		all := append([]string{err.Error()}, logs...)
		for _, s := range all {
			require.NotContains(t, s, password)
			require.NotContains(t, s, querySecret)
		}
	}
	t.Run("url with credentials or bad syntax", func(t *testing.T) {
		for _, u := range []string{
			"https://agent:" + password + "@telemetry.example.com/send",
			"https://agent:" + password + "@telemetry.example.com:bad/send",
			"ftp://agent:" + password + "@telemetry.example.com/send?k=" + querySecret,
		} {
			o, _ := newOutput(t, u, "")
			err := o.Init()
			require.Error(t, err)
			check(t, err)
		}
	})

	t.Run("proxy url with bad syntax", func(t *testing.T) {
		o, _ := newOutput(t, srv.endpoint(), "", func(o *VMwareTelemetry) {
			o.HTTPProxyURL = "http://agent:" + password + "@proxy:bad-port"
		})
		err := o.Init()
		require.ErrorContains(t, err, "http_proxy_url cannot be parsed")
		check(t, err)
	})

	t.Run("unreachable environment proxy", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := "http://agent:" + password + "@" + l.Addr().String()
		require.NoError(t, l.Close())
		setProxyEnv(t, closed, closed, "")
		ip := nonLoopbackIP(t)
		remote := newServer(t, ip)
		o, log := newOutput(t, remote.endpoint()+"?k="+querySecret, "", systemProxy)
		start(t, o)
		err = o.Write(kubeTelemetryMetrics(2, gatherTime))
		require.ErrorContains(t, err, "proxyconnect")
		require.Contains(t, err.Error(), "k="+redacted)
		check(t, err, logText(log)...)
	})

	t.Run("proxy refusing the credentials", func(t *testing.T) {
		requireProxies(t)
		o, log := newOutput(t, srv.endpoint()+"?k="+querySecret, "", func(o *VMwareTelemetry) {
			o.HTTPProxyURL = "http://agent:" + password + "@" + proxies.auth
		})
		start(t, o)
		// Loopback is never proxied by the environment, but an explicit
		// proxy is used for it: tinyproxy refuses the wrong password (401).
		err := o.Write(kubeTelemetryMetrics(2, gatherTime))
		require.ErrorContains(t, err, "answered 401")
		require.Empty(t, srv.reqs())
		check(t, err, logText(log)...)
	})

	t.Run("unreachable server with a query secret", func(t *testing.T) {
		o, log := newOutput(t, "http://127.0.0.1:1/ph/api/hyper/send?k="+querySecret, "", func(o *VMwareTelemetry) {
			o.HTTPProxyURL = ""
		})
		start(t, o)
		err := o.Write(kubeTelemetryMetrics(2, gatherTime))
		require.ErrorContains(t, err, "connection refused")
		require.Contains(t, err.Error(), "k="+redacted)
		check(t, err, logText(log)...)
	})
}

func logText(l *testutil.CaptureLogger) []string {
	var out []string
	for _, m := range l.Messages() {
		out = append(out, m.Text)
	}
	return out
}
