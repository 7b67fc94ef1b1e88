package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	appsv1defaults "k8s.io/kubernetes/pkg/apis/apps/v1"
	batchv1defaults "k8s.io/kubernetes/pkg/apis/batch/v1"
	corev1defaults "k8s.io/kubernetes/pkg/apis/core/v1"
	"k8s.io/utils/ptr"
)

// etcdWriter stores objects straight into the apiserver's etcd, in the
// apiserver's own storage encoding (protobuf in a runtime.Unknown envelope
// behind the "k8s\x00" magic), under its default key layout. This skips
// admission, managedFields and a round trip per object: the 150k-pod
// benchmark cluster takes seconds to write instead of half an hour through
// the API. A running apiserver picks the objects up through its etcd watch.
//
// What the apiserver would add on create is added here: API defaults, UIDs
// (deterministic), creation time, generation, the service account and
// priority admission fills in, a Job's selector, Service IPs and node ports,
// the default IngressClass, the PV/PVC protection finalizers.
type etcdWriter struct {
	client  *clientv3.Client
	prefix  string
	batch   int
	workers int
	seed    uint64
	now     time.Time
	codec   *protobuf.Serializer
}

func newEtcdWriter(endpoint, prefix string, batch, workers int, seed uint64, now time.Time) (*etcdWriter, error) {
	if batch < 1 || batch > 128 { // etcd's default --max-txn-ops is 128
		return nil, fmt.Errorf("-etcd-batch must be between 1 and 128, got %d", batch)
	}
	if workers < 1 {
		return nil, fmt.Errorf("-etcd-workers must be at least 1, got %d", workers)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:          []string{endpoint},
		DialTimeout:        5 * time.Second,
		MaxCallSendMsgSize: 16 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %s failed: %w", endpoint, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Status(ctx, endpoint); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd at %s (-direct-etcd) does not answer: %w", endpoint, err)
	}
	return &etcdWriter{client: c, prefix: prefix, batch: batch, workers: workers, seed: seed, now: now,
		codec: newEtcdWriterCodec()}, nil
}

// newEtcdWriterCodec is the apiserver's storage serializer for built-in types.
func newEtcdWriterCodec() *protobuf.Serializer {
	return protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
}

func (e *etcdWriter) Close() error { return e.client.Close() }

type kv struct{ key, value string }

// item builds one object's key and value; items are built by the writers,
// so the whole cluster never sits in memory as objects.
type item func() (kv, error)

func (e *etcdWriter) uid(kind, ns, name string) string {
	return uuidFrom("uid", strconv.FormatUint(e.seed, 10), kind, ns, name)
}

// store encodes obj under /<prefix>/<resource>/[<namespace>/]<name>.
func (e *etcdWriter) store(obj runtime.Object, resource string) (kv, error) {
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil {
		return kv{}, err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	m, err := meta.Accessor(obj)
	if err != nil {
		return kv{}, err
	}
	if m.GetUID() == "" {
		m.SetUID(types.UID(e.uid(gvks[0].Kind, m.GetNamespace(), m.GetName())))
	}
	m.SetCreationTimestamp(metav1.NewTime(e.now.Truncate(time.Second)))
	m.SetResourceVersion("") // etcd's revision is the version
	key := e.prefix + "/" + resource + "/" + m.GetName()
	if ns := m.GetNamespace(); ns != "" {
		key = e.prefix + "/" + resource + "/" + ns + "/" + m.GetName()
	}
	var buf bytes.Buffer
	if err := e.codec.Encode(obj, &buf); err != nil {
		return kv{}, fmt.Errorf("encoding %s failed: %w", key, err)
	}
	return kv{key, buf.String()}, nil
}

func (e *etcdWriter) nodeKV(n *nodePlan) (kv, error) {
	node := buildNode(n, e.now)
	corev1defaults.SetObjectDefaults_Node(node)
	return e.store(node, "minions")
}

func (e *etcdWriter) podKV(pod *podPlan) (kv, error) {
	p := buildPod(pod, e.now)
	corev1defaults.SetObjectDefaults_Pod(p)
	p.Generation = 1
	if prio, ok := priorities[p.Spec.PriorityClassName]; ok {
		p.Spec.Priority = &prio
	} else if p.Spec.Priority == nil {
		p.Spec.Priority = ptr.To[int32](0)
	}
	if p.Spec.ServiceAccountName == "" { // what the ServiceAccount admission plugin sets
		p.Spec.ServiceAccountName = "default"
	}
	if p.Spec.EnableServiceLinks == nil {
		p.Spec.EnableServiceLinks = ptr.To(true)
	}
	if p.Spec.PreemptionPolicy == nil {
		p.Spec.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
	}
	return e.store(p, "pods")
}

func (e *etcdWriter) workloadKV(w *workload, jobs []*workload) (kv, error) {
	switch w.Kind {
	case kindDeployment:
		d := buildDeployment(w)
		d.UID, d.Generation = types.UID(w.UID), 1
		deploymentStatus(w, d, e.now)
		appsv1defaults.SetObjectDefaults_Deployment(d)
		return e.store(d, "deployments")
	case kindReplicaSet:
		rs := buildReplicaSet(w)
		rs.UID, rs.Generation = types.UID(w.UID), 1
		replicaSetStatus(w, rs)
		appsv1defaults.SetObjectDefaults_ReplicaSet(rs)
		return e.store(rs, "replicasets")
	case kindStatefulSet:
		class, bytes := "vsphere-csi-default", gib
		for _, c := range w.claims {
			class, bytes = c.Class.Name, c.Bytes
		}
		st := buildStatefulSet(w, class, bytes)
		st.UID, st.Generation = types.UID(w.UID), 1
		statefulSetStatus(w, st)
		appsv1defaults.SetObjectDefaults_StatefulSet(st)
		return e.store(st, "statefulsets")
	case kindDaemonSet:
		ds := buildDaemonSet(w)
		ds.UID, ds.Generation = types.UID(w.UID), 1
		daemonSetStatus(w, ds)
		appsv1defaults.SetObjectDefaults_DaemonSet(ds)
		return e.store(ds, "daemonsets")
	case kindJob:
		j := buildJob(w)
		j.UID, j.Generation = types.UID(w.UID), 1
		// The selector the Job strategy generates when manualSelector is unset.
		j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": w.UID}}
		for k, v := range map[string]string{"batch.kubernetes.io/controller-uid": w.UID, "controller-uid": w.UID,
			"batch.kubernetes.io/job-name": w.Name, "job-name": w.Name} {
			j.Spec.Template.Labels[k] = v
		}
		jobStatus(w, j, e.now)
		batchv1defaults.SetObjectDefaults_Job(j)
		return e.store(j, "jobs")
	case kindCronJob:
		cj := buildCronJob(w)
		cj.UID, cj.Generation = types.UID(w.UID), 1
		cronJobStatus(w, jobs, cj, e.now)
		batchv1defaults.SetObjectDefaults_CronJob(cj)
		return e.store(cj, "cronjobs")
	}
	return kv{}, fmt.Errorf("unknown workload kind %q", w.Kind)
}

// serviceKV stores a Service with the i-th address of 10.96.0.0/16 after
// the first 16 (10.96.0.1 is default/kubernetes) and node port 30000+np.
func (e *etcdWriter) serviceKV(sp *servicePlan, i, np int) (kv, error) {
	svc := buildService(sp)
	if sp.Type != "ExternalName" {
		ip := "None"
		if !sp.Headless {
			ip = serviceIP(i)
		}
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	if sp.Type == "NodePort" || sp.Type == "LoadBalancer" {
		svc.Spec.Ports[0].NodePort = int32(30000 + np) // the plan keeps np below 2768
	}
	if sp.LBIP != "" {
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: sp.LBIP, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}
	}
	corev1defaults.SetObjectDefaults_Service(svc)
	return e.store(svc, "services/specs")
}

func serviceIP(i int) string {
	return netip.AddrFrom4([4]byte{10, 96, byte((16 + i) >> 8), byte(16 + i)}).String()
}

// ipAddressKV stores the IPAddress object the apiserver's allocator keeps
// for a Service's ClusterIP; without it the apiserver's repair loop
// "repairs" every Service (and logs an error for each) right after seeding,
// which would disturb benchmarks.
func (e *etcdWriter) ipAddressKV(sp *servicePlan, i int) (kv, error) {
	ip := &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{Name: serviceIP(i), Labels: map[string]string{
			networkingv1.LabelIPAddressFamily: string(corev1.IPv4Protocol),
			networkingv1.LabelManagedBy:       "ipallocator.k8s.io",
		}},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{
			Resource: "services", Namespace: sp.Namespace, Name: sp.Name}},
	}
	return e.store(ip, "ipaddresses")
}

func (e *etcdWriter) pvKV(pv *pvPlan) (kv, error) {
	out := buildPV(pv)
	out.Finalizers = []string{"kubernetes.io/pv-protection"}
	out.Status.Phase = corev1.PersistentVolumePhase(pv.Phase)
	corev1defaults.SetObjectDefaults_PersistentVolume(out)
	return e.store(out, "persistentvolumes")
}

func (e *etcdWriter) pvcKV(c *pvcPlan) (kv, error) {
	out := buildPVC(c)
	out.Finalizers = []string{"kubernetes.io/pvc-protection"}
	pvcStatus(c, out)
	corev1defaults.SetObjectDefaults_PersistentVolumeClaim(out)
	return e.store(out, "persistentvolumeclaims")
}

func (e *etcdWriter) ingressKV(in *ingressPlan, defaultClass string) (kv, error) {
	out := buildIngress(in)
	if out.Spec.IngressClassName == nil && defaultClass != "" { // the DefaultIngressClass admission plugin
		out.Spec.IngressClassName = ptr.To(defaultClass)
	}
	return e.store(out, "ingress")
}

// items lists every object of the plan the etcd path writes: all but the
// namespaces, ServiceAccounts and cluster-scoped classes, drivers and CRDs
// (applyBase creates those through the API first). The first group holds
// the nodes and the Services' IPAddresses, the last the pods.
func (e *etcdWriter) items(p *plan) (nodes, rest, pods []item) {
	for _, n := range p.Nodes {
		nodes = append(nodes, func() (kv, error) { return e.nodeKV(n) })
	}
	// Owner UIDs first: pods, ReplicaSets and Jobs reference them.
	for _, w := range p.Workloads {
		if w.Kind != kindBarePod {
			w.UID = e.uid(string(w.Kind), w.Namespace, w.Name)
		}
	}
	jobsOf := p.jobsOf()
	for _, w := range p.Workloads {
		if w.Kind != kindBarePod {
			rest = append(rest, func() (kv, error) { return e.workloadKV(w, jobsOf[w]) })
		}
	}
	np := 0
	for i, sp := range p.Services {
		port := np
		if sp.Type == "NodePort" || sp.Type == "LoadBalancer" {
			np++
		}
		rest = append(rest, func() (kv, error) { return e.serviceKV(sp, i, port) })
		if sp.Type != "ExternalName" && !sp.Headless {
			// Before the Services, or the repair loop races the writes.
			nodes = append(nodes, func() (kv, error) { return e.ipAddressKV(sp, i) })
		}
	}
	for _, pv := range p.PVs {
		rest = append(rest, func() (kv, error) { return e.pvKV(pv) })
	}
	for _, c := range p.PVCs {
		rest = append(rest, func() (kv, error) { return e.pvcKV(c) })
	}
	defaultClass := ""
	for _, ic := range p.IngressClasses {
		if ic.Default {
			defaultClass = ic.Name
		}
	}
	for _, in := range p.Ingresses {
		rest = append(rest, func() (kv, error) { return e.ingressKV(in, defaultClass) })
	}
	for _, pod := range p.Pods {
		pods = append(pods, func() (kv, error) { return e.podKV(pod) })
	}
	return nodes, rest, pods
}

// write puts the items in transactions of e.batch puts with e.workers
// concurrent writers.
func (e *etcdWriter) write(ctx context.Context, items []item) error {
	var batches [][]item
	for i := 0; i < len(items); i += e.batch {
		batches = append(batches, items[i:min(i+e.batch, len(items))])
	}
	return forEach(ctx, e.workers, batches, func(ctx context.Context, b []item) error {
		ops := make([]clientv3.Op, 0, len(b))
		for _, build := range b {
			it, err := build()
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(it.key, it.value))
		}
		return retry(ctx, "writing to etcd", func() error {
			_, err := e.client.Txn(ctx).Then(ops...).Commit()
			return err
		})
	})
}
