package kube_telemetry

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Add-ons are looked for in addon_namespaces only; workloads elsewhere are
// the customers' own and only ever counted.
const (
	kindDaemonSet  = "DaemonSet"
	kindDeployment = "Deployment"

	categoryCNI = "cni"
)

// addonRule recognises one add-on by its workload names or, when it was
// renamed, by an image repository path suffix ("calico/node" matches
// "quay.io/calico/node:v3.27.0"). Only add-ons in this table are reported, so
// customer-chosen names never leave the cluster.
type addonRule struct {
	addon    string
	category string
	names    []string
	images   []string
}

var addonRules = []addonRule{
	// Container networking: the node agents define the cluster's CNI.
	{addon: "antrea", category: categoryCNI, names: []string{"antrea-agent", "antrea-controller"},
		images: []string{"antrea-ubuntu", "antrea-agent-ubuntu", "antrea-controller-ubuntu", "antrea-advanced-debian", "antrea/antrea-agent", "antrea/antrea-controller"}},
	{addon: "nsx-node-agent", category: categoryCNI, names: []string{"nsx-node-agent"},
		images: []string{"nsx-ncp-ubuntu", "nsx-ncp-rhel", "nsx-ncp-photon"}},
	{addon: "nsx-ncp", category: categoryCNI, names: []string{"nsx-ncp"}},
	{addon: "calico", category: categoryCNI, names: []string{"calico-node", "calico-kube-controllers", "calico-typha"},
		images: []string{"calico/node", "calico/kube-controllers", "calico/typha"}},
	{addon: "canal", category: categoryCNI, names: []string{"canal"}},
	{addon: "cilium", category: categoryCNI, names: []string{"cilium", "cilium-operator"},
		images: []string{"cilium/cilium", "cilium/operator", "cilium/operator-generic"}},
	{addon: "flannel", category: categoryCNI, names: []string{"kube-flannel-ds", "kube-flannel", "flannel"},
		images: []string{"flannel/flannel", "coreos/flannel"}},
	{addon: "weave", category: categoryCNI, names: []string{"weave-net"}, images: []string{"weaveworks/weave-kube"}},
	// Cluster DNS.
	{addon: "coredns", category: "dns", names: []string{"coredns"}, images: []string{"coredns/coredns", "coredns"}},
	{addon: "kube-dns", category: "dns", names: []string{"kube-dns"}, images: []string{"k8s-dns-kube-dns"}},
	{addon: "node-local-dns", category: "dns", names: []string{"node-local-dns", "nodelocaldns"}, images: []string{"k8s-dns-node-cache"}},
	// Resource metrics.
	{addon: "metrics-server", category: "metrics", names: []string{"metrics-server"}, images: []string{"metrics-server"}},
	{addon: "kube-state-metrics", category: "metrics", names: []string{"kube-state-metrics"}, images: []string{"kube-state-metrics"}},
	// Ingress controllers.
	{addon: "ingress-nginx", category: "ingress", names: []string{"ingress-nginx-controller", "nginx-ingress-controller"},
		images: []string{"ingress-nginx/controller"}},
	{addon: "contour", category: "ingress", names: []string{"contour", "envoy"}, images: []string{"projectcontour/contour"}},
	{addon: "traefik", category: "ingress", names: []string{"traefik"}, images: []string{"traefik"}},
	// Storage.
	{addon: "vsphere-csi", category: "storage", names: []string{"vsphere-csi-node", "vsphere-csi-controller"},
		images: []string{"csi-vsphere/driver", "vsphere-csi-driver/driver", "vsphere-block-csi-driver"}},
	{addon: "snapshot-controller", category: "storage", names: []string{"snapshot-controller"}, images: []string{"sig-storage/snapshot-controller"}},
	// Everything else a TKGI or upstream cluster runs as add-ons.
	{addon: "kube-proxy", category: "other", names: []string{"kube-proxy"}, images: []string{"kube-proxy"}},
	{addon: "vsphere-cloud-controller-manager", category: "other", names: []string{"vsphere-cloud-controller-manager"},
		images: []string{"cloud-provider-vsphere/cpi/release/manager", "vsphere-cloud-controller-manager"}},
	{addon: "cluster-autoscaler", category: "other", names: []string{"cluster-autoscaler"}, images: []string{"autoscaling/cluster-autoscaler"}},
	{addon: "kubernetes-dashboard", category: "other", names: []string{"kubernetes-dashboard"}, images: []string{"kubernetesui/dashboard"}},
}

type addonKey struct{ addon, category, kind, version string }

type addonCount struct{ desired, ready int64 }

// addonSet collects the add-ons found; two workloads of the same add-on,
// kind and version add up.
type addonSet map[addonKey]addonCount

func (s *addonSet) detect(kind, name string, containers []corev1.Container, desired, ready int64) {
	rule, image, ok := matchAddon(name, containers)
	if !ok {
		return
	}
	if *s == nil {
		*s = make(addonSet)
	}
	k := addonKey{addon: rule.addon, category: rule.category, kind: kind, version: imageTag(image)}
	c := (*s)[k]
	c.desired += desired
	c.ready += ready
	(*s)[k] = c
}

// matchAddon finds the rule for a workload, by its name first, then by its
// images, and the image its version comes from: the container whose image
// the rule names, else the container named like the workload, else the
// first.
func matchAddon(name string, containers []corev1.Container) (addonRule, string, bool) {
	for _, r := range addonRules {
		for _, n := range r.names {
			if n == name {
				return r, r.versionImage(name, containers), true
			}
		}
	}
	for _, r := range addonRules {
		for _, c := range containers {
			if r.matchesImage(c.Image) {
				return r, c.Image, true
			}
		}
	}
	return addonRule{}, "", false
}

func (r addonRule) versionImage(name string, containers []corev1.Container) string {
	for _, c := range containers {
		if r.matchesImage(c.Image) {
			return c.Image
		}
	}
	for _, c := range containers {
		if c.Name == name {
			return c.Image
		}
	}
	if len(containers) > 0 {
		return containers[0].Image
	}
	return ""
}

func (r addonRule) matchesImage(image string) bool {
	repo, _ := splitImage(image)
	for _, suffix := range r.images {
		if repo == suffix || strings.HasSuffix(repo, "/"+suffix) {
			return true
		}
	}
	return false
}

// splitImage splits an image reference into its repository path without the
// registry host and its tag: "registry.example.com:5000/antrea/antrea-ubuntu:v2.1.0"
// gives "antrea/antrea-ubuntu" and "v2.1.0". The registry host (it may name
// the customer) is dropped; a digest is ignored.
func splitImage(image string) (repo, tag string) {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	// The first path element is a registry host if it has a dot or a port,
	// or is localhost (the rule of the image reference grammar).
	if i := strings.IndexByte(image, '/'); i >= 0 {
		first := image[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			image = image[i+1:]
		}
	}
	last := strings.LastIndexByte(image, '/')
	if i := strings.LastIndexByte(image, ':'); i > last {
		return image[:i], image[i+1:]
	}
	return image, ""
}

// imageTag is the add-on's version tag: the image tag, "latest" for an
// untagged reference, "unknown" when pinned by digest only or no image.
func imageTag(image string) string {
	if image == "" {
		return "unknown"
	}
	_, tag := splitImage(image)
	switch {
	case tag != "":
		return tag
	case strings.Contains(image, "@"):
		return "unknown"
	}
	return "latest"
}

// cni names the cluster's CNI from the add-ons found: the CNI node agents
// (DaemonSets), else any CNI add-on, else "unknown". Several are joined
// sorted with "," (e.g. a migration in progress).
func cni(sets ...addonSet) string {
	for _, kind := range []string{kindDaemonSet, ""} {
		found := map[string]bool{}
		for _, s := range sets {
			for k := range s {
				if k.category == categoryCNI && (kind == "" || k.kind == kind) {
					found[k.addon] = true
				}
			}
		}
		if len(found) > 0 {
			names := make([]string, 0, len(found))
			for n := range found {
				names = append(names, n)
			}
			sort.Strings(names)
			return strings.Join(names, ",")
		}
	}
	return "unknown"
}

// merge adds the add-ons of o to s.
func (s *addonSet) merge(o addonSet) {
	for k, c := range o {
		if *s == nil {
			*s = make(addonSet)
		}
		sum := (*s)[k]
		sum.desired += c.desired
		sum.ready += c.ready
		(*s)[k] = sum
	}
}

func (s addonSet) emit(e *emitter) {
	keys := make([]addonKey, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.addon != b.addon {
			return a.addon < b.addon
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.version < b.version
	})
	for _, k := range keys {
		c := s[k]
		e.add(addonMetric,
			map[string]string{"addon": k.addon, "category": k.category, "kind": k.kind, "version": k.version},
			map[string]any{"desired": c.desired, "ready": c.ready})
	}
}
