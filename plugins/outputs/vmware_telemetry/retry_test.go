package vmware_telemetry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// The wait before a retry: exponential from retry_initial, capped at
// retry_max, Retry-After when longer (never shorter: 0 waits the backoff),
// plus up to half again as jitter.
func TestRetryDelay(t *testing.T) {
	o, _ := newOutput(t, "https://x", "", func(o *VMwareTelemetry) {
		o.RetryInitial = config.Duration(time.Second)
		o.RetryMax = config.Duration(time.Minute)
	})
	tests := []struct {
		name       string
		failures   int
		jitter     float64
		retryAfter string
		want       time.Duration
	}{
		{"first failure", 1, 0, "", time.Second},
		{"first failure, most jitter", 1, 1, "", 1500 * time.Millisecond},
		{"second failure", 2, 0.5, "", 2500 * time.Millisecond},
		{"fourth failure", 4, 0, "", 8 * time.Second},
		{"capped", 7, 0, "", time.Minute},
		{"capped, most jitter", 100, 1, "", 90 * time.Second},
		{"Retry-After 0 waits the backoff", 1, 0, "0", time.Second},
		{"Retry-After 0 waits the backoff, growing", 3, 0, "0", 4 * time.Second},
		{"Retry-After shorter than the backoff", 5, 0, "2", 16 * time.Second},
		{"Retry-After longer than the backoff", 1, 0, "120", 2 * time.Minute},
		{"Retry-After gets jitter too", 1, 1, "120", 3 * time.Minute},
		{"Retry-After bounded", 1, 0, "86400", time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o.failures = tt.failures
			o.jitter = func() float64 { return tt.jitter }
			var r response
			r.retryAfter, r.hasRetry = telemetry.ParseRetryAfter(tt.retryAfter, time.Now())
			require.Equal(t, tt.want, o.retryDelay(r))
		})
	}
}

// Within one write a failed chunk is sent again only when the failure is
// the server's or the network's for now, while the attempts and the waits
// stay within their budgets.
func TestMayRetry(t *testing.T) {
	tests := []struct {
		name     string
		action   action
		attempts int
		waited   time.Duration
		delay    time.Duration
		want     bool
	}{
		{"first failure", actRetry, 1, 0, time.Second, true},
		{"last attempt allowed", actRetry, 2, 0, time.Second, true},
		{"attempts used up", actRetry, 3, 0, time.Second, false},
		{"wait fills the budget", actRetry, 1, 6 * time.Second, 4 * time.Second, true},
		{"wait over the budget", actRetry, 1, 6 * time.Second, 5 * time.Second, false},
		{"refused token waits for the next write", actRefusedAuth, 1, 0, time.Second, false},
		{"misconfiguration waits for the next write", actMisconfigured, 1, 0, time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := delivery{attempts: tt.attempts, waited: tt.waited}
			require.Equal(t, tt.want, d.mayRetry(tt.action, tt.delay, 3, 10*time.Second))
		})
	}
}

// failed: what one kept attempt does to the counters, the queue and the
// next write, per kind of failure.
func TestFailed(t *testing.T) {
	cur := chunk{first: 3, n: 2, key: "0123456789abcdef0123456789abcdef"}
	tests := []struct {
		name        string
		r           response
		sleeps      bool // the wait for a retry runs to its end
		wantErr     bool
		wantRefused int64
		wantWarn    string
		wantError   string
	}{
		{"retried within the write", response{action: actRetry, err: errors.New("502")}, true, false, 0, "Retrying batch " + cur.key + " in 1s: 502", ""},
		{"retry interrupted keeps the chunk", response{action: actRetry, err: errors.New("502")}, false, true, 0, "Retrying batch " + cur.key, ""},
		{"refused token kept", response{action: actRefusedAuth, status: http.StatusUnauthorized, err: errors.New("401")}, true, true, 1, "", "set TELEMETRY_TOKEN"},
		{"misconfiguration kept", response{action: actMisconfigured, status: http.StatusNotFound, err: errors.New("404")}, true, true, 0, "", "nothing takes batches at url (404)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			o, log := newOutput(t, "https://x", "", withClock(clk), withJitter(0), func(o *VMwareTelemetry) {
				o.RetryWithinWrite = config.Duration(time.Minute)
				o.sleep = func(context.Context, time.Duration) bool { return tt.sleeps }
			})
			require.NoError(t, o.Init())
			d := newDelivery([]chunk{{n: 3, key: "done"}, cur})
			d.next()

			err := o.failed(d, cur, tt.r)
			require.Equal(t, 1, d.attempts)
			require.Equal(t, 1, o.failures)
			require.Equal(t, int64(1), o.stats.retries.Get())
			require.Equal(t, tt.wantRefused, o.stats.refusedAuth.Get())
			if tt.wantWarn == "" {
				require.Empty(t, log.Warnings())
			} else {
				require.Len(t, log.Warnings(), 1)
				require.Contains(t, log.Warnings()[0], tt.wantWarn)
			}
			if tt.wantError == "" {
				require.Empty(t, log.Errors())
			} else {
				require.Len(t, log.Errors(), 1)
				require.Contains(t, log.Errors()[0], "Keeping batch "+cur.key+" of 2 metrics, next attempt in 1s")
				require.Contains(t, log.Errors()[0], tt.wantError)
			}
			if !tt.wantErr {
				require.NoError(t, err)
				require.Equal(t, time.Second, d.waited)
				require.True(t, o.notBefore.IsZero())
				require.Nil(t, o.pending)
				return
			}
			require.ErrorIs(t, err, tt.r.err)
			require.ErrorContains(t, err, "batch "+cur.key+" not sent, next attempt in 1s (attempt 1)")
			require.Equal(t, clk.Now().Add(time.Second), o.notBefore)
			require.Equal(t, []pendingChunk{{Key: "done", Lines: 3, Done: true}, {Key: cur.key, Lines: 2}}, o.pending)
		})
	}
}

func TestSleepContext(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want bool
	}{
		{"runs to its end", context.Background(), time.Millisecond, true},
		{"ends with its context", ended, time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, sleepContext(tt.ctx, tt.d))
		})
	}
}
