package main

import (
	"time"

	"github.com/influxdata/telegraf/config"
)

// maxReloadGuard bounds how long before a collection a watched change waits
// for it: a reload (final flush, load, plugin init, output connects) has at
// least this long, or half the interval, to finish before the next one.
const maxReloadGuard = 5 * time.Second

// maxReloadSettle bounds how long after a due collection the agent keeps
// running so that every input's gather loop has taken the tick: a gather
// that has started completes before the agent stops.
const maxReloadSettle = 100 * time.Millisecond

// tickSchedule is one input's collection schedule as Telegraf's agent
// computes it: aligned to interval borders plus offset, each tick late by
// up to jitter.
type tickSchedule struct {
	interval, offset, jitter time.Duration
}

// schedules lists the inputs' schedules with each input's own interval,
// offset and jitter over the agent's, as the agent applies them. Without
// round_interval the ticks are not aligned (they follow each start), and
// the list is empty.
func schedules(c *config.Config) []tickSchedule {
	if !c.Agent.RoundInterval {
		return nil
	}
	out := make([]tickSchedule, 0, len(c.Inputs))
	for _, in := range c.Inputs {
		s := tickSchedule{
			interval: time.Duration(c.Agent.Interval),
			offset:   time.Duration(c.Agent.CollectionOffset),
			jitter:   time.Duration(c.Agent.CollectionJitter),
		}
		if in.Config.Interval != 0 {
			s.interval = in.Config.Interval
		}
		if in.Config.CollectionOffset != 0 {
			s.offset = in.Config.CollectionOffset
		}
		if in.Config.CollectionJitterSet {
			s.jitter = in.Config.CollectionJitter
		}
		if s.interval > 0 {
			out = append(out, s)
		}
	}
	return out
}

// reloadStopAt is when a running agent may stop for a watched change seen at
// now without an interval going uncollected. The new agent's first tick is
// the first border at least a hundredth of the interval after it starts, so
// stopping just before a border would lose that border's collection: a
// change within guard (half the interval, at most maxReloadGuard) of an
// input's next tick waits until the tick's gather has started, and a tick
// that was due just before now is given the same settle time. Otherwise
// the agent stops at once, leaving the reload at least guard.
func reloadStopAt(now time.Time, scheds []tickSchedule) time.Time {
	stop := now
	later := func(t time.Time) {
		if t.After(stop) {
			stop = t
		}
	}
	for _, s := range scheds {
		guard := min(s.interval/2, maxReloadGuard)
		settle := min(s.interval/10, maxReloadSettle)
		next := nextBorder(now.Add(-s.offset), s.interval).Add(s.offset)
		prev := next.Add(-s.interval)
		if next.Equal(now) {
			prev = next
		}
		if now.Sub(prev) < s.jitter+settle {
			later(prev.Add(s.jitter + settle))
		}
		if next.Sub(now) < guard {
			later(next.Add(s.jitter + settle))
		}
	}
	return stop
}

// nextBorder is the first multiple of interval (since the zero time, as
// Telegraf aligns) at or after t.
func nextBorder(t time.Time, interval time.Duration) time.Time {
	border := t.Truncate(interval)
	if border.Equal(t) {
		return t
	}
	return border.Add(interval)
}
