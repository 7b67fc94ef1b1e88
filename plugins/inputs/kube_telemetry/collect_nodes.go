package kube_telemetry

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

const (
	roleLabelPrefix = "node-role.kubernetes.io/"
	noRole          = "none"
)

// nodeRecord is what is kept of a node until the gather ends: a few strings
// and numbers (one series per node is the contract), never the object.
type nodeRecord struct {
	name, role                string
	osImage, kernel, os, arch string
	kubelet, runtime          string
	ready                     bool

	cpuCapacity, memCapacity, podsCapacity, gpuCapacity             int64
	cpuAllocatable, memAllocatable, podsAllocatable, gpuAllocatable int64
}

type nodeCounts struct {
	total, ready, notReady, unknown           int64
	memoryPressure, diskPressure, pidPressure int64
	networkUnavailable, unschedulable         int64
}

// nodeTally counts nodes by condition and role and keeps one record per
// node.
type nodeTally struct {
	nodes  []nodeRecord
	counts nodeCounts
	roles  map[string]int64
}

func newNodeTally(foldConfig) tally[corev1.Node] { return &nodeTally{roles: map[string]int64{}} }

func (f *nodeTally) add(n *corev1.Node) {
	rec := nodeRecord{
		name:    n.Name,
		role:    nodeRole(n.Labels),
		osImage: n.Status.NodeInfo.OSImage,
		kernel:  n.Status.NodeInfo.KernelVersion,
		os:      n.Status.NodeInfo.OperatingSystem,
		arch:    n.Status.NodeInfo.Architecture,
		kubelet: n.Status.NodeInfo.KubeletVersion,
		runtime: n.Status.NodeInfo.ContainerRuntimeVersion,

		cpuCapacity:     n.Status.Capacity.Cpu().MilliValue(),
		memCapacity:     n.Status.Capacity.Memory().Value(),
		podsCapacity:    n.Status.Capacity.Pods().Value(),
		cpuAllocatable:  n.Status.Allocatable.Cpu().MilliValue(),
		memAllocatable:  n.Status.Allocatable.Memory().Value(),
		podsAllocatable: n.Status.Allocatable.Pods().Value(),
		gpuCapacity:     gpus(n.Status.Capacity),
		gpuAllocatable:  gpus(n.Status.Allocatable),
	}

	c := &f.counts
	c.total++
	switch conditionStatus(n.Status.Conditions, corev1.NodeReady) {
	case corev1.ConditionTrue:
		rec.ready = true
		c.ready++
	case corev1.ConditionFalse:
		c.notReady++
	default: // Unknown, or never reported
		c.unknown++
	}
	for _, cond := range n.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		switch cond.Type {
		case corev1.NodeMemoryPressure:
			c.memoryPressure++
		case corev1.NodeDiskPressure:
			c.diskPressure++
		case corev1.NodePIDPressure:
			c.pidPressure++
		case corev1.NodeNetworkUnavailable:
			c.networkUnavailable++
		}
	}
	if n.Spec.Unschedulable {
		c.unschedulable++
	}
	f.roles[rec.role]++
	f.nodes = append(f.nodes, rec)
}

// nodeRole joins the node's node-role.kubernetes.io/<role> labels, sorted,
// with ","; "none" without any. A node with several roles counts once, under
// the joined name, so kube_telemetry_node_role sums to the node total.
func nodeRole(labels map[string]string) string {
	var roles []string
	for k := range labels {
		if role, ok := strings.CutPrefix(k, roleLabelPrefix); ok && role != "" {
			roles = append(roles, role)
		}
	}
	if len(roles) == 0 {
		return noRole
	}
	sort.Strings(roles)
	return strings.Join(roles, ",")
}

func conditionStatus(conds []corev1.NodeCondition, t corev1.NodeConditionType) corev1.ConditionStatus {
	for _, c := range conds {
		if c.Type == t {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// gpus sums the extended resources whose name ends in "/gpu", the device
// plugins' convention (nvidia.com/gpu, amd.com/gpu).
func gpus(rl corev1.ResourceList) int64 {
	var n int64
	for name, q := range rl {
		if strings.HasSuffix(string(name), "/gpu") {
			n += q.Value()
		}
	}
	return n
}

func (f *nodeTally) emit(r *report) {
	e := r.e
	c := f.counts
	e.add(nodesMetric, nil, map[string]any{
		"total":               c.total,
		"ready":               c.ready,
		"not_ready":           c.notReady,
		"unknown":             c.unknown,
		"memory_pressure":     c.memoryPressure,
		"disk_pressure":       c.diskPressure,
		"pid_pressure":        c.pidPressure,
		"network_unavailable": c.networkUnavailable,
		"unschedulable":       c.unschedulable,
	})
	roles := make([]string, 0, len(f.roles))
	for r := range f.roles {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, r := range roles {
		e.add(nodeRoleMetric, map[string]string{"role": r}, map[string]any{"nodes": f.roles[r]})
	}
	for i := range f.nodes {
		n := &f.nodes[i]
		e.add(nodeMetric,
			map[string]string{
				"node":                      n.name,
				"role":                      n.role,
				"os_image":                  n.osImage,
				"kernel_version":            n.kernel,
				"operating_system":          n.os,
				"architecture":              n.arch,
				"kubelet_version":           n.kubelet,
				"container_runtime_version": n.runtime,
			},
			map[string]any{
				"ready":                      n.ready,
				"cpu_capacity_millicores":    n.cpuCapacity,
				"memory_capacity_bytes":      n.memCapacity,
				"pods_capacity":              n.podsCapacity,
				"cpu_allocatable_millicores": n.cpuAllocatable,
				"memory_allocatable_bytes":   n.memAllocatable,
				"pods_allocatable":           n.podsAllocatable,
				"gpu_capacity":               n.gpuCapacity,
				"gpu_allocatable":            n.gpuAllocatable,
			})
	}
}
