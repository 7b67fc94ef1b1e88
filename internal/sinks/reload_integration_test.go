package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testmonitor"
)

// A telegraf-tkgi process runs the ClusterMetricSinks' configuration as the
// shipped DaemonSet does (its args, its env, the ConfigMap mounted the way
// the kubelet mounts one). A sink change re-renders the ConfigMap, the
// kubelet-style symlink swap reaches the process, it reloads in place and
// keeps collecting every second. Its output lands in Debian's InfluxDB and in
// Debian's Prometheus, scraped and, after the change, remote-written.
func TestClusterSinkReloadEndToEnd(t *testing.T) {
	binary := testbin.Path(t)
	e := startEnv(t)
	ctx := context.Background()
	// The node configuration holds every ClusterMetricSink: start from none.
	require.NoError(t, e.admin.DeleteAllOf(ctx, &ClusterMetricSink{}))
	t.Cleanup(func() { _ = e.admin.DeleteAllOf(ctx, &ClusterMetricSink{}) })

	influx := testmonitor.StartInfluxDB(t)
	promPort := testmonitor.FreePort(t)
	prom := testmonitor.StartPrometheus(t, "sinks-e2e", fmt.Sprintf("127.0.0.1:%d", promPort), "--web.enable-remote-write-receiver")

	sink := func(extra string) string {
		return fmt.Sprintf(`apiVersion: pksapi.io/v1beta1
kind: ClusterMetricSink
metadata:
  name: e2e-reload
spec:
  inputs:
  - type: mem
    interval: 1s
  outputs:
  - type: influxdb
    urls: [%q]
    database: sinks_e2e
    flush_interval: 1s
  - type: prometheus_client
    listen: "127.0.0.1:%d"
    flush_interval: 1s
%s`, influx, promPort, extra)
	}
	e.applyYAML(t, "", sink(""))
	conf := e.clusterConfig(t, "from ClusterMetricSinks: e2e-reload\n", "[[outputs.prometheus_client]]")

	// The DaemonSet's container as a pod would run it: the ConfigMap volume
	// at a directory of ours, the env from the downward API.
	ds := shippedDaemonSet(t)
	require.Equal(t, DefaultOptions().ConfigMapName, ds.Spec.Template.Spec.Volumes[0].ConfigMap.Name,
		"the DaemonSet mounts the controller's ConfigMap")
	container := ds.Spec.Template.Spec.Containers[0]
	mount := container.VolumeMounts[0].MountPath
	dir := t.TempDir()
	vol := kubeletVolume{dir: filepath.Join(dir, "config")}
	vol.write(t, map[string]string{ConfigKey: conf})
	var args []string
	for _, a := range container.Args {
		args = append(args, strings.Replace(a, mount, vol.dir, 1))
	}
	require.Contains(t, args, "--watch-config", "the DaemonSet reloads through --watch-config")
	env := os.Environ()
	for _, v := range container.Env {
		switch v.ValueFrom.FieldRef.FieldPath {
		case "spec.nodeName":
			env = append(env, v.Name+"=e2e-node")
		case "status.hostIP":
			env = append(env, v.Name+"=127.0.0.1")
		default:
			t.Fatalf("the DaemonSet's env %s needs a value this test does not give", v.Name)
		}
	}
	logPath := filepath.Join(dir, "agent.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(binary, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("telegraf-tkgi log:\n%s", testmonitor.Tail(string(data), 60))
		}
	})

	// Collecting: InfluxDB has points, Prometheus scraped them.
	waitFor(t, 60*time.Second, "mem points in InfluxDB", func() bool { return len(influxTimes(t, influx)) >= 3 })
	waitFor(t, 60*time.Second, "the scraped mem_used in Prometheus", func() bool {
		return promHas(t, prom, `mem_used{job="sinks-e2e",host="e2e-node"}`)
	})
	require.False(t, promHas(t, prom, `mem_used{job="",host="e2e-node"}`), "remote-written series before the output exists")

	// The changes: remote write to Prometheus, then its timeout. Each time
	// the controller re-renders the ConfigMap and the kubelet swaps the
	// volume's ..data symlink.
	remoteWrite := func(timeout string) string {
		return sink(fmt.Sprintf(`  - type: http
    url: %s/api/v1/write
    data_format: prometheusremotewrite
    content_encoding: snappy
    flush_interval: 1s
    timeout: %s
    headers:
      Content-Type: application/x-protobuf
      X-Prometheus-Remote-Write-Version: 0.1.0
`, prom, timeout))
	}
	starts := func() int {
		data, _ := os.ReadFile(logPath)
		return strings.Count(string(data), "Starting telegraf-tkgi")
	}
	type window struct{ swapped, started time.Time }
	var reloads []window
	// swap puts conf in place at phase past the next second boundary and
	// waits for the agent's next start, polled finely. A swap close to a
	// boundary is the adversarial case: the agent must collect that
	// boundary before it stops.
	swap := func(conf string, phase time.Duration) {
		t.Helper()
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + phase)))
		w := window{swapped: time.Now()}
		n := starts()
		vol.write(t, map[string]string{ConfigKey: conf})
		for starts() == n {
			require.Less(t, time.Since(w.swapped), 30*time.Second, "the agent did not start again")
			time.Sleep(5 * time.Millisecond)
		}
		w.started = time.Now()
		reloads = append(reloads, w)
	}

	// Mid-interval: the reload should pass between two gathers.
	e.applyYAML(t, "", remoteWrite("5s"))
	swap(e.clusterConfig(t, "[[outputs.http]]"), 400*time.Millisecond)
	logText, err := os.ReadFile(logPath)
	require.NoError(t, err)
	require.Contains(t, string(logText), "Config changed, reloading")
	require.Contains(t, string(logText), "Loaded outputs: http influxdb prometheus_client")
	waitFor(t, 60*time.Second, "the remote-written mem_used in Prometheus", func() bool {
		return promHas(t, prom, `mem_used{job="",host="e2e-node"}`)
	})

	// Just before a boundary, the adversarial case: the agent finishes the
	// collection due at the boundary before it stops.
	for i, phase := range []time.Duration{990 * time.Millisecond, 999 * time.Millisecond, 950 * time.Millisecond} {
		timeout := fmt.Sprintf("%ds", 6+i)
		e.applyYAML(t, "", remoteWrite(timeout))
		swap(e.clusterConfig(t, fmt.Sprintf("timeout = %q", timeout)), phase)
	}

	// Collection after the reloads reaches both stores.
	after := time.Now().Add(3 * time.Second)
	waitFor(t, 30*time.Second, "InfluxDB points after the reloads", func() bool {
		ts := influxTimes(t, influx)
		return len(ts) > 0 && ts[len(ts)-1].After(after)
	})
	waitFor(t, 30*time.Second, "the scrape after the reloads", func() bool {
		return promHas(t, prom, `mem_used{job="sinks-e2e",host="e2e-node"}`)
	})
	require.True(t, promHas(t, prom, `mem_used{job="",host="e2e-node"}`), "the remote write after the reloads")

	select {
	case err := <-exited:
		t.Fatalf("the agent exited: %v", err)
	default:
	}
	require.NoError(t, syscall.Kill(pid, 0), "process %d is still running", pid)
	require.Equal(t, 1+len(reloads), starts(), "every reload in the same process")

	// One point per second: no boundary without a point, reloads included.
	ts := influxTimes(t, influx)
	require.True(t, ts[0].Before(reloads[0].swapped), "points before the first reload")
	var missed []time.Time
	for i := 1; i < len(ts); i++ {
		for b := ts[i-1].Add(time.Second); b.Before(ts[i]); b = b.Add(time.Second) {
			missed = append(missed, b)
		}
	}
	t.Logf("%d points from %s to %s; 1s boundaries without a point: %v",
		len(ts), ts[0].Format(time.TimeOnly), ts[len(ts)-1].Format(time.TimeOnly), missed)
	for i, w := range reloads {
		t.Logf("reload %d: swap at %s, new agent after %s",
			i+1, w.swapped.Format("15:04:05.000"), w.started.Sub(w.swapped).Round(time.Millisecond))
	}
	require.Empty(t, missed, "every interval collected across %d reloads", len(reloads))

	// The scrape path: the stopped agent's prometheus_client answers until
	// the new one listens, and that one starts with the old series, so no
	// scrape finds the series missing.
	stale := promMissingSteps(t, prom, `mem_used{job="sinks-e2e",host="e2e-node"}`, ts[0], ts[len(ts)-1])
	t.Logf("Prometheus scrape: %d 1s steps without a sample between the first scraped sample and %s", stale, ts[len(ts)-1].Format(time.TimeOnly))
	require.Zero(t, stale, "the scraped series stays fresh across the reloads")
}

// clusterConfig waits until the controller's cluster ConfigMap holds every
// want and returns its configuration.
func (e *env) clusterConfig(t *testing.T, want ...string) string {
	t.Helper()
	var cm corev1.ConfigMap
	key := client.ObjectKey{Namespace: controllerNamespace, Name: e.cmName}
	eventually(t, "cluster ConfigMap with "+strings.Join(want, ", "), func() (bool, string) {
		if err := e.admin.Get(context.Background(), key, &cm); err != nil {
			return false, err.Error()
		}
		for _, w := range want {
			if !strings.Contains(cm.Data[ConfigKey], w) {
				return false, cm.Data[ConfigKey]
			}
		}
		return true, ""
	})
	return cm.Data[ConfigKey]
}

func shippedDaemonSet(t *testing.T) appsv1.DaemonSet {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testkube.RepoRoot(), "configs", "sinks", "daemonset.yaml"))
	require.NoError(t, err)
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var ds appsv1.DaemonSet
		require.NoError(t, yaml.Unmarshal([]byte(doc), &ds))
		if ds.Kind == "DaemonSet" {
			return ds
		}
	}
	t.Fatal("configs/sinks/daemonset.yaml has no DaemonSet")
	return appsv1.DaemonSet{}
}

// kubeletVolume lays out a ConfigMap volume as the kubelet's atomic writer
// does: the data in a timestamped "..YYYY_MM_DD_..." folder, a "..data"
// symlink to it, and one symlink per key through "..data". An update
// writes a new folder, renames a new "..data" over the old one and removes
// the old folder.
type kubeletVolume struct {
	dir string
}

func (v kubeletVolume) write(t *testing.T, data map[string]string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(v.dir, 0o755))
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	ts := filepath.Join(v.dir, time.Now().UTC().Format("..2006_01_02_15_04_05.000000000"))
	require.NoError(t, os.Mkdir(ts, 0o755))
	for k, val := range data {
		require.NoError(t, os.WriteFile(filepath.Join(ts, k), []byte(val), 0o644))
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	require.NoError(t, os.Symlink(filepath.Base(ts), tmp))
	require.NoError(t, os.Rename(tmp, filepath.Join(v.dir, "..data")))
	for k := range data {
		link := filepath.Join(v.dir, k)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			require.NoError(t, os.Symlink(filepath.Join("..data", k), link))
		}
	}
	if old != "" {
		require.NoError(t, os.RemoveAll(filepath.Join(v.dir, old)))
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// influxTimes returns the timestamps of the agent's mem points, oldest first.
func influxTimes(t *testing.T, base string) []time.Time {
	t.Helper()
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	q := url.QueryEscape(`SELECT "used" FROM "mem" WHERE "host" = 'e2e-node'`)
	if testmonitor.GetJSON(base+"/query?db=sinks_e2e&q="+q, &r) != nil || len(r.Results) == 0 || len(r.Results[0].Series) == 0 {
		return nil
	}
	var ts []time.Time
	for _, row := range r.Results[0].Series[0].Values {
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(row[0]))
		require.NoError(t, err)
		ts = append(ts, at)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts
}

// promHas reports whether an instant query returns a series.
func promHas(t *testing.T, base, query string) bool {
	t.Helper()
	var v struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	return testmonitor.GetJSON(base+"/api/v1/query?query="+url.QueryEscape(query), &v) == nil && len(v.Data.Result) > 0
}

// promMissingSteps counts the 1 s steps, from the first sample of query
// after from until to, at which Prometheus has no sample (a stale series).
func promMissingSteps(t *testing.T, base, query string, from, to time.Time) int {
	t.Helper()
	var v struct {
		Data struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	q := url.Values{"query": {query}, "start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}, "step": {"1"}}
	require.NoError(t, testmonitor.GetJSON(base+"/api/v1/query_range?"+q.Encode(), &v))
	require.Len(t, v.Data.Result, 1, "one %s between %s and %s", query, from, to)
	values := v.Data.Result[0].Values
	first, ok := values[0][0].(float64)
	require.True(t, ok, "a sample time: %v", values[0][0])
	return int(to.Unix()-int64(first)) + 1 - len(values)
}
