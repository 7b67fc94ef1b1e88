package kube_telemetry

import (
	corev1 "k8s.io/api/core/v1"
)

// serviceTally counts services by type; the total is the list's count.
type serviceTally struct {
	clusterIP, nodePort, loadBalancer, externalName, headless int64
}

func newServiceTally(foldConfig) tally[corev1.Service] { return &serviceTally{} }

func (f *serviceTally) add(s *corev1.Service) {
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

func (f *serviceTally) emit(r *report) {
	r.count("services_cluster_ip", f.clusterIP)
	r.count("services_node_port", f.nodePort)
	r.count("services_load_balancer", f.loadBalancer)
	r.count("services_external_name", f.externalName)
	r.count("services_headless", f.headless)
}
