package e2e_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/leaderelection"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

const (
	// leaseNamespace holds the test's Lease, under the shipped lease Role.
	leaseNamespace = "telegraf-tkgi-e2e-lease"
	haClusterID    = "e2e-ha-cluster-0001"
	haInterval     = 2 * time.Second
	haLease        = 4 * time.Second
	haRenew        = 3 * time.Second
	haRetry        = 500 * time.Millisecond
	haFlush        = 500 * time.Millisecond
)

// leaseAgentToken applies the shipped manifests (configs/) and the HA
// component's lease Role in leaseNamespace, and mints a token of the
// agent's ServiceAccount: the agents run with exactly the shipped rights.
func leaseAgentToken(t *testing.T, c *testkube.Cluster) string {
	t.Helper()
	kubectl := kubectlFor(t, c)
	root := repoRoot(t)
	kubectl("apply", "-k", filepath.Join(root, "configs"))
	ns := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", leaseNamespace)
	cmd := exec.Command("kubectl", "--kubeconfig", c.AdminKubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(ns)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	kubectl("-n", leaseNamespace, "apply", "-f", filepath.Join(root, "configs", "kubernetes", "ha", "lease-role.yaml"))
	// A lease left by an earlier run would delay the first leader.
	kubectl("-n", leaseNamespace, "delete", "lease", "telegraf-tkgi-kube-telemetry", "--ignore-not-found")
	return strings.TrimSpace(kubectl("-n", "telegraf-tkgi", "create", "token", "telegraf-tkgi-agent", "--duration", "1h"))
}

func (f *fixture) haAgentConf(name, tokenFile, url string) string {
	return fmt.Sprintf(`
[agent]
  interval = %q
  round_interval = false
  # Metric times are the gathers' own: the default precision for a 2s
  # interval rounds them to the nearest second, which can put a gather
  # just before the kill after it.
  precision = "1ms"
  flush_interval = %q
  flush_jitter = "0s"
  omit_hostname = true
  debug = true
  statefile = %q
[[inputs.kube_telemetry]]
  url = %q
  bearer_token_file = %q
  tls_ca = %q
  cluster_id = %q
  resource_include = ["namespaces", "storageclasses", "ingressclasses"]
  leader_election = true
  lease_namespace = %q
  lease_duration = %q
  renew_deadline = %q
  retry_period = %q
[[outputs.file]]
  files = [%q]
  data_format = "influx"
[[outputs.vmware_telemetry]]
  url = %q
  participation_level = "standard"
  pseudonym_key = %q
  token = %q
  retry_initial = "200ms"
  retry_max = "1s"
`, haInterval.String(), haFlush.String(), filepath.Join(f.dir, name+".state"), f.cluster.APIURL, tokenFile, f.cluster.CAFile, haClusterID,
		leaseNamespace, haLease.String(), haRenew.String(), haRetry.String(),
		filepath.Join(f.dir, name+".raw.lp"), url, pseudonymKey, token)
}

// collections are the timestamps of kube_telemetry_cluster, one per
// collection, sorted.
func collections(ms []telegraf.Metric) []time.Time {
	var out []time.Time
	for _, m := range ms {
		if m.Name() == "kube_telemetry_cluster" {
			out = append(out, m.Time())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// Two agents with leader election on a 4s Lease, through the real listener
// into the lake: one collects; the leader is killed with SIGKILL; the
// standby collects within the lease; the lake holds one collection per
// interval, none twice, each from one agent, with the configured cluster_id
// (pseudonymised) as the cluster's identity.
func TestLeaderElectionTakeover(t *testing.T) {
	f := newFixture(t)
	tokenFile := filepath.Join(f.dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(leaseAgentToken(t, f.cluster)), 0o600))
	port := freePort(t)
	lake := filepath.Join(f.dir, "lake.jsonl")
	server := f.startServer(serverOpts{port: port, lake: lake})

	a := f.start("agent-a", f.haAgentConf("agent-a", tokenFile, serverURL(port)))
	require.Eventually(t, func() bool { return strings.Contains(a.logText(), "Leading lease "+leaseNamespace) },
		30*time.Second, 100*time.Millisecond, "agent a never led")
	b := f.start("agent-b", f.haAgentConf("agent-b", tokenFile, serverURL(port)))
	require.Eventually(t, func() bool { return strings.Contains(b.logText(), "is held by") },
		30*time.Second, 100*time.Millisecond, "agent b never saw the leader")

	rawA, rawB := filepath.Join(f.dir, "agent-a.raw.lp"), filepath.Join(f.dir, "agent-b.raw.lp")
	rawOf := func(path string) []telegraf.Metric {
		if _, err := os.Stat(path); err != nil {
			return nil
		}
		return readRaw(t, path)
	}
	require.Eventually(t, func() bool { return len(collections(rawOf(rawA))) >= 3 }, time.Minute, 100*time.Millisecond,
		"the leader did not collect three times")
	require.Empty(t, collections(rawOf(rawB)), "the standby collected while the leader held the lease")

	a.kill()
	killed := time.Now()
	require.Eventually(t, func() bool { return len(collections(rawOf(rawB))) > 0 }, time.Minute, 50*time.Millisecond,
		"the standby never collected")
	takeover := time.Since(killed)
	// The standby judges the lease by when it saw the last renewal (made
	// before the kill), which can be one of its retries late; the lease
	// expires haLease after that sighting, the standby takes it at its
	// next retry and collects at its next interval, and the raw tap is
	// written at the next flush. client-go spreads each retry up to
	// JitterFactor beyond the retry period. One second for the machine.
	maxRetry := time.Duration(float64(haRetry) * (1 + leaderelection.JitterFactor))
	bound := 2*maxRetry + haLease + haInterval + haFlush + time.Second
	require.Less(t, takeover, bound, "the standby took %s to collect after the leader was killed", takeover)
	t.Logf("the standby collected %s after the kill (bound %s)", takeover, bound)
	require.Eventually(t, func() bool { return len(collections(rawOf(rawB))) >= 3 }, time.Minute, 100*time.Millisecond)
	b.stop()
	server.stop()

	// The gathers: a's before the kill, b's after it, never side by side.
	gatheredA, gatheredB := rawOf(rawA), rawOf(rawB)
	requireGatheredInContract(t, append(append([]telegraf.Metric{}, gatheredA...), gatheredB...))
	ca, cb := collections(gatheredA), collections(gatheredB)
	require.True(t, ca[len(ca)-1].Before(killed))
	require.True(t, cb[0].After(killed))
	// a renewed at most one retry before the kill and gathered last before
	// it; the lease cannot expire before haLease after that renewal.
	require.GreaterOrEqual(t, cb[0].Sub(ca[len(ca)-1]), haLease-maxRetry, "b collected before a's lease could expire")
	t.Logf("leader killed after %d collections; the standby's first collection %s after the kill (%s after the leader's last); %d collections since",
		len(ca), takeover.Round(time.Millisecond), cb[0].Sub(ca[len(ca)-1]).Round(time.Millisecond), len(cb))

	// The lake: nothing that was not gathered, nothing twice; all of b's
	// (stopped cleanly), a's but perhaps the last interval's (SIGKILL
	// lost what its buffer held).
	key, err := hex.DecodeString(pseudonymKey)
	require.NoError(t, err)
	ps, err := telemetry.NewPseudonymizer(key)
	require.NoError(t, err)
	wantA := expected(t, gatheredA, telemetry.LevelStandard, "")
	wantB := expected(t, gatheredB, telemetry.LevelStandard, "")
	gathered := map[string]int{}
	for _, w := range append(append([]string{}, wantA...), wantB...) {
		gathered[w]++
	}
	lakeMetrics := readLake(t, lake)
	instances := map[int64]string{} // collection -> the instance tag
	stored := map[string]int{}
	for _, m := range lakeMetrics {
		require.Equal(t, ps.Pseudonym("cluster_uid", haClusterID), m.Tags["cluster_uid"], "cluster_uid is the configured id, pseudonymised")
		instances[m.Timestamp] = m.Tags["instance"]
	}
	for _, line := range lakeCanonicalAny(t, lakeMetrics) {
		stored[line]++
		require.LessOrEqual(t, stored[line], gathered[line], "in the lake but not gathered, or twice: %s", line)
	}
	for _, w := range wantB {
		require.Equal(t, gathered[w], stored[w], "gathered by the standby, not in the lake: %s", w)
	}
	var lostA int
	for _, w := range wantA {
		if stored[w] == 0 {
			lostA++
		}
	}
	require.LessOrEqual(t, lostA, len(wantA)/len(ca), "more than the killed leader's last collection is missing")

	// One collection per interval: the lake's collections are an interval
	// apart (the takeover's gap is longer), from one agent each.
	var times []int64
	for ts := range instances {
		times = append(times, ts)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for i := 1; i < len(times); i++ {
		require.GreaterOrEqual(t, time.Duration(times[i]-times[i-1]), haInterval*3/4,
			"two collections within one interval at %s", time.Unix(0, times[i]))
	}
	// Each collection in the lake is one agent's (the instance tag names
	// the installation, the same for both: the gathers tell them apart).
	fromA, fromB := map[int64]bool{}, map[int64]bool{}
	for _, ts := range ca {
		fromA[ts.UnixNano()] = true
	}
	for _, ts := range cb {
		fromB[ts.UnixNano()] = true
	}
	var inA, inB int
	for _, ts := range times {
		require.True(t, fromA[ts] != fromB[ts], "collection %s gathered by neither agent or by both", time.Unix(0, ts))
		if fromA[ts] {
			inA++
		} else {
			inB++
		}
	}
	require.Equal(t, len(cb), inB, "every collection of the standby reached the lake")
	require.GreaterOrEqual(t, inA, len(ca)-1, "the killed leader's collections reached the lake, but perhaps the last")
	t.Logf("lake: %d collections (%d of the leader, %d of the standby), %d metrics; %d of the killed leader's metrics were lost in its buffer",
		len(times), inA, inB, len(lakeMetrics), lostA)
}

// lakeCanonicalAny is lakeCanonical for a lake several agents (instances)
// wrote: each metric is checked on its own.
func lakeCanonicalAny(t *testing.T, lake []lakeMetric) []string {
	t.Helper()
	out := make([]string, 0, len(lake))
	for _, m := range lake {
		out = append(out, lakeCanonical(t, []lakeMetric{m}, string(telemetry.LevelStandard))...)
	}
	return out
}
