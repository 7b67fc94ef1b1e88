package vmware_telemetry_stream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// quickMarkRetries spaces the lake bucket's tries by milliseconds for the
// test.
func quickMarkRetries(t *testing.T) {
	minWait, maxWait := markRetryMin, markRetryMax
	markRetryMin, markRetryMax = time.Millisecond, 4*time.Millisecond
	t.Cleanup(func() { markRetryMin, markRetryMax = minWait, maxWait })
}

// A written batch whose mark fails is marked on a later try, kept in
// progress meanwhile, and acknowledged only once marked: the
// acknowledgement can fail as the put did, and a delivery again with no
// mark would be written twice.
func TestSettleMarksUntilThePutLands(t *testing.T) {
	quickMarkRetries(t)
	for _, tt := range []struct {
		name     string
		putFails int
		want     []string
	}{
		{name: "first put lands", want: []string{"double-ack"}},
		{name: "two puts fail", putFails: 2, want: []string{"in-progress", "in-progress", "double-ack"}},
		{name: "five puts fail", putFails: 5, want: []string{"in-progress", "in-progress", "in-progress", "in-progress", "in-progress", "double-ack"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStream(t, nil)
			s.stats = newStats(s.Statistics, "lake", "tkgi-lake", "TKGI_TELEMETRY")
			bucket := &fakeBucket{keys: map[string]bool{}, putFails: tt.putFails}
			if tt.putFails > 0 {
				bucket.putErr = errors.New("nats: no response from stream")
			}
			msg := &fakeMsg{}
			c := &consumer{s: s, lake: bucket}
			c.settle(context.Background(), pendingBatch{id: "batch-1", msg: msg, metrics: 3}, true)
			require.Equal(t, tt.putFails+1, bucket.puts)
			require.True(t, bucket.keys["batch-1"], "marked")
			require.Equal(t, tt.want, msg.how())
			counters := s.stats.counters()
			require.Equal(t, int64(tt.putFails), counters["lake_bucket_errors"])
			require.Equal(t, int64(1), counters["batches_written"])
		})
	}

	t.Run("stopping ends the tries", func(t *testing.T) {
		s := newTestStream(t, nil)
		s.stats = newStats(s.Statistics, "lake", "tkgi-lake", "TKGI_TELEMETRY")
		bucket := &fakeBucket{keys: map[string]bool{}, putErr: errors.New("nats: no responders available for request")}
		c := &consumer{s: s, lake: bucket}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		done := make(chan struct{})
		go func() {
			c.settle(ctx, pendingBatch{id: "batch-1", msg: &fakeMsg{}, metrics: 3}, true)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			require.FailNow(t, "settle kept trying after the consumer stopped")
		}
		bucket.mu.Lock()
		defer bucket.mu.Unlock()
		require.Greater(t, bucket.puts, 1)
		require.False(t, bucket.keys["batch-1"])
	})
}
