package vmware_telemetry

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	httpout "github.com/influxdata/telegraf/plugins/outputs/http"
	"github.com/influxdata/telegraf/plugins/serializers/influx"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// benchMetrics is 100k kube_telemetry metrics: 20 gathers of a 5,000-node
// cluster (one kube_telemetry_node line per node and the per-cluster
// lines), with Telegraf's host tag, as both outputs get them. Node names
// matter for the bytes: "sequential" (node-17.corp.example.com) compress to
// almost nothing in outputs.http, the best case for it; "uuid" names carry
// the entropy real node names often have (UUIDs, random suffixes), where a
// pseudonym is shorter than the name it replaces.
func benchMetrics(names string) []telegraf.Metric {
	nodeName := func(i int) string { return "node-" + strconv.Itoa(i) + ".corp.example.com" }
	if names == "uuid" {
		r := rand.New(rand.NewPCG(1, 2))
		ids := make([]string, 5000)
		for i := range ids {
			ids[i] = fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), 0x8000+r.IntN(1<<14), r.Uint64()&(1<<48-1))
		}
		nodeName = func(i int) string { return ids[i] }
	}
	var out []telegraf.Metric
	for i := range 20 {
		out = append(out, kubeTelemetryMetricsNamed(5000, gatherTime.Add(time.Duration(i)*time.Minute), nodeName)...)
	}
	return out
}

// sink is a local HTTP server that reads and counts request bodies as they
// arrive on the wire (compressed) and answers like the telemetry server.
type sink struct {
	*httptest.Server
	bytes, requests atomic.Int64
}

func newSink(tb testing.TB) *sink {
	s := &sink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		s.bytes.Add(n)
		s.requests.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	tb.Cleanup(s.Close)
	return s
}

type phase struct {
	wall, cpu time.Duration
	bytes     int64
	metrics   int
}

const benchBatch = 1000 // Telegraf's default metric_batch_size

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pass writes all metrics through one output in Telegraf's batches and
// measures wall time and the process's CPU time (the output, its
// goroutines and the in-process server, which does the same for both).
func pass(tb testing.TB, out telegraf.Output, s *sink, metrics []telegraf.Metric) phase {
	runtime.GC()
	b0, c0, start := s.bytes.Load(), cpuTime(), time.Now()
	for i := 0; i < len(metrics); i += benchBatch {
		require.NoError(tb, out.Write(metrics[i:min(i+benchBatch, len(metrics))]))
	}
	return phase{wall: time.Since(start), cpu: cpuTime() - c0, bytes: s.bytes.Load() - b0, metrics: len(metrics)}
}

func (p *phase) add(q phase) {
	p.wall += q.wall
	p.cpu += q.cpu
	p.bytes += q.bytes
	p.metrics += q.metrics
}

// allocs counts the allocations of writing all metrics through one output.
func allocs(tb testing.TB, out telegraf.Output, metrics []telegraf.Metric) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < len(metrics); i += benchBatch {
		require.NoError(tb, out.Write(metrics[i:min(i+benchBatch, len(metrics))]))
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// BenchmarkVsOutputsHTTP runs, side by side in each iteration, this output
// (standard level, zstd) and stock outputs.http (influx serializer, gzip,
// batch format) on the same 100k metrics against local HTTP servers, and
// reports throughput, bytes on the wire and allocations per metric, and
// the ratios: run with `make bench-telemetry-output`, which is
//
//	go test -run '^$' -bench VsOutputsHTTP -benchtime 4x ./plugins/outputs/vmware_telemetry/
func BenchmarkVsOutputsHTTP(b *testing.B) {
	for _, names := range []string{"sequential", "uuid"} {
		b.Run("names="+names, func(b *testing.B) { benchVsOutputsHTTP(b, benchMetrics(names)) })
	}
}

func benchVsOutputsHTTP(b *testing.B, metrics []telegraf.Metric) {
	vsink := newSink(b)
	vt, _ := newOutput(b, vsink.URL+"/ph/api/hyper/send", writeKey(b, testKeyHex))
	vt.Log = testutil.Logger{Quiet: true}
	start(b, vt)

	hsink := newSink(b)
	ser := &influx.Serializer{}
	require.NoError(b, ser.Init())
	ht := &httpout.HTTP{
		URL:             hsink.URL + "/write",
		Method:          http.MethodPost,
		ContentEncoding: "gzip",
		UseBatchFormat:  true,
		Log:             testutil.Logger{Quiet: true},
	}
	ht.SetSerializer(ser)
	require.NoError(b, ht.Connect())
	defer ht.Close()

	var v, h phase
	n := 0
	for b.Loop() {
		// Alternate which goes first, so drifting load falls on both.
		if n%2 == 0 {
			v.add(pass(b, vt, vsink, metrics))
			h.add(pass(b, ht, hsink, metrics))
		} else {
			h.add(pass(b, ht, hsink, metrics))
			v.add(pass(b, vt, vsink, metrics))
		}
		n++
	}
	b.StopTimer()
	va, ha := allocs(b, vt, metrics), allocs(b, ht, metrics)

	rate := func(p phase, d time.Duration) float64 { return float64(p.metrics) / d.Seconds() }
	b.ReportMetric(rate(v, v.wall), "vmware_metrics/s")
	b.ReportMetric(rate(h, h.wall), "http_metrics/s")
	b.ReportMetric(rate(v, v.wall)/rate(h, h.wall), "throughput_ratio")
	b.ReportMetric(rate(v, v.cpu)/rate(h, h.cpu), "cpu_efficiency_ratio")
	b.ReportMetric(float64(v.bytes)/float64(v.metrics), "vmware_B/metric")
	b.ReportMetric(float64(h.bytes)/float64(h.metrics), "http_B/metric")
	b.ReportMetric(float64(v.bytes)/float64(h.bytes), "bytes_ratio")
	b.ReportMetric(float64(va)/float64(len(metrics)), "vmware_allocs/metric")
	b.ReportMetric(float64(ha)/float64(len(metrics)), "http_allocs/metric")
}
