package sinks

import (
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
)

// Labels the controller puts on everything it renders; the cache watches
// only objects carrying managedByLabel.
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "telegraf-tkgi-sink-controller"
	instanceLabel  = "app.kubernetes.io/instance"
	componentLabel = "app.kubernetes.io/component"
	nameLabel      = "app.kubernetes.io/name"

	// configDir is where the agents mount their ConfigMap: a directory
	// mount, so a change arrives as an atomic symlink swap that
	// --watch-config sees, never through subPath (which is frozen).
	configDir = "/etc/telegraf-tkgi"
)

// TenantObjectName names every object a MetricSink renders in its namespace.
func TenantObjectName(sink string) string { return "metricsink-" + sink }

// maxSinkName keeps TenantObjectName and the instance label within the
// 63-character label value limit.
const maxSinkName = 63 - len("metricsink-")

func tenantLabels(sink string) map[string]string {
	return map[string]string{
		nameLabel:      "telegraf-tkgi",
		componentLabel: "metric-sink",
		instanceLabel:  sink,
		managedByLabel: managedBy,
	}
}

func tenantSelector(sink string) map[string]string {
	return map[string]string{nameLabel: "telegraf-tkgi", componentLabel: "metric-sink", instanceLabel: sink}
}

// tenantObjects is what one MetricSink renders in its namespace, each owned
// by the sink so the garbage collector removes them with it: the
// configuration, an identity, the right to read its namespace's pods and
// nothing else, a one-replica agent running the configuration, and a
// headless Service when a prometheus_client output serves metrics.
func tenantObjects(sink *MetricSink, conf []byte, image string) []runtime.ApplyConfiguration {
	ns, name := sink.Namespace, TenantObjectName(sink.Name)
	labels := tenantLabels(sink.Name)
	owner := metav1ac.OwnerReference().
		WithAPIVersion(GroupVersion.String()).WithKind("MetricSink").
		WithName(sink.Name).WithUID(sink.UID).
		WithController(true).WithBlockOwnerDeletion(true)

	cm := corev1ac.ConfigMap(name, ns).WithLabels(labels).WithOwnerReferences(owner).
		WithData(map[string]string{ConfigKey: string(conf)})

	sa := corev1ac.ServiceAccount(name, ns).WithLabels(labels).WithOwnerReferences(owner)

	role := rbacv1ac.Role(name, ns).WithLabels(labels).WithOwnerReferences(owner).
		WithRules(rbacv1ac.PolicyRule().
			WithAPIGroups("").WithResources("pods").WithVerbs("get", "list", "watch"))

	binding := rbacv1ac.RoleBinding(name, ns).WithLabels(labels).WithOwnerReferences(owner).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName(name)).
		WithSubjects(rbacv1ac.Subject().WithKind("ServiceAccount").WithName(name).WithNamespace(ns))

	container := corev1ac.Container().
		WithName("telegraf-tkgi").
		WithImage(image).
		WithArgs("--config", configDir+"/"+ConfigKey, "--watch-config", "notify").
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")})).
		WithSecurityContext(corev1ac.SecurityContext().
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("config").WithMountPath(configDir).WithReadOnly(true))
	ports := prometheusClientPorts(sink.Spec.Outputs)
	svc := corev1ac.Service(name, ns).WithLabels(labels).WithOwnerReferences(owner).
		WithSpec(corev1ac.ServiceSpec().WithClusterIP("None").WithSelector(tenantSelector(sink.Name)))
	for i, port := range ports {
		portName := "metrics"
		if i > 0 {
			portName = "metrics-" + strconv.Itoa(i)
		}
		container.WithPorts(corev1ac.ContainerPort().WithName(portName).WithContainerPort(port))
		svc.Spec.WithPorts(corev1ac.ServicePort().WithName(portName).WithPort(port).WithTargetPort(intstr.FromString(portName)))
	}

	deploy := appsv1ac.Deployment(name, ns).WithLabels(labels).WithOwnerReferences(owner).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(1).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(tenantSelector(sink.Name))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(labels).
				WithSpec(corev1ac.PodSpec().
					WithServiceAccountName(name).
					WithSecurityContext(corev1ac.PodSecurityContext().
						WithRunAsNonRoot(true).WithRunAsUser(65532).WithRunAsGroup(65532).
						WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
					WithContainers(container).
					WithVolumes(corev1ac.Volume().WithName("config").
						WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(name))))))

	objs := []runtime.ApplyConfiguration{cm, sa, role, binding, deploy}
	if len(ports) > 0 {
		// Headless, so Prometheus's endpoints discovery reaches the pod
		// itself, on a named port that follows the configuration.
		objs = append(objs, svc)
	}
	return objs
}

// prometheusClientPorts are the ports the sink's prometheus_client outputs
// listen on (upstream's default :9273 when unset), so the pod declares them.
func prometheusClientPorts(outputs []Plugin) []int32 {
	var ports []int32
	for _, o := range outputs {
		if o["type"] != "prometheus_client" {
			continue
		}
		listen, _ := o["listen"].(string)
		if listen == "" {
			listen = ":9273"
		}
		_, p, err := net.SplitHostPort(listen)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(p, 10, 32); err == nil && n > 0 && n < 65536 {
			ports = append(ports, int32(n))
		}
	}
	return ports
}

// ClusterConfigMap is the node DaemonSet's configuration rendered from every
// ClusterMetricSink. It is shared by all of them, so no one sink owns it.
func clusterConfigMap(namespace, name string, conf []byte) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(name, namespace).
		WithLabels(map[string]string{
			nameLabel:      "telegraf-tkgi",
			componentLabel: "cluster-metric-sinks",
			managedByLabel: managedBy,
		}).
		WithData(map[string]string{ConfigKey: string(conf)})
}
