package vmware_telemetry_stream

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/influxdata/telegraf/testutil"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestStateFields(t *testing.T) {
	consumer := &jetstream.ConsumerInfo{NumPending: 120, NumAckPending: 16, NumRedelivered: 3}
	for _, tt := range []struct {
		name   string
		stream *jetstream.StreamInfo
		want   map[string]any
	}{
		{
			name:   "consumer only when the stream is unknown",
			stream: nil,
			want:   map[string]any{"pending": int64(120), "ack_pending": int64(16), "redelivered": int64(3)},
		},
		{
			name:   "single server: no replica count",
			stream: &jetstream.StreamInfo{State: jetstream.StreamState{Msgs: 500, Bytes: 1 << 20}},
			want: map[string]any{"pending": int64(120), "ack_pending": int64(16), "redelivered": int64(3),
				"stream_messages": int64(500), "stream_bytes": int64(1 << 20)},
		},
		{
			name: "three replicas, one offline: the leader and one in sync",
			stream: &jetstream.StreamInfo{
				State: jetstream.StreamState{Msgs: 500, Bytes: 1 << 20},
				Cluster: &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{
					{Name: "n2", Current: true}, {Name: "n3", Offline: true},
				}},
			},
			want: map[string]any{"pending": int64(120), "ack_pending": int64(16), "redelivered": int64(3),
				"stream_messages": int64(500), "stream_bytes": int64(1 << 20), "stream_replicas_current": int64(2)},
		},
		{
			name: "no leader: no replica counts as in sync but the current ones",
			stream: &jetstream.StreamInfo{
				Cluster: &jetstream.ClusterInfo{Replicas: []*jetstream.PeerInfo{{Name: "n2", Current: true}, {Name: "n3"}}},
			},
			want: map[string]any{"pending": int64(120), "ack_pending": int64(16), "redelivered": int64(3),
				"stream_messages": int64(0), "stream_bytes": int64(0), "stream_replicas_current": int64(1)},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, stateFields(consumer, tt.stream))
		})
	}
}

// With no NATS server answering, Gather says what to check at once and
// adds nothing.
func TestGatherWithEngineDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := fmt.Sprintf("nats://%s", ln.Addr())
	require.NoError(t, ln.Close())

	s := newTestStream(t, []string{url})
	require.NoError(t, s.Init())
	var acc testutil.Accumulator
	require.NoError(t, s.Start(&acc))
	defer s.Stop()

	start := time.Now()
	err = s.Gather(&acc)
	require.ErrorContains(t, err, `reading consumer "tkgi-lake" of stream "TKGI_TELEMETRY": not connected to NATS`)
	require.ErrorContains(t, err, "check that the servers ["+url+"] are up and reachable")
	require.Less(t, time.Since(start), stateTimeout)
	require.Empty(t, acc.GetTelegrafMetrics())
}
