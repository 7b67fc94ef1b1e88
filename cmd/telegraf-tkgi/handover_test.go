package main

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/plugins/outputs/prometheus_client"
	"github.com/influxdata/telegraf/testutil"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testmonitor"
)

// promConfig is one agent generation's configuration with a
// prometheus_client output on addr, initialised as the agent does.
func promConfig(t *testing.T, addr string) (*config.Config, *models.RunningOutput) {
	t.Helper()
	pc := &prometheus_client.PrometheusClient{Listen: addr, Path: "/metrics", Log: testutil.Logger{},
		ExpirationInterval: config.Duration(time.Minute), CollectorsExclude: []string{"gocollector", "process"}}
	ro, err := models.NewRunningOutput(pc, &models.OutputConfig{Name: "prometheus_client"}, 1000, 10000)
	require.NoError(t, err)
	require.NoError(t, ro.Init())
	c := config.NewConfig()
	c.Outputs = []*models.RunningOutput{ro}
	return c, ro
}

func scrape(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// Across a reload the address keeps answering, and the new output serves
// the old one's series before its own first flush.
func TestPromHandoverKeepsServing(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testmonitor.FreePort(t))
	h := newPromHandover()
	defer h.closeAll()
	m := func(v int) []telegraf.Metric {
		return []telegraf.Metric{metric.New("mem", map[string]string{"host": "a"}, map[string]any{"used": v}, time.Now())}
	}

	first, out1 := promConfig(t, addr)
	h.adopt(first)
	require.NoError(t, out1.Output.Connect())
	require.NoError(t, out1.Output.Write(m(1)))
	body, err := scrape(addr)
	require.NoError(t, err)
	require.Contains(t, body, `mem_used{host="a"} 1`)

	// The old agent stops: its output is parked and still answers.
	require.NoError(t, out1.Output.Close())
	body, err = scrape(addr)
	require.NoError(t, err, "a parked output keeps listening")
	require.Contains(t, body, `mem_used{host="a"} 1`)

	// The new agent connects on the same address and serves the old series.
	second, out2 := promConfig(t, addr)
	h.adopt(second)
	require.NoError(t, out2.Output.Connect())
	body, err = scrape(addr)
	require.NoError(t, err)
	require.Contains(t, body, `mem_used{host="a"} 1`, "the series carried over before the first flush")
	require.NoError(t, out2.Output.Write(m(2)))
	body, err = scrape(addr)
	require.NoError(t, err)
	require.Contains(t, body, `mem_used{host="a"} 2`)

	// Stopping for good closes the listener.
	require.NoError(t, out2.Output.Close())
	h.closeAll()
	_, err = scrape(addr)
	require.Error(t, err, "closed after the process stops")
}

// A reload that drops the output (or moves it) frees the old address
// before the new agent starts.
func TestPromHandoverClosesOrphans(t *testing.T) {
	oldAddr := fmt.Sprintf("127.0.0.1:%d", testmonitor.FreePort(t))
	h := newPromHandover()
	defer h.closeAll()
	first, out1 := promConfig(t, oldAddr)
	h.adopt(first)
	require.NoError(t, out1.Output.Connect())
	require.NoError(t, out1.Output.Close())
	_, err := scrape(oldAddr)
	require.NoError(t, err)

	h.adopt(config.NewConfig())
	_, err = scrape(oldAddr)
	require.Error(t, err, "no output takes the address over: closed")
}

// The copy kept for the next agent forgets series past the output's
// expiration, so it does not grow with every series ever written.
func TestPromHandoverForgetsExpiredSeries(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testmonitor.FreePort(t))
	h := newPromHandover()
	defer h.closeAll()
	c, out := promConfig(t, addr)
	out.Output.(*prometheus_client.PrometheusClient).ExpirationInterval = config.Duration(50 * time.Millisecond)
	h.adopt(c)
	hc := out.Output.(*handoverClient)
	require.NoError(t, hc.Connect())
	defer hc.shutdown()
	for i := range 100 {
		m := metric.New("mem", map[string]string{"pod": fmt.Sprint(i)}, map[string]any{"used": i}, time.Now())
		require.NoError(t, hc.Write([]telegraf.Metric{m}))
	}
	time.Sleep(120 * time.Millisecond)
	require.NoError(t, hc.Write([]telegraf.Metric{metric.New("mem", map[string]string{"pod": "new"}, map[string]any{"used": 1}, time.Now())}))
	hc.mu.Lock()
	kept := len(hc.series)
	hc.mu.Unlock()
	require.Equal(t, 1, kept, "only the series written within the expiration is kept")
}
