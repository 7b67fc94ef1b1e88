package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

// The benchmark's batches must be ones the listener accepts, or it would
// measure refusals.
func TestPayloadPassesTheDictionary(t *testing.T) {
	dec, err := telemetry.NewDecoder(64<<20, 1<<20)
	require.NoError(t, err)
	for _, seed := range []int{0, 1, 7, 1 << 20} {
		metrics, _, err := dec.Decode(payload(seed, 500), telemetry.EncodingIdentity, time.Now())
		require.NoError(t, err)
		require.Len(t, metrics, 500)
		require.NoError(t, telemetry.DefaultDictionary().NewBatchChecker().Check(metrics, telemetry.LevelStandard))
		for _, m := range metrics {
			node, _ := m.GetTag("node")
			require.True(t, telemetry.IsPseudonym(node), node)
		}
	}
}

// Each NATS server's CPU goes to the role it held for the whole window,
// per server; a window in which a leader moved is left out.
func TestRolesBetween(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	tests := []struct {
		name          string
		before, after natsSample
		wantPerMetric map[string]float64 // ticks per metric per server
		wantServers   map[string]int
		wantMoved     int
	}{
		{
			name:          "one server leads both",
			before:        natsSample{ticks: []int64{100, 10, 20}, streamLeader: "n1", bucketLeader: "n1"},
			after:         natsSample{ticks: []int64{500, 110, 140}, streamLeader: "n1", bucketLeader: "n1"},
			wantPerMetric: map[string]float64{"stream+bucket leader": 400.0 / 1000, "follower": 220.0 / 2000},
			wantServers:   map[string]int{"stream+bucket leader": 1, "follower": 2},
		},
		{
			name:          "leaders apart",
			before:        natsSample{ticks: []int64{0, 0, 0}, streamLeader: "n2", bucketLeader: "n3"},
			after:         natsSample{ticks: []int64{50, 300, 150}, streamLeader: "n2", bucketLeader: "n3"},
			wantPerMetric: map[string]float64{"stream leader": 0.3, "bucket leader": 0.15, "follower": 0.05},
			wantServers:   map[string]int{"stream leader": 1, "bucket leader": 1, "follower": 1},
		},
		{
			name:          "stream leader moved",
			before:        natsSample{ticks: []int64{0, 0, 0}, streamLeader: "n2", bucketLeader: "n2"},
			after:         natsSample{ticks: []int64{50, 300, 150}, streamLeader: "n1", bucketLeader: "n2"},
			wantPerMetric: map[string]float64{},
			wantServers:   map[string]int{},
			wantMoved:     1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rolesBetween(names, tt.before, tt.after, 1000, 2000)
			require.Equal(t, tt.wantMoved, r.moved)
			require.Equal(t, tt.wantServers, r.servers)
			got := map[string]float64{}
			for role, ticks := range r.ticks {
				got[role] = float64(ticks) / float64(r.metrics[role])
			}
			require.InDeltaMapValues(t, tt.wantPerMetric, got, 1e-9)
			if tt.wantMoved == 0 {
				var nats int64
				for i := range names {
					nats += tt.after.ticks[i] - tt.before.ticks[i]
				}
				require.Equal(t, nats, r.natsTicks)
				require.Equal(t, 2000-nats, r.replicaTicks)
				require.Equal(t, int64(1000), r.windowMetrics)
			} else {
				require.Zero(t, r.natsTicks+r.replicaTicks+r.windowMetrics)
			}

			var total natsRoles
			total.add(r)
			total.add(r)
			for role := range r.ticks {
				require.Equal(t, 2*r.ticks[role], total.ticks[role])
				require.Equal(t, 2*r.servers[role], total.servers[role])
			}
			require.Equal(t, 2*tt.wantMoved, total.moved)
		})
	}
}

// On a real cluster the benchmark finds the leaders of the stream and the
// key bucket the replicas use by default, and reads every server's CPU.
func TestNATSLeadersOnRealCluster(t *testing.T) {
	c := testnats.Start(t)
	_, js := c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: telemetrystream.DefaultStream, Subjects: []string{"bench.>"}, Replicas: 3})
	require.NoError(t, err)
	_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: telemetrystream.DefaultDedupBucket, Replicas: 3})
	require.NoError(t, err)

	s, err := natsLeaders(c)
	require.NoError(t, err)
	require.Contains(t, c.Names(), s.streamLeader)
	require.Contains(t, c.Names(), s.bucketLeader)
	ticks := nodeTicks(c)
	require.Len(t, ticks, 3)
	t.Logf("CPU ticks by server: %v", ticks)
	require.False(t, slices.Contains(ticks, 0), "a running server has used some CPU: %v", ticks)
}

func TestStatusCounts(t *testing.T) {
	for _, tt := range []struct {
		in   map[int]int64
		want string
	}{
		{in: nil, want: "0"},
		{in: map[int]int64{503: 4, 429: 1}, want: "429x1 503x4"},
		{in: map[int]int64{statusDuplicate: 3, 503: 2}, want: "dupx3 503x2"},
	} {
		require.Equal(t, tt.want, statusCounts(tt.in))
	}
}
