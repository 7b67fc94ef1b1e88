package telemetry

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEmbedsIdentifier(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		// What kube_telemetry really sends under the keep patterns.
		{"v1.36.3", false},
		{"v1.26.5+vmware.2-fips.1", false},
		{"v1.11.3_vmware.1", false},
		{"5.15.0-91-generic", false},
		{"4.18.0-513.el8.x86_64", false},
		{"5.14.0-284.11.1.el9_2.x86_64", false},
		{"6.1.10-11.ph5", false},
		{"Ubuntu 22.04.4 LTS", false},
		{"VMware Photon OS/Linux 5.0", false},
		{"Red Hat Enterprise Linux 9.2 (Plow)", false},
		{"containerd://1.7.27", false},
		{"cri-o://1.30.2", false},
		{"linux/amd64", false},
		{"antrea,nsx-node-agent", false},
		{"control-plane,worker", false},
		// Identifiers hidden in suffixes the patterns accept.
		{"v1.36.3+node7.corp.example.com", true},
		{"5.15.0-worker-3.prod.example.org", true},
		{"5.15.0-10.0.0.7", true},
		{"v1.2.3-192.168.10.254", true},
		{"v2.1.0-fd00:12:34::7", true},
		{"v1.2.3-jane.doe@example.com", true},
		{"v1.2.3-3f1e2d4c-5b6a-4c8d-9e0f-1a2b3c4d5e6f", true},
		{"v1.2.3-9f2b6c0d4e1a7b35", true},
		{"v1.2.3-9f2b6c0d4e1a", true},     // pseudonym-long, also a short container id
		{"v1.2.3+sha.1f2e3d4c5b6a", true}, // same, after a dot
		// Hex runs that are not ids.
		{"v0.0.0-20240101120000-abc", false}, // pseudo-version timestamp: all digits
		{"v1.2.3-9f2b6c0d4e1", false},        // 11: a git short hash
		{"deadbeefcafe", false},              // letters only
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			require.Equal(t, tt.want, embedsIdentifier(tt.value))
		})
	}
}
