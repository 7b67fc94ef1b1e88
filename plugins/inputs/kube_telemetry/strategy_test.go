package kube_telemetry

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/version"
)

func TestResolveStrategy(t *testing.T) {
	tests := []struct {
		name       string
		configured string
		info       version.Info
		want       string
		wantWhy    string
	}{
		{name: "auto on 1.36: unpaginated", configured: strategyAuto, info: version.Info{GitVersion: "v1.36.3", Major: "1", Minor: "36"},
			want: strategyUnpaginated, wantWhy: "API server 1.36 streams lists from its watch cache"},
		{name: "auto on 1.33, the first streaming minor", configured: strategyAuto, info: version.Info{GitVersion: "v1.33.0"},
			want: strategyUnpaginated},
		{name: "auto on 1.32: lists from cache but not streamed", configured: strategyAuto, info: version.Info{GitVersion: "v1.32.9"},
			want: strategyPaginated, wantWhy: "API server 1.32 is older than 1.33: an unpaginated list would be read from etcd and held whole by the API server"},
		{name: "auto on TKGI's oldest minor", configured: strategyAuto, info: version.Info{GitVersion: "v1.29.14+vmware.1"},
			want: strategyPaginated},
		{name: "auto with a distribution suffix on minor", configured: strategyAuto, info: version.Info{GitVersion: "", Major: "1", Minor: "34+"},
			want: strategyUnpaginated},
		{name: "auto on an unversioned build: the safe choice", configured: strategyAuto, info: version.Info{GitVersion: "v0.0.0-master"},
			want: strategyPaginated, wantWhy: `the API server's version "v0.0.0-master" is not understood`},
		{name: "forced unpaginated on an old server", configured: strategyUnpaginated, info: version.Info{GitVersion: "v1.29.0"},
			want: strategyUnpaginated, wantWhy: "set by list_strategy"},
		{name: "forced paginated on a new server", configured: strategyPaginated, info: version.Info{GitVersion: "v1.36.3"},
			want: strategyPaginated, wantWhy: "set by list_strategy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := resolveStrategy(tt.configured, &tt.info)
			require.Equal(t, tt.want, got)
			if tt.wantWhy != "" {
				require.Equal(t, tt.wantWhy, why)
			}
		})
	}
}

func TestListingFor(t *testing.T) {
	tests := []struct {
		strategy string
		server   string
		want     listing
	}{
		{strategy: strategyAuto, server: "v1.36.3", want: listing{limit: 0, pageSize: 250}},
		{strategy: strategyAuto, server: "v1.30.2", want: listing{limit: 250, pageSize: 250}},
		{strategy: strategyPaginated, server: "v1.36.3", want: listing{limit: 250, pageSize: 250}},
		{strategy: strategyUnpaginated, server: "v1.30.2", want: listing{limit: 0, pageSize: 250}},
	}
	for _, tt := range tests {
		t.Run(tt.strategy+" "+tt.server, func(t *testing.T) {
			k := &KubeTelemetry{PageSize: 250, ListStrategy: tt.strategy}
			require.Equal(t, tt.want, k.listingFor(&version.Info{GitVersion: tt.server}))
		})
	}
}
