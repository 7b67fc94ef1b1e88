package kube_telemetry

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ktesting "k8s.io/client-go/testing"
)

func TestCheckClusterID(t *testing.T) {
	tests := []struct {
		name, id, wantErr string
	}{
		{name: "unset", id: ""},
		{name: "a namespace UID", id: "9e85e4d1-0118-458d-8956-2b7791786046"},
		{name: "an inventory key", id: "tkgi:prod-east.cluster_01"},
		{name: "longest", id: strings.Repeat("a", maxClusterIDLength)},
		{name: "too long", id: strings.Repeat("a", maxClusterIDLength+1), wantErr: "must be 1 to 128 letters"},
		{name: "space", id: "prod east", wantErr: `cluster_id "prod east" must be 1 to 128 letters`},
		{name: "blank", id: " ", wantErr: `cluster_id " " must be`},
		{name: "starts with a separator", id: "-prod", wantErr: `cluster_id "-prod" must be`},
		{name: "unset environment variable", id: "${CLUSTER_ID}", wantErr: `cluster_id "${CLUSTER_ID}" must be`},
		{name: "tag escape", id: "a,b=c", wantErr: `cluster_id "a,b=c" must be`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkClusterID(tt.id)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// The cluster's identity under limited rights: a configured cluster_id is
// used without reading kube-system; a kube-system the agent may not read
// costs the tag cluster_uid and one error naming the rule, never the other
// metrics.
func TestGatherIdentity(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "kube-system",
		errors.New(`User "telegraf" cannot get resource "namespaces" in API group "" at the cluster scope`))
	tests := []struct {
		name      string
		clusterID string
		getErr    error
		wantUID   string // "" for no tag
		wantError string
		wantGets  int64
	}{
		{name: "kube-system's UID", wantUID: fixtureUID, wantGets: 1},
		{name: "configured cluster_id: kube-system not read", clusterID: "tkgi-prod-east", wantUID: "tkgi-prod-east"},
		{name: "configured cluster_id wins over a forbidden kube-system", clusterID: "tkgi-prod-east",
			getErr: forbidden, wantUID: "tkgi-prod-east"},
		{name: "forbidden kube-system reports the rule and the rest", getErr: forbidden, wantGets: 1,
			wantError: `getting namespace kube-system (the cluster's identity) failed: forbidden: ` +
				`grant "get" on "namespaces" named "kube-system" (cluster scope, apiGroup "") to the agent's ServiceAccount; ` +
				`the metrics carry no cluster_uid until then; or set cluster_id: ` +
				`namespaces "kube-system" is forbidden: User "telegraf" cannot get resource "namespaces" in API group "" at the cluster scope`},
		{name: "other errors are reported as they are", getErr: errors.New("boom"), wantGets: 1,
			wantError: `getting namespace kube-system (the cluster's identity) failed: boom`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			var gets atomic.Int64
			fx.kube.PrependReactor("get", "namespaces", func(ktesting.Action) (bool, kruntime.Object, error) {
				gets.Add(1)
				if tt.getErr != nil {
					return true, nil, tt.getErr
				}
				return false, nil, nil
			})
			k := fx.plugin(t, func(k *KubeTelemetry) { k.ClusterName = "lab"; k.ClusterID = tt.clusterID })
			var acc testutil.Accumulator
			require.NoError(t, k.Gather(&acc))
			require.Equal(t, tt.wantGets, gets.Load(), "GETs of namespace kube-system")
			if tt.wantError == "" {
				require.Empty(t, acc.Errors)
			} else {
				require.Len(t, acc.Errors, 1)
				require.EqualError(t, acc.Errors[0], tt.wantError)
			}

			// Every metric is reported, with the identity as configured.
			var expected []telegraf.Metric
			for _, m := range expectedFixtureMetrics() {
				if tt.wantUID == "" {
					m.RemoveTag("cluster_uid")
				} else {
					m.AddTag("cluster_uid", tt.wantUID)
				}
				expected = append(expected, m)
			}
			testutil.RequireMetricsEqual(t, expected, acc.GetTelegrafMetrics(),
				testutil.SortMetrics(), testutil.IgnoreTime(), ignoreTimings, testutil.IgnoreFields("api_requests"))
		})
	}
}
