package vmware_telemetry_listener

import (
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

func testMetrics(n int) []telegraf.Metric {
	out := make([]telegraf.Metric, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, metric.New("m", nil, map[string]interface{}{"v": int64(i)}, time.Unix(0, 0)))
	}
	return out
}

func TestTrackerBoundsUndelivered(t *testing.T) {
	acc := &testutil.Accumulator{}
	tr := newTracker(acc, 2)
	tr.start()
	defer tr.stopDispatch()

	results := make(chan bool, 3)
	require.True(t, tr.tryAcquire())
	tr.add(testMetrics(2), func(d bool) { results <- d })
	require.True(t, tr.tryAcquire())
	tr.add(testMetrics(1), func(d bool) { results <- d })

	// Full: the third batch is refused until one is delivered.
	require.False(t, tr.tryAcquire())
	require.Equal(t, 2, tr.undelivered())

	ms := acc.GetTelegrafMetrics()
	require.Len(t, ms, 3)
	ms[0].Accept()
	ms[1].Accept()
	require.True(t, <-results)
	require.Eventually(t, tr.tryAcquire, time.Second, time.Millisecond)
	tr.release()

	// A rejected metric (dropped by an output's full buffer) fails the batch.
	ms[2].Reject()
	require.False(t, <-results)
	require.Eventually(t, func() bool { return tr.undelivered() == 0 }, time.Second, time.Millisecond)
}

func TestTrackerDeliveryBeforeRegistration(t *testing.T) {
	// Deliver every metric the moment it is added, before
	// AddTrackingMetricGroup returns, as a fast pipeline could.
	acc := &acceptingAccumulator{Accumulator: &testutil.Accumulator{}}
	tr := newTracker(acc, 4)
	tr.start()
	defer tr.stopDispatch()

	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		require.Eventually(t, tr.tryAcquire, time.Second, time.Millisecond)
		wg.Add(1)
		tr.add(testMetrics(3), func(d bool) {
			require.True(t, d)
			wg.Done()
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool { return tr.undelivered() == 0 }, time.Second, time.Millisecond)
}

// acceptingAccumulator accepts each tracking metric as it is added.
type acceptingAccumulator struct {
	*testutil.Accumulator
}

func (a *acceptingAccumulator) WithTracking(n int) telegraf.TrackingAccumulator {
	a.Accumulator.WithTracking(n)
	return a
}

func (a *acceptingAccumulator) AddTrackingMetricGroup(group []telegraf.Metric) telegraf.TrackingID {
	id := a.Accumulator.AddTrackingMetricGroup(group)
	for _, m := range group {
		m.Accept()
	}
	return id
}
