package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// summary is the ground truth the tests compare the plugin's metrics with:
// the whole cluster after seeding, kube-system and the objects the apiserver
// made itself (namespaces, the kubernetes Service) included. The shape is the
// team's shared contract; do not rename fields.
type summary struct {
	KubeSystemUID string           `json:"kube_system_uid"`
	ServerVersion string           `json:"server_version"`
	Nodes         []nodeSummary    `json:"nodes"`
	Pods          podSummary       `json:"pods"`
	Objects       objectSummary    `json:"objects"`
	Storage       []storageSummary `json:"storage"`
	Addons        []addonSummary   `json:"addons"`
	CNI           string           `json:"cni"`
}

type nodeSummary struct {
	Name                     string `json:"name"`
	Role                     string `json:"role"`
	OSImage                  string `json:"os_image"`
	KernelVersion            string `json:"kernel_version"`
	OperatingSystem          string `json:"operating_system"`
	Architecture             string `json:"architecture"`
	KubeletVersion           string `json:"kubelet_version"`
	ContainerRuntimeVersion  string `json:"container_runtime_version"`
	Ready                    bool   `json:"ready"`
	ReadyStatus              string `json:"ready_status"` // True, False or Unknown: tells not_ready from unknown
	MemoryPressure           bool   `json:"memory_pressure"`
	DiskPressure             bool   `json:"disk_pressure"`
	PIDPressure              bool   `json:"pid_pressure"`
	NetworkUnavailable       bool   `json:"network_unavailable"`
	Unschedulable            bool   `json:"unschedulable"`
	CPUCapacityMillicores    int64  `json:"cpu_capacity_millicores"`
	MemoryCapacityBytes      int64  `json:"memory_capacity_bytes"`
	PodsCapacity             int64  `json:"pods_capacity"`
	CPUAllocatableMillicores int64  `json:"cpu_allocatable_millicores"`
	MemoryAllocatableBytes   int64  `json:"memory_allocatable_bytes"`
	PodsAllocatable          int64  `json:"pods_allocatable"`
	GPUCapacity              int64  `json:"gpu_capacity"`
	GPUAllocatable           int64  `json:"gpu_allocatable"`
}

type podSummary struct {
	Total          int `json:"total"`
	Pending        int `json:"pending"`
	Running        int `json:"running"`
	Succeeded      int `json:"succeeded"`
	Failed         int `json:"failed"`
	Unknown        int `json:"unknown"`
	QoSGuaranteed  int `json:"qos_guaranteed"`
	QoSBurstable   int `json:"qos_burstable"`
	QoSBestEffort  int `json:"qos_best_effort"`
	Containers     int `json:"containers"`
	InitContainers int `json:"init_containers"`
}

type objectSummary struct {
	Namespaces             int `json:"namespaces"`
	Deployments            int `json:"deployments"`
	ReplicaSets            int `json:"replicasets"`
	StatefulSets           int `json:"statefulsets"`
	DaemonSets             int `json:"daemonsets"`
	Jobs                   int `json:"jobs"`
	CronJobs               int `json:"cronjobs"`
	Services               int `json:"services"`
	ServicesClusterIP      int `json:"services_cluster_ip"`
	ServicesNodePort       int `json:"services_node_port"`
	ServicesLoadBalancer   int `json:"services_load_balancer"`
	ServicesExternalName   int `json:"services_external_name"`
	ServicesHeadless       int `json:"services_headless"`
	Ingresses              int `json:"ingresses"`
	IngressClasses         int `json:"ingress_classes"`
	StorageClasses         int `json:"storage_classes"`
	CSIDrivers             int `json:"csi_drivers"`
	PersistentVolumes      int `json:"persistent_volumes"`
	PersistentVolumeClaims int `json:"persistent_volume_claims"`
	CRDs                   int `json:"crds"`
}

type storageSummary struct {
	StorageClass           string `json:"storage_class"`
	Provisioner            string `json:"provisioner"`
	PersistentVolumes      int    `json:"persistent_volumes"`
	PersistentVolumeClaims int    `json:"persistent_volume_claims"`
	PVCapacityBytes        int64  `json:"pv_capacity_bytes"`
	PVCRequestedBytes      int64  `json:"pvc_requested_bytes"`
}

type addonSummary struct {
	Addon    string `json:"addon"`
	Category string `json:"category"`
	Kind     string `json:"kind"`
	Version  string `json:"version"`
	Desired  int32  `json:"desired"`
	Ready    int32  `json:"ready"`
}

// existing counts what the apiserver holds before seeding (it creates the
// system namespaces and the default/kubernetes Service on its own).
type existing struct {
	Namespaces int
	Services   []servicePlan // type and headlessness only
}

func (p *plan) summarize(pre existing, kubeSystemUID, serverVersion string) *summary {
	s := &summary{KubeSystemUID: kubeSystemUID, ServerVersion: serverVersion, CNI: p.CNI,
		Nodes: []nodeSummary{}, Storage: []storageSummary{}, Addons: []addonSummary{}}
	for _, n := range p.Nodes {
		s.Nodes = append(s.Nodes, nodeSummary{
			Name: n.Name, Role: n.Role, OSImage: n.OSImage, KernelVersion: n.Kernel, OperatingSystem: n.OS,
			Architecture: n.Arch, KubeletVersion: n.Kubelet, ContainerRuntimeVersion: n.Runtime,
			Ready: n.Ready == "True", ReadyStatus: n.Ready,
			MemoryPressure: n.MemPressure, DiskPressure: n.DiskPressure, PIDPressure: n.PIDPressure,
			NetworkUnavailable: n.NetUnavail, Unschedulable: n.Unschedulable,
			CPUCapacityMillicores: n.CPU, MemoryCapacityBytes: n.Mem, PodsCapacity: n.Pods,
			CPUAllocatableMillicores: n.AllocCPU, MemoryAllocatableBytes: n.AllocMem, PodsAllocatable: n.AllocP,
			GPUCapacity: n.GPU, GPUAllocatable: n.GPUAlloc,
		})
	}
	for _, pod := range p.Pods {
		ps := &s.Pods
		ps.Total++
		switch pod.Phase {
		case phasePending:
			ps.Pending++
		case phaseRunning:
			ps.Running++
		case phaseSucceeded:
			ps.Succeeded++
		case phaseFailed:
			ps.Failed++
		case phaseUnknown:
			ps.Unknown++
		}
		switch pod.Owner.Template.QoS {
		case qosGuaranteed:
			ps.QoSGuaranteed++
		case qosBurstable:
			ps.QoSBurstable++
		case qosBestEffort:
			ps.QoSBestEffort++
		}
		ps.Containers += len(pod.Owner.Template.Containers)
		ps.InitContainers += len(pod.Owner.Template.InitContainers)
	}

	o := &s.Objects
	o.Namespaces = pre.Namespaces + len(p.Namespaces)
	for _, w := range p.Workloads {
		switch w.Kind {
		case kindDeployment:
			o.Deployments++
		case kindReplicaSet:
			o.ReplicaSets++
		case kindStatefulSet:
			o.StatefulSets++
		case kindDaemonSet:
			o.DaemonSets++
		case kindJob:
			o.Jobs++
		case kindCronJob:
			o.CronJobs++
		}
		if w.Addon != nil && w.Namespace == "kube-system" {
			s.Addons = append(s.Addons, addonSummary{Addon: w.Addon.Addon, Category: w.Addon.Category,
				Kind: string(w.Kind), Version: w.Addon.Version, Desired: w.Desired, Ready: w.Ready})
		}
	}
	services := append([]servicePlan{}, pre.Services...)
	for _, svc := range p.Services {
		services = append(services, *svc)
	}
	for _, svc := range services {
		o.Services++
		// By spec.type, so the four type counts add up to the total; headless
		// (clusterIP None, always type ClusterIP) is counted on top.
		switch svc.Type {
		case "ClusterIP":
			o.ServicesClusterIP++
		case "NodePort":
			o.ServicesNodePort++
		case "LoadBalancer":
			o.ServicesLoadBalancer++
		case "ExternalName":
			o.ServicesExternalName++
		}
		if svc.Headless {
			o.ServicesHeadless++
		}
	}
	o.Ingresses = len(p.Ingresses)
	o.IngressClasses = len(p.IngressClasses)
	o.StorageClasses = len(p.StorageClasses)
	o.CSIDrivers = len(p.CSIDrivers)
	o.PersistentVolumes = len(p.PVs)
	o.PersistentVolumeClaims = len(p.PVCs)
	o.CRDs = len(p.CRDs)

	byClass := map[string]*storageSummary{}
	for _, sc := range p.StorageClasses {
		byClass[sc.Name] = &storageSummary{StorageClass: sc.Name, Provisioner: sc.Provisioner}
	}
	for _, pv := range p.PVs {
		st := byClass[pv.Class.Name]
		st.PersistentVolumes++
		st.PVCapacityBytes += pv.Bytes
	}
	for _, pvc := range p.PVCs {
		st := byClass[pvc.Class.Name]
		st.PersistentVolumeClaims++
		st.PVCRequestedBytes += pvc.Bytes
	}
	for _, name := range sortedKeys(byClass) {
		s.Storage = append(s.Storage, *byClass[name])
	}
	sort.Slice(s.Addons, func(i, j int) bool { return s.Addons[i].Addon < s.Addons[j].Addon })
	return s
}

func (s *summary) write(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding summary failed: %w", err)
	}
	data = append(data, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(data)
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing summary failed: %w", err)
	}
	return os.Rename(tmp, path)
}

// String gives the one-line totals printed at the end of a run.
func (s *summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodes=%d pods=%d (pending=%d running=%d succeeded=%d failed=%d unknown=%d) namespaces=%d deployments=%d replicasets=%d statefulsets=%d daemonsets=%d jobs=%d cronjobs=%d services=%d ingresses=%d pvs=%d pvcs=%d crds=%d",
		len(s.Nodes), s.Pods.Total, s.Pods.Pending, s.Pods.Running, s.Pods.Succeeded, s.Pods.Failed, s.Pods.Unknown,
		s.Objects.Namespaces, s.Objects.Deployments, s.Objects.ReplicaSets, s.Objects.StatefulSets, s.Objects.DaemonSets,
		s.Objects.Jobs, s.Objects.CronJobs, s.Objects.Services, s.Objects.Ingresses, s.Objects.PersistentVolumes,
		s.Objects.PersistentVolumeClaims, s.Objects.CRDs)
	return b.String()
}
