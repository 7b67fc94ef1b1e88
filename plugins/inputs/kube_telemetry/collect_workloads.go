package kube_telemetry

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Deployments and DaemonSets are listed as full objects (not metadata-only)
// because the ones in addon_namespaces are the cluster's add-ons: their
// images carry the versions and their status the desired and ready
// replicas. Everywhere else they are only counted, by the list itself.
// ReplicaSets, StatefulSets, Jobs and CronJobs are counted from
// metadata-only lists (see resources).

// addonScan is what the Deployment and DaemonSet tallies share: the
// add-ons found and where to look for them.
type addonScan struct {
	namespaces map[string]bool
	addons     addonSet
}

func (s *addonScan) emit(r *report) { r.addons.merge(s.addons) }

// scan looks for an add-on in a workload of the addon_namespaces.
func (s *addonScan) scan(kind string, meta *metav1.ObjectMeta, pod *corev1.PodSpec, desired, ready int64) {
	if s.namespaces[meta.Namespace] {
		s.addons.detect(kind, meta.Name, pod.Containers, desired, ready)
	}
}

type deploymentTally struct{ addonScan }

func newDeploymentTally(c foldConfig) tally[appsv1.Deployment] {
	return &deploymentTally{addonScan{namespaces: c.addonNamespaces}}
}

func (f *deploymentTally) add(d *appsv1.Deployment) {
	desired := int64(1) // the API default for an unset spec.replicas
	if d.Spec.Replicas != nil {
		desired = int64(*d.Spec.Replicas)
	}
	f.scan(kindDeployment, &d.ObjectMeta, &d.Spec.Template.Spec, desired, int64(d.Status.ReadyReplicas))
}

type daemonSetTally struct{ addonScan }

func newDaemonSetTally(c foldConfig) tally[appsv1.DaemonSet] {
	return &daemonSetTally{addonScan{namespaces: c.addonNamespaces}}
}

func (f *daemonSetTally) add(d *appsv1.DaemonSet) {
	f.scan(kindDaemonSet, &d.ObjectMeta, &d.Spec.Template.Spec,
		int64(d.Status.DesiredNumberScheduled), int64(d.Status.NumberReady))
}
