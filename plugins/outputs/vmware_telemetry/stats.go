package vmware_telemetry

import (
	"github.com/influxdata/telegraf/selfstat"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Self-metrics, reported by inputs.internal as internal_vmware_telemetry.
const statsMeasurement = "vmware_telemetry"

type stats struct {
	batchesSent     selfstat.Stat
	metricsSent     selfstat.Stat
	bytesRaw        selfstat.Stat
	bytesCompressed selfstat.Stat
	retries         selfstat.Stat
	refusedAuth     selfstat.Stat
	splits          selfstat.Stat
	duplicates      selfstat.Stat
	batchesRejected selfstat.Stat
	metricsRejected selfstat.Stat
	previewed       selfstat.Stat
	// metrics dropped before sending, by reason: the level (none), a
	// measurement the dictionary does not list, no allowed field.
	droppedBy map[telemetry.Verdict]selfstat.Stat
}

func newStats(c *selfstat.Collector) *stats {
	if c == nil {
		c = selfstat.NewCollector(nil)
	}
	s := &stats{
		batchesSent:     c.Register(statsMeasurement, "batches_sent", nil),
		metricsSent:     c.Register(statsMeasurement, "metrics_sent", nil),
		bytesRaw:        c.Register(statsMeasurement, "bytes_raw", nil),
		bytesCompressed: c.Register(statsMeasurement, "bytes_compressed", nil),
		retries:         c.Register(statsMeasurement, "retries", nil),
		refusedAuth:     c.Register(statsMeasurement, "refused_auth", nil),
		splits:          c.Register(statsMeasurement, "splits", nil),
		duplicates:      c.Register(statsMeasurement, "duplicates", nil),
		batchesRejected: c.Register(statsMeasurement, "batches_rejected", nil),
		metricsRejected: c.Register(statsMeasurement, "metrics_rejected", nil),
		previewed:       c.Register(statsMeasurement, "metrics_previewed", nil),
		droppedBy:       make(map[telemetry.Verdict]selfstat.Stat),
	}
	for _, v := range []telemetry.Verdict{telemetry.DroppedLevel, telemetry.DroppedMeasurement, telemetry.DroppedEmpty} {
		s.droppedBy[v] = c.Register(statsMeasurement, "metrics_dropped", map[string]string{"reason": v.String()})
	}
	return s
}

func (s *stats) dropped(v telemetry.Verdict, n int) {
	if st, ok := s.droppedBy[v]; ok {
		st.Incr(int64(n))
	}
}

func (s *stats) sent(metrics, raw, compressed int) {
	s.batchesSent.Incr(1)
	s.metricsSent.Incr(int64(metrics))
	s.bytesRaw.Incr(int64(raw))
	s.bytesCompressed.Incr(int64(compressed))
}

func (s *stats) reject(metrics int) {
	s.batchesRejected.Incr(1)
	s.metricsRejected.Incr(int64(metrics))
}
