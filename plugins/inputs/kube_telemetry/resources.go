package kube_telemetry

import (
	"sort"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// resource is one Kubernetes list the plugin pages through. Its name is the
// plural resource name: the value of the "resource" tag, the key of
// resource_include/resource_exclude and the resource of the RBAC rule.
type resource struct {
	name       string
	kind       string
	group      string
	version    string
	namespaced bool
	// metadataOnly resources are only counted: the server sends object
	// metadata only, a fraction of the full objects.
	metadataOnly bool
	// objectsField is the resource's count field in
	// kube_telemetry_objects, empty for the resources with measurements
	// of their own (pods, nodes).
	objectsField string
	// newFold returns the per-gather state a list of this resource is
	// folded into; a fresh one every gather so nothing outlives it.
	newFold func(foldConfig) fold
}

func (r resource) gvr() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.group, Version: r.version, Resource: r.name}
}

// path is the resource's list URL path, all namespaces.
func (r resource) path() string {
	if r.group == "" {
		return "/api/" + r.version + "/" + r.name
	}
	return "/apis/" + r.group + "/" + r.version + "/" + r.name
}

// resources is every list the plugin knows, ordered by expected cost so the
// long lists start first when lists run side by side. Full objects where
// fields of spec or status are needed; metadata-only where counting
// suffices.
var resources = []resource{
	{name: "pods", kind: "Pod", version: "v1", namespaced: true,
		newFold: objects(newPodTally)},
	{name: "replicasets", kind: "ReplicaSet", group: "apps", version: "v1", namespaced: true, metadataOnly: true,
		objectsField: "replicasets", newFold: counted},
	{name: "nodes", kind: "Node", version: "v1",
		newFold: objects(newNodeTally)},
	{name: "services", kind: "Service", version: "v1", namespaced: true,
		objectsField: "services", newFold: objects(newServiceTally)},
	{name: "deployments", kind: "Deployment", group: "apps", version: "v1", namespaced: true,
		objectsField: "deployments", newFold: objects(newDeploymentTally)},
	{name: "persistentvolumeclaims", kind: "PersistentVolumeClaim", version: "v1", namespaced: true,
		objectsField: "persistent_volume_claims", newFold: objects(newPVCTally)},
	{name: "persistentvolumes", kind: "PersistentVolume", version: "v1",
		objectsField: "persistent_volumes", newFold: objects(newPVTally)},
	{name: "jobs", kind: "Job", group: "batch", version: "v1", namespaced: true, metadataOnly: true,
		objectsField: "jobs", newFold: counted},
	{name: "cronjobs", kind: "CronJob", group: "batch", version: "v1", namespaced: true, metadataOnly: true,
		objectsField: "cronjobs", newFold: counted},
	{name: "statefulsets", kind: "StatefulSet", group: "apps", version: "v1", namespaced: true, metadataOnly: true,
		objectsField: "statefulsets", newFold: counted},
	{name: "daemonsets", kind: "DaemonSet", group: "apps", version: "v1", namespaced: true,
		objectsField: "daemonsets", newFold: objects(newDaemonSetTally)},
	{name: "ingresses", kind: "Ingress", group: "networking.k8s.io", version: "v1", namespaced: true, metadataOnly: true,
		objectsField: "ingresses", newFold: counted},
	{name: "namespaces", kind: "Namespace", version: "v1", metadataOnly: true,
		objectsField: "namespaces", newFold: counted},
	{name: "customresourcedefinitions", kind: "CustomResourceDefinition", group: "apiextensions.k8s.io", version: "v1", metadataOnly: true,
		objectsField: "crds", newFold: counted},
	{name: "ingressclasses", kind: "IngressClass", group: "networking.k8s.io", version: "v1", metadataOnly: true,
		objectsField: "ingress_classes", newFold: counted},
	{name: "storageclasses", kind: "StorageClass", group: "storage.k8s.io", version: "v1",
		objectsField: "storage_classes", newFold: objects(newStorageClassTally)},
	{name: "csidrivers", kind: "CSIDriver", group: "storage.k8s.io", version: "v1", metadataOnly: true,
		objectsField: "csi_drivers", newFold: counted},
}

// resourceNames lists the valid resource names, sorted, for error messages.
func resourceNames() []string {
	names := make([]string, 0, len(resources))
	for _, r := range resources {
		names = append(names, r.name)
	}
	sort.Strings(names)
	return names
}

// resourceByName returns the resource of the table with that name.
func resourceByName(name string) resource {
	for _, r := range resources {
		if r.name == name {
			return r
		}
	}
	return resource{name: name}
}
