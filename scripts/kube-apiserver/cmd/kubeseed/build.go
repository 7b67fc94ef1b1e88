package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Builders turn plan entries into API objects. They are pure functions of the
// plan (plus the owners' UIDs and a reference time), so workers can call them
// concurrently.

// digest gives a stable hex string for IDs derived from names.
func digest(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(h[:])
}

func uuidFrom(parts ...string) string {
	d := digest(parts...)
	return d[0:8] + "-" + d[8:12] + "-4" + d[13:16] + "-8" + d[17:20] + "-" + d[20:32]
}

func ago(now time.Time, minutes int) metav1.Time {
	return metav1.NewTime(now.Add(-time.Duration(minutes) * time.Minute).Truncate(time.Second))
}

func milli(m int64) resource.Quantity  { return *resource.NewMilliQuantity(m, resource.DecimalSI) }
func bytesQ(b int64) resource.Quantity { return *resource.NewQuantity(b, resource.BinarySI) }
func count(n int64) resource.Quantity  { return *resource.NewQuantity(n, resource.DecimalSI) }

func buildNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func buildServiceAccount(ns string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
}

func buildNode(n *nodePlan, now time.Time) *corev1.Node {
	labels := map[string]string{
		"kubernetes.io/hostname":           n.Name,
		"kubernetes.io/os":                 n.OS,
		"kubernetes.io/arch":               n.Arch,
		"beta.kubernetes.io/os":            n.OS,
		"beta.kubernetes.io/arch":          n.Arch,
		"node.kubernetes.io/instance-type": n.InstanceType,
		"topology.kubernetes.io/zone":      n.Zone,
		"bosh.zone":                        n.Zone,
		"bosh.id":                          uuidFrom("bosh", n.Name),
		"spec.ip":                          n.IP(),
	}
	if n.Role != "none" {
		labels["node-role.kubernetes.io/"+n.Role] = ""
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels, Annotations: map[string]string{
			"node.alpha.kubernetes.io/ttl":                           "0",
			"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		}},
		Spec: corev1.NodeSpec{
			PodCIDR:       n.PodCIDR(),
			PodCIDRs:      []string{n.PodCIDR()},
			ProviderID:    "vsphere://" + uuidFrom("vm", n.Name),
			Unschedulable: n.Unschedulable,
		},
	}
	if n.Role == "control-plane" {
		node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule})
	}
	if n.Unschedulable {
		node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              milli(n.CPU),
		corev1.ResourceMemory:           bytesQ(n.Mem),
		corev1.ResourcePods:             count(n.Pods),
		corev1.ResourceEphemeralStorage: bytesQ(100 * gib),
		"hugepages-2Mi":                 bytesQ(0),
	}
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:              milli(n.AllocCPU),
		corev1.ResourceMemory:           bytesQ(n.AllocMem),
		corev1.ResourcePods:             count(n.AllocP),
		corev1.ResourceEphemeralStorage: bytesQ(90 * gib),
		"hugepages-2Mi":                 bytesQ(0),
	}
	if n.GPU > 0 {
		capacity[corev1.ResourceName(n.GPUResource)] = count(n.GPU)
		alloc[corev1.ResourceName(n.GPUResource)] = count(n.GPUAlloc)
	}
	beat := metav1.NewTime(now.Truncate(time.Second))
	since := ago(now, 60*24*7+n.Index)
	cond := func(t corev1.NodeConditionType, on bool, reasonOn, reasonOff, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: reasonOff, LastHeartbeatTime: beat, LastTransitionTime: since}
		if on {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, reasonOn, msg
		}
		if n.Ready == "Unknown" {
			c.Status, c.Reason, c.Message = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
			c.LastHeartbeatTime = ago(now, 30)
		}
		return c
	}
	ready := cond(corev1.NodeReady, true, "KubeletReady", "KubeletNotReady", "kubelet is posting ready status")
	if n.Ready == "False" {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "KubeletNotReady",
			"container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"
	}
	netCond := corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "AntreaIsUp",
		Message: "Antrea is up on this Node", LastHeartbeatTime: since, LastTransitionTime: since}
	if n.NetUnavail {
		netCond.Status, netCond.Reason, netCond.Message = corev1.ConditionTrue, "NoRouteCreated", "Node created without a route"
	}
	node.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: alloc,
		Phase:       "",
		Conditions: []corev1.NodeCondition{
			netCond,
			cond(corev1.NodeMemoryPressure, n.MemPressure, "KubeletHasInsufficientMemory", "KubeletHasSufficientMemory", "kubelet has insufficient memory available"),
			cond(corev1.NodeDiskPressure, n.DiskPressure, "KubeletHasDiskPressure", "KubeletHasNoDiskPressure", "kubelet has disk pressure"),
			cond(corev1.NodePIDPressure, n.PIDPressure, "KubeletHasInsufficientPID", "KubeletHasSufficientPID", "kubelet has insufficient PID available"),
			ready,
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.IP()},
			{Type: corev1.NodeHostName, Address: n.Name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               digest("machine", n.Name)[:32],
			SystemUUID:              uuidFrom("vm", n.Name),
			BootID:                  uuidFrom("boot", n.Name),
			KernelVersion:           n.Kernel,
			OSImage:                 n.OSImage,
			ContainerRuntimeVersion: n.Runtime,
			KubeletVersion:          n.Kubelet,
			OperatingSystem:         n.OS,
			Architecture:            n.Arch,
		},
	}
	return node
}

func resources(c container) corev1.ResourceRequirements {
	var rr corev1.ResourceRequirements
	add := func(l *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if *l == nil {
			*l = corev1.ResourceList{}
		}
		(*l)[name] = q
	}
	if c.ReqCPU > 0 {
		add(&rr.Requests, corev1.ResourceCPU, milli(c.ReqCPU))
	}
	if c.ReqMem > 0 {
		add(&rr.Requests, corev1.ResourceMemory, bytesQ(c.ReqMem*mib))
	}
	if c.LimCPU > 0 {
		add(&rr.Limits, corev1.ResourceCPU, milli(c.LimCPU))
	}
	if c.LimMem > 0 {
		add(&rr.Limits, corev1.ResourceMemory, bytesQ(c.LimMem*mib))
	}
	return rr
}

func buildContainer(c container) corev1.Container {
	out := corev1.Container{Name: c.Name, Image: c.Image, Resources: resources(c),
		ImagePullPolicy: corev1.PullIfNotPresent}
	if c.Port > 0 {
		out.Ports = []corev1.ContainerPort{{Name: "main", ContainerPort: c.Port, Protocol: corev1.ProtocolTCP}}
	}
	return out
}

// priorities of the built-in classes; the Priority admission plugin fills
// spec.priority for API-created pods, the direct etcd path must do it itself.
var priorities = map[string]int32{"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}

func buildPodSpec(tpl *template, restart corev1.RestartPolicy) corev1.PodSpec {
	spec := corev1.PodSpec{
		RestartPolicy:                 restart,
		HostNetwork:                   tpl.HostNetwork,
		PriorityClassName:             tpl.Priority,
		AutomountServiceAccountToken:  ptr.To(false),
		TerminationGracePeriodSeconds: ptr.To[int64](30),
		NodeSelector:                  map[string]string{"kubernetes.io/os": tpl.OS},
	}
	if tpl.OS == "windows" {
		spec.OS = &corev1.PodOS{Name: corev1.Windows}
	}
	if tpl.HostNetwork {
		spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
		spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	}
	for _, c := range tpl.InitContainers {
		spec.InitContainers = append(spec.InitContainers, buildContainer(c))
	}
	for _, c := range tpl.Containers {
		spec.Containers = append(spec.Containers, buildContainer(c))
	}
	return spec
}

func restartPolicy(w *workload) corev1.RestartPolicy {
	switch w.Kind {
	case kindJob, kindCronJob:
		return corev1.RestartPolicyNever
	case kindBarePod:
		return corev1.RestartPolicyOnFailure
	}
	return corev1.RestartPolicyAlways
}

func podTemplate(w *workload, extra map[string]string) corev1.PodTemplateSpec {
	labels := map[string]string{}
	for k, v := range w.Template.Labels {
		labels[k] = v
	}
	for k, v := range extra {
		labels[k] = v
	}
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: buildPodSpec(w.Template, restartPolicy(w))}
}

func ownerRef(w *workload) metav1.OwnerReference {
	apiVersion := "apps/v1"
	if w.Kind == kindJob || w.Kind == kindCronJob {
		apiVersion = "batch/v1"
	}
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: string(w.Kind), Name: w.Name, UID: types.UID(w.UID),
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
}

func objectMeta(w *workload) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: map[string]string{}}
	for k, v := range w.Template.Labels {
		m.Labels[k] = v
	}
	if w.Parent != nil {
		m.OwnerReferences = []metav1.OwnerReference{ownerRef(w.Parent)}
	}
	return m
}

// podLabels are the labels the owning controller would put on the pod.
func podLabels(w *workload, pod *podPlan) map[string]string {
	switch w.Kind {
	case kindReplicaSet:
		return map[string]string{"pod-template-hash": w.Hash}
	case kindStatefulSet:
		return map[string]string{"statefulset.kubernetes.io/pod-name": pod.Name,
			"controller-revision-hash": w.Name + "-" + digest(w.Name)[:10]}
	case kindDaemonSet:
		return map[string]string{"pod-template-generation": "1",
			"controller-revision-hash": digest(w.Name)[:10]}
	case kindJob:
		return map[string]string{"batch.kubernetes.io/controller-uid": w.UID, "batch.kubernetes.io/job-name": w.Name,
			"controller-uid": w.UID, "job-name": w.Name}
	}
	return nil
}

func buildDeployment(w *workload) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: objectMeta(w),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(w.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: w.Template.Labels},
			Template: podTemplate(w, nil),
		},
	}
}

func deploymentStatus(w *workload, d *appsv1.Deployment, now time.Time) {
	avail := corev1.ConditionTrue
	reason := "MinimumReplicasAvailable"
	if w.Available < w.Desired {
		avail, reason = corev1.ConditionFalse, "MinimumReplicasUnavailable"
	}
	t := ago(now, 60)
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: w.Current, UpdatedReplicas: w.Current,
		ReadyReplicas: w.Ready, AvailableReplicas: w.Available, UnavailableReplicas: max(0, w.Desired-w.Available),
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: avail, Reason: reason, LastUpdateTime: t, LastTransitionTime: t},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: t, LastTransitionTime: t},
		},
	}
}

func buildReplicaSet(w *workload) *appsv1.ReplicaSet {
	m := objectMeta(w)
	m.Labels["pod-template-hash"] = w.Hash
	m.Annotations = map[string]string{"deployment.kubernetes.io/revision": strconv.Itoa(w.Revision),
		"deployment.kubernetes.io/desired-replicas": strconv.Itoa(int(w.Parent.Replicas))}
	sel := map[string]string{"pod-template-hash": w.Hash}
	for k, v := range w.Template.Labels {
		sel[k] = v
	}
	return &appsv1.ReplicaSet{
		ObjectMeta: m,
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(w.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: podTemplate(w, map[string]string{"pod-template-hash": w.Hash}),
		},
	}
}

func replicaSetStatus(w *workload, rs *appsv1.ReplicaSet) {
	rs.Status = appsv1.ReplicaSetStatus{Replicas: w.Current, FullyLabeledReplicas: w.Current,
		ReadyReplicas: w.Ready, AvailableReplicas: w.Available, ObservedGeneration: rs.Generation}
}

func buildStatefulSet(w *workload, class string, bytes int64) *appsv1.StatefulSet {
	tpl := podTemplate(w, nil)
	tpl.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return &appsv1.StatefulSet{
		ObjectMeta: objectMeta(w),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(w.Replicas),
			ServiceName: w.Name,
			Selector:    &metav1.LabelSelector{MatchLabels: w.Template.Labels},
			Template:    tpl,
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: ptr.To(class),
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: bytesQ(bytes)}},
				},
			}},
		},
	}
}

func statefulSetStatus(w *workload, s *appsv1.StatefulSet) {
	rev := w.Name + "-" + digest(w.Name)[:10]
	s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: w.Current, ReadyReplicas: w.Ready,
		CurrentReplicas: w.Current, UpdatedReplicas: w.Current, AvailableReplicas: w.Available,
		CurrentRevision: rev, UpdateRevision: rev}
}

func buildDaemonSet(w *workload) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: objectMeta(w),
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: w.Template.Labels},
			Template: podTemplate(w, nil),
		},
	}
}

func daemonSetStatus(w *workload, ds *appsv1.DaemonSet) {
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: w.Desired,
		CurrentNumberScheduled: w.Current, UpdatedNumberScheduled: w.Current, NumberReady: w.Ready,
		NumberAvailable: w.Available, NumberUnavailable: max(0, w.Desired-w.Available)}
}

func jobSpec(w *workload) batchv1.JobSpec {
	tpl := podTemplate(w, nil)
	return batchv1.JobSpec{
		Completions:  ptr.To(max(1, w.Replicas)),
		Parallelism:  ptr.To[int32](1),
		BackoffLimit: ptr.To[int32](1),
		Template:     tpl,
	}
}

func buildJob(w *workload) *batchv1.Job {
	return &batchv1.Job{ObjectMeta: objectMeta(w), Spec: jobSpec(w)}
}

// interimJobConditions: API servers from 1.31 require a finished Job's
// SuccessCriteriaMet or FailureTarget condition before Complete or Failed;
// 1.30 refuses SuccessCriteriaMet on a Job without a success policy.
// preflight sets it from the server's version.
var interimJobConditions = true

func jobStatus(w *workload, j *batchv1.Job, now time.Time) {
	start := ago(now, 90)
	end := ago(now, 80)
	st := batchv1.JobStatus{StartTime: &start, Succeeded: w.Succeeded, Failed: w.Failed}
	switch w.JobResult {
	case "Complete":
		st.CompletionTime = &end
		st.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, LastProbeTime: end, LastTransitionTime: end},
		}
		if interimJobConditions {
			st.Conditions = append([]batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, LastProbeTime: end, LastTransitionTime: end},
			}, st.Conditions...)
		}
	case "Failed":
		msg := "Job has reached the specified backoff limit"
		st.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: msg, LastProbeTime: end, LastTransitionTime: end},
		}
		if interimJobConditions {
			st.Conditions = append([]batchv1.JobCondition{
				{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: msg, LastProbeTime: end, LastTransitionTime: end},
			}, st.Conditions...)
		}
	default:
		st.Active = w.Active
		st.Ready = ptr.To(w.Ready)
		st.Terminating = ptr.To[int32](0)
	}
	j.Status = st
}

func buildCronJob(w *workload) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: objectMeta(w),
		Spec: batchv1.CronJobSpec{
			Schedule:                   w.Schedule,
			SuccessfulJobsHistoryLimit: ptr.To[int32](3),
			FailedJobsHistoryLimit:     ptr.To[int32](1),
			JobTemplate:                batchv1.JobTemplateSpec{Spec: jobSpec(w)},
		},
	}
}

func cronJobStatus(w *workload, jobs []*workload, cj *batchv1.CronJob, now time.Time) {
	last := ago(now, 30)
	cj.Status.LastScheduleTime = &last
	for _, j := range jobs {
		switch j.JobResult {
		case "Running":
			cj.Status.Active = append(cj.Status.Active, corev1.ObjectReference{APIVersion: "batch/v1", Kind: "Job",
				Namespace: j.Namespace, Name: j.Name, UID: types.UID(j.UID)})
		case "Complete":
			done := ago(now, 80)
			cj.Status.LastSuccessfulTime = &done
		}
	}
}

// buildPod builds a pod with its status; the API path creates it without
// status and writes status with UpdateStatus, the etcd path stores it whole.
func buildPod(pod *podPlan, now time.Time) *corev1.Pod {
	w := pod.Owner
	labels := map[string]string{}
	for k, v := range w.Template.Labels {
		labels[k] = v
	}
	for k, v := range podLabels(w, pod) {
		labels[k] = v
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: w.Namespace, Labels: labels},
		Spec:       buildPodSpec(w.Template, restartPolicy(w)),
	}
	if w.Kind != kindBarePod {
		p.OwnerReferences = []metav1.OwnerReference{ownerRef(w)}
	}
	if w.Kind == kindStatefulSet {
		p.Spec.Hostname, p.Spec.Subdomain = pod.Name, w.Name
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-" + pod.Name}}}}
	}
	if pod.Node != nil {
		p.Spec.NodeName = pod.Node.Name
	}
	p.Status = podStatus(pod, now)
	return p
}

func podStatus(pod *podPlan, now time.Time) corev1.PodStatus {
	w := pod.Owner
	started := ago(now, pod.StartedAt)
	st := corev1.PodStatus{Phase: corev1.PodPhase(pod.Phase), QOSClass: corev1.PodQOSClass(w.Template.QoS)}
	condition := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: started}
		if !ok {
			c.Status, c.Reason = corev1.ConditionFalse, reason
		}
		return c
	}
	if pod.Node == nil { // not scheduled
		c := condition(corev1.PodScheduled, false, corev1.PodReasonUnschedulable)
		c.Message = "0/N nodes are available: insufficient cpu. preemption: not eligible."
		st.Conditions = []corev1.PodCondition{c}
		return st
	}
	st.HostIP = pod.Node.IP()
	st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	st.StartTime = &started
	if pod.PodIP != "" {
		st.PodIP = pod.PodIP
		st.PodIPs = []corev1.PodIP{{IP: pod.PodIP}}
	}
	imageID := func(image string) string {
		repo := image
		if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
			repo = image[:i]
		}
		return repo + "@sha256:" + digest(image)
	}
	finished := pod.Phase == phaseSucceeded || pod.Phase == phaseFailed
	creating := pod.Phase == phasePending
	for _, c := range w.Template.InitContainers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: imageID(c.Image),
			ContainerID: "containerd://" + digest(pod.Name, c.Name)}
		if creating {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
			cs.ContainerID, cs.ImageID = "", ""
		} else {
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
				StartedAt: started, FinishedAt: ago(now, max(0, pod.StartedAt-1)), ContainerID: cs.ContainerID}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	for _, c := range w.Template.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: imageID(c.Image),
			ContainerID: "containerd://" + digest(pod.Name, c.Name), RestartCount: pod.Restarts}
		switch {
		case creating:
			reason := "ContainerCreating"
			if len(w.Template.InitContainers) > 0 {
				reason = "PodInitializing"
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason}
			cs.ContainerID, cs.ImageID, cs.RestartCount = "", "", 0
		case finished:
			t := &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: started,
				FinishedAt: ago(now, max(0, pod.StartedAt-2)), ContainerID: cs.ContainerID}
			if pod.Phase == phaseFailed {
				t.ExitCode, t.Reason = 1, "Error"
				if pod.Reason == "Evicted" {
					t.ExitCode, t.Reason = 137, "ContainerStatusUnknown"
				}
			}
			cs.State.Terminated = t
			cs.Started = ptr.To(false)
		default:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: started}
			cs.Ready = pod.Ready
			cs.Started = ptr.To(true)
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	running := pod.Phase == phaseRunning
	st.Conditions = []corev1.PodCondition{
		condition(corev1.PodReadyToStartContainers, running, ""),
		condition(corev1.PodInitialized, !creating || len(w.Template.InitContainers) == 0, "ContainersNotInitialized"),
		condition(corev1.PodReady, pod.Ready, "ContainersNotReady"),
		condition(corev1.ContainersReady, pod.Ready, "ContainersNotReady"),
		condition(corev1.PodScheduled, true, ""),
	}
	switch pod.Reason {
	case "Evicted":
		st.Reason, st.Message = "Evicted", "The node was low on resource: memory."
	case "NodeLost":
		st.Reason, st.Message = "NodeLost", fmt.Sprintf("Node %s which was running pod %s is unresponsive", pod.Node.Name, pod.Name)
	}
	if finished {
		st.Conditions[2].Reason, st.Conditions[3].Reason = "PodCompleted", "PodCompleted"
		if pod.Phase == phaseFailed {
			st.Conditions[2].Reason, st.Conditions[3].Reason = "PodFailed", "PodFailed"
		}
	}
	return st
}

func buildService(s *servicePlan) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceType(s.Type), Selector: s.Selector},
	}
	if s.Type == "ExternalName" {
		svc.Spec.ExternalName = s.ExternalName
		return svc
	}
	proto := corev1.ProtocolTCP
	if s.Port == 53 {
		proto = corev1.ProtocolUDP
	}
	svc.Spec.Ports = []corev1.ServicePort{{Name: "main", Port: s.Port, Protocol: proto, TargetPort: intstr.FromInt32(s.Port)}}
	if s.Headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	return svc
}

func buildStorageClass(sc *storageClassPlan) *storagev1.StorageClass {
	out := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: sc.Name},
		Provisioner:       sc.Provisioner,
		Parameters:        sc.Params,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingMode(sc.Binding)),
	}
	if sc.Default {
		out.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	}
	if strings.Contains(sc.Provisioner, "csi") {
		out.AllowVolumeExpansion = ptr.To(true)
	}
	return out
}

func buildCSIDriver(name string) *storagev1.CSIDriver {
	return &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       ptr.To(name == "csi.vsphere.vmware.com"),
			PodInfoOnMount:       ptr.To(false),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent},
		},
	}
}

func buildPV(pv *pvPlan) *corev1.PersistentVolume {
	out := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pv.Name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: bytesQ(pv.Bytes)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName:              pv.Class.Name,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
		},
	}
	if pv.ReclaimKeep {
		out.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if pv.ClaimName != "" {
		out.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
			Namespace: pv.ClaimNS, Name: pv.ClaimName}
		out.Annotations = map[string]string{"pv.kubernetes.io/provisioned-by": pv.Class.Provisioner}
	}
	switch pv.Source {
	case "nfs":
		out.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		out.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: "nfs.csi.k8s.io", VolumeHandle: "nfs.corp.local#exports/k8s#" + pv.Name}
	case "local":
		out.Spec.Local = &corev1.LocalVolumeSource{Path: "/mnt/disks/" + pv.Name}
		out.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{pv.LocalNode.Name}}}}}}}
	default:
		out.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: "csi.vsphere.vmware.com", VolumeHandle: pv.VolumeUUID, FSType: "ext4"}
	}
	return out
}

func buildPVC(c *pvcPlan) *corev1.PersistentVolumeClaim {
	out := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(c.Class.Name),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: bytesQ(c.Bytes)}},
		},
	}
	if c.PV != nil {
		out.Spec.VolumeName = c.PV.Name
		out.Spec.AccessModes = buildPV(c.PV).Spec.AccessModes
		out.Annotations = map[string]string{"pv.kubernetes.io/bind-completed": "yes",
			"volume.kubernetes.io/storage-provisioner": c.Class.Provisioner}
	}
	return out
}

func pvcStatus(c *pvcPlan, out *corev1.PersistentVolumeClaim) {
	if c.PV == nil {
		out.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
		return
	}
	out.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: out.Spec.AccessModes,
		Capacity: corev1.ResourceList{corev1.ResourceStorage: bytesQ(c.PV.Bytes)}}
}

func buildIngressClass(ic *ingressClassPlan) *networkingv1.IngressClass {
	out := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: ic.Name},
		Spec: networkingv1.IngressClassSpec{Controller: ic.Controller}}
	if ic.Default {
		out.Annotations = map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}
	}
	return out
}

func buildIngress(in *ingressPlan) *networkingv1.Ingress {
	out := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, Namespace: in.Namespace},
		Spec: networkingv1.IngressSpec{
			TLS: []networkingv1.IngressTLS{{Hosts: []string{in.Host}, SecretName: in.Name + "-tls"}},
			Rules: []networkingv1.IngressRule{{Host: in.Host, IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: in.Service, Port: networkingv1.ServiceBackendPort{Number: in.Port}}},
				}}}}}},
		},
	}
	if in.Class != "" {
		out.Spec.IngressClassName = ptr.To(in.Class)
	}
	return out
}

func buildCRD(c crdPlan) *apiextensionsv1.CustomResourceDefinition {
	scope := apiextensionsv1.ClusterScoped
	if c.Namespaced {
		scope = apiextensionsv1.NamespaceScoped
	}
	meta := metav1.ObjectMeta{Name: c.Plural + "." + c.Group}
	if strings.HasSuffix(c.Group, ".k8s.io") { // protected groups need the API approval annotation
		meta.Annotations = map[string]string{"api-approved.kubernetes.io": "https://github.com/kubernetes-csi/external-snapshotter/pull/814"}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: meta,
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: c.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: c.Plural, Singular: strings.ToLower(c.Kind),
				Kind: c.Kind, ListKind: c.Kind + "List"},
			Scope: scope,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}},
			}},
		},
	}
}
