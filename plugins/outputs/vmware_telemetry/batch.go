package vmware_telemetry

import (
	"github.com/influxdata/telegraf"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

type line struct {
	start, end int // byte range in the encoder's buffer
	metric     int // index in the batch
}

// batch is the work of one Write; reused across writes.
type batch struct {
	view  telemetry.View
	lines []line
	raw   []byte
	// Counted once the write succeeds, so retries do not count twice.
	dropped  map[telemetry.Verdict]int
	rejected int
}

// prepare applies the policy to every metric and encodes what leaves.
func (t *VMwareTelemetry) prepare(b *batch, metrics []telegraf.Metric) {
	b.lines = b.lines[:0]
	if b.dropped == nil {
		b.dropped = make(map[telemetry.Verdict]int)
	}
	clear(b.dropped)
	b.rejected = 0
	t.encoder.Reset()
	for i, m := range metrics {
		if verdict := t.policy.View(m, &b.view); verdict != telemetry.Sent {
			b.dropped[verdict]++
			continue
		}
		start := t.encoder.Len()
		if err := t.encoder.AppendView(&b.view); err != nil {
			t.Log.Errorf("Dropping a metric that cannot be encoded: %v", err)
			b.rejected++
			continue
		}
		b.lines = append(b.lines, line{start: start, end: t.encoder.Len(), metric: i})
	}
	b.raw = t.encoder.Bytes()
}

func (b *batch) bytes(c chunk) []byte {
	return b.raw[b.lines[c.first].start:b.lines[c.first+c.n-1].end]
}

// done counts the batch's drops once the write succeeded.
func (t *VMwareTelemetry) done(b *batch) {
	for v, n := range b.dropped {
		t.stats.dropped(v, n)
	}
	t.stats.metricsRejected.Incr(int64(b.rejected))
}
