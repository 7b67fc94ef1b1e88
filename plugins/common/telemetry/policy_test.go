package telemetry

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func testPseudonymizer(t testing.TB) *Pseudonymizer {
	ps, err := NewPseudonymizer(testKey)
	require.NoError(t, err)
	return ps
}

var ts = time.Unix(1700000000, 0)

func nodeMetric() telegraf.Metric {
	return metric.New("kube_telemetry_node",
		map[string]string{
			"cluster_uid": "3f1e2d4c-aaaa-bbbb-cccc-123456789012", "cluster_name": "prod-east", "host": "agent-7f9c",
			"node": "worker-01.corp.example.com", "role": "worker", "os_image": "Ubuntu 22.04.4 LTS",
			"kernel_version": "5.15.0-91-generic", "operating_system": "linux", "architecture": "amd64",
			"kubelet_version": "v1.36.3", "container_runtime_version": "containerd://1.7.2",
			"namespace": "payments", // not listed: must not leave
		},
		map[string]any{
			"ready": true, "cpu_capacity_millicores": int64(4000), "memory_capacity_bytes": int64(16 << 30),
			"pods_capacity": int64(110), "owner": "jdoe@example.com", // not listed
		}, ts)
}

func TestPolicyView(t *testing.T) {
	d := DefaultDictionary()
	ps := testPseudonymizer(t)
	uid := ps.Pseudonym("cluster_uid", "3f1e2d4c-aaaa-bbbb-cccc-123456789012")
	cname := ps.Pseudonym("cluster_name", "prod-east")
	node := ps.Pseudonym("node", "worker-01.corp.example.com")
	standardNode := metric.New("kube_telemetry_node",
		map[string]string{
			"cluster_uid": uid, "cluster_name": cname, "node": node, "role": "worker", "os_image": "Ubuntu 22.04.4 LTS",
			"kernel_version": "5.15.0-91-generic", "operating_system": "linux", "architecture": "amd64",
			"kubelet_version": "v1.36.3", "container_runtime_version": "containerd://1.7.2",
		},
		map[string]any{"ready": true, "cpu_capacity_millicores": int64(4000), "memory_capacity_bytes": int64(16 << 30), "pods_capacity": int64(110)},
		ts)
	enhancedNode := standardNode.Copy()
	enhancedNode.AddTag(TagCustomerNumber, "C-1234")
	enhancedNode.AddTag(TagInstallationType, "production")

	tests := []struct {
		name    string
		level   Level
		in      telegraf.Metric
		verdict Verdict
		want    telegraf.Metric
	}{
		{"none drops", LevelNone, nodeMetric(), DroppedLevel, nil},
		{"standard", LevelStandard, nodeMetric(), Sent, standardNode},
		{"enhanced adds identity", LevelEnhanced, nodeMetric(), Sent, enhancedNode},
		{"unknown measurement", LevelStandard, metric.New("cpu", nil, map[string]any{"usage": 1.0}, ts), DroppedMeasurement, nil},
		{"no allowed field", LevelStandard, metric.New("kube_telemetry_pods", map[string]string{"cluster_uid": "u"},
			map[string]any{"secret": "x", "total": "not an int"}, ts), DroppedEmpty, nil},
		{"identity in input ignored at standard", LevelStandard,
			metric.New("kube_telemetry_pods", map[string]string{"customer_number": "forged"}, map[string]any{"total": int64(3)}, ts),
			Sent, metric.New("kube_telemetry_pods", nil, map[string]any{"total": int64(3)}, ts)},
		{"identity in input replaced at enhanced", LevelEnhanced,
			metric.New("kube_telemetry_pods", map[string]string{"customer_number": "forged", "installation_type": "forged"}, map[string]any{"total": int64(3)}, ts),
			Sent, metric.New("kube_telemetry_pods", map[string]string{"customer_number": "C-1234", "installation_type": "production"}, map[string]any{"total": int64(3)}, ts)},
		{"unexpected values become other", LevelStandard,
			metric.New("kube_telemetry_node_role", map[string]string{"role": "team-payments"}, map[string]any{"nodes": int64(2)}, ts),
			Sent, metric.New("kube_telemetry_node_role", map[string]string{"role": OtherValue}, map[string]any{"nodes": int64(2)}, ts)},
		{"string field outside pattern", LevelStandard,
			metric.New("kube_telemetry_cluster", nil, map[string]any{"server_version": "10.0.0.1", "cni": "antrea", "pages": int64(4)}, ts),
			Sent, metric.New("kube_telemetry_cluster", nil, map[string]any{"server_version": OtherValue, "cni": "antrea", "pages": int64(4)}, ts)},
		{"wrong field type left out", LevelStandard,
			metric.New("kube_telemetry_cluster", nil, map[string]any{"server_version": int64(1), "pages": 4.5, "errors": uint64(2)}, ts),
			Sent, metric.New("kube_telemetry_cluster", nil, map[string]any{"errors": uint64(2)}, ts)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(d, tt.level, ps, Identity{CustomerNumber: "C-1234", InstallationType: "production"})
			require.NoError(t, err)
			got, verdict := p.Apply(tt.in)
			require.Equal(t, tt.verdict, verdict)
			if tt.want == nil {
				require.Nil(t, got)
				return
			}
			testutil.RequireMetricEqual(t, tt.want, got)
			// What a policy produces passes the listener's check.
			require.NoError(t, d.Check(got, tt.level))
		})
	}
}

func TestPolicyViewOrder(t *testing.T) {
	p, err := NewPolicy(DefaultDictionary(), LevelEnhanced, testPseudonymizer(t),
		Identity{CustomerNumber: "C-1", InstallationLabel: "lab", InstallationType: "test"})
	require.NoError(t, err)
	var v View
	require.Equal(t, Sent, p.View(nodeMetric(), &v))
	for i := 1; i < len(v.Tags); i++ {
		require.Less(t, v.Tags[i-1].Key, v.Tags[i].Key)
	}
	for i := 1; i < len(v.Fields); i++ {
		require.Less(t, v.Fields[i-1].Key, v.Fields[i].Key)
	}
	// The view's slices are reused.
	tags := &v.Tags[0]
	require.Equal(t, Sent, p.View(nodeMetric(), &v))
	require.Same(t, tags, &v.Tags[0])
}

func TestNewPolicyErrors(t *testing.T) {
	d := DefaultDictionary()
	ps := testPseudonymizer(t)
	tests := []struct {
		name  string
		d     *Dictionary
		level Level
		ps    *Pseudonymizer
		id    Identity
		want  string
	}{
		{"no dictionary", nil, LevelStandard, ps, Identity{}, "no data dictionary"},
		{"bad level", d, "full", ps, Identity{}, `participation level "full" unknown`},
		{"no pseudonymizer", d, LevelStandard, nil, Identity{}, "needs a pseudonymizer"},
		{"no customer number", d, LevelEnhanced, ps, Identity{InstallationLabel: "x"}, "needs a customer number"},
		{"bad identity value", d, LevelEnhanced, ps, Identity{CustomerNumber: "C\n1"}, "customer_number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPolicy(tt.d, tt.level, tt.ps, tt.id)
			require.ErrorContains(t, err, tt.want)
		})
	}
	// none needs nothing else.
	_, err := NewPolicy(d, LevelNone, nil, Identity{})
	require.NoError(t, err)

	// A dictionary without identity tags cannot carry them.
	small, err := ParseDictionary([]byte("version = \"1\"\n[measurements.m]\nmeaning = \"m\"\nfields.f = { class = \"keep\", type = \"int\", meaning = \"f\" }\n"), "small")
	require.NoError(t, err)
	_, err = NewPolicy(small, LevelEnhanced, ps, Identity{CustomerNumber: "C-1"})
	require.ErrorContains(t, err, `does not list "customer_number" as an identity tag`)
}

// One policy serves concurrent writers, each with its own View.
func TestPolicyConcurrent(t *testing.T) {
	p, err := NewPolicy(DefaultDictionary(), LevelEnhanced, testPseudonymizer(t), Identity{CustomerNumber: "C-1"})
	require.NoError(t, err)
	want, verdict := p.Apply(nodeMetric())
	require.Equal(t, Sent, verdict)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 500 {
				m := nodeMetric()
				m.AddTag("node", fmt.Sprintf("worker-%d-%d", i, j%20))
				got, verdict := p.Apply(m)
				require.Equal(t, Sent, verdict)
				require.Len(t, got.TagList(), len(want.TagList()))
			}
		}()
	}
	wg.Wait()
}

// BenchmarkPolicyView is the output's per-metric work before encoding, on
// node lines of a 1,000-node cluster (each node its own pseudonym, the
// cluster tags the same on every line).
func BenchmarkPolicyView(b *testing.B) {
	p, err := NewPolicy(DefaultDictionary(), LevelStandard, testPseudonymizer(b), Identity{})
	require.NoError(b, err)
	metrics := make([]telegraf.Metric, 1000)
	for i := range metrics {
		m := nodeMetric()
		m.AddTag("node", fmt.Sprintf("worker-%04d.corp.example.com", i))
		metrics[i] = m
	}
	var v View
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if p.View(metrics[i%len(metrics)], &v) != Sent {
			b.Fatal("not sent")
		}
		i++
	}
}
