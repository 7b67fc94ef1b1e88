package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"
)

func TestReloadStopAt(t *testing.T) {
	border := time.Date(2026, 12, 2, 14, 0, 10, 0, time.UTC)
	tenSeconds := []tickSchedule{{interval: 10 * time.Second}}
	for _, tc := range []struct {
		name   string
		now    time.Time
		scheds []tickSchedule
		want   time.Time
	}{
		{"mid-interval stops at once", border.Add(-5 * time.Second), tenSeconds, border.Add(-5 * time.Second)},
		{"10 ms before a tick waits for its gather to start", border.Add(-10 * time.Millisecond), tenSeconds, border.Add(100 * time.Millisecond)},
		{"within half the interval waits", border.Add(-4 * time.Second), tenSeconds, border.Add(100 * time.Millisecond)},
		{"on the tick waits for its gather", border, tenSeconds, border.Add(100 * time.Millisecond)},
		{"just after a tick lets its gather start", border.Add(time.Millisecond), tenSeconds, border.Add(100 * time.Millisecond)},
		{"a second interval's settle is a tenth", border.Add(-10 * time.Millisecond), []tickSchedule{{interval: time.Second}}, border.Add(100 * time.Millisecond)},
		{"a 100 ms interval settles 10 ms", border.Add(-10 * time.Millisecond), []tickSchedule{{interval: 100 * time.Millisecond}}, border.Add(10 * time.Millisecond)},
		{"a long interval waits at most 5 s before the tick", border.Add(-6 * time.Second), []tickSchedule{{interval: time.Minute}}, border.Add(-6 * time.Second)},
		{"jitter: the gather may start up to jitter late", border.Add(-time.Second), []tickSchedule{{interval: 10 * time.Second, jitter: 2 * time.Second}}, border.Add(2100 * time.Millisecond)},
		{"offset moves the ticks", border.Add(2 * time.Second), []tickSchedule{{interval: 10 * time.Second, offset: 3 * time.Second}}, border.Add(3100 * time.Millisecond)},
		{"the latest input's tick wins", border.Add(-time.Second), []tickSchedule{{interval: 10 * time.Second}, {interval: 10 * time.Second, offset: 500 * time.Millisecond}}, border.Add(600 * time.Millisecond)},
		{"unaligned ticks: at once", border.Add(-10 * time.Millisecond), nil, border.Add(-10 * time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, reloadStopAt(tc.now, tc.scheds))
		})
	}
}

func TestSchedulesApplyInputOverrides(t *testing.T) {
	c := config.NewConfig()
	c.Agent.Interval = config.Duration(10 * time.Second)
	c.Agent.CollectionJitter = config.Duration(time.Second)
	c.Inputs = []*models.RunningInput{
		{Config: &models.InputConfig{Name: "mem"}},
		{Config: &models.InputConfig{Name: "cpu", Interval: time.Second, CollectionOffset: 200 * time.Millisecond, CollectionJitterSet: true}},
	}
	require.Equal(t, []tickSchedule{
		{interval: 10 * time.Second, jitter: time.Second},
		{interval: time.Second, offset: 200 * time.Millisecond},
	}, schedules(c))
	c.Agent.RoundInterval = false
	require.Empty(t, schedules(c), "without round_interval the ticks follow each start")
}
