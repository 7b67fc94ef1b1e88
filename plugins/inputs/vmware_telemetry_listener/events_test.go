package vmware_telemetry_listener

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

func TestParseEvents(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UTC()
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		body string
		want []telegraf.Metric
	}{
		{
			name: "one document, all keys",
			body: `{"type":"cluster.create.succeeded","time":"2026-01-02T15:04:05Z","id":"e-1","severity":"warning",
				"source":"tkgi-api","attributes":{"plan":"small","worker_nodes":3,"ratio":0.5,"upgrade":false}}`,
			want: []telegraf.Metric{metric.New("tkgi_event",
				map[string]string{"event_type": "cluster.create.succeeded", "severity": "warning", "source": "tkgi-api"},
				map[string]interface{}{"event_id": "e-1", "plan": "small", "worker_nodes": int64(3), "ratio": 0.5, "upgrade": false},
				at)},
		},
		{
			name: "array, defaults: severity info and the receive time",
			body: `[{"type":"a"},{"type":"b","attributes":{"n":1}}]`,
			want: []telegraf.Metric{
				metric.New("tkgi_event", map[string]string{"event_type": "a", "severity": "info"}, map[string]interface{}{}, now),
				metric.New("tkgi_event", map[string]string{"event_type": "b", "severity": "info"}, map[string]interface{}{"n": int64(1)}, now),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEvents(strings.NewReader(tt.body), now, 64<<10, func(telegraf.Metric) error { return nil })
			require.NoError(t, err)
			testutil.RequireMetricsEqual(t, tt.want, got)
		})
	}
}

func TestParseEventsRefuses(t *testing.T) {
	manyAttrs := make([]string, 0, telemetry.MaxEventAttributes+1)
	for i := 0; i <= telemetry.MaxEventAttributes; i++ {
		manyAttrs = append(manyAttrs, fmt.Sprintf(`"a%d":1`, i))
	}
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty", "  ", "empty body"},
		{"not json", "type=x", "decoding event"},
		{"missing type", `{"id":"x"}`, `"type" is required`},
		{"unknown key", `{"type":"a","cluster_name":"prod"}`, `unknown field "cluster_name"`},
		{"bad type chars", `{"type":"a b"}`, `"type" "a b"`},
		{"bad severity", `{"type":"a","severity":"fatal"}`, `"severity" "fatal"`},
		{"bad time", `{"type":"a","time":"yesterday"}`, `"time" "yesterday" is not RFC 3339`},
		{"nested attribute", `{"type":"a","attributes":{"o":{"x":1}}}`, `attribute "o": only strings`},
		{"array attribute", `{"type":"a","attributes":{"o":[1]}}`, `attribute "o": only strings`},
		{"null attribute", `{"type":"a","attributes":{"o":null}}`, `attribute "o": only strings`},
		{"attribute name", `{"type":"a","attributes":{"Plan":"x"}}`, `attribute "Plan": names are`},
		{"reserved attribute", `{"type":"a","attributes":{"receive_time":1}}`, `attribute "receive_time" is reserved`},
		{"stream stamp reserved", `{"type":"a","attributes":{"batch_key":"k"}}`, `attribute "batch_key" is reserved`},
		{"long string", `{"type":"a","attributes":{"s":"` + strings.Repeat("x", telemetry.MaxEventStringLen+1) + `"}}`, "string longer than"},
		{"too many attributes", `{"type":"a","attributes":{` + strings.Join(manyAttrs, ",") + `}}`, `65 "attributes"; at most 64`},
		{"trailing data", `{"type":"a"} {"type":"b"}`, "trailing data"},
		{"second event bad, nothing stored", `[{"type":"a"},{"type":""}]`, "event 1:"},
		{"invalid utf-8", "{\"type\":\"a\",\"attributes\":{\"s\":\"\xff\"}}", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEvents(strings.NewReader(tt.body), time.Now(), 64<<10, func(telegraf.Metric) error { return nil })
			require.ErrorContains(t, err, tt.want)
			require.Nil(t, got)
		})
	}
}
