package kube_telemetry

import (
	corev1 "k8s.io/api/core/v1"
)

type serviceFold struct {
	total, clusterIP, nodePort, loadBalancer, externalName, headless int64

	obj corev1.Service // reused for every item
}

func (f *serviceFold) item(raw []byte) error {
	if err := decodeInto(&f.obj, raw); err != nil {
		return err
	}
	f.add(&f.obj)
	return nil
}

func (f *serviceFold) reset()       { *f = serviceFold{} }
func (f *serviceFold) count() int64 { return f.total }

func (f *serviceFold) add(s *corev1.Service) {
	f.total++
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, "": // the API default
		f.clusterIP++
	case corev1.ServiceTypeNodePort:
		f.nodePort++
	case corev1.ServiceTypeLoadBalancer:
		f.loadBalancer++
	case corev1.ServiceTypeExternalName:
		f.externalName++
	}
	// Headless services are ClusterIP services without a cluster IP; they
	// are counted in services_cluster_ip too.
	if s.Spec.ClusterIP == corev1.ClusterIPNone {
		f.headless++
	}
}

func (f *serviceFold) fields() map[string]any {
	return map[string]any{
		"services":               f.total,
		"services_cluster_ip":    f.clusterIP,
		"services_node_port":     f.nodePort,
		"services_load_balancer": f.loadBalancer,
		"services_external_name": f.externalName,
		"services_headless":      f.headless,
	}
}
