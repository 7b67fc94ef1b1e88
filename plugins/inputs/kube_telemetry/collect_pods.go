package kube_telemetry

import (
	corev1 "k8s.io/api/core/v1"
)

// podTally counts pods by phase and QoS class, and their containers.
type podTally struct {
	total, pending, running, succeeded, failed, unknown int64
	guaranteed, burstable, bestEffort                   int64
	containers, initContainers                          int64
}

func newPodTally(foldConfig) tally[corev1.Pod] { return &podTally{} }

func (f *podTally) add(p *corev1.Pod) {
	f.total++
	switch p.Status.Phase {
	case corev1.PodPending, "": // the API server defaults an unset phase to Pending
		f.pending++
	case corev1.PodRunning:
		f.running++
	case corev1.PodSucceeded:
		f.succeeded++
	case corev1.PodFailed:
		f.failed++
	default:
		f.unknown++
	}
	switch qosClass(p) {
	case corev1.PodQOSGuaranteed:
		f.guaranteed++
	case corev1.PodQOSBurstable:
		f.burstable++
	default:
		f.bestEffort++
	}
	f.containers += int64(len(p.Spec.Containers))
	f.initContainers += int64(len(p.Spec.InitContainers))
}

// qosClass is the class the API server recorded in status.qosClass. Only if
// it is missing is it derived from the containers' requests and limits by
// the documented rules.
func qosClass(p *corev1.Pod) corev1.PodQOSClass {
	if p.Status.QOSClass != "" {
		return p.Status.QOSClass
	}
	hasAny := false
	guaranteed := true
	check := func(cs []corev1.Container) {
		for i := range cs {
			r := cs[i].Resources
			for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := r.Requests[name]
				limit, hasLimit := r.Limits[name]
				if hasReq || hasLimit {
					hasAny = true
				}
				if !hasLimit || (hasReq && req.Cmp(limit) != 0) {
					guaranteed = false
				}
			}
		}
	}
	check(p.Spec.Containers)
	check(p.Spec.InitContainers)
	switch {
	case !hasAny:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func (f *podTally) emit(r *report) {
	r.e.add(podsMetric, nil, map[string]any{
		"total":           f.total,
		"pending":         f.pending,
		"running":         f.running,
		"succeeded":       f.succeeded,
		"failed":          f.failed,
		"unknown":         f.unknown,
		"qos_guaranteed":  f.guaranteed,
		"qos_burstable":   f.burstable,
		"qos_best_effort": f.bestEffort,
		"containers":      f.containers,
		"init_containers": f.initContainers,
	})
}
