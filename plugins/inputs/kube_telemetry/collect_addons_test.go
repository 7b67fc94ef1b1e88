package kube_telemetry

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

func TestSplitImage(t *testing.T) {
	tests := []struct {
		image, repo, tag, version string
	}{
		{image: "projects.registry.vmware.com/antrea/antrea-ubuntu:v2.1.0", repo: "antrea/antrea-ubuntu", tag: "v2.1.0", version: "v2.1.0"},
		{image: "registry.customer.example:5000/kube-system/coredns:v1.11.3_vmware.1", repo: "kube-system/coredns", tag: "v1.11.3_vmware.1", version: "v1.11.3_vmware.1"},
		{image: "localhost/metrics-server:0.7", repo: "metrics-server", tag: "0.7", version: "0.7"},
		{image: "localhost:5000/metrics-server", repo: "metrics-server", version: "latest"},
		{image: "calico/node:v3.27.0", repo: "calico/node", tag: "v3.27.0", version: "v3.27.0"},
		{image: "coredns", repo: "coredns", version: "latest"},
		{image: "registry.k8s.io/kube-proxy@sha256:0123", repo: "kube-proxy", version: "unknown"},
		{image: "registry.k8s.io/kube-proxy:v1.36.3@sha256:0123", repo: "kube-proxy", tag: "v1.36.3", version: "v1.36.3"},
		{image: "", repo: "", version: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			repo, tag := splitImage(tt.image)
			require.Equal(t, tt.repo, repo)
			require.Equal(t, tt.tag, tag)
			require.Equal(t, tt.version, imageTag(tt.image))
			// The registry host never reaches the version.
			require.NotContains(t, imageTag(tt.image), "registry")
		})
	}
}

func TestMatchAddon(t *testing.T) {
	containers := func(images ...string) []corev1.Container {
		var cs []corev1.Container
		for i, img := range images {
			cs = append(cs, corev1.Container{Name: "c" + string(rune('0'+i)), Image: img})
		}
		return cs
	}
	tests := []struct {
		name       string
		workload   string
		containers []corev1.Container
		addon      string
		category   string
		version    string
	}{
		{name: "by name", workload: "coredns", containers: containers("my.registry/dns/coredns:v1.11.3"),
			addon: "coredns", category: "dns", version: "v1.11.3"},
		{name: "by name, version from the add-on's container", workload: "antrea-agent",
			containers: containers("busybox:1.36", "projects.registry.vmware.com/antrea/antrea-ubuntu:v2.1.0"),
			addon:      "antrea", category: "cni", version: "v2.1.0"},
		{name: "by name, unknown image: first container", workload: "nsx-node-agent",
			containers: containers("harbor.corp.local/nsx/nsx-node-agent-custom:4.1.2"),
			addon:      "nsx-node-agent", category: "cni", version: "4.1.2"},
		{name: "renamed, by image", workload: "dns-resolver", containers: containers("docker.io/coredns/coredns:1.9.0"),
			addon: "coredns", category: "dns", version: "1.9.0"},
		{name: "path suffix only on whole elements", workload: "my-node", containers: containers("example.com/notcalico/node:1")},
		{name: "customer workload", workload: "payments", containers: containers("registry.corp/payments:3")},
		{name: "no containers", workload: "metrics-server", addon: "metrics-server", category: "metrics", version: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, image, ok := matchAddon(tt.workload, tt.containers)
			if tt.addon == "" {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tt.addon, rule.addon)
			require.Equal(t, tt.category, rule.category)
			require.Equal(t, tt.version, imageTag(image))
		})
	}
}

func TestCNI(t *testing.T) {
	set := func(rows ...addonKey) addonSet {
		s := addonSet{}
		for _, k := range rows {
			s[k] = addonCount{desired: 1, ready: 1}
		}
		return s
	}
	antreaDS := addonKey{addon: "antrea", category: "cni", kind: kindDaemonSet, version: "v2"}
	antreaDeploy := addonKey{addon: "antrea", category: "cni", kind: kindDeployment, version: "v2"}
	ncp := addonKey{addon: "nsx-ncp", category: "cni", kind: kindDeployment, version: "4"}
	calico := addonKey{addon: "calico", category: "cni", kind: kindDaemonSet, version: "v3"}
	coredns := addonKey{addon: "coredns", category: "dns", kind: kindDeployment, version: "v1"}
	tests := []struct {
		name string
		sets []addonSet
		want string
	}{
		{name: "none", want: "unknown"},
		{name: "no cni", sets: []addonSet{set(coredns)}, want: "unknown"},
		{name: "agent and controller", sets: []addonSet{set(antreaDS), set(antreaDeploy, coredns)}, want: "antrea"},
		{name: "node agent wins over controller", sets: []addonSet{set(calico), set(ncp)}, want: "calico"},
		{name: "controller only", sets: []addonSet{set(ncp)}, want: "nsx-ncp"},
		{name: "migration", sets: []addonSet{set(calico, antreaDS)}, want: "antrea,calico"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, cni(tt.sets...))
		})
	}
}

func TestAddonSetSums(t *testing.T) {
	var s addonSet
	c := []corev1.Container{{Name: "coredns", Image: "coredns/coredns:v1.11.3"}}
	s.detect(kindDeployment, "coredns", c, 2, 1)
	s.detect(kindDeployment, "kube-dns", []corev1.Container{{Name: "x", Image: "coredns/coredns:v1.11.3"}}, 1, 1)
	s.detect(kindDeployment, "coredns-canary", []corev1.Container{{Name: "x", Image: "coredns/coredns:v1.12.0"}}, 1, 0)
	s.detect(kindDeployment, "payments", []corev1.Container{{Name: "x", Image: "payments:1"}}, 5, 5)
	require.Equal(t, addonSet{
		{addon: "coredns", category: "dns", kind: kindDeployment, version: "v1.11.3"}:  {desired: 2, ready: 1},
		{addon: "kube-dns", category: "dns", kind: kindDeployment, version: "v1.11.3"}: {desired: 1, ready: 1},
		{addon: "coredns", category: "dns", kind: kindDeployment, version: "v1.12.0"}:  {desired: 1, ready: 0},
	}, s)
}
