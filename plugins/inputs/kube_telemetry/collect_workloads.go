package kube_telemetry

import (
	appsv1 "k8s.io/api/apps/v1"
)

// Deployments and DaemonSets are listed as full objects (not metadata-only)
// because the ones in addon_namespaces are the cluster's add-ons: their
// images carry the versions and their status the desired and ready
// replicas. Everywhere else they are only counted. ReplicaSets,
// StatefulSets, Jobs and CronJobs are counted from metadata-only lists (see
// resources).

// addonFold is a fold that also detects add-ons in the addon_namespaces.
type addonFold interface {
	lookIn(namespaces map[string]bool)
}

// addonScan is what the Deployment and DaemonSet folds share: the count,
// the add-ons found and where to look for them.
type addonScan struct {
	n          int64
	addons     addonSet
	namespaces map[string]bool
}

func (s *addonScan) lookIn(ns map[string]bool) { s.namespaces = ns }
func (s *addonScan) count() int64              { return s.n }

// counted counts an object and says whether it may be an add-on.
func (s *addonScan) counted(namespace string) bool {
	s.n++
	return s.namespaces[namespace]
}

type deploymentFold struct {
	addonScan
	obj appsv1.Deployment // reused for every item
}

func (f *deploymentFold) item(raw []byte) error {
	d := &f.obj
	if err := decodeInto(d, raw); err != nil {
		return err
	}
	if !f.counted(d.Namespace) {
		return nil
	}
	desired := int64(1) // the API default for an unset spec.replicas
	if d.Spec.Replicas != nil {
		desired = int64(*d.Spec.Replicas)
	}
	f.addons.detect(kindDeployment, d.Name, d.Spec.Template.Spec.Containers, desired, int64(d.Status.ReadyReplicas))
	return nil
}

func (f *deploymentFold) reset() {
	*f = deploymentFold{addonScan: addonScan{namespaces: f.namespaces}}
}

type daemonSetFold struct {
	addonScan
	obj appsv1.DaemonSet // reused for every item
}

func (f *daemonSetFold) item(raw []byte) error {
	d := &f.obj
	if err := decodeInto(d, raw); err != nil {
		return err
	}
	if !f.counted(d.Namespace) {
		return nil
	}
	f.addons.detect(kindDaemonSet, d.Name, d.Spec.Template.Spec.Containers,
		int64(d.Status.DesiredNumberScheduled), int64(d.Status.NumberReady))
	return nil
}

func (f *daemonSetFold) reset() {
	*f = daemonSetFold{addonScan: addonScan{namespaces: f.namespaces}}
}
