package sinks

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf/config"
)

// loadedIntervals loads a rendered configuration with Telegraf's loader and
// returns the agent's interval and each input's own (0: the agent's).
func loadedIntervals(t *testing.T, conf []byte) (time.Duration, map[string]time.Duration) {
	t.Helper()
	k := testChecker(t)
	text := strings.ReplaceAll(string(conf), ServiceAccountDir+"/", k.ServiceAccountDir+"/")
	checkMu.Lock()
	defer checkMu.Unlock()
	c := config.NewConfig()
	c.Agent.Quiet = true
	require.NoError(t, c.LoadConfigData([]byte(text), ConfigKey))
	inputs := make(map[string]time.Duration)
	for _, in := range c.Inputs {
		inputs[in.Config.Name] = in.Config.Interval
	}
	return time.Duration(c.Agent.Interval), inputs
}

func TestTenantInterval(t *testing.T) {
	for _, tc := range []struct {
		interval string
		want     time.Duration
		wantErr  string
	}{
		{"", 10 * time.Second, ""},
		{"30s", 30 * time.Second, ""},
		{"1m", time.Minute, ""},
		{"1s", time.Second, ""},
		{"500ms", 0, "spec.interval: 500ms is shorter than 1s"},
		{"ten seconds", 0, `spec.interval: "ten seconds" is not a duration such as "10s" or "1m"`},
		{"10", 0, `spec.interval: "10" is not a duration`},
	} {
		t.Run(tc.interval, func(t *testing.T) {
			conf, err := RenderTenant("team-a", "sink", SinkSpec{Outputs: []Plugin{{"type": "discard"}}, Interval: tc.interval})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			agent, inputs := loadedIntervals(t, conf)
			require.Equal(t, tc.want, agent, "[agent] interval")
			require.Equal(t, map[string]time.Duration{"prometheus": 0}, inputs, "inputs follow the agent")
			require.NoError(t, testChecker(t).Check(conf))
		})
	}
}

func TestClusterInterval(t *testing.T) {
	sink := func(name, interval string, inputs ...Plugin) ClusterSink {
		s, err := ParseClusterSink(name, SinkSpec{Inputs: inputs, Outputs: []Plugin{{"type": "discard"}}, Interval: interval})
		require.NoError(t, err)
		return s
	}
	for _, tc := range []struct {
		name   string
		sinks  []ClusterSink
		agent  time.Duration
		inputs map[string]time.Duration
	}{
		{"the default", []ClusterSink{sink("a", "", Plugin{"type": "mem"})}, 10 * time.Second,
			map[string]time.Duration{"mem": 0}},
		{"one sink sets the agent's", []ClusterSink{sink("a", "30s", Plugin{"type": "mem"})}, 30 * time.Second,
			map[string]time.Duration{"mem": 0}},
		{"sinks that agree set the agent's", []ClusterSink{sink("a", "1m", Plugin{"type": "mem"}), sink("b", "1m", Plugin{"type": "cpu"})},
			time.Minute, map[string]time.Duration{"mem": 0, "cpu": 0}},
		{"sinks that differ set their inputs'", []ClusterSink{sink("a", "30s", Plugin{"type": "mem"}), sink("b", "", Plugin{"type": "cpu"})},
			10 * time.Second, map[string]time.Duration{"mem": 30 * time.Second, "cpu": 0}},
		{"an input's own interval stays", []ClusterSink{sink("a", "30s", Plugin{"type": "mem", "interval": "5s"}), sink("b", "", Plugin{"type": "cpu"})},
			10 * time.Second, map[string]time.Duration{"mem": 5 * time.Second, "cpu": 0}},
		{"the shared kubelet input collects at the shortest", []ClusterSink{sink("a", "30s"), sink("b", "1m"), sink("c", "", Plugin{"type": "cpu"})},
			10 * time.Second, map[string]time.Duration{"prometheus": 30 * time.Second, "cpu": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := RenderCluster(tc.sinks)
			require.NoError(t, err)
			agent, inputs := loadedIntervals(t, conf)
			require.Equal(t, tc.agent, agent, "[agent] interval in:\n%s", conf)
			require.Equal(t, tc.inputs, inputs, "inputs' intervals in:\n%s", conf)
			require.NoError(t, testChecker(t).Check(conf))
		})
	}

	_, err := ParseClusterSink("bad", SinkSpec{Outputs: []Plugin{{"type": "discard"}}, Interval: "0s"})
	require.ErrorContains(t, err, "spec.interval: 0s is shorter than 1s")
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second: "10s", time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h", 2*time.Hour + 30*time.Minute: "2h30m",
	} {
		require.Equal(t, want, durationText(d))
	}
}
