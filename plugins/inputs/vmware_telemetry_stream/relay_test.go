package vmware_telemetry_stream

import (
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

func TestRelayInit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		set     func(*Stream)
		wantErr string
	}{
		{name: "own durable and an https url", set: func(*Stream) {}},
		{name: "the lake's durable", set: func(s *Stream) { s.Durable = "tkgi-lake" }, wantErr: "give the relay its own consumer"},
		{name: "no url", set: func(s *Stream) { s.Relay.URL = "" }, wantErr: "relay.url"},
		{name: "url without scheme", set: func(s *Stream) { s.Relay.URL = "telemetry.example.com/ph" }, wantErr: "relay.url"},
		{name: "backoff under a second", set: func(s *Stream) { s.Relay.MaxBackoff = config.Duration(time.Millisecond) }, wantErr: "relay.max_backoff"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := inputs.Inputs["vmware_telemetry_stream"]().(*Stream)
			s.Servers = []string{"nats://127.0.0.1:4222"}
			s.Durable = "tkgi-relay"
			s.Relay = &Relay{URL: "https://telemetry.example.com" + telemetry.DefaultPath}
			tt.set(s)
			err := s.Init()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, config.Duration(time.Minute), s.Relay.MaxBackoff)
			require.Equal(t, config.Duration(30*time.Second), s.Relay.Timeout)
		})
	}
}

func stamped(collector, instance, level string, fields map[string]any) telegraf.Metric {
	m := metric.New("kube_telemetry_nodes", map[string]string{"cluster_uid": "c1"}, fields, time.Unix(1_700_000_000, 0))
	m.AddTag(stampCollector, collector)
	m.AddTag(stampInstance, instance)
	m.AddTag(stampLevel, level)
	m.AddField(stampReceiveTime, int64(42))
	m.AddField(stampBatchKey, "k1")
	return m
}

func TestUnstamp(t *testing.T) {
	const inst = "0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name    string
		metrics []telegraf.Metric
		wantErr string
	}{
		{name: "identity from the stamps, metrics as the agent sent them", metrics: []telegraf.Metric{
			stamped("tkgi-agent", inst, "standard", map[string]any{"total": int64(3)}),
			stamped("tkgi-agent", inst, "standard", map[string]any{"total": int64(4)}),
		}},
		{name: "no metrics", wantErr: "no metrics"},
		{name: "not stamped", metrics: []telegraf.Metric{
			metric.New("m", nil, map[string]any{"v": int64(1)}, time.Unix(1, 0)),
		}, wantErr: "lacks the listener's"},
		{name: "two senders in one batch", metrics: []telegraf.Metric{
			stamped("tkgi-agent", inst, "standard", map[string]any{"total": int64(3)}),
			stamped("tkgi-agent", inst, "enhanced", map[string]any{"total": int64(4)}),
		}, wantErr: "mixes senders or levels"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := unstamp(telemetrystream.Batch{ID: "id", Key: "k1", Metrics: tt.metrics})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "k1", u.key)
			require.Equal(t, "tkgi-agent", u.collector)
			require.Equal(t, inst, u.instance)
			require.Equal(t, "standard", u.level)
			require.Equal(t, 2, u.n)
			dec, err := telemetry.NewDecoder(1<<20, 1<<16)
			require.NoError(t, err)
			got, _, err := dec.Decode(u.body, telemetry.EncodingZstd, time.Now())
			require.NoError(t, err)
			require.Len(t, got, 2)
			for i, m := range got {
				require.Equal(t, map[string]string{"cluster_uid": "c1"}, m.Tags(), "no stamp tags upstream")
				require.Equal(t, map[string]any{"total": int64(3 + i)}, m.Fields(), "no stamp fields upstream")
			}
			// The stored metrics keep their stamps (the relay copies).
			require.True(t, tt.metrics[0].HasTag(stampCollector))
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {7, 30 * time.Second}, {100, 30 * time.Second},
	} {
		require.Equal(t, tt.want, backoff(tt.failures, 30*time.Second), "after %d failures", tt.failures)
	}
}
