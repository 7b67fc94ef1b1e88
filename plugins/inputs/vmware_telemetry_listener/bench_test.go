package vmware_telemetry_listener

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/plugins/parsers/influx"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// nodeBatch is n kube_telemetry_node lines as an agent at standard sends them.
func nodeBatch(n int) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "kube_telemetry_node,architecture=amd64,cluster_uid=%s,container_runtime_version=containerd://1.7.27,"+
			"kernel_version=5.15.0-105-generic,kubelet_version=v1.36.3,node=%s,operating_system=linux,"+
			"os_image=Ubuntu\\ 22.04.4\\ LTS,role=worker cpu_allocatable_millicores=15800i,cpu_capacity_millicores=16000i,"+
			"gpu_allocatable=0i,gpu_capacity=0i,memory_allocatable_bytes=66893905920i,memory_capacity_bytes=67430776832i,"+
			"pods_allocatable=110i,pods_capacity=110i,ready=true %d\n", pseudonym(1), pseudonym(i+100), 1_700_000_000_000_000_000+int64(i))
	}
	return []byte(b.String())
}

// BenchmarkServeBatch is one zstd batch of 1000 node metrics through the
// handler (auth, de-duplication, decode, dictionary check, tracking, ack),
// without the network; BenchmarkInfluxParser is what http_listener_v2
// spends parsing the same lines, for comparison.
func BenchmarkServeBatch(b *testing.B) {
	ts := startListener(b, nil)
	body := zstdBytes(b, nodeBatch(1000))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	i := 0
	for b.Loop() {
		i++
		req := httptest.NewRequest(http.MethodPost, ts.l.Path+"?_c=bench&_i="+testInstance, bytes.NewReader(body))
		req.Header.Set("Content-Type", telemetry.ContentType)
		req.Header.Set("Content-Encoding", "zstd")
		req.Header.Set(telemetry.HeaderLevel, "standard")
		req.Header.Set(telemetry.HeaderIdempotencyKey, "k"+strconv.Itoa(i))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		ts.l.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
		ts.pipe.ClearMetrics()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i*1000), "ns/metric")
}

func BenchmarkDecodeBatch(b *testing.B) {
	w, err := newWire("", 32<<20, 64<<10)
	require.NoError(b, err)
	body := zstdBytes(b, nodeBatch(1000))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := w.decode(bytes.NewReader(body), "zstd", telemetry.LevelStandard, time.Now(), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/metric")
}

func BenchmarkInfluxParser(b *testing.B) {
	p := &influx.Parser{}
	require.NoError(b, p.Init())
	lines := nodeBatch(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(lines); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/metric")
}
