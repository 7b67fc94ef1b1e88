package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
)

var testPre = existing{Namespaces: 4, Services: []servicePlan{{Namespace: "default", Name: "kubernetes", Type: "ClusterIP"}}}

func summaryJSON(t *testing.T, seed uint64, nodes, pods int) string {
	t.Helper()
	p, err := newPlan(seed, nodes, pods, "antrea")
	require.NoError(t, err)
	data, err := json.Marshal(p.summarize(testPre, "uid", "v1.36.3"))
	require.NoError(t, err)
	return string(data)
}

func TestPlanIsDeterministic(t *testing.T) {
	a := summaryJSON(t, 7, 50, 500)
	require.Equal(t, a, summaryJSON(t, 7, 50, 500), "the same seed must give the same cluster")
	require.NotEqual(t, a, summaryJSON(t, 8, 50, 500), "another seed must give another cluster")
}

func TestPlanPodCountIsExact(t *testing.T) {
	tests := []struct{ nodes, pods int }{{1, 0}, {1, 10}, {3, 7}, {12, 40}, {50, 500}, {500, 15000}}
	for _, tt := range tests {
		p, err := newPlan(1, tt.nodes, tt.pods, "antrea")
		require.NoError(t, err)
		require.Len(t, p.Pods, tt.pods, "nodes=%d pods=%d", tt.nodes, tt.pods)
		require.Len(t, p.Nodes, tt.nodes)
		s := p.summarize(testPre, "uid", "v1.36.3")
		require.Equal(t, tt.pods, s.Pods.Pending+s.Pods.Running+s.Pods.Succeeded+s.Pods.Failed+s.Pods.Unknown)
		require.Equal(t, tt.pods, s.Pods.QoSGuaranteed+s.Pods.QoSBurstable+s.Pods.QoSBestEffort)
	}
}

func TestPlanBadInput(t *testing.T) {
	tests := []struct {
		nodes, pods int
		cni, want   string
	}{
		{0, 10, "antrea", "-nodes"},
		{3, -1, "antrea", "-pods"},
		{3, 10, "calico", "-cni"},
	}
	for _, tt := range tests {
		_, err := newPlan(1, tt.nodes, tt.pods, tt.cni)
		require.ErrorContains(t, err, tt.want)
	}
}

// A small seed must still exercise every counter the plugin reports.
func TestPlanCoversEveryCounter(t *testing.T) {
	p, err := newPlan(1, 50, 500, "antrea")
	require.NoError(t, err)
	s := p.summarize(testPre, "uid", "v1.36.3")

	ps := s.Pods
	for name, v := range map[string]int{"pending": ps.Pending, "running": ps.Running, "succeeded": ps.Succeeded,
		"failed": ps.Failed, "unknown": ps.Unknown, "guaranteed": ps.QoSGuaranteed, "burstable": ps.QoSBurstable,
		"best effort": ps.QoSBestEffort, "init containers": ps.InitContainers} {
		require.Positive(t, v, "pods: no %s", name)
	}
	require.Greater(t, ps.Containers, ps.Total, "some pods have several containers")

	seen := map[string]bool{}
	for _, n := range s.Nodes {
		seen["role="+n.Role] = true
		seen["ready="+n.ReadyStatus] = true
		seen["os="+n.OperatingSystem] = true
		seen["arch="+n.Architecture] = true
		seen["image="+n.OSImage] = true
		seen["kubelet="+n.KubeletVersion] = true
		seen["runtime="+n.ContainerRuntimeVersion] = true
		for cond, on := range map[string]bool{"memory": n.MemoryPressure, "disk": n.DiskPressure, "pid": n.PIDPressure,
			"network": n.NetworkUnavailable, "unschedulable": n.Unschedulable, "gpu": n.GPUCapacity > 0,
			"gpu-unhealthy": n.GPUAllocatable < n.GPUCapacity} {
			if on {
				seen[cond] = true
			}
		}
		require.Less(t, n.CPUAllocatableMillicores, n.CPUCapacityMillicores, n.Name)
		require.Less(t, n.MemoryAllocatableBytes, n.MemoryCapacityBytes, n.Name)
		require.Equal(t, n.Ready, n.ReadyStatus == "True", n.Name)
	}
	for _, want := range []string{"role=control-plane", "role=worker", "role=none", "ready=True", "ready=False",
		"ready=Unknown", "os=linux", "os=windows", "arch=amd64", "arch=arm64", "memory", "disk", "pid", "network",
		"unschedulable", "gpu", "gpu-unhealthy", "kubelet=v1.36.3", "kubelet=v1.35.7",
		"runtime=containerd://2.1.4", "runtime=containerd://1.7.27"} {
		require.True(t, seen[want], "no node with %s", want)
	}

	o := s.Objects
	for name, v := range map[string]int{"deployments": o.Deployments, "replicasets": o.ReplicaSets,
		"statefulsets": o.StatefulSets, "daemonsets": o.DaemonSets, "jobs": o.Jobs, "cronjobs": o.CronJobs,
		"cluster ip": o.ServicesClusterIP, "node port": o.ServicesNodePort, "load balancer": o.ServicesLoadBalancer,
		"external name": o.ServicesExternalName, "headless": o.ServicesHeadless, "ingresses": o.Ingresses,
		"ingress classes": o.IngressClasses, "storage classes": o.StorageClasses, "csi drivers": o.CSIDrivers,
		"pvs": o.PersistentVolumes, "pvcs": o.PersistentVolumeClaims, "crds": o.CRDs} {
		require.Positive(t, v, "objects: no %s", name)
	}
	require.Equal(t, o.Services, o.ServicesClusterIP+o.ServicesNodePort+o.ServicesLoadBalancer+o.ServicesExternalName)
	require.Greater(t, o.ReplicaSets, o.Deployments, "some deployments keep old replicasets")
	require.Equal(t, testPre.Namespaces+len(p.Namespaces), o.Namespaces)

	pvs, pvcs := 0, 0
	empty := false
	for _, st := range s.Storage {
		pvs += st.PersistentVolumes
		pvcs += st.PersistentVolumeClaims
		empty = empty || (st.PersistentVolumes == 0 && st.PersistentVolumeClaims == 0)
	}
	require.Equal(t, o.PersistentVolumes, pvs)
	require.Equal(t, o.PersistentVolumeClaims, pvcs)
	require.True(t, empty, "a storage class without volumes must be listed too")

	require.Equal(t, "antrea", s.CNI)
	var addons []string
	for _, a := range s.Addons {
		addons = append(addons, a.Addon+"/"+a.Category+"/"+a.Kind+"/"+a.Version)
		require.NotContains(t, a.Version, "harbor", "a version is the image tag only")
	}
	require.Equal(t, []string{"antrea/cni/DaemonSet/v2.2.0", "coredns/dns/Deployment/v1.12.1",
		"metrics-server/metrics/Deployment/v0.7.2", "vsphere-csi/storage/DaemonSet/v3.3.1"}, addons)
}

func TestPlanNSX(t *testing.T) {
	p, err := newPlan(1, 20, 200, "nsx-node-agent")
	require.NoError(t, err)
	s := p.summarize(testPre, "uid", "v1.36.3")
	require.Equal(t, "nsx-node-agent", s.CNI)
	var cni []addonSummary
	for _, a := range s.Addons {
		if a.Category == "cni" {
			cni = append(cni, a)
		}
	}
	require.Len(t, cni, 1)
	require.Equal(t, "nsx-node-agent", cni[0].Addon)
	require.Equal(t, "4.2.1.24520993", cni[0].Version, "tag of an image from a registry with a port")
	require.Equal(t, "DaemonSet", cni[0].Kind)
	require.Positive(t, cni[0].Desired)
}

// The QoS class in the summary is what the apiserver computes from the
// resources the builder sets (it would refuse a mismatch at seed time too).
func TestBuiltPodsMatchPlan(t *testing.T) {
	p, err := newPlan(3, 50, 2000, "antrea")
	require.NoError(t, err)
	now := time.Now()
	for _, pp := range p.Pods {
		pod := buildPod(pp, now)
		require.Equal(t, pod.Status.QOSClass, qos.ComputePodQOS(pod), "pod %s/%s", pod.Namespace, pod.Name)
		require.Equal(t, string(pp.Phase), string(pod.Status.Phase))
		if pp.Node == nil {
			require.Empty(t, pod.Spec.NodeName)
			require.Equal(t, corev1.PodPending, pod.Status.Phase)
		} else {
			require.Equal(t, pp.Node.Name, pod.Spec.NodeName)
		}
		require.Len(t, pod.Status.ContainerStatuses, len(pod.Spec.Containers)*boolInt(pp.Node != nil))
		if pp.Owner.Kind != kindBarePod {
			require.Len(t, pod.OwnerReferences, 1)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The etcd path must write what the apiserver itself stores: the protobuf
// envelope behind the "k8s\x00" magic, decodable as a v1 object.
func TestEtcdEncoding(t *testing.T) {
	p, err := newPlan(1, 30, 300, "antrea")
	require.NoError(t, err)
	e := &etcdWriter{prefix: "/registry", seed: 1, now: time.Now(), codec: newEtcdWriterCodec()}
	nodes, rest, pods := e.items(p)
	require.Len(t, pods, len(p.Pods))
	withIP := 0
	for _, sp := range p.Services {
		if sp.Type != "ExternalName" && !sp.Headless {
			withIP++
		}
	}
	require.Len(t, nodes, len(p.Nodes)+withIP)
	require.Len(t, rest, len(p.Workloads)-countKind(p, kindBarePod)+len(p.Services)+len(p.PVs)+len(p.PVCs)+len(p.Ingresses))
	keys := map[string]bool{}
	for _, it := range append(append(nodes, rest...), pods...) {
		kv, err := it()
		require.NoError(t, err)
		require.False(t, keys[kv.key], "duplicate key %s", kv.key)
		keys[kv.key] = true
		require.True(t, bytes.HasPrefix([]byte(kv.value), []byte("k8s\x00")), kv.key)
		_, _, err = e.codec.Decode([]byte(kv.value), nil, nil)
		require.NoError(t, err, kv.key)
	}
	for _, prefix := range []string{"minions/", "pods/", "deployments/", "replicasets/", "statefulsets/", "daemonsets/",
		"jobs/", "cronjobs/", "services/specs/", "ipaddresses/", "persistentvolumes/", "persistentvolumeclaims/", "ingress/"} {
		found := false
		for k := range keys {
			found = found || strings.HasPrefix(k, "/registry/"+prefix)
		}
		require.True(t, found, "no key under /registry/%s", prefix)
	}

	item, err := e.podKV(p.Pods[0])
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(item.key, "/registry/pods/kube-system/"), item.key)
	require.True(t, bytes.HasPrefix([]byte(item.value), []byte("k8s\x00")))
	obj, gvk, err := e.codec.Decode([]byte(item.value), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "Pod", gvk.Kind)
	pod := obj.(*corev1.Pod)
	require.Equal(t, p.Pods[0].Name, pod.Name)
	require.Empty(t, pod.ResourceVersion)
	require.NotEmpty(t, pod.UID)
	require.Equal(t, p.Pods[0].Owner.UID, string(pod.OwnerReferences[0].UID), "owner UIDs are assigned before pods are built")
	require.Equal(t, int64(1), pod.Generation)
	require.Equal(t, "default", pod.Spec.ServiceAccountName)
	require.Equal(t, corev1.TerminationMessageReadFile, pod.Spec.Containers[0].TerminationMessagePolicy, "defaults applied")

	node, err := e.nodeKV(p.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, "/registry/minions/"+p.Nodes[0].Name, node.key)
	_, gvk, err = e.codec.Decode([]byte(node.value), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "Node", gvk.Kind)
}

func countKind(p *plan, k workloadKind) int {
	n := 0
	for _, w := range p.Workloads {
		if w.Kind == k {
			n++
		}
	}
	return n
}

// Generated names must not collide even at the scalability limits (a
// duplicate pod name silently overwrites in etcd).
func TestPlanNamesUniqueAtScale(t *testing.T) {
	p, err := newPlan(1, 5000, 150000, "antrea")
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, pod := range p.Pods {
		key := pod.Owner.Namespace + "/" + pod.Name
		require.False(t, seen[key], "duplicate pod %s", key)
		seen[key] = true
	}
	seen = map[string]bool{}
	for _, w := range p.Workloads {
		if w.Kind == kindBarePod {
			continue
		}
		key := string(w.Kind) + " " + w.Namespace + "/" + w.Name
		require.False(t, seen[key], "duplicate %s", key)
		seen[key] = true
	}
	ports := 0
	for _, s := range p.Services {
		if s.Type == "NodePort" || s.Type == "LoadBalancer" {
			ports++
		}
	}
	require.LessOrEqual(t, ports, 2768, "node ports beyond the default range")
}
