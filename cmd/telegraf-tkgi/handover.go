package main

import (
	"log"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/outputs/prometheus_client"
)

// promHandover keeps prometheus_client outputs serving across a reload.
// Telegraf closes the old agent's listener when it stops and the new one
// serves nothing until its first flush, so a scrape during a reload fails
// or finds no series and Prometheus marks them stale. Here a stopped
// agent's prometheus_client keeps listening until the next agent connects
// one on the same address; that one starts with the series the old one
// served, then its own flushes replace them.
type promHandover struct {
	mu sync.Mutex
	// pending: stopped outputs still serving, by listen address.
	pending map[string]*handoverClient
}

func newPromHandover() *promHandover {
	return &promHandover{pending: make(map[string]*handoverClient)}
}

// adopt wraps c's prometheus_client outputs, and closes the pending ones
// whose address no new output takes over.
func (h *promHandover) adopt(c *config.Config) {
	taken := make(map[string]bool)
	for _, ro := range c.Outputs {
		pc, ok := ro.Output.(*prometheus_client.PrometheusClient)
		if !ok {
			continue
		}
		ro.Output = &handoverClient{PrometheusClient: pc, handover: h, series: make(map[uint64]servedSeries)}
		taken[pc.Listen] = true
	}
	h.mu.Lock()
	var orphans []*handoverClient
	for addr, old := range h.pending {
		if !taken[addr] {
			orphans = append(orphans, old)
			delete(h.pending, addr)
		}
	}
	h.mu.Unlock()
	for _, old := range orphans {
		old.shutdown()
	}
}

// closeAll closes every output still serving: the process is stopping.
func (h *promHandover) closeAll() {
	h.mu.Lock()
	pending := h.pending
	h.pending = make(map[string]*handoverClient)
	h.mu.Unlock()
	for _, old := range pending {
		old.shutdown()
	}
}

func (h *promHandover) park(c *handoverClient) {
	h.mu.Lock()
	old := h.pending[c.Listen]
	h.pending[c.Listen] = c
	h.mu.Unlock()
	if old != nil {
		old.shutdown()
	}
}

func (h *promHandover) take(addr string) *handoverClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.pending[addr]
	delete(h.pending, addr)
	return old
}

// servedSeries is the last value of one series and when it was written.
type servedSeries struct {
	metric  telegraf.Metric
	written time.Time
}

// handoverClient is a prometheus_client output that remembers the last
// value of each series it was given, parks itself instead of closing, and
// takes over from a parked one when it connects.
type handoverClient struct {
	*prometheus_client.PrometheusClient
	handover *promHandover

	mu     sync.Mutex
	series map[uint64]servedSeries
	pruned time.Time
}

func (c *handoverClient) Write(metrics []telegraf.Metric) error {
	now := time.Now()
	c.mu.Lock()
	for _, m := range metrics {
		id := m.HashID()
		s, ok := c.series[id]
		if !ok {
			// An untracked copy: the agent accepts or drops m after Write.
			s.metric = metric.New(m.Name(), m.Tags(), nil, m.Time(), m.Type())
		}
		// A series' fields may come in separate metrics: keep them all.
		for _, f := range m.FieldList() {
			s.metric.AddField(f.Key, f.Value)
		}
		s.metric.SetTime(m.Time())
		s.written = now
		c.series[id] = s
	}
	// Series the output no longer serves are not carried over either:
	// forget them, or the copy grows with every series ever seen.
	if expiration := time.Duration(c.ExpirationInterval); expiration > 0 && now.Sub(c.pruned) > expiration {
		for id, s := range c.series {
			if now.Sub(s.written) > expiration {
				delete(c.series, id)
			}
		}
		c.pruned = now
	}
	c.mu.Unlock()
	return c.PrometheusClient.Write(metrics)
}

// Connect starts with what the parked output on this address serves, then
// closes it and listens in its place.
func (c *handoverClient) Connect() error {
	old := c.handover.take(c.Listen)
	if old == nil {
		return c.PrometheusClient.Connect()
	}
	served := old.served(time.Duration(c.ExpirationInterval))
	if err := c.Write(served); err != nil {
		log.Printf("W! [outputs.prometheus_client] Carrying %d series over the reload failed: %v", len(served), err)
	}
	old.shutdown()
	return c.PrometheusClient.Connect()
}

// Close parks the output: it keeps serving until the next agent's output on
// the same address connects, or the process stops.
func (c *handoverClient) Close() error {
	c.handover.park(c)
	return nil
}

func (c *handoverClient) shutdown() {
	if err := c.PrometheusClient.Close(); err != nil {
		log.Printf("E! [outputs.prometheus_client] Closing the listener on %s failed: %v", c.Listen, err)
	}
}

// served returns the series written within expiration (all of them when it
// is zero), as the output would still serve them.
func (c *handoverClient) served(expiration time.Duration) []telegraf.Metric {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]telegraf.Metric, 0, len(c.series))
	for _, s := range c.series {
		if expiration > 0 && time.Since(s.written) > expiration {
			continue
		}
		out = append(out, s.metric.Copy())
	}
	return out
}
