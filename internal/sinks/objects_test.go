package sinks

import (
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
)

func TestPrometheusClientPorts(t *testing.T) {
	tests := []struct {
		name    string
		outputs []Plugin
		want    []int32
	}{
		{"upstream's default port", []Plugin{{"type": "prometheus_client"}}, []int32{9273}},
		{"the configured port", []Plugin{{"type": "prometheus_client", "listen": "0.0.0.0:9100"}}, []int32{9100}},
		{"each prometheus_client output", []Plugin{{"type": "prometheus_client", "listen": ":1"}, {"type": "file"}, {"type": "prometheus_client", "listen": ":2"}}, []int32{1, 2}},
		{"other outputs open no port", []Plugin{{"type": "influxdb"}}, nil},
		{"an unparsable address is left to the check", []Plugin{{"type": "prometheus_client", "listen": "nonsense"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, prometheusClientPorts(tt.outputs))
		})
	}
}

func TestTenantObjects(t *testing.T) {
	sink := &MetricSink{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app", UID: "uid-1"},
		Spec:       SinkSpec{Outputs: []Plugin{{"type": "prometheus_client", "listen": ":9274"}}},
	}
	objs := tenantObjects(sink, []byte("conf"), "img:1")
	require.Len(t, objs, 6)
	svc := objs[5].(*corev1ac.ServiceApplyConfiguration)
	require.Equal(t, "None", *svc.Spec.ClusterIP)
	require.Equal(t, int32(9274), *svc.Spec.Ports[0].Port)
	require.Equal(t, "metrics", svc.Spec.Ports[0].TargetPort.StrVal)

	cm := objs[0].(*corev1ac.ConfigMapApplyConfiguration)
	require.Equal(t, "conf", cm.Data[ConfigKey])
	role := objs[2].(*rbacv1ac.RoleApplyConfiguration)
	require.Len(t, role.Rules, 1)
	require.Equal(t, []string{"pods"}, role.Rules[0].Resources)
	require.Equal(t, []string{"get", "list", "watch"}, role.Rules[0].Verbs)
	binding := objs[3].(*rbacv1ac.RoleBindingApplyConfiguration)
	require.Equal(t, "team-a", *binding.Subjects[0].Namespace)
	deploy := objs[4].(*appsv1ac.DeploymentApplyConfiguration)
	require.Equal(t, int32(1), *deploy.Spec.Replicas)
	c := deploy.Spec.Template.Spec.Containers[0]
	require.Equal(t, "img:1", *c.Image)
	require.Equal(t, int32(9274), *c.Ports[0].ContainerPort)
	require.Equal(t, "metrics", *c.Ports[0].Name)

	for _, obj := range objs {
		named := obj.(interface {
			GetName() *string
			GetNamespace() *string
		})
		require.Equal(t, "metricsink-app", *named.GetName())
		require.Equal(t, "team-a", *named.GetNamespace())
	}
	for _, refs := range [][]string{
		{*cm.OwnerReferences[0].Kind, string(*cm.OwnerReferences[0].UID)},
		{*deploy.OwnerReferences[0].Kind, string(*deploy.OwnerReferences[0].UID)},
	} {
		require.Equal(t, []string{"MetricSink", "uid-1"}, refs)
	}
	require.True(t, *deploy.OwnerReferences[0].Controller)
}

func TestTenantObjectsWithoutMetricsPortHaveNoService(t *testing.T) {
	sink := &MetricSink{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app"},
		Spec: SinkSpec{Outputs: []Plugin{{"type": "influxdb"}}}}
	require.Len(t, tenantObjects(sink, nil, "img"), 5)
}
