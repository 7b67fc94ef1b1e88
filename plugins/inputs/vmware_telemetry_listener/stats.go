package vmware_telemetry_listener

import (
	"net/http"
	"strconv"

	"github.com/influxdata/telegraf/selfstat"
)

// Self-metrics, reported by inputs.internal as internal_vmware_telemetry_listener.
// Every series is registered in Init (the collector is not safe for
// concurrent registration); statuses outside the list count as "other".
const statsMeasurement = "vmware_telemetry_listener"

var answeredStatuses = []int{
	http.StatusOK, http.StatusCreated, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden,
	http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestTimeout, http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusTooManyRequests,
	http.StatusServiceUnavailable,
}

type stats struct {
	requests [2]map[int]selfstat.Stat
	other    [2]selfstat.Stat

	metricsStored     [2]selfstat.Stat
	batchesStored     [2]selfstat.Stat
	duplicates        selfstat.Stat
	bytesRaw          selfstat.Stat
	bytesDecompressed selfstat.Stat
	authFailures      selfstat.Stat
	levelRefusals     selfstat.Stat
	backpressure      selfstat.Stat
	undelivered       selfstat.Stat
	dedupEntries      selfstat.Stat
	// failed writes, reservations and rewrites of dedup_file
	dedupLogErrors selfstat.Stat
	// failed claims and publishes with the jetstream backend
	streamErrors selfstat.Stat
}

func newStats(c *selfstat.Collector, batchesPath, eventsPath string) *stats {
	s := &stats{}
	for i, path := range []string{batchesPath, eventsPath} {
		ep := endpoint(i)
		if path == "" {
			path = "off"
		}
		s.requests[ep] = make(map[int]selfstat.Stat, len(answeredStatuses))
		for _, code := range answeredStatuses {
			s.requests[ep][code] = c.Register(statsMeasurement, "requests",
				map[string]string{"path": path, "status": strconv.Itoa(code)})
		}
		s.other[ep] = c.Register(statsMeasurement, "requests", map[string]string{"path": path, "status": "other"})
		s.metricsStored[ep] = c.Register(statsMeasurement, "metrics_stored", map[string]string{"path": path})
		s.batchesStored[ep] = c.Register(statsMeasurement, "batches_stored", map[string]string{"path": path})
	}
	s.duplicates = c.Register(statsMeasurement, "duplicates", nil)
	s.bytesRaw = c.Register(statsMeasurement, "bytes_received", nil)
	s.bytesDecompressed = c.Register(statsMeasurement, "bytes_decompressed", nil)
	s.authFailures = c.Register(statsMeasurement, "auth_failures", nil)
	s.levelRefusals = c.Register(statsMeasurement, "level_refusals", nil)
	s.backpressure = c.Register(statsMeasurement, "backpressure_refusals", nil)
	s.undelivered = c.Register(statsMeasurement, "undelivered_batches", nil)
	s.dedupEntries = c.Register(statsMeasurement, "dedup_entries", nil)
	s.dedupLogErrors = c.Register(statsMeasurement, "dedup_log_errors", nil)
	s.streamErrors = c.Register(statsMeasurement, "stream_errors", nil)
	return s
}

func (s *stats) request(ep endpoint, code int) {
	if st, ok := s.requests[ep][code]; ok {
		st.Incr(1)
		return
	}
	s.other[ep].Incr(1)
}

func (s *stats) stored(ep endpoint, metrics int64) {
	s.batchesStored[ep].Incr(1)
	s.metricsStored[ep].Incr(metrics)
}
