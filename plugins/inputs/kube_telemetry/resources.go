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
	// newFold returns the per-gather state a list of this resource is
	// folded into; a fresh one every gather so nothing outlives it.
	newFold func() fold
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

// fold consumes a list item by item. item folds one object, given as its
// protobuf encoding, into counters; reset forgets everything folded so far
// (the list restarts after 410 Gone).
type fold interface {
	item(raw []byte) error
	reset()
}

// resources is every list the plugin knows, ordered by expected cost so the
// long lists start first when lists run side by side. Full objects where
// fields of spec or status are needed; metadata-only where counting
// suffices.
var resources = []resource{
	{name: "pods", kind: "Pod", version: "v1", namespaced: true, newFold: func() fold { return &podFold{} }},
	{name: "replicasets", kind: "ReplicaSet", group: "apps", version: "v1", namespaced: true, metadataOnly: true, newFold: newCountFold},
	{name: "nodes", kind: "Node", version: "v1", newFold: func() fold { return &nodeFold{} }},
	{name: "services", kind: "Service", version: "v1", namespaced: true, newFold: func() fold { return &serviceFold{} }},
	{name: "deployments", kind: "Deployment", group: "apps", version: "v1", namespaced: true, newFold: func() fold { return &deploymentFold{} }},
	{name: "persistentvolumeclaims", kind: "PersistentVolumeClaim", version: "v1", namespaced: true, newFold: func() fold { return newPVCFold() }},
	{name: "persistentvolumes", kind: "PersistentVolume", version: "v1", newFold: func() fold { return newPVFold() }},
	{name: "jobs", kind: "Job", group: "batch", version: "v1", namespaced: true, metadataOnly: true, newFold: newCountFold},
	{name: "cronjobs", kind: "CronJob", group: "batch", version: "v1", namespaced: true, metadataOnly: true, newFold: newCountFold},
	{name: "statefulsets", kind: "StatefulSet", group: "apps", version: "v1", namespaced: true, metadataOnly: true, newFold: newCountFold},
	{name: "daemonsets", kind: "DaemonSet", group: "apps", version: "v1", namespaced: true, newFold: func() fold { return &daemonSetFold{} }},
	{name: "ingresses", kind: "Ingress", group: "networking.k8s.io", version: "v1", namespaced: true, metadataOnly: true, newFold: newCountFold},
	{name: "namespaces", kind: "Namespace", version: "v1", metadataOnly: true, newFold: newCountFold},
	{name: "customresourcedefinitions", kind: "CustomResourceDefinition", group: "apiextensions.k8s.io", version: "v1", metadataOnly: true, newFold: newCountFold},
	{name: "ingressclasses", kind: "IngressClass", group: "networking.k8s.io", version: "v1", metadataOnly: true, newFold: newCountFold},
	{name: "storageclasses", kind: "StorageClass", group: "storage.k8s.io", version: "v1", newFold: func() fold { return newStorageClassFold() }},
	{name: "csidrivers", kind: "CSIDriver", group: "storage.k8s.io", version: "v1", metadataOnly: true, newFold: newCountFold},
}

// objectFields maps a resource to its count field in kube_telemetry_objects.
// Pods and nodes have measurements of their own.
var objectFields = map[string]string{
	"namespaces":                "namespaces",
	"deployments":               "deployments",
	"replicasets":               "replicasets",
	"statefulsets":              "statefulsets",
	"daemonsets":                "daemonsets",
	"jobs":                      "jobs",
	"cronjobs":                  "cronjobs",
	"services":                  "services",
	"ingresses":                 "ingresses",
	"ingressclasses":            "ingress_classes",
	"storageclasses":            "storage_classes",
	"csidrivers":                "csi_drivers",
	"persistentvolumes":         "persistent_volumes",
	"persistentvolumeclaims":    "persistent_volume_claims",
	"customresourcedefinitions": "crds",
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

// countFold counts the items of a metadata-only list without decoding
// them.
type countFold struct{ n int64 }

func newCountFold() fold { return &countFold{} }

func (f *countFold) item([]byte) error { f.n++; return nil }
func (f *countFold) reset()            { f.n = 0 }
func (f *countFold) count() int64      { return f.n }

// counter is a fold whose result is a single object count.
type counter interface{ count() int64 }
