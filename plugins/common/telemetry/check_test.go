package telemetry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"
)

func receivedNode(node, osImage string, ready any) telegraf.Metric {
	return metric.New("kube_telemetry_node",
		map[string]string{
			"cluster_uid": strings.Repeat("a", PseudonymLength), "node": node, "role": "worker",
			"os_image": osImage, "kernel_version": "5.15.0-105-generic", "operating_system": "linux",
			"architecture": "amd64", "kubelet_version": "v1.36.3", "container_runtime_version": "containerd://1.7.27",
		},
		map[string]any{"ready": ready, "cpu_capacity_millicores": int64(16000)}, time.Unix(0, 0))
}

func pseudo(i int) string { return fmt.Sprintf("%0*x", PseudonymLength, i) }

func TestBatchCheckerMatchesCheck(t *testing.T) {
	d := DefaultDictionary()
	tests := []struct {
		name    string
		metrics []telegraf.Metric
		level   Level
		want    string // "" is allowed
	}{
		{"same shape, other nodes", []telegraf.Metric{
			receivedNode(pseudo(1), "Ubuntu 22.04.4 LTS", true),
			receivedNode(pseudo(2), "Ubuntu 22.04.4 LTS", false),
		}, LevelStandard, ""},
		{"second node's name is not a pseudonym", []telegraf.Metric{
			receivedNode(pseudo(1), "Ubuntu 22.04.4 LTS", true),
			receivedNode("worker-2.corp.example", "Ubuntu 22.04.4 LTS", true),
		}, LevelStandard, `tag "node": value is not a pseudonym`},
		{"second node's OS outside the pattern", []telegraf.Metric{
			receivedNode(pseudo(1), "Ubuntu 22.04.4 LTS", true),
			receivedNode(pseudo(2), "jdoe's laptop", true),
		}, LevelStandard, `tag "os_image": value outside`},
		{"second node's field of the wrong type", []telegraf.Metric{
			receivedNode(pseudo(1), "Ubuntu 22.04.4 LTS", true),
			receivedNode(pseudo(2), "Ubuntu 22.04.4 LTS", "yes"),
		}, LevelStandard, `field "ready"`},
		{"level matters", []telegraf.Metric{
			metric.New("kube_telemetry_pods", map[string]string{"customer_number": "C-1"}, map[string]any{"total": int64(1)}, time.Unix(0, 0)),
		}, LevelStandard, `tag "customer_number"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := d.NewBatchChecker()
			// Twice: the second pass answers from remembered verdicts.
			for range 2 {
				err := c.Check(tt.metrics, tt.level)
				if tt.want == "" {
					require.NoError(t, err)
				} else {
					require.ErrorContains(t, err, tt.want)
					require.ErrorIs(t, err, ErrNotAllowed)
				}
			}
		})
	}

	// An identity tag passes at enhanced with the same checker that refused
	// it at standard: the level is part of the shape.
	c := d.NewBatchChecker()
	m := []telegraf.Metric{metric.New("kube_telemetry_pods", map[string]string{"customer_number": "C-1"}, map[string]any{"total": int64(1)}, time.Unix(0, 0))}
	require.Error(t, c.Check(m, LevelStandard))
	require.NoError(t, c.Check(m, LevelEnhanced))
}

// Randomized: metric by metric, the checker's verdict is Check's.
func TestBatchCheckerRandomized(t *testing.T) {
	d := DefaultDictionary()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(vs ...string) string { return vs[rng.IntN(len(vs))] }
	c := d.NewBatchChecker()
	for i := 0; i < 5000; i++ {
		node := pick(pseudo(rng.IntN(50)), "worker-7", strings.Repeat("A", PseudonymLength), pseudo(1)+"0")
		osImage := pick("Ubuntu 22.04.4 LTS", "Photon OS 5.0", "my-distro 1", "")
		var ready any = true
		switch rng.IntN(4) {
		case 0:
			ready = "true"
		case 1:
			ready = int64(1)
		}
		m := receivedNode(node, osImage, ready)
		if rng.IntN(5) == 0 {
			m.AddTag(pick("host", "customer_number", "zone"), pick("x", pseudo(3)))
		}
		level := Level(pick(string(LevelStandard), string(LevelEnhanced)))
		want := d.Check(m, level)
		got := c.Check([]telegraf.Metric{m}, level)
		if want == nil {
			require.NoError(t, got, "metric %v", m)
		} else {
			require.EqualError(t, got, want.Error(), "metric %v", m)
		}
	}
	require.LessOrEqual(t, len(c.verdicts), maxShapes)
}

func TestBatchCheckerKeepsNoLongOrRefusedShapes(t *testing.T) {
	c := DefaultDictionary().NewBatchChecker()
	long := strings.Repeat("x", 4*maxShapeKey)
	tests := []struct {
		name   string
		metric telegraf.Metric
	}{
		{"refused metric", metric.New("not_in_dictionary", map[string]string{"k": long}, map[string]any{"v": 1}, time.Unix(0, 0))},
		{"refused long value", receivedNode(long, long, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Error(t, c.Check([]telegraf.Metric{tt.metric}, LevelStandard))
			require.Empty(t, c.verdicts)
		})
	}
	require.NoError(t, c.Check([]telegraf.Metric{receivedNode(pseudo(1), "Ubuntu 22.04.4 LTS", true)}, LevelStandard))
	require.Len(t, c.verdicts, 1)
	for k := range c.verdicts {
		require.LessOrEqual(t, len(k), maxShapeKey)
	}
}

func TestDictionaryCheck(t *testing.T) {
	d := DefaultDictionary()
	pseudo := testPseudonymizer(t).Pseudonym("node", "n1")
	pods := func(tags map[string]string, fields map[string]any) telegraf.Metric {
		if fields == nil {
			fields = map[string]any{"total": int64(1)}
		}
		return metric.New("kube_telemetry_pods", tags, fields, ts)
	}
	tests := []struct {
		name  string
		m     telegraf.Metric
		level Level
		want  string // "" allowed
	}{
		{"plain", pods(map[string]string{"cluster_uid": pseudo}, nil), LevelStandard, ""},
		{"other accepted", metric.New("kube_telemetry_node_role", map[string]string{"role": OtherValue}, map[string]any{"nodes": int64(1)}, ts), LevelStandard, ""},
		{"identity at enhanced", pods(map[string]string{TagCustomerNumber: "C-1"}, nil), LevelEnhanced, ""},
		{"level none", pods(nil, nil), LevelNone, "nothing is sent at that level"},
		{"level unknown", pods(nil, nil), "full", `level "full" unknown`},
		{"identity at standard", pods(map[string]string{TagCustomerNumber: "C-1"}, nil), LevelStandard, "identity is sent at level enhanced only"},
		{"not a pseudonym", pods(map[string]string{"cluster_uid": "3f1e2d4c-aaaa-bbbb-cccc-123456789012"}, nil), LevelStandard, "not a pseudonym"},
		{"drop class", pods(map[string]string{"host": "h"}, nil), LevelStandard, "class drop is never sent"},
		{"unlisted tag", pods(map[string]string{"namespace": "payments"}, nil), LevelStandard, `tag "namespace": not listed`},
		{"unlisted field", pods(nil, map[string]any{"total": int64(1), "owner": "x"}), LevelStandard, `field "owner": not listed`},
		{"wrong type", pods(nil, map[string]any{"total": "1"}), LevelStandard, "value of type string where the dictionary says int"},
		{"unlisted measurement", metric.New("cpu", nil, map[string]any{"x": 1.0}, ts), LevelEnhanced, `measurement "cpu" not in dictionary`},
		{"outside pattern", metric.New("kube_telemetry_node_role", map[string]string{"role": "team-a"}, map[string]any{"nodes": int64(1)}, ts), LevelStandard, "outside the listed values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Check(tt.m, tt.level)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.True(t, errors.Is(err, ErrNotAllowed))
		})
	}
}
