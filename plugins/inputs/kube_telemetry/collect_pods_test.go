package kube_telemetry

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

func TestQOSClass(t *testing.T) {
	res := func(req, lim corev1.ResourceList) corev1.Container {
		return corev1.Container{Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	tests := []struct {
		name       string
		status     corev1.PodQOSClass
		containers []corev1.Container
		init       []corev1.Container
		want       corev1.PodQOSClass
	}{
		{name: "status wins", status: corev1.PodQOSGuaranteed, containers: []corev1.Container{{}}, want: corev1.PodQOSGuaranteed},
		{name: "nothing set", containers: []corev1.Container{{}, {}}, want: corev1.PodQOSBestEffort},
		{name: "only other resources", containers: []corev1.Container{res(quantities("ephemeral-storage", "1Gi"), nil)},
			want: corev1.PodQOSBestEffort},
		{name: "limits only: requests default to limits",
			containers: []corev1.Container{res(nil, quantities("cpu", "1", "memory", "1Gi"))}, want: corev1.PodQOSGuaranteed},
		{name: "requests equal limits",
			containers: []corev1.Container{res(quantities("cpu", "1000m", "memory", "1Gi"), quantities("cpu", "1", "memory", "1Gi"))},
			want:       corev1.PodQOSGuaranteed},
		{name: "requests below limits",
			containers: []corev1.Container{res(quantities("cpu", "500m", "memory", "1Gi"), quantities("cpu", "1", "memory", "1Gi"))},
			want:       corev1.PodQOSBurstable},
		{name: "memory limit missing",
			containers: []corev1.Container{res(nil, quantities("cpu", "1"))}, want: corev1.PodQOSBurstable},
		{name: "one container without limits",
			containers: []corev1.Container{res(nil, quantities("cpu", "1", "memory", "1Gi")), {}}, want: corev1.PodQOSBurstable},
		{name: "init container counts",
			containers: []corev1.Container{res(nil, quantities("cpu", "1", "memory", "1Gi"))},
			init:       []corev1.Container{res(quantities("cpu", "100m"), nil)}, want: corev1.PodQOSBurstable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{
				Spec:   corev1.PodSpec{Containers: tt.containers, InitContainers: tt.init},
				Status: corev1.PodStatus{QOSClass: tt.status},
			}
			require.Equal(t, tt.want, qosClass(p))
		})
	}
}

func TestPodPhases(t *testing.T) {
	var f podTally
	for _, phase := range []corev1.PodPhase{"", corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded,
		corev1.PodFailed, corev1.PodUnknown, "SomethingNew"} {
		f.add(&corev1.Pod{Status: corev1.PodStatus{Phase: phase}})
	}
	require.Equal(t, podTally{total: 7, pending: 2, running: 1, succeeded: 1, failed: 1, unknown: 2, bestEffort: 7}, f)
}
