package vmware_telemetry_stream

import (
	"github.com/influxdata/telegraf/selfstat"
)

// Self-metrics, reported by inputs.internal as
// internal_vmware_telemetry_stream and tagged with the durable consumer and
// the stream, so a lake consumer and a relay on one stream stay apart.
// Each mode registers only the counters it moves, in Init (the collector is
// not safe for concurrent registration).
const statsMeasurement = "vmware_telemetry_stream"

// statField is one self-metric field: its name, the mode that moves it
// ("lake", "relay" or "" for both) and what it counts, as the README says.
type statField struct {
	name, mode, counts string
}

// statFields is the list the plugin registers and the README documents.
var statFields = []statField{
	{"batches_written", "lake", "batches every output wrote (then marked in lake_bucket and acknowledged)"},
	{"metrics_written", "lake", "metrics of those batches"},
	{"batches_skipped", "lake", "batches delivered again that lake_bucket says were written before: acknowledged, not written again"},
	{"batches_dropped_by_outputs", "lake", "batches an output dropped (buffer overflow): sent back to the stream, delivered again"},
	{"lake_bucket_errors", "lake", "reads or puts of lake_bucket that failed, each try: a read failure delivers the batch later, a put failure is tried again until it lands (a crash meanwhile lets a redelivery write the batch again)"},
	{"batches_relayed", "relay", "batches (or, after a `413`, parts of one) the upstream answered 201, or 200 duplicate"},
	{"batches_duplicate", "relay", "of those, the ones the upstream answered 200 duplicate (it had them)"},
	{"relay_failures", "relay", "tries that failed (no answer, 429, 5xx, 401/403/407...): each sent back to the stream and retried after a backoff"},
	{"batches_refused", "relay", "batches the upstream answered 400 or 422, and single metrics still too large after halving (413): dropped, never relayed"},
	{"messages_terminated", "", "messages that cannot be read (corrupt, over the limits, not stamped): terminated, never delivered again"},
}

type stats struct {
	batchesWritten     selfstat.Stat
	metricsWritten     selfstat.Stat
	batchesSkipped     selfstat.Stat
	droppedByOutputs   selfstat.Stat
	lakeBucketErrors   selfstat.Stat
	batchesRelayed     selfstat.Stat
	batchesDuplicate   selfstat.Stat
	relayFailures      selfstat.Stat
	batchesRefused     selfstat.Stat
	messagesTerminated selfstat.Stat
}

// newStats registers the counters of mode ("lake" or "relay").
func newStats(c *selfstat.Collector, mode, durable, stream string) *stats {
	tags := map[string]string{"durable": durable, "stream": stream}
	byName := map[string]selfstat.Stat{}
	for _, f := range statFields {
		if f.mode == "" || f.mode == mode {
			byName[f.name] = c.Register(statsMeasurement, f.name, tags)
		}
	}
	return &stats{
		batchesWritten:     byName["batches_written"],
		metricsWritten:     byName["metrics_written"],
		batchesSkipped:     byName["batches_skipped"],
		droppedByOutputs:   byName["batches_dropped_by_outputs"],
		lakeBucketErrors:   byName["lake_bucket_errors"],
		batchesRelayed:     byName["batches_relayed"],
		batchesDuplicate:   byName["batches_duplicate"],
		relayFailures:      byName["relay_failures"],
		batchesRefused:     byName["batches_refused"],
		messagesTerminated: byName["messages_terminated"],
	}
}

// relayed counts a batch the upstream took; duplicate when it had it.
func (s *stats) relayed(duplicate bool) {
	s.batchesRelayed.Incr(1)
	if duplicate {
		s.batchesDuplicate.Incr(1)
	}
}

// written counts a batch every output wrote.
func (s *stats) written(metrics int) {
	s.batchesWritten.Incr(1)
	s.metricsWritten.Incr(int64(metrics))
}
