package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
)

// The plan is the whole seeded cluster as plain data, drawn from one seeded
// random source before anything is sent, so the same -seed always yields the
// same cluster and the summary can be computed from it without asking the
// server. Objects are built from the plan on the fly (build.go) to keep the
// seeder's memory small at 150k pods.

type phase string

const (
	phasePending   phase = "Pending"
	phaseRunning   phase = "Running"
	phaseSucceeded phase = "Succeeded"
	phaseFailed    phase = "Failed"
	phaseUnknown   phase = "Unknown"
)

type qosClass string

const (
	qosGuaranteed qosClass = "Guaranteed"
	qosBurstable  qosClass = "Burstable"
	qosBestEffort qosClass = "BestEffort"
)

type nodePlan struct {
	Index        int
	Name         string
	Role         string // control-plane, worker or none (no role label)
	OS           string
	Arch         string
	OSImage      string
	Kernel       string
	Kubelet      string
	Runtime      string
	InstanceType string
	Zone         string

	CPU, Mem, Pods             int64 // capacity: millicores, bytes, count
	AllocCPU, AllocMem, AllocP int64
	GPUResource                string
	GPU, GPUAlloc              int64

	Ready         string // True, False or Unknown
	MemPressure   bool
	DiskPressure  bool
	PIDPressure   bool
	NetUnavail    bool
	Unschedulable bool

	podSeq int // pods placed so far, for pod IPs
}

func (n *nodePlan) IP() string {
	return fmt.Sprintf("172.16.%d.%d", n.Index/250, n.Index%250+2)
}

// podIP gives a scheduled, started pod an address: the node's for host
// network agents, else the next one in the node's pod CIDR.
func podIP(pod *podPlan) string {
	n := pod.Node
	if n == nil || (pod.Phase == phasePending) {
		return ""
	}
	if pod.Owner.Template.HostNetwork {
		return n.IP()
	}
	n.podSeq++
	return fmt.Sprintf("10.%d.%d.%d", 100+n.Index/256, n.Index%256, (n.podSeq-1)%253+2)
}

func (n *nodePlan) PodCIDR() string {
	return fmt.Sprintf("10.%d.%d.0/24", 100+n.Index/256, n.Index%256)
}

type container struct {
	Name  string
	Image string
	Port  int32
	// Requests and limits in millicores and MiB; zero means unset.
	ReqCPU, ReqMem, LimCPU, LimMem int64
}

// template is a pod template shared by all pods of one workload.
type template struct {
	Containers     []container
	InitContainers []container
	QoS            qosClass
	OS             string // linux or windows
	HostNetwork    bool
	Priority       string // priority class name, may be empty
	Labels         map[string]string
}

type workloadKind string

const (
	kindDeployment  workloadKind = "Deployment"
	kindReplicaSet  workloadKind = "ReplicaSet"
	kindStatefulSet workloadKind = "StatefulSet"
	kindDaemonSet   workloadKind = "DaemonSet"
	kindJob         workloadKind = "Job"
	kindCronJob     workloadKind = "CronJob"
	kindBarePod     workloadKind = "Pod"
)

// workload is any pod owner (or a bare pod group). Owner UIDs are filled in by
// the applier after creation; pods reference them.
type workload struct {
	Kind      workloadKind
	Namespace string
	Name      string
	Template  *template
	Replicas  int32 // desired (Deployment, ReplicaSet, StatefulSet); completions (Job)
	Parent    *workload
	Addon     *addonInfo
	Schedule  string // CronJob
	JobResult string // Job: Complete, Failed or Running
	Revision  int    // ReplicaSet revision; the newest one owns the pods
	Hash      string // pod-template-hash of a ReplicaSet

	// Status the seeder writes (UpdateStatus).
	Desired, Current, Ready, Available int32
	Succeeded, Failed, Active          int32

	Pods   []*podPlan
	claims []*pvcPlan // a StatefulSet's claims
	UID    string     // set after creation
}

type addonInfo struct {
	Addon    string
	Category string
	Version  string
}

type podPlan struct {
	Name      string
	Owner     *workload
	Node      *nodePlan // nil: not scheduled
	Phase     phase
	Reason    string
	Ready     bool
	Restarts  int32
	PodIP     string
	StartedAt int // minutes before the seed time
}

type servicePlan struct {
	Namespace, Name string
	Type            string // ClusterIP, NodePort, LoadBalancer, ExternalName
	Headless        bool
	Selector        map[string]string
	Port            int32
	ExternalName    string
	LBIP            string
}

type storageClassPlan struct {
	Name        string
	Provisioner string
	Default     bool
	Binding     string // Immediate or WaitForFirstConsumer
	Params      map[string]string
}

type pvPlan struct {
	Name        string
	Class       *storageClassPlan
	Bytes       int64
	Source      string // csi, local, nfs
	Phase       string // Bound, Available, Released
	ClaimNS     string
	ClaimName   string
	LocalNode   *nodePlan
	VolumeUUID  string
	ReclaimKeep bool
}

type pvcPlan struct {
	Namespace, Name string
	Class           *storageClassPlan
	Bytes           int64
	PV              *pvPlan // nil: Pending
}

type ingressPlan struct {
	Namespace, Name string
	Class           string // empty: left to the default class admission
	Host            string
	Service         string
	Port            int32
}

type ingressClassPlan struct {
	Name, Controller string
	Default          bool
}

type crdPlan struct {
	Group, Kind, Plural string
	Namespaced          bool
}

type plan struct {
	Seed           uint64
	CNI            string
	Nodes          []*nodePlan
	Namespaces     []string // created by the seeder (kube-system exists already)
	Workloads      []*workload
	Pods           []*podPlan
	Services       []*servicePlan
	StorageClasses []*storageClassPlan
	CSIDrivers     []string
	PVs            []*pvPlan
	PVCs           []*pvcPlan
	Ingresses      []*ingressPlan
	IngressClasses []*ingressClassPlan
	CRDs           []crdPlan
}

// pick returns one of the choices with the given integer weights.
func pick[T any](r *rand.Rand, choices []T, weights []int) T {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return choices[i]
		}
		n -= w
	}
	return choices[len(choices)-1]
}

type osImage struct{ Image, Kernel string }

var (
	linuxImages = []osImage{
		{"Ubuntu 22.04.5 LTS", "5.15.0-131-generic"},
		{"Ubuntu 22.04.5 LTS", "5.15.0-139-generic"},
		{"Ubuntu 24.04.2 LTS", "6.8.0-60-generic"},
		{"VMware Photon OS/Linux", "6.1.129-1.ph5"},
	}
	linuxImageWeights = []int{45, 20, 30, 5}
	windowsImages     = []osImage{
		{"Windows Server 2019 Datacenter", "10.0.17763.6893"},
		{"Windows Server 2022 Datacenter", "10.0.20348.3207"},
	}
	kubeletVersions       = []string{"v1.36.3", "v1.35.7", "v1.36.2"}
	kubeletWeights        = []int{80, 15, 5}
	linuxRuntimes         = []string{"containerd://2.1.4", "containerd://1.7.27"}
	linuxRuntimeWeights   = []int{70, 30}
	windowsRuntime        = "containerd://1.7.27"
	machineSizes          = []struct{ CPU, MemGi, Pods int64 }{{2, 8, 110}, {4, 16, 110}, {8, 32, 110}, {16, 64, 250}, {32, 128, 250}, {64, 256, 250}}
	machineWeights        = []int{10, 30, 30, 15, 10, 5}
	zones                 = []string{"az1", "az2", "az3"}
	gpuCounts             = []int64{1, 2, 4, 8}
	gpuWeights            = []int{40, 30, 20, 10}
	gpuResourceNames      = []string{"nvidia.com/gpu", "amd.com/gpu"}
	gpuResourceWeights    = []int{85, 15}
	minControlPlaneForBig = 3
)

const gib = int64(1) << 30
const mib = int64(1) << 20

func controlPlaneCount(n int) int {
	switch {
	case n >= 1000:
		return 5
	case n >= 10:
		return minControlPlaneForBig
	case n >= 2:
		return 1
	}
	return 0
}

func planNodes(r *rand.Rand, n int) []*nodePlan {
	cp := controlPlaneCount(n)
	nodes := make([]*nodePlan, 0, n)
	for i := 0; i < n; i++ {
		nd := &nodePlan{Index: i, Zone: zones[i%len(zones)], Ready: "True"}
		switch {
		case i < cp:
			nd.Role = "control-plane"
			nd.Name = fmt.Sprintf("tkgi-master-%d", i)
		default:
			nd.Role = pick(r, []string{"worker", "none"}, []int{85, 15})
			nd.Name = fmt.Sprintf("tkgi-worker-%05d", i-cp)
		}
		nd.OS, nd.Arch = "linux", "amd64"
		if nd.Role != "control-plane" {
			nd.OS = pick(r, []string{"linux", "windows"}, []int{95, 5})
			if nd.OS == "linux" {
				nd.Arch = pick(r, []string{"amd64", "arm64"}, []int{88, 12})
			}
		}
		var img osImage
		if nd.OS == "windows" {
			img = windowsImages[r.IntN(len(windowsImages))]
			nd.Runtime = windowsRuntime
		} else {
			img = pick(r, linuxImages, linuxImageWeights)
			nd.Runtime = pick(r, linuxRuntimes, linuxRuntimeWeights)
		}
		nd.OSImage, nd.Kernel = img.Image, img.Kernel
		nd.Kubelet = pick(r, kubeletVersions, kubeletWeights)
		if nd.Role == "control-plane" {
			nd.Kubelet = kubeletVersions[0]
		}

		size := machineSizes[1]
		if nd.Role != "control-plane" {
			size = pick(r, machineSizes, machineWeights)
		}
		nd.InstanceType = fmt.Sprintf("vsphere.%dcpu.%dgi", size.CPU, size.MemGi)
		nd.CPU, nd.Mem, nd.Pods = size.CPU*1000, size.MemGi*gib, size.Pods
		// kube-reserved, system-reserved and the eviction threshold, roughly
		// as the kubelet computes them.
		nd.AllocCPU = nd.CPU - 100 - nd.CPU/50
		nd.AllocMem = nd.Mem - 100*mib - nd.Mem/20
		nd.AllocP = nd.Pods
		if nd.OS == "linux" && nd.Arch == "amd64" && nd.Role == "worker" && r.IntN(100) < 8 {
			nd.GPUResource = pick(r, gpuResourceNames, gpuResourceWeights)
			nd.GPU = pick(r, gpuCounts, gpuWeights)
			nd.GPUAlloc = nd.GPU
			if r.IntN(5) == 0 {
				nd.GPUAlloc-- // one device unhealthy
			}
		}

		if nd.Role != "control-plane" {
			switch x := r.IntN(100); {
			case x < 2:
				nd.Ready = "Unknown"
			case x < 6:
				nd.Ready = "False"
			}
			if nd.Ready != "Unknown" {
				nd.MemPressure = r.IntN(100) < 3
				nd.DiskPressure = r.IntN(100) < 2
				nd.PIDPressure = r.IntN(100) < 1
				nd.NetUnavail = r.IntN(100) < 1
			}
			nd.Unschedulable = r.IntN(100) < 3
		}
		nodes = append(nodes, nd)
	}
	ensureNodeVariety(nodes, cp)
	return nodes
}

// ensureNodeVariety makes sure that every role, condition and a GPU show up at
// least once when there are enough nodes, so small seeds still exercise
// every counter.
func ensureNodeVariety(nodes []*nodePlan, cp int) {
	workers := nodes[cp:]
	if len(workers) < 10 {
		return
	}
	type rule struct {
		has func(*nodePlan) bool
		set func(*nodePlan)
	}
	rules := []rule{
		{func(n *nodePlan) bool { return n.Role == "none" }, func(n *nodePlan) { n.Role = "none" }},
		{func(n *nodePlan) bool { return n.Ready == "False" }, func(n *nodePlan) { n.Ready = "False" }},
		{func(n *nodePlan) bool { return n.Ready == "Unknown" }, func(n *nodePlan) {
			n.Ready = "Unknown"
			n.MemPressure, n.DiskPressure, n.PIDPressure, n.NetUnavail = false, false, false, false
		}},
		{func(n *nodePlan) bool { return n.MemPressure }, func(n *nodePlan) { n.MemPressure = true }},
		{func(n *nodePlan) bool { return n.DiskPressure }, func(n *nodePlan) { n.DiskPressure = true }},
		{func(n *nodePlan) bool { return n.PIDPressure }, func(n *nodePlan) { n.PIDPressure = true }},
		{func(n *nodePlan) bool { return n.NetUnavail }, func(n *nodePlan) { n.NetUnavail = true }},
		{func(n *nodePlan) bool { return n.Unschedulable }, func(n *nodePlan) { n.Unschedulable = true }},
		{func(n *nodePlan) bool { return n.GPU > 0 }, func(n *nodePlan) {
			n.GPUResource, n.GPU, n.GPUAlloc = "nvidia.com/gpu", 2, 2
		}},
		{func(n *nodePlan) bool { return n.GPU > n.GPUAlloc }, func(n *nodePlan) {
			n.GPUResource, n.GPU, n.GPUAlloc = "nvidia.com/gpu", 4, 3
		}},
		{func(n *nodePlan) bool { return n.Arch == "arm64" }, func(n *nodePlan) { n.Arch = "arm64" }},
		{func(n *nodePlan) bool { return n.OS == "windows" }, func(n *nodePlan) {
			n.OS, n.OSImage, n.Kernel, n.Runtime = "windows", windowsImages[0].Image, windowsImages[0].Kernel, windowsRuntime
		}},
	}
	// Each missing feature goes to its own plain, ready, linux amd64 worker,
	// taken from the end so the first nodes stay as drawn.
	next := len(workers) - 1
	for _, rl := range rules {
		found := false
		for _, n := range workers {
			if rl.has(n) {
				found = true
				break
			}
		}
		if found {
			continue
		}
		for ; next >= 0; next-- {
			n := workers[next]
			if n.OS == "linux" && n.Arch == "amd64" && n.Ready == "True" && n.GPU == 0 &&
				!n.MemPressure && !n.DiskPressure && !n.PIDPressure && !n.NetUnavail && !n.Unschedulable {
				break
			}
		}
		if next < 0 {
			return
		}
		rl.set(workers[next])
		next--
	}
}

// budget hands out the pod count; once it is spent workloads get no more pods.
type budget struct{ left int }

func (b *budget) take(n int) int {
	if n > b.left {
		n = b.left
	}
	if n < 0 {
		n = 0
	}
	b.left -= n
	return n
}

type planner struct {
	r        *rand.Rand
	p        *plan
	b        *budget
	linux    []*nodePlan // schedulable linux nodes, for workloads
	windows  []*nodePlan
	scale    float64
	nodePort int // NodePort and LoadBalancer services left (the node port range is finite)
	seqs     map[string]int
	used     map[string]bool // namespace/kind/name of generated names
}

func newPlan(seed uint64, nodes, pods int, cni string) (*plan, error) {
	if nodes < 1 {
		return nil, fmt.Errorf("-nodes must be at least 1, got %d", nodes)
	}
	if pods < 0 {
		return nil, fmt.Errorf("-pods must not be negative, got %d", pods)
	}
	if cni != "antrea" && cni != "nsx-node-agent" {
		return nil, fmt.Errorf("-cni must be antrea or nsx-node-agent, got %q", cni)
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &plan{Seed: seed, CNI: cni}
	p.Nodes = planNodes(r, nodes)
	pl := &planner{r: r, p: p, b: &budget{left: pods}, nodePort: 2000, seqs: map[string]int{}, used: map[string]bool{}}
	// Bigger clusters run bigger workloads rather than ever more of them.
	pl.scale = 1 + math.Log10(math.Max(1, float64(pods)/15000))
	for _, n := range p.Nodes {
		if n.Role == "control-plane" {
			continue
		}
		if n.OS == "windows" {
			pl.windows = append(pl.windows, n)
		} else {
			pl.linux = append(pl.linux, n)
		}
	}
	if len(pl.linux) == 0 { // a one-node cluster: the control plane runs everything
		pl.linux = p.Nodes
	}
	pl.storage()
	pl.clusterScoped()
	pl.kubeSystem()
	pl.platform()
	pl.apps()
	pl.ensurePhases()
	for _, w := range p.Workloads {
		for _, pod := range w.Pods {
			pod.PodIP = podIP(pod)
		}
		p.Pods = append(p.Pods, w.Pods...)
	}
	return p, nil
}

func (pl *planner) storage() {
	p := pl.p
	p.StorageClasses = []*storageClassPlan{
		{Name: "vsphere-csi-default", Provisioner: "csi.vsphere.vmware.com", Default: true, Binding: "Immediate",
			Params: map[string]string{"storagepolicyname": "vSAN Default Storage Policy"}},
		{Name: "vsphere-csi-thin", Provisioner: "csi.vsphere.vmware.com", Binding: "WaitForFirstConsumer",
			Params: map[string]string{"storagepolicyname": "thin"}},
		{Name: "local-storage", Provisioner: "kubernetes.io/no-provisioner", Binding: "WaitForFirstConsumer"},
		{Name: "nfs-client", Provisioner: "nfs.csi.k8s.io", Binding: "Immediate",
			Params: map[string]string{"server": "nfs.corp.local", "share": "/exports/k8s"}},
		// In-tree vSphere class left over from an old release: no volumes.
		{Name: "vsphere-legacy", Provisioner: "kubernetes.io/vsphere-volume", Binding: "Immediate",
			Params: map[string]string{"diskformat": "thin"}},
	}
	p.CSIDrivers = []string{"csi.vsphere.vmware.com", "nfs.csi.k8s.io"}
}

func (pl *planner) clusterScoped() {
	p := pl.p
	p.IngressClasses = []*ingressClassPlan{
		{Name: "nginx", Controller: "k8s.io/ingress-nginx", Default: true},
		{Name: "contour", Controller: "projectcontour.io/ingress-controller"},
	}
	p.CRDs = []crdPlan{
		{"cert-manager.io", "Certificate", "certificates", true},
		{"cert-manager.io", "Issuer", "issuers", true},
		{"cert-manager.io", "ClusterIssuer", "clusterissuers", false},
		{"snapshot.storage.k8s.io", "VolumeSnapshot", "volumesnapshots", true},
		{"snapshot.storage.k8s.io", "VolumeSnapshotClass", "volumesnapshotclasses", false},
		{"snapshot.storage.k8s.io", "VolumeSnapshotContent", "volumesnapshotcontents", false},
		{"velero.io", "Backup", "backups", true},
		{"velero.io", "Restore", "restores", true},
		{"velero.io", "Schedule", "schedules", true},
		{"monitoring.coreos.com", "ServiceMonitor", "servicemonitors", true},
		{"monitoring.coreos.com", "PrometheusRule", "prometheusrules", true},
		{"cns.vmware.com", "CnsVolumeOperationRequest", "cnsvolumeoperationrequests", true},
		{"cns.vmware.com", "CSINodeTopology", "csinodetopologies", false},
	}
	if p.CNI == "antrea" {
		p.CRDs = append(p.CRDs,
			crdPlan{"crd.antrea.io", "ClusterNetworkPolicy", "clusternetworkpolicies", false},
			crdPlan{"crd.antrea.io", "NetworkPolicy", "networkpolicies", true},
			crdPlan{"crd.antrea.io", "Tier", "tiers", false},
			crdPlan{"crd.antrea.io", "Traceflow", "traceflows", false},
			crdPlan{"crd.antrea.io", "AntreaAgentInfo", "antreaagentinfos", false},
		)
	} else {
		p.CRDs = append(p.CRDs,
			crdPlan{"nsx.vmware.com", "NCPConfig", "ncpconfigs", false},
			crdPlan{"nsx.vmware.com", "NSXError", "nsxerrors", false},
			crdPlan{"nsx.vmware.com", "NSXLocks", "nsxlocks", false},
		)
	}
}

// unique returns base-suffix, drawing suffixes until the name is unused for
// that kind in the namespace (random suffixes do collide at 150k pods).
func (pl *planner) unique(ns, kind, base string, suffix func() string) string {
	for {
		name := base + "-" + suffix()
		key := ns + "/" + kind + "/" + name
		if !pl.used[key] {
			pl.used[key] = true
			return name
		}
	}
}

func (pl *planner) seq(key string) int {
	pl.seqs[key]++
	return pl.seqs[key]
}

func (pl *planner) randHex(n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[pl.r.IntN(16)]
	}
	return string(b)
}

func (pl *planner) randSuffix() string {
	// Same alphabet as the apiserver's generateName (no vowels, no 0/1/3).
	const alnum = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	for i := range b {
		b[i] = alnum[pl.r.IntN(len(alnum))]
	}
	return string(b)
}

func (pl *planner) uuid() string {
	h := pl.randHex(32)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func (pl *planner) addWorkload(w *workload) *workload {
	pl.p.Workloads = append(pl.p.Workloads, w)
	return w
}

// addonDaemonSet is a DaemonSet on every linux node (hostNetwork agents).
func (pl *planner) daemonSet(ns, name string, tpl *template, addon *addonInfo, share int) *workload {
	targets := pl.linux
	if tpl.OS == "windows" {
		targets = pl.windows
	}
	if tpl.Priority == "system-node-critical" { // system agents run on control-plane nodes too
		targets = nil
		for _, n := range pl.p.Nodes {
			if n.OS == tpl.OS {
				targets = append(targets, n)
			}
		}
	}
	w := pl.addWorkload(&workload{Kind: kindDaemonSet, Namespace: ns, Name: name, Template: tpl, Addon: addon})
	n := pl.b.take(min(len(targets), share))
	for i := 0; i < n; i++ {
		pl.addPod(w, pl.unique(ns, "pod", name, pl.randSuffix), targets[i], true)
	}
	w.Desired = int32(len(targets))
	w.Current = int32(n)
	for _, pod := range w.Pods {
		if pod.Ready {
			w.Ready++
		}
	}
	w.Available = w.Ready
	return w
}

// deployment adds a Deployment, its current ReplicaSet (owning the pods) and
// maybe older, scaled-down ReplicaSets.
func (pl *planner) deployment(ns, name string, replicas int, tpl *template, addon *addonInfo) *workload {
	d := pl.addWorkload(&workload{Kind: kindDeployment, Namespace: ns, Name: name, Template: tpl, Addon: addon, Replicas: int32(replicas)})
	old := 0
	if pl.r.IntN(100) < 30 {
		old = 1 + pl.r.IntN(2)
	}
	var cur *workload
	for rev := 1; rev <= old+1; rev++ {
		rsName := pl.unique(ns, "replicaset", name, func() string { return pl.randHex(10) })
		hash := rsName[len(name)+1:]
		rs := pl.addWorkload(&workload{Kind: kindReplicaSet, Namespace: ns, Name: rsName, Template: tpl,
			Parent: d, Revision: rev, Hash: hash})
		cur = rs
	}
	cur.Replicas = int32(replicas)
	n := pl.b.take(replicas)
	for i := 0; i < n; i++ {
		pl.addPod(cur, pl.unique(ns, "pod", cur.Name, pl.randSuffix), nil, false)
	}
	pl.countReady(cur)
	d.Desired, d.Current, d.Ready, d.Available = int32(replicas), cur.Current, cur.Ready, cur.Ready
	return d
}

func (pl *planner) countReady(w *workload) {
	w.Desired = w.Replicas
	w.Current = int32(len(w.Pods))
	for _, pod := range w.Pods {
		if pod.Ready {
			w.Ready++
		}
	}
	w.Available = w.Ready
}

func (pl *planner) statefulSet(ns, name string, replicas int, tpl *template, sizeGi int64) *workload {
	s := pl.addWorkload(&workload{Kind: kindStatefulSet, Namespace: ns, Name: name, Template: tpl, Replicas: int32(replicas)})
	n := pl.b.take(replicas)
	for i := 0; i < n; i++ {
		pl.addPod(s, fmt.Sprintf("%s-%d", name, i), nil, false)
	}
	pl.countReady(s)
	// volumeClaimTemplates: no controller creates the claims, so the plan does.
	class := pl.p.StorageClasses[pl.r.IntN(2)] // vsphere-csi-default or -thin
	for i := 0; i < replicas; i++ {
		s.claims = append(s.claims, pl.claim(ns, fmt.Sprintf("data-%s-%d", name, i), class, sizeGi*gib, true))
	}
	pl.p.Services = append(pl.p.Services, &servicePlan{Namespace: ns, Name: name, Type: "ClusterIP", Headless: true,
		Selector: tpl.Labels, Port: tpl.Containers[0].Port})
	return s
}

// claim adds a PVC, and a PV bound to it unless bound is false.
func (pl *planner) claim(ns, name string, class *storageClassPlan, bytes int64, bound bool) *pvcPlan {
	c := &pvcPlan{Namespace: ns, Name: name, Class: class, Bytes: bytes}
	if bound {
		pv := &pvPlan{Name: "pvc-" + pl.uuid(), Class: class, Bytes: bytes, Phase: "Bound", ClaimNS: ns, ClaimName: name,
			VolumeUUID: pl.uuid()}
		switch class.Provisioner {
		case "nfs.csi.k8s.io":
			pv.Source = "nfs"
		default:
			pv.Source = "csi"
		}
		c.PV = pv
		pl.p.PVs = append(pl.p.PVs, pv)
	}
	pl.p.PVCs = append(pl.p.PVCs, c)
	return c
}

// job adds a Job with one pod per completion (and a failed attempt for a
// failed job).
func (pl *planner) job(ns, name string, parent *workload, result string, completions int, tpl *template) *workload {
	j := pl.addWorkload(&workload{Kind: kindJob, Namespace: ns, Name: name, Template: tpl, Parent: parent,
		JobResult: result, Replicas: int32(completions)})
	switch result {
	case "Complete":
		for i := pl.b.take(completions); i > 0; i-- {
			pod := pl.addPod(j, pl.unique(ns, "pod", name, pl.randSuffix), nil, false)
			pl.finish(pod, phaseSucceeded, "Completed")
			j.Succeeded++
		}
	case "Failed":
		for i := pl.b.take(1 + pl.r.IntN(2)); i > 0; i-- {
			pod := pl.addPod(j, pl.unique(ns, "pod", name, pl.randSuffix), nil, false)
			pl.finish(pod, phaseFailed, "Error")
			j.Failed++
		}
	default: // Running
		for i := pl.b.take(1); i > 0; i-- {
			pl.addPod(j, pl.unique(ns, "pod", name, pl.randSuffix), nil, false)
			j.Active++
		}
		for _, pod := range j.Pods {
			if pod.Ready {
				j.Ready++
			}
		}
	}
	return j
}

func (pl *planner) finish(pod *podPlan, ph phase, reason string) {
	if pod.Node == nil { // a finished pod ran somewhere
		pod.Node = pl.linux[pl.r.IntN(len(pl.linux))]
	}
	pod.Phase, pod.Reason, pod.Ready = ph, reason, false
}

// addPod places a pod. Pods of agents (fixed node) follow that node's state;
// other pods are spread over schedulable linux (or windows) nodes.
func (pl *planner) addPod(w *workload, name string, node *nodePlan, agent bool) *podPlan {
	pod := &podPlan{Name: name, Owner: w, Phase: phaseRunning, Ready: true, StartedAt: 5 + pl.r.IntN(60*24*30)}
	if node == nil {
		nodes := pl.linux
		if w.Template.OS == "windows" && len(pl.windows) > 0 {
			nodes = pl.windows
		}
		node = nodes[pl.r.IntN(len(nodes))]
	}
	pod.Node = node
	if pl.r.IntN(100) < 10 {
		pod.Restarts = int32(1 + pl.r.IntN(20))
	}
	switch node.Ready {
	case "Unknown":
		// The kubelet stopped reporting: the pod's phase is unknown.
		pod.Phase, pod.Ready = phaseUnknown, false
		pod.Reason = "NodeLost"
	case "False":
		pod.Ready = false
	}
	if pod.Phase == phaseRunning && !agent {
		switch x := pl.r.IntN(1000); {
		case x < 25: // waiting for the scheduler: no node fits
			pod.Node, pod.Phase, pod.Ready, pod.Reason = nil, phasePending, false, "Unschedulable"
		case x < 50:
			pod.Phase, pod.Ready, pod.Reason = phasePending, false, "ContainerCreating"
		case x < 60:
			pod.Phase, pod.Ready, pod.Reason = phaseFailed, false, "Evicted"
		case x < 80: // running but failing its readiness probe
			pod.Ready = false
		}
	}
	w.Pods = append(w.Pods, pod)
	return pod
}

var appImages = []struct {
	Name, Image string
	Port        int32
}{
	{"nginx", "nginx:1.27.3", 80},
	{"redis", "redis:7.4.1", 6379},
	{"postgres", "postgres:16.6", 5432},
	{"kafka", "bitnami/kafka:3.9.0", 9092},
	{"cart", "harbor.corp.local/shop/cart:2.3.1", 8080},
	{"checkout", "harbor.corp.local/shop/checkout:1.14.0", 8080},
	{"frontend", "harbor.corp.local/shop/frontend:5.0.2", 3000},
	{"api", "harbor.corp.local/platform/api:0.9.12", 8443},
	{"worker", "harbor.corp.local/platform/worker:0.9.12", 9000},
	{"rabbitmq", "rabbitmq:4.0.5-management", 5672},
	{"elasticsearch", "docker.elastic.co/elasticsearch/elasticsearch:8.17.0", 9200},
	{"grafana", "grafana/grafana:11.4.0", 3000},
	{"keycloak", "quay.io/keycloak/keycloak:26.0.7", 8080},
	{"mysql", "mysql:8.4.3", 3306},
}

var sidecarImages = []struct{ Name, Image string }{
	{"envoy", "envoyproxy/envoy:v1.32.3"},
	{"fluent-bit", "fluent/fluent-bit:3.2.4"},
	{"oauth2-proxy", "quay.io/oauth2-proxy/oauth2-proxy:v7.7.1"},
}

var initImages = []struct{ Name, Image string }{
	{"wait-for-db", "busybox:1.37.0"},
	{"migrate", "harbor.corp.local/platform/migrate:0.9.12"},
	{"init-config", "alpine:3.21.0"},
}

// appTemplate draws a pod template for an application workload.
func (pl *planner) appTemplate(app string, image string, port int32, os string) *template {
	r := pl.r
	tpl := &template{OS: os, Labels: map[string]string{"app.kubernetes.io/name": app}}
	tpl.QoS = pick(r, []qosClass{qosGuaranteed, qosBurstable, qosBestEffort}, []int{25, 55, 20})
	if os == "windows" {
		image = "mcr.microsoft.com/dotnet/framework/aspnet:4.8-windowsservercore-ltsc2022"
	}
	tpl.Containers = append(tpl.Containers, container{Name: app, Image: image, Port: port})
	if r.IntN(100) < 25 {
		sc := sidecarImages[r.IntN(len(sidecarImages))]
		tpl.Containers = append(tpl.Containers, container{Name: sc.Name, Image: sc.Image})
	}
	if r.IntN(100) < 30 {
		for i := 0; i < 1+r.IntN(2); i++ {
			ic := initImages[i]
			tpl.InitContainers = append(tpl.InitContainers, container{Name: ic.Name, Image: ic.Image})
		}
	}
	pl.resources(tpl)
	return tpl
}

// resources sets requests and limits so the pod's QoS class is tpl.QoS.
func (pl *planner) resources(tpl *template) {
	r := pl.r
	set := func(c *container, first bool) {
		cpu := int64(50 * (1 + r.IntN(20)))
		mem := int64(64 * (1 + r.IntN(32)))
		switch tpl.QoS {
		case qosGuaranteed:
			c.ReqCPU, c.ReqMem, c.LimCPU, c.LimMem = cpu, mem, cpu, mem
		case qosBurstable:
			if first {
				c.ReqCPU, c.ReqMem = cpu, mem
				if r.IntN(2) == 0 {
					c.LimMem = mem * 2
				}
			}
		}
	}
	for i := range tpl.Containers {
		set(&tpl.Containers[i], i == 0)
	}
	for i := range tpl.InitContainers {
		set(&tpl.InitContainers[i], false)
	}
}

func (pl *planner) kubeSystem() {
	const ns = "kube-system"
	p := pl.p
	// Agents together take at most a third of the pods so small seeds still
	// have room for applications.
	share := pl.b.left / 3 / 3
	if p.CNI == "antrea" {
		tpl := &template{OS: "linux", HostNetwork: true, Priority: "system-node-critical", QoS: qosBurstable,
			Labels:         map[string]string{"app": "antrea", "component": "antrea-agent"},
			InitContainers: []container{{Name: "install-cni", Image: "projects.registry.vmware.com/antrea/antrea-ubuntu:v2.2.0", ReqCPU: 100}},
			Containers: []container{
				{Name: "antrea-agent", Image: "projects.registry.vmware.com/antrea/antrea-ubuntu:v2.2.0", ReqCPU: 200, ReqMem: 128},
				{Name: "antrea-ovs", Image: "projects.registry.vmware.com/antrea/antrea-ubuntu:v2.2.0", ReqCPU: 200},
			}}
		pl.daemonSet(ns, "antrea-agent", tpl, &addonInfo{"antrea", "cni", "v2.2.0"}, share)
	} else {
		tpl := &template{OS: "linux", HostNetwork: true, Priority: "system-node-critical", QoS: qosBestEffort,
			Labels: map[string]string{"component": "nsx-node-agent"},
			Containers: []container{
				{Name: "nsx-node-agent", Image: "harbor.corp.local:8443/nsx/nsx-ncp-ubuntu:4.2.1.24520993"},
				{Name: "nsx-kube-proxy", Image: "harbor.corp.local:8443/nsx/nsx-ncp-ubuntu:4.2.1.24520993"},
				{Name: "nsx-ovs", Image: "harbor.corp.local:8443/nsx/nsx-ncp-ubuntu:4.2.1.24520993"},
			}}
		pl.daemonSet(ns, "nsx-node-agent", tpl, &addonInfo{"nsx-node-agent", "cni", "4.2.1.24520993"}, share)
	}
	csi := &template{OS: "linux", HostNetwork: true, Priority: "system-node-critical", QoS: qosBestEffort,
		Labels: map[string]string{"app": "vsphere-csi-node"},
		Containers: []container{
			{Name: "vsphere-csi-node", Image: "projects.registry.vmware.com/vmware/vsphere-csi-driver/driver:v3.3.1"},
			{Name: "node-driver-registrar", Image: "projects.registry.vmware.com/csi/csi-node-driver-registrar:v2.12.0"},
			{Name: "liveness-probe", Image: "projects.registry.vmware.com/csi/csi-livenessprobe:v2.14.0"},
		}}
	// An add-on's version is the image tag of its first container (the
	// sidecars come after it, as in the upstream manifests).
	pl.daemonSet(ns, "vsphere-csi-node", csi, &addonInfo{"vsphere-csi", "storage", "v3.3.1"}, share)

	coredns := &template{OS: "linux", Priority: "system-cluster-critical", QoS: qosBurstable,
		Labels:     map[string]string{"k8s-app": "kube-dns"},
		Containers: []container{{Name: "coredns", Image: "registry.k8s.io/coredns/coredns:v1.12.1", Port: 53, ReqCPU: 100, ReqMem: 70, LimMem: 170}}}
	pl.deployment(ns, "coredns", 2, coredns, &addonInfo{"coredns", "dns", "v1.12.1"})
	p.Services = append(p.Services, &servicePlan{Namespace: ns, Name: "kube-dns", Type: "ClusterIP",
		Selector: coredns.Labels, Port: 53})

	// A registry with a port: the version must still be the tag alone.
	ms := &template{OS: "linux", Priority: "system-cluster-critical", QoS: qosBurstable,
		Labels:     map[string]string{"k8s-app": "metrics-server"},
		Containers: []container{{Name: "metrics-server", Image: "harbor.corp.local:8443/tkgi/metrics-server:v0.7.2", Port: 10250, ReqCPU: 100, ReqMem: 200}}}
	pl.deployment(ns, "metrics-server", 1, ms, &addonInfo{"metrics-server", "metrics", "v0.7.2"})
	p.Services = append(p.Services, &servicePlan{Namespace: ns, Name: "metrics-server", Type: "ClusterIP",
		Selector: ms.Labels, Port: 443})
}

// platform adds the namespaces and workloads TKGI puts next to kube-system.
func (pl *planner) platform() {
	p := pl.p
	share := pl.b.left / 3 / 2
	p.Namespaces = append(p.Namespaces, "pks-system", "ingress-nginx")
	fb := &template{OS: "linux", QoS: qosBurstable, Labels: map[string]string{"app": "fluent-bit"},
		Containers: []container{{Name: "fluent-bit", Image: "harbor.corp.local/pks/fluent-bit:3.2.4", ReqCPU: 50, ReqMem: 100, LimMem: 300}}}
	pl.daemonSet("pks-system", "fluent-bit", fb, nil, share)
	tg := &template{OS: "linux", QoS: qosGuaranteed, Labels: map[string]string{"app": "telegraf"},
		Containers: []container{{Name: "telegraf", Image: "harbor.corp.local/pks/telegraf:1.39.3", ReqCPU: 100, ReqMem: 128, LimCPU: 100, LimMem: 128}}}
	pl.daemonSet("pks-system", "telegraf", tg, nil, share)
	ev := &template{OS: "linux", QoS: qosBestEffort, Labels: map[string]string{"app": "event-controller"},
		Containers: []container{{Name: "event-controller", Image: "harbor.corp.local/pks/event-controller:0.42.0"}}}
	pl.deployment("pks-system", "event-controller", 1, ev, nil)

	ic := &template{OS: "linux", QoS: qosBurstable, Labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"},
		Containers: []container{{Name: "controller", Image: "registry.k8s.io/ingress-nginx/controller:v1.12.0", Port: 80, ReqCPU: 100, ReqMem: 90}}}
	pl.deployment("ingress-nginx", "ingress-nginx-controller", 2, ic, nil)
	p.Services = append(p.Services, &servicePlan{Namespace: "ingress-nginx", Name: "ingress-nginx-controller",
		Type: "LoadBalancer", Selector: ic.Labels, Port: 80, LBIP: "192.168.100.10"})
	pl.nodePort--
	hook := &template{OS: "linux", QoS: qosBestEffort, Labels: map[string]string{"app.kubernetes.io/component": "admission-webhook"},
		Containers: []container{{Name: "create", Image: "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.5.0"}}}
	pl.job("ingress-nginx", "ingress-nginx-admission-create", nil, "Complete", 1, hook)
	pl.job("ingress-nginx", "ingress-nginx-admission-patch", nil, "Complete", 1, hook)
}

var teamWords = []string{"shop", "payments", "search", "identity", "data", "ml", "web", "mobile", "ops", "billing", "catalog", "media"}

func (pl *planner) apps() {
	p, r := pl.p, pl.r
	nns := min(max(pl.b.left/1000+2, 3), 200)
	var nss []string
	for i := 0; i < nns; i++ {
		ns := fmt.Sprintf("%s-%d", teamWords[i%len(teamWords)], i/len(teamWords)+1)
		nss = append(nss, ns)
		p.Namespaces = append(p.Namespaces, ns)
		if i == 0 || r.IntN(2) == 0 {
			p.Services = append(p.Services, &servicePlan{Namespace: ns, Name: "external-db", Type: "ExternalName",
				ExternalName: "db.corp.local"})
		}
	}
	scaled := func(n int) int { return max(1, int(float64(n)*pl.scale+0.5)) }
	// The first pass gives every namespace one workload of each kind, so
	// small seeds have them all; then draw until the pods are spent.
	kinds := []workloadKind{kindDeployment, kindStatefulSet, kindJob, kindCronJob, kindBarePod}
	for i := 0; pl.b.left > 0; i++ {
		ns := nss[i%len(nss)]
		var kind workloadKind
		if i < len(kinds) {
			kind = kinds[i]
		} else {
			kind = pick(r, kinds, []int{60, 12, 10, 10, 8})
		}
		img := appImages[r.IntN(len(appImages))]
		os := "linux"
		if len(pl.windows) > 0 && r.IntN(100) < 4 {
			os = "windows"
		}
		name := fmt.Sprintf("%s-%d", img.Name, pl.seq(ns+img.Name))
		tpl := pl.appTemplate(img.Name, img.Image, img.Port, os)
		tpl.Labels["app.kubernetes.io/instance"] = name
		switch kind {
		case kindDeployment:
			replicas := scaled(pick(r, []int{1, 2, 3, 5, 10, 20}, []int{20, 25, 25, 15, 10, 5}))
			pl.deployment(ns, name, replicas, tpl, nil)
			pl.appService(ns, name, tpl)
			if r.IntN(100) < 10 {
				class := p.StorageClasses[pick(r, []int{0, 1, 3}, []int{60, 20, 20})]
				pl.claim(ns, name+"-data", class, int64(1+r.IntN(50))*gib, r.IntN(10) > 0)
			}
		case kindStatefulSet:
			pl.statefulSet(ns, name, scaled(1+r.IntN(5)), tpl, int64(pick(r, []int{5, 10, 20, 50, 100}, []int{20, 30, 25, 15, 10})))
		case kindJob:
			res := pick(r, []string{"Complete", "Failed", "Running"}, []int{70, 15, 15})
			pl.job(ns, name, nil, res, 1+r.IntN(3), tpl)
		case kindCronJob:
			cj := pl.addWorkload(&workload{Kind: kindCronJob, Namespace: ns, Name: name, Template: tpl,
				Schedule: fmt.Sprintf("%d */%d * * *", r.IntN(60), 1+r.IntN(6))})
			for h := 0; h < 1+r.IntN(3) && pl.b.left > 0; h++ {
				res := pick(r, []string{"Complete", "Failed", "Running"}, []int{80, 10, 10})
				jobName := pl.unique(ns, "job", name, func() string { return strconv.Itoa(29000000 + r.IntN(100000)) })
				j := pl.job(ns, jobName, cj, res, 1, tpl)
				if res == "Running" {
					cj.Active++
				}
				_ = j
			}
		case kindBarePod:
			w := pl.addWorkload(&workload{Kind: kindBarePod, Namespace: ns, Name: name, Template: tpl})
			if pl.b.take(1) == 1 {
				pod := pl.addPod(w, name, nil, false)
				switch r.IntN(3) {
				case 0:
					pl.finish(pod, phaseSucceeded, "Completed")
				case 1:
					pl.finish(pod, phaseFailed, "Error")
				}
			}
		}
	}
	// Static local volumes nobody claimed yet, and one released volume.
	for i := 0; i < max(1, len(p.Nodes)/20); i++ {
		n := pl.linux[r.IntN(len(pl.linux))]
		p.PVs = append(p.PVs, &pvPlan{Name: fmt.Sprintf("local-pv-%s", pl.randHex(8)), Class: p.StorageClasses[2],
			Bytes: 375 * gib, Source: "local", Phase: "Available", LocalNode: n})
	}
	p.PVs = append(p.PVs, &pvPlan{Name: "pvc-" + pl.uuid(), Class: p.StorageClasses[0], Bytes: 8 * gib, Source: "csi",
		Phase: "Released", ClaimNS: nss[0], ClaimName: "deleted-claim", VolumeUUID: pl.uuid(), ReclaimKeep: true})
}

func (pl *planner) appService(ns, name string, tpl *template) {
	r := pl.r
	if r.IntN(100) >= 70 {
		return
	}
	svc := &servicePlan{Namespace: ns, Name: name, Type: "ClusterIP", Selector: tpl.Labels, Port: tpl.Containers[0].Port}
	if svc.Port == 0 {
		svc.Port = 80
	}
	switch x := r.IntN(100); {
	case x < 10:
		svc.Type = "NodePort"
	case x < 18:
		svc.Type = "LoadBalancer"
		svc.LBIP = fmt.Sprintf("192.168.%d.%d", 101+r.IntN(50), 2+r.IntN(250))
	case x < 25:
		svc.Headless = true
	}
	if svc.Type != "ClusterIP" {
		if pl.nodePort <= 0 {
			svc.Type, svc.LBIP = "ClusterIP", ""
		} else {
			pl.nodePort--
		}
	}
	pl.p.Services = append(pl.p.Services, svc)
	if svc.Type == "ClusterIP" && !svc.Headless && r.IntN(100) < 40 {
		class := pick(r, []string{"nginx", "contour", ""}, []int{60, 25, 15})
		pl.p.Ingresses = append(pl.p.Ingresses, &ingressPlan{Namespace: ns, Name: name, Class: class,
			Host: fmt.Sprintf("%s.%s.apps.corp.local", name, ns), Service: name, Port: svc.Port})
	}
}

// ensurePhases turns a few running application pods into the phases a small
// seed may have missed, so every phase counter is exercised.
func (pl *planner) ensurePhases() {
	var running []*podPlan
	seen := map[phase]bool{}
	for _, w := range pl.p.Workloads {
		for _, pod := range w.Pods {
			seen[pod.Phase] = true
			if pod.Phase == phaseRunning && (w.Kind == kindReplicaSet || w.Kind == kindStatefulSet) && w.Namespace != "kube-system" {
				running = append(running, pod)
			}
		}
	}
	var unknownNode *nodePlan
	for _, n := range pl.p.Nodes {
		if n.Ready == "Unknown" {
			unknownNode = n
			break
		}
	}
	for _, ph := range []phase{phasePending, phaseFailed, phaseUnknown} {
		if seen[ph] || len(running) == 0 {
			continue
		}
		pod := running[len(running)-1]
		running = running[:len(running)-1]
		pod.Phase, pod.Ready = ph, false
		switch ph {
		case phasePending:
			pod.Reason = "ContainerCreating"
		case phaseFailed:
			pod.Reason = "Evicted"
		case phaseUnknown:
			if unknownNode == nil {
				pod.Phase, pod.Ready = phaseRunning, true
				continue
			}
			pod.Node, pod.Reason = unknownNode, "NodeLost"
		}
		// Keep the owner's ready counts true to the pods.
		w := pod.Owner
		w.Ready, w.Available = 0, 0
		for _, p := range w.Pods {
			if p.Ready {
				w.Ready++
			}
		}
		w.Available = w.Ready
		if w.Parent != nil && w.Parent.Kind == kindDeployment {
			w.Parent.Ready, w.Parent.Available = w.Ready, w.Ready
		}
	}
}

// jobsOf maps each CronJob to its Jobs.
func (p *plan) jobsOf() map[*workload][]*workload {
	m := map[*workload][]*workload{}
	for _, w := range p.Workloads {
		if w.Kind == kindJob && w.Parent != nil {
			m[w.Parent] = append(m[w.Parent], w)
		}
	}
	return m
}

// sortedKeys returns a map's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
