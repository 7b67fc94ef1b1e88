package telemetry

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

// TestEventRoundTrip is the path of an event through a relay: the
// installation's listener makes its metric from the document, the stream
// carries it as line protocol, the relay makes the document again and the
// upstream's listener makes the same metric from it.
func TestEventRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	for _, tt := range []struct {
		name string
		doc  string
		want telegraf.Metric
	}{
		{
			name: "every key, each attribute type",
			doc: `{"type":"cluster.create.succeeded","time":"2026-01-02T15:04:05.5+02:00","id":"3f0c-2a","severity":"warning",
				"source":"tkgi-api","attributes":{"plan":"small","worker_nodes":3,"ratio":0.5,"upgrade":false}}`,
			want: metric.New(EventMeasurement,
				map[string]string{"event_type": "cluster.create.succeeded", "severity": "warning", "source": "tkgi-api"},
				map[string]any{"event_id": "3f0c-2a", "plan": "small", "worker_nodes": int64(3), "ratio": 0.5, "upgrade": false},
				time.Date(2026, 1, 2, 13, 4, 5, 500_000_000, time.UTC)),
		},
		{
			name: "defaults: severity info, the receive time, no id, no source",
			doc:  `{"type":"a"}`,
			want: metric.New(EventMeasurement, map[string]string{"event_type": "a", "severity": "info"}, map[string]any{}, now),
		},
		{
			name: "whole floats stay floats, big numbers keep their type",
			doc:  `{"type":"a","attributes":{"f":3.0,"e":1e21,"small":1.5e-7,"neg":-2.0,"max":9223372036854775807,"over":9223372036854775808}}`,
			want: metric.New(EventMeasurement, map[string]string{"event_type": "a", "severity": "info"},
				map[string]any{"f": 3.0, "e": 1e21, "small": 1.5e-7, "neg": -2.0, "max": int64(math.MaxInt64), "over": 9223372036854775808.0}, now),
		},
		{
			name: "strings with quotes, markup, escapes and non-ASCII",
			doc:  `{"type":"a","id":"id \"1\" <x>","attributes":{"s":"a \"b\" \\ <c> & d\né 日本","t":"true","n":"3"}}`,
			want: metric.New(EventMeasurement, map[string]string{"event_type": "a", "severity": "info"},
				map[string]any{"event_id": "id \"1\" <x>", "s": "a \"b\" \\ <c> & d\né 日本", "t": "true", "n": "3"}, now),
		},
		{
			name: "nanosecond time",
			doc:  `{"type":"a","time":"2026-03-04T05:06:07.000000001Z","severity":"error"}`,
			want: metric.New(EventMeasurement, map[string]string{"event_type": "a", "severity": "error"}, map[string]any{},
				time.Date(2026, 3, 4, 5, 6, 7, 1, time.UTC)),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseEvent([]byte(tt.doc), now)
			require.NoError(t, err)
			testutil.RequireMetricsEqual(t, []telegraf.Metric{tt.want}, []telegraf.Metric{m})

			// Through the stream: line protocol, stamped, then unstamped.
			m.AddTag(StampLevel, "standard")
			m.AddField(StampBatchKey, "k1")
			dec, err := NewDecoder(1<<20, 1<<16)
			require.NoError(t, err)
			stored, _, err := dec.Decode(encodeAll(t, []telegraf.Metric{m}), EncodingIdentity, now.Add(time.Hour))
			require.NoError(t, err)
			require.Len(t, stored, 1)
			stored[0].RemoveTag(StampLevel)
			stored[0].RemoveField(StampBatchKey)

			e, err := EventOf(stored[0])
			require.NoError(t, err)
			doc, err := json.Marshal(e)
			require.NoError(t, err)
			again, err := ParseEvent(doc, now.Add(2*time.Hour))
			require.NoError(t, err, "document %s", doc)
			t.Logf("relayed document %s", doc)
			testutil.RequireMetricsEqual(t, []telegraf.Metric{tt.want}, []telegraf.Metric{again})
		})
	}
}

func TestEventOfRefuses(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	event := func(tags map[string]string, fields map[string]any) telegraf.Metric {
		all := map[string]string{"event_type": "a", "severity": "info"}
		for k, v := range tags {
			all[k] = v
		}
		return metric.New(EventMeasurement, all, fields, at)
	}
	for _, tt := range []struct {
		name string
		m    telegraf.Metric
		want string
	}{
		{"another measurement", metric.New("kube_telemetry_nodes", nil, map[string]any{"n": int64(1)}, at), `measurement "kube_telemetry_nodes" is not an event`},
		{"a stamp left on", event(map[string]string{"collector": "c"}, nil), `tag "collector" is not part of an event`},
		{"a stamp field left on", event(nil, map[string]any{"receive_time": int64(1)}), `attribute "receive_time" is reserved`},
		{"no type", metric.New(EventMeasurement, map[string]string{"severity": "info"}, nil, at), `"type" is required`},
		{"unknown severity", event(map[string]string{"severity": "fatal"}, nil), `"severity" "fatal"`},
		{"unsigned field", event(nil, map[string]any{"n": uint64(1)}), `field "n": a uint64 is not an event attribute`},
		{"NaN", event(nil, map[string]any{"x": math.NaN()}), `field "x": NaN has no JSON number`},
		{"id not a string", event(nil, map[string]any{"event_id": int64(7)}), "field event_id is a int64"},
		{"attribute name not allowed", event(nil, map[string]any{"Plan": "x"}), `attribute "Plan": names are`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EventOf(tt.m)
			require.ErrorContains(t, err, tt.want)
		})
	}
}
