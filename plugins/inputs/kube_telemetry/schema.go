package kube_telemetry

import (
	"fmt"
	"strings"
)

// The schema is every metric the plugin emits, declared once as data: the
// measurement, its tags and fields with their types and meanings. The
// emitter refuses what it does not declare; the README's metric list is
// rendered from it; tests check the data dictionary (whose classes and
// allowed values decide what leaves the installation) against it both
// ways, and other packages' fixtures are built from it (see Schema).

// valueType is the type of a field's value, as emitted.
type valueType int

const (
	typeInt valueType = iota
	typeFloat
	typeString
	typeBool
)

// String is the type's name in the README.
func (t valueType) String() string {
	return [...]string{"integer", "float", "string", "boolean"}[t]
}

// dictionaryType is the type's name in the data dictionary.
func (t valueType) dictionaryType() string {
	return [...]string{"int", "float", "string", "bool"}[t]
}

// matches reports whether v is a value of the type as the plugin emits it.
func (t valueType) matches(v any) bool {
	switch v.(type) {
	case int64:
		return t == typeInt
	case float64:
		return t == typeFloat
	case string:
		return t == typeString
	case bool:
		return t == typeBool
	}
	return false
}

// key is one tag or field of a measurement. Tags are strings.
type key struct {
	name string
	typ  valueType
	doc  string
}

// measurement is one metric of the schema.
type measurement struct {
	name string
	// series says what one series is when there are several per cluster.
	series string
	tags   []key // beside the common tags
	fields []key

	tagIndex   map[string]bool
	fieldIndex map[string]valueType
}

func tag(name, doc string) key                       { return key{name: name, typ: typeString, doc: doc} }
func field(name string, t valueType, doc string) key { return key{name: name, typ: t, doc: doc} }

// commonTags are on every metric: the cluster's identity.
var commonTags = []key{
	tag("cluster_uid", "UID of the `kube-system` namespace, stable for the cluster's life"),
	tag("cluster_name", "the `cluster_name` setting (only if set)"),
}

var (
	clusterMetric = &measurement{name: "kube_telemetry_cluster", fields: []key{
		field("server_version", typeString, "API server version, e.g. `v1.36.3`"),
		field("platform", typeString, "API server platform, e.g. `linux/amd64`"),
		field("cni", typeString, "the CNI detected among the add-ons (the CNI's node agent DaemonSet, else any CNI add-on; several are joined with `,`), `unknown` if none"),
		field("collection_seconds", typeFloat, "wall time of the whole collection"),
		field("api_requests", typeInt, "HTTP requests sent to the API server in this collection, retries and failures included"),
		field("pages", typeInt, "list pages received, all resources"),
		field("errors", typeInt, "resources whose list failed"),
		field("resources", typeInt, "resources listed successfully"),
	}}

	resourceMetric = &measurement{name: "kube_telemetry_resource", series: "one per selected resource",
		tags: []key{tag("resource", "plural resource name, e.g. `pods`, `persistentvolumes`")},
		fields: []key{
			field("items", typeInt, "objects listed (0 if the list failed)"),
			field("pages", typeInt, "pages received, including those of restarted lists"),
			field("duration_seconds", typeFloat, "wall time of the list"),
			field("errors", typeInt, "1 if the list failed, else 0"),
			field("restarts", typeInt, "times the list started over after its continue token expired (410 Gone)"),
		}}

	nodesMetric = &measurement{name: "kube_telemetry_nodes", fields: []key{
		field("total", typeInt, "nodes"),
		field("ready", typeInt, "nodes whose `Ready` condition is `True`"),
		field("not_ready", typeInt, "nodes whose `Ready` condition is `False`"),
		field("unknown", typeInt, "nodes whose `Ready` condition is `Unknown` or missing"),
		field("memory_pressure", typeInt, "nodes with `MemoryPressure` `True`"),
		field("disk_pressure", typeInt, "nodes with `DiskPressure` `True`"),
		field("pid_pressure", typeInt, "nodes with `PIDPressure` `True`"),
		field("network_unavailable", typeInt, "nodes with `NetworkUnavailable` `True`"),
		field("unschedulable", typeInt, "cordoned nodes (`spec.unschedulable`)"),
	}}

	nodeRoleMetric = &measurement{name: "kube_telemetry_node_role", series: "one per role",
		tags:   []key{tag("role", "the node's `node-role.kubernetes.io/<role>` labels, sorted and joined with `,`; `none` without any")},
		fields: []key{field("nodes", typeInt, "nodes with this role; the roles add up to the node total")}}

	nodeMetric = &measurement{name: "kube_telemetry_node", series: "one per node",
		tags: []key{
			tag("node", "node name"),
			tag("role", "as in `kube_telemetry_node_role`"),
			tag("os_image", "e.g. `Ubuntu 22.04.5 LTS`"),
			tag("kernel_version", ""),
			tag("operating_system", "`linux` or `windows`"),
			tag("architecture", "e.g. `amd64`, `arm64`"),
			tag("kubelet_version", ""),
			tag("container_runtime_version", "e.g. `containerd://1.7.27`"),
		},
		fields: []key{
			field("ready", typeBool, "`Ready` condition is `True`"),
			field("cpu_capacity_millicores", typeInt, ""),
			field("memory_capacity_bytes", typeInt, ""),
			field("pods_capacity", typeInt, ""),
			field("cpu_allocatable_millicores", typeInt, ""),
			field("memory_allocatable_bytes", typeInt, ""),
			field("pods_allocatable", typeInt, ""),
			field("gpu_capacity", typeInt, "sum of the extended resources whose name ends in `/gpu` (`nvidia.com/gpu`, `amd.com/gpu`)"),
			field("gpu_allocatable", typeInt, "the same, allocatable"),
		}}

	podsMetric = &measurement{name: "kube_telemetry_pods", fields: []key{
		field("total", typeInt, "pods in all namespaces"),
		field("pending", typeInt, "phase `Pending`"),
		field("running", typeInt, "phase `Running`"),
		field("succeeded", typeInt, "phase `Succeeded`"),
		field("failed", typeInt, "phase `Failed`"),
		field("unknown", typeInt, "phase `Unknown`"),
		field("qos_guaranteed", typeInt, "`status.qosClass` `Guaranteed`"),
		field("qos_burstable", typeInt, "`status.qosClass` `Burstable`"),
		field("qos_best_effort", typeInt, "`status.qosClass` `BestEffort` (derived from requests and limits if the status has none)"),
		field("containers", typeInt, "containers in the pod specs"),
		field("init_containers", typeInt, "init containers in the pod specs"),
	}}

	// objectsMetric's fields are the objectsField of the resources (see
	// resources) and the services' breakdown by type.
	objectsMetric = &measurement{name: "kube_telemetry_objects", fields: []key{
		field("namespaces", typeInt, ""),
		field("deployments", typeInt, ""),
		field("replicasets", typeInt, ""),
		field("statefulsets", typeInt, ""),
		field("daemonsets", typeInt, ""),
		field("jobs", typeInt, ""),
		field("cronjobs", typeInt, ""),
		field("services", typeInt, "all services"),
		field("services_cluster_ip", typeInt, "type `ClusterIP`, headless ones included"),
		field("services_node_port", typeInt, "type `NodePort`"),
		field("services_load_balancer", typeInt, "type `LoadBalancer`"),
		field("services_external_name", typeInt, "type `ExternalName`"),
		field("services_headless", typeInt, "`clusterIP: None`"),
		field("ingresses", typeInt, ""),
		field("ingress_classes", typeInt, ""),
		field("storage_classes", typeInt, ""),
		field("csi_drivers", typeInt, ""),
		field("persistent_volumes", typeInt, ""),
		field("persistent_volume_claims", typeInt, ""),
		field("crds", typeInt, "CustomResourceDefinitions"),
	}}

	storageMetric = &measurement{name: "kube_telemetry_storage", series: "one per storage class",
		tags: []key{
			tag("storage_class", "every StorageClass and every class a volume or claim names; `none` for volumes and claims without a class"),
			tag("provisioner", "the StorageClass's provisioner; for a class that does not exist (or storageclasses not listed), the volumes' `pv.kubernetes.io/provisioned-by` annotation or CSI driver; else `unknown`"),
		},
		fields: []key{
			field("persistent_volumes", typeInt, "volumes of the class (only if persistentvolumes were listed)"),
			field("pv_capacity_bytes", typeInt, "sum of their `capacity.storage`"),
			field("persistent_volume_claims", typeInt, "claims of the class (only if persistentvolumeclaims were listed)"),
			field("pvc_requested_bytes", typeInt, "sum of their `requests.storage`"),
		}}

	addonMetric = &measurement{name: "kube_telemetry_addon", series: "one per add-on, kind and version found in `addon_namespaces`",
		tags: []key{
			tag("addon", addonNamesDoc()),
			tag("category", "`cni`, `dns`, `metrics`, `ingress`, `storage` or `other`"),
			tag("kind", "`DaemonSet` or `Deployment`"),
			tag("version", "the image tag of the add-on's container (`latest` if untagged, `unknown` if pinned by digest only); never the registry or repository"),
		},
		fields: []key{
			field("desired", typeInt, "DaemonSet `status.desiredNumberScheduled`; Deployment `spec.replicas`"),
			field("ready", typeInt, "DaemonSet `status.numberReady`; Deployment `status.readyReplicas`"),
		}}
)

// measurements lists the measurements in the README's order.
var measurements = []*measurement{
	clusterMetric, resourceMetric, nodesMetric, nodeRoleMetric, nodeMetric,
	podsMetric, objectsMetric, storageMetric, addonMetric,
}

func init() {
	for _, m := range measurements {
		m.tagIndex = make(map[string]bool, len(m.tags)+len(commonTags))
		for _, k := range append(append([]key{}, commonTags...), m.tags...) {
			m.tagIndex[k.name] = true
		}
		m.fieldIndex = make(map[string]valueType, len(m.fields))
		for _, k := range m.fields {
			m.fieldIndex[k.name] = k.typ
		}
	}
}

// addonNamesDoc lists the add-ons of the table, so the README names
// exactly the ones the plugin can report.
func addonNamesDoc() string {
	names := make([]string, 0, len(addonRules))
	for _, r := range addonRules {
		names = append(names, "`"+r.addon+"`")
	}
	return strings.Join(names, ", ")
}

// check returns an error for each tag or field the measurement does not
// declare, or whose value has another type.
func (m *measurement) check(tags map[string]string, fields map[string]any) []error {
	var errs []error
	for k := range tags {
		if !m.tagIndex[k] {
			errs = append(errs, fmt.Errorf("%s: tag %q is not in the schema (schema.go)", m.name, k))
		}
	}
	for k, v := range fields {
		t, ok := m.fieldIndex[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: field %q is not in the schema (schema.go)", m.name, k))
		case !t.matches(v):
			errs = append(errs, fmt.Errorf("%s: field %q is %T, the schema says %s", m.name, k, v, t))
		}
	}
	return errs
}

// SchemaKey is a tag or field of a kube_telemetry measurement. Type is the
// data dictionary's name of the value's type: int, float, string or bool.
type SchemaKey struct {
	Name, Type, Meaning string
}

// SchemaMeasurement is one measurement kube_telemetry emits. Tags are its
// own; CommonTags are on every measurement.
type SchemaMeasurement struct {
	Name   string
	Tags   []SchemaKey
	Fields []SchemaKey
}

// Schema returns every measurement kube_telemetry emits and the tags common
// to all of them, for the tests of the packages that handle its metrics:
// their fixtures are built from it, so a metric renamed here reaches them.
func Schema() (all []SchemaMeasurement, common []SchemaKey) {
	export := func(keys []key) []SchemaKey {
		out := make([]SchemaKey, 0, len(keys))
		for _, k := range keys {
			out = append(out, SchemaKey{Name: k.name, Type: k.typ.dictionaryType(), Meaning: k.doc})
		}
		return out
	}
	for _, m := range measurements {
		all = append(all, SchemaMeasurement{Name: m.name, Tags: export(m.tags), Fields: export(m.fields)})
	}
	return all, export(commonTags)
}
