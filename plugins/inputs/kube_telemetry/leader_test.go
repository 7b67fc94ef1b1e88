package kube_telemetry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ktesting "k8s.io/client-go/testing"
)

func TestLeaderElectionSettings(t *testing.T) {
	dir := t.TempDir()
	nsFile := filepath.Join(dir, "namespace")
	require.NoError(t, os.WriteFile(nsFile, []byte("telegraf-tkgi\n"), 0o600))
	tests := []struct {
		name      string
		toml      string
		noPod     bool // no ServiceAccount namespace file
		wantErr   string
		wantNS    string
		wantLease string
	}{
		{name: "off by default", toml: ``},
		{name: "on in a pod: the pod's namespace", toml: `leader_election = true`,
			wantNS: "telegraf-tkgi", wantLease: defaultLeaseName},
		{name: "a string from the environment", toml: `leader_election = "true"`,
			wantNS: "telegraf-tkgi", wantLease: defaultLeaseName},
		{name: "an empty string is off", toml: `leader_election = ""`},
		{name: "false as a string", toml: `leader_election = "false"`},
		{name: "not a boolean", toml: `leader_election = "${LEADER_ELECTION}"`,
			wantErr: `"${LEADER_ELECTION}" is neither true nor false`},
		{name: "outside a pod: namespace required", toml: `leader_election = true`, noPod: true,
			wantErr: "lease_namespace is required with leader_election outside a pod"},
		{name: "outside a pod with lease_namespace", toml: "leader_election = true\nlease_namespace = \"ops\"\nlease_name = \"agent\"",
			noPod: true, wantNS: "ops", wantLease: "agent"},
		{name: "bad namespace", toml: "leader_election = true\nlease_namespace = \"Ops\"",
			wantErr: `lease_namespace "Ops" is not a namespace name`},
		{name: "bad lease name", toml: "leader_election = true\nlease_name = \"a b\"",
			wantErr: `lease_name "a b" is not a Lease name`},
		{name: "zero retry_period", toml: "leader_election = true\nretry_period = \"0s\"",
			wantErr: "retry_period must be positive, got 0s"},
		{name: "negative lease_duration", toml: "leader_election = true\nlease_duration = \"-1s\"",
			wantErr: "lease_duration must be positive, got -1s"},
		{name: "renew_deadline not shorter than lease_duration", toml: "leader_election = true\nlease_duration = \"10s\"",
			wantErr: "renew_deadline (10s) must be shorter than lease_duration (10s)"},
		{name: "retry_period too close to renew_deadline", toml: "leader_election = true\nretry_period = \"9s\"",
			wantErr: "retry_period (9s) must be shorter than renew_deadline (10s) divided by 1.2"},
		{name: "short lease", toml: "leader_election = true\nlease_duration = \"4s\"\nrenew_deadline = \"3s\"\nretry_period = \"1s\"",
			wantNS: "telegraf-tkgi", wantLease: defaultLeaseName},
		{name: "settings ignored while off", toml: "lease_duration = \"1s\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.NewConfig()
			err := c.LoadConfigData([]byte("[[inputs.kube_telemetry]]\n"+tt.toml+"\n"), config.EmptySourcePath)
			if err == nil {
				require.Len(t, c.Inputs, 1)
				k := c.Inputs[0].Input.(*KubeTelemetry)
				k.namespaceFile = nsFile
				if tt.noPod {
					k.namespaceFile = filepath.Join(dir, "missing")
				}
				err = k.Init()
				if err == nil {
					require.Empty(t, tt.wantErr)
					require.Equal(t, tt.wantNS != "", bool(k.LeaderElection))
					if tt.wantNS != "" {
						require.Equal(t, tt.wantNS, k.LeaseNamespace)
						require.Equal(t, tt.wantLease, k.LeaseName)
					}
					return
				}
			}
			require.NotEmpty(t, tt.wantErr, "unexpected error: %v", err)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// candidate is one replica of the plugin on the fixture's API server,
// sharing its leases with the others.
func candidate(t *testing.T, fx *fixture) *KubeTelemetry {
	t.Helper()
	k := fx.plugin(t, func(k *KubeTelemetry) {
		k.LeaderElection = true
		k.LeaseNamespace = "telegraf-tkgi"
		k.LeaseName = defaultLeaseName
		k.LeaseDuration = config.Duration(1500 * time.Millisecond)
		k.RenewDeadline = config.Duration(time.Second)
		k.RetryPeriod = config.Duration(100 * time.Millisecond)
		k.leases = fx.kube.CoordinationV1()
	})
	return k
}

func gathered(t *testing.T, k *KubeTelemetry) int {
	t.Helper()
	var acc testutil.Accumulator
	require.NoError(t, k.Gather(&acc))
	require.Empty(t, acc.Errors)
	return len(acc.GetTelegrafMetrics())
}

// Two replicas: exactly one collects; when it stops, the lease is released
// and the other collects, at once rather than a lease later.
func TestLeaderElectionOneCollects(t *testing.T) {
	fx := newFixture(t)
	a := candidate(t, fx)
	first := gathered(t, a) // the first gather waits for the election
	require.Positive(t, first, "the only candidate collects")
	b := candidate(t, fx)
	require.Zero(t, gathered(t, b), "the standby collects nothing")
	require.Equal(t, first, gathered(t, a))

	lease, err := fx.kube.CoordinationV1().Leases("telegraf-tkgi").Get(context.Background(), defaultLeaseName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, a.elector.identity, *lease.Spec.HolderIdentity)
	hostname, err := os.Hostname()
	require.NoError(t, err)
	if os.Getenv("HOSTNAME") != "" {
		hostname = os.Getenv("HOSTNAME")
	}
	require.Regexp(t, "^"+hostname+"_[0-9a-f]{8}$", a.elector.identity)
	require.NotEqual(t, a.elector.identity, b.elector.identity)

	a.Stop()
	start := time.Now()
	require.Eventually(t, func() bool { return gathered(t, b) == first }, 5*time.Second, 20*time.Millisecond,
		"the standby never took over")
	require.Less(t, time.Since(start), time.Duration(b.LeaseDuration), "a released lease is taken over before it would expire")
	require.Equal(t, int64(1), b.elector.isLeader.Get())
}

// A leader that can no longer renew (the API server refuses its updates,
// as in a partition) stops collecting before its lease could expire for a
// standby, and stands again: it leads once more when it can renew.
func TestLeaderElectionLostLease(t *testing.T) {
	fx := newFixture(t)
	var partitioned atomic.Bool
	fx.kube.PrependReactor("update", "leases", func(ktesting.Action) (bool, kruntime.Object, error) {
		if partitioned.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	a := candidate(t, fx)
	require.Positive(t, gathered(t, a))
	term, _ := a.elector.currentTerm(context.Background(), 0)
	require.NotNil(t, term)
	terms := a.elector.acquired.Get()

	partitioned.Store(true)
	cut := time.Now()
	select {
	case <-term.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the term did not end while the lease could not be renewed")
	}
	// The last renewal was at most a retry period before the cut.
	require.Less(t, time.Since(cut), time.Duration(a.LeaseDuration-a.RetryPeriod),
		"the leader must stop before a standby may take the lease over")
	require.Zero(t, gathered(t, a), "no collection outside a term")

	partitioned.Store(false)
	require.Eventually(t, func() bool { return gathered(t, a) > 0 }, 10*time.Second, 50*time.Millisecond,
		"the replica never led again")
	require.Equal(t, terms+1, a.elector.acquired.Get())
}

// leader_election takes a boolean, or a string an environment variable
// fills in, through Telegraf's own loader in its default strict mode (which
// substitutes inside strings only).
func TestToggleUnmarshal(t *testing.T) {
	t.Setenv("KT_LEADER_ON", "true")
	t.Setenv("KT_LEADER_OFF", "false")
	t.Setenv("KT_LEADER_EMPTY", "")
	for _, tt := range []struct {
		value   string
		want    bool
		wantErr string
	}{
		{value: `true`, want: true},
		{value: `false`},
		{value: `"true"`, want: true},
		{value: `" TRUE "`, want: true},
		{value: `""`},
		{value: `'false'`},
		{value: `"${KT_LEADER_ON}"`, want: true},
		{value: `"${KT_LEADER_OFF}"`},
		{value: `"${KT_LEADER_EMPTY}"`},
		{value: `"yes"`, wantErr: `"yes" is neither true nor false`},
		{value: `"${KT_LEADER_UNSET}"`, wantErr: `"${KT_LEADER_UNSET}" is neither true nor false`},
	} {
		t.Run(tt.value, func(t *testing.T) {
			c := config.NewConfig()
			err := c.LoadConfigData([]byte("[[inputs.kube_telemetry]]\n  leader_election = "+tt.value+"\n"), config.EmptySourcePath)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, c.Inputs, 1)
			require.Equal(t, tt.want, bool(c.Inputs[0].Input.(*KubeTelemetry).LeaderElection))
		})
	}
}

// Without the lease Role the replica never collects, says once which rule
// is missing, and does not hold up each gather waiting for the election.
func TestLeaderElectionForbidden(t *testing.T) {
	fx := newFixture(t)
	var attempts atomic.Int64
	forbid := func(action ktesting.Action) (bool, kruntime.Object, error) {
		attempts.Add(1)
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"},
			defaultLeaseName, errors.New(`User "system:serviceaccount:telegraf-tkgi:telegraf-tkgi-agent" cannot `+
				action.GetVerb()+` resource "leases" in API group "coordination.k8s.io" in the namespace "telegraf-tkgi"`))
	}
	fx.kube.PrependReactor("get", "leases", forbid)
	fx.kube.PrependReactor("create", "leases", forbid)
	logger := &testutil.CaptureLogger{}
	k := fx.plugin(t, func(k *KubeTelemetry) {
		k.Log = logger
		k.LeaderElection = true
		k.LeaseNamespace = "telegraf-tkgi"
		k.LeaseName = defaultLeaseName
		k.LeaseDuration = config.Duration(1500 * time.Millisecond)
		k.RenewDeadline = config.Duration(time.Second)
		k.RetryPeriod = config.Duration(100 * time.Millisecond)
		k.leases = fx.kube.CoordinationV1()
	})
	require.Zero(t, gathered(t, k)) // waits up to the renew deadline once
	start := time.Now()
	for range 5 {
		require.Zero(t, gathered(t, k))
	}
	require.Less(t, time.Since(start), 500*time.Millisecond, "later gathers must not wait for the election")
	require.Eventually(t, func() bool { return len(logger.Errors()) > 0 }, 5*time.Second, 20*time.Millisecond)
	seen := attempts.Load()
	require.Eventually(t, func() bool { return attempts.Load() >= seen+5 }, 5*time.Second, 20*time.Millisecond,
		"the election stopped trying")
	errs := logger.Errors()
	require.Len(t, errs, 1, "one line, not one per attempt: %v", errs)
	require.Contains(t, errs[0], "Leader election on lease telegraf-tkgi/telegraf-tkgi-kube-telemetry: ")
	require.Contains(t, errs[0], `forbidden: the agent's ServiceAccount needs get, update and create on leases `+
		`(apiGroup "coordination.k8s.io") in the lease's namespace (configs/kubernetes/ha/lease-role.yaml): `)
}
