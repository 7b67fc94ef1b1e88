package kube_telemetry

import (
	appsv1 "k8s.io/api/apps/v1"
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

type deploymentTally struct{ addonScan }

func newDeploymentTally(c foldConfig) tally[appsv1.Deployment] {
	return &deploymentTally{addonScan{namespaces: c.addonNamespaces}}
}

func (f *deploymentTally) add(d *appsv1.Deployment) {
	if !f.namespaces[d.Namespace] {
		return
	}
	desired := int64(1) // the API default for an unset spec.replicas
	if d.Spec.Replicas != nil {
		desired = int64(*d.Spec.Replicas)
	}
	f.addons.detect(kindDeployment, d.Name, d.Spec.Template.Spec.Containers, desired, int64(d.Status.ReadyReplicas))
}

type daemonSetTally struct{ addonScan }

func newDaemonSetTally(c foldConfig) tally[appsv1.DaemonSet] {
	return &daemonSetTally{addonScan{namespaces: c.addonNamespaces}}
}

func (f *daemonSetTally) add(d *appsv1.DaemonSet) {
	if !f.namespaces[d.Namespace] {
		return
	}
	f.addons.detect(kindDaemonSet, d.Name, d.Spec.Template.Spec.Containers,
		int64(d.Status.DesiredNumberScheduled), int64(d.Status.NumberReady))
}
