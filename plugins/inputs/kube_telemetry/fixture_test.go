package kube_telemetry

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	kresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	ktesting "k8s.io/client-go/testing"

	"github.com/influxdata/telegraf/testutil"
)

// A small cluster for the unit tests, built for the fake clientsets. The
// integration tests use a real API server seeded by kubeseed instead.

const fixtureUID = "7d4b8c2e-0000-4000-8000-000000000001"

func meta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}

func quantities(kv ...string) corev1.ResourceList {
	rl := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		rl[corev1.ResourceName(kv[i])] = kresource.MustParse(kv[i+1])
	}
	return rl
}

func node(name string, labels map[string]string, ready corev1.ConditionStatus, pressure ...corev1.NodeConditionType) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			NodeInfo: corev1.NodeSystemInfo{
				OSImage: "Ubuntu 22.04.4 LTS", KernelVersion: "5.15.0-105-generic", OperatingSystem: "linux",
				Architecture: "amd64", KubeletVersion: "v1.36.3", ContainerRuntimeVersion: "containerd://1.7.27",
			},
			Capacity:    quantities("cpu", "4", "memory", "16Gi", "pods", "110"),
			Allocatable: quantities("cpu", "3800m", "memory", "15Gi", "pods", "110"),
		},
	}
	if ready != "" {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeReady, Status: ready})
	}
	for _, p := range pressure {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: p, Status: corev1.ConditionTrue})
	}
	return n
}

func pod(ns, name string, phase corev1.PodPhase, qos corev1.PodQOSClass, containers, initContainers int) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: meta(ns, name), Status: corev1.PodStatus{Phase: phase, QOSClass: qos}}
	for i := 0; i < containers; i++ {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + strconv.Itoa(i), Image: "app:1"})
	}
	for i := 0; i < initContainers; i++ {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "i" + strconv.Itoa(i), Image: "init:1"})
	}
	return p
}

func deployment(ns, name, image string, replicas *int32, ready int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: meta(ns, name),
		Spec: appsv1.DeploymentSpec{
			Replicas: replicas,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: image}}}},
		},
		Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
	}
}

func daemonSet(ns, name, image string, desired, ready int32) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: meta(ns, name),
		Spec: appsv1.DaemonSetSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: image}}}},
		},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: desired, NumberReady: ready},
	}
}

func service(ns, name string, typ corev1.ServiceType, clusterIP string) *corev1.Service {
	return &corev1.Service{ObjectMeta: meta(ns, name), Spec: corev1.ServiceSpec{Type: typ, ClusterIP: clusterIP}}
}

func pv(name, class, capacity string, annotations map[string]string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName: class,
			Capacity:         quantities("storage", capacity),
		},
	}
}

func pvc(ns, name string, class *string, request string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: meta(ns, name),
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: quantities("storage", request)},
		},
	}
}

func partial(apiVersion, kind, ns, name string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: apiVersion, Kind: kind},
		ObjectMeta: meta(ns, name),
	}
}

func ptr[T any](v T) *T { return &v }

// fixture holds the fake clientsets of the unit-test cluster.
type fixture struct {
	kube *fake.Clientset
	meta *metadatafake.FakeMetadataClient
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	gpu := node("worker-1", map[string]string{"node-role.kubernetes.io/worker": ""}, corev1.ConditionTrue, corev1.NodeMemoryPressure)
	gpu.Status.Capacity["nvidia.com/gpu"] = kresource.MustParse("2")
	gpu.Status.Allocatable["nvidia.com/gpu"] = kresource.MustParse("1")
	cordoned := node("worker-2", nil, corev1.ConditionFalse, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable)
	cordoned.Spec.Unschedulable = true

	typed := []kruntime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: types.UID(fixtureUID)}},
		node("master-0", map[string]string{"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": ""}, corev1.ConditionTrue),
		gpu,
		cordoned,
		node("worker-3", nil, ""), // never reported Ready

		pod("default", "web-1", corev1.PodRunning, corev1.PodQOSBurstable, 2, 1),
		pod("default", "web-2", corev1.PodRunning, corev1.PodQOSGuaranteed, 1, 0),
		pod("default", "batch-1", corev1.PodSucceeded, corev1.PodQOSBestEffort, 1, 0),
		pod("default", "batch-2", corev1.PodFailed, corev1.PodQOSBestEffort, 1, 0),
		pod("kube-system", "coredns-1", corev1.PodPending, corev1.PodQOSBurstable, 1, 0),
		pod("kube-system", "lost-1", corev1.PodUnknown, corev1.PodQOSBestEffort, 3, 2),

		deployment("kube-system", "coredns", "registry.k8s.io/coredns/coredns:v1.11.3", ptr[int32](2), 2),
		deployment("kube-system", "metrics-server", "registry.k8s.io/metrics-server/metrics-server:v0.7.2", nil, 0),
		deployment("kube-system", "antrea-controller", "projects.registry.vmware.com/antrea/antrea-controller-ubuntu:v2.1.0", ptr[int32](1), 1),
		deployment("kube-system", "customer-thing", "registry.customer.example:5000/secret/thing:1.0", ptr[int32](1), 1),
		deployment("default", "coredns", "coredns/coredns:v9.9.9", ptr[int32](1), 1), // not kube-system: just counted
		daemonSet("kube-system", "antrea-agent", "projects.registry.vmware.com/antrea/antrea-ubuntu:v2.1.0", 4, 3),
		daemonSet("kube-system", "kube-proxy", "registry.k8s.io/kube-proxy@sha256:0123456789abcdef", 4, 4),
		// An add-on outside kube-system, in one of the default addon_namespaces.
		daemonSet("vmware-system-csi", "vsphere-csi-node", "projects.registry.vmware.com/tkg/csi/vsphere-block-csi-driver:v3.3.1", 4, 4),

		service("default", "kubernetes", corev1.ServiceTypeClusterIP, "10.96.0.1"),
		service("default", "web-headless", corev1.ServiceTypeClusterIP, "None"),
		service("default", "web-np", corev1.ServiceTypeNodePort, "10.96.0.3"),
		service("default", "web-lb", corev1.ServiceTypeLoadBalancer, "10.96.0.4"),
		service("default", "db", corev1.ServiceTypeExternalName, ""),

		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "vsan-default"}, Provisioner: "csi.vsphere.vmware.com"},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "unused"}, Provisioner: "example.com/nfs"},
		pv("pv-1", "vsan-default", "10Gi", nil),
		pv("pv-2", "vsan-default", "5Gi", nil),
		pv("pv-3", "", "1Gi", map[string]string{provisionedByAnnotation: "kubernetes.io/no-provisioner"}),
		pvc("default", "data-1", ptr("vsan-default"), "8Gi"),
		pvc("default", "data-2", nil, "1Gi"),
	}
	metaObjs := []kruntime.Object{
		partial("v1", "Namespace", "", "default"),
		partial("v1", "Namespace", "", "kube-system"),
		partial("v1", "Namespace", "", "kube-public"),
		partial("apps/v1", "ReplicaSet", "kube-system", "coredns-abc"),
		partial("apps/v1", "ReplicaSet", "default", "web-abc"),
		partial("apps/v1", "ReplicaSet", "default", "web-def"),
		partial("apps/v1", "StatefulSet", "default", "db"),
		partial("batch/v1", "Job", "default", "batch-1"),
		partial("batch/v1", "Job", "default", "batch-2"),
		partial("batch/v1", "CronJob", "default", "nightly"),
		partial("networking.k8s.io/v1", "Ingress", "default", "web"),
		partial("networking.k8s.io/v1", "IngressClass", "", "nginx"),
		partial("storage.k8s.io/v1", "CSIDriver", "", "csi.vsphere.vmware.com"),
		partial("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.com"),
		partial("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "gadgets.example.com"),
	}
	kube := fake.NewClientset(typed...)
	kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{
		GitVersion: "v1.36.3", Platform: "linux/amd64",
	}
	scheme := metadatafake.NewTestScheme()
	require.NoError(t, metav1.AddMetaToScheme(scheme))
	return &fixture{kube: kube, meta: metadatafake.NewSimpleMetadataClient(scheme, metaObjs...)}
}

// plugin returns an initialised and started plugin on the fixture.
func (f *fixture) plugin(t *testing.T, configure func(*KubeTelemetry)) *KubeTelemetry {
	t.Helper()
	k := &KubeTelemetry{PageSize: defaultPageSize, ResponseTimeout: defaultResponseTimeout,
		AddonNamespaces: defaultAddonNamespaces, Log: testutil.Logger{}}
	if configure != nil {
		configure(k)
	}
	require.NoError(t, k.Init())
	k.clients = &clients{host: "fake", kube: f.kube, lister: f.lister(), requests: &k.requests}
	require.NoError(t, k.Start(nil))
	t.Cleanup(k.Stop)
	return k
}

func (f *fixture) lister() *fakeLister { return &fakeLister{kube: f.kube, meta: f.meta} }

// fakeLister serves list pages from the fake clientsets, their reactors
// included, through the real stream decoder: each page is encoded as the
// API server encodes it (magic, runtime.Unknown, the list) and read back
// with decodeList.
type fakeLister struct {
	kube *fake.Clientset
	meta *metadatafake.FakeMetadataClient
}

func (l *fakeLister) listPage(ctx context.Context, res resource, opts metav1.ListOptions, item func([]byte) error) (string, int, error) {
	wire, err := l.page(ctx, res, opts)
	if err != nil {
		return "", 0, err
	}
	return decodeList(bytes.NewReader(wire), item)
}

// page is one list page of res as the API server encodes it.
func (l *fakeLister) page(ctx context.Context, res resource, opts metav1.ListOptions) ([]byte, error) {
	gvr := res.gvr()
	var list kruntime.Object
	var err error
	apiVersion, kind := gvr.GroupVersion().String(), res.kind+"List"
	if res.metadataOnly {
		list, err = l.meta.Resource(gvr).List(ctx, opts)
		apiVersion, kind = "meta.k8s.io/v1", "PartialObjectMetadataList"
	} else {
		list, err = l.kube.Invokes(ktesting.NewListActionWithOptions(gvr, gvr.GroupVersion().WithKind(res.kind), "", opts), nil)
	}
	if err != nil {
		return nil, err
	}
	return encodeList(list, apiVersion, kind)
}

// encodeList is the API server's protobuf encoding of a list.
func encodeList(list kruntime.Object, apiVersion, kind string) ([]byte, error) {
	raw, err := list.(interface{ Marshal() ([]byte, error) }).Marshal()
	if err != nil {
		return nil, err
	}
	u := kruntime.Unknown{TypeMeta: kruntime.TypeMeta{APIVersion: apiVersion, Kind: kind}, Raw: raw}
	env, err := u.Marshal()
	if err != nil {
		return nil, err
	}
	return append(append([]byte{}, protobufMagic...), env...), nil
}
