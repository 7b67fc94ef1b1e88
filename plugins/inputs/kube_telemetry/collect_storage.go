package kube_telemetry

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

const (
	// Pre-GA ways of naming the class, still honoured by Kubernetes.
	betaStorageClassAnnotation = "volume.beta.kubernetes.io/storage-class"
	provisionedByAnnotation    = "pv.kubernetes.io/provisioned-by"

	noStorageClass     = "none"
	unknownProvisioner = "unknown"
)

type pvClass struct {
	volumes, capacityBytes int64
	provisioner            string
}

// pvTally sums the persistent volumes by storage class.
type pvTally struct {
	classes map[string]*pvClass
}

func newPVTally(foldConfig) tally[corev1.PersistentVolume] { return &pvTally{} }

func (f *pvTally) emit(r *report) { r.storage.pvs = f }

func (f *pvTally) add(pv *corev1.PersistentVolume) {
	c := classOf(&f.classes, className(pv.Spec.StorageClassName, pv.Annotations))
	c.volumes++
	if q, ok := pv.Spec.Capacity[corev1.ResourceStorage]; ok {
		c.capacityBytes += q.Value()
	}
	if c.provisioner == "" {
		switch {
		case pv.Annotations[provisionedByAnnotation] != "":
			c.provisioner = pv.Annotations[provisionedByAnnotation]
		case pv.Spec.CSI != nil:
			c.provisioner = pv.Spec.CSI.Driver
		}
	}
}

type pvcClass struct{ claims, requestedBytes int64 }

// pvcTally sums the persistent volume claims by storage class.
type pvcTally struct {
	classes map[string]*pvcClass
}

func newPVCTally(foldConfig) tally[corev1.PersistentVolumeClaim] { return &pvcTally{} }

func (f *pvcTally) emit(r *report) { r.storage.pvcs = f }

func (f *pvcTally) add(pvc *corev1.PersistentVolumeClaim) {
	spec := ""
	if pvc.Spec.StorageClassName != nil {
		spec = *pvc.Spec.StorageClassName
	}
	c := classOf(&f.classes, className(spec, pvc.Annotations))
	c.claims++
	if q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		c.requestedBytes += q.Value()
	}
}

// className is the storage class a volume or claim names: its spec, else
// the pre-GA annotation, else "none".
func className(spec string, annotations map[string]string) string {
	switch {
	case spec != "":
		return spec
	case annotations[betaStorageClassAnnotation] != "":
		return annotations[betaStorageClassAnnotation]
	}
	return noStorageClass
}

// classOf returns the sums of a class, made on first use.
func classOf[T any](classes *map[string]*T, name string) *T {
	if *classes == nil {
		*classes = map[string]*T{}
	}
	c := (*classes)[name]
	if c == nil {
		c = new(T)
		(*classes)[name] = c
	}
	return c
}

// storageClassTally keeps each class's provisioner: the storage rows are
// tagged with it.
type storageClassTally struct {
	provisioners map[string]string
}

func newStorageClassTally(foldConfig) tally[storagev1.StorageClass] {
	return &storageClassTally{provisioners: map[string]string{}}
}

func (f *storageClassTally) add(sc *storagev1.StorageClass) { f.provisioners[sc.Name] = sc.Provisioner }
func (f *storageClassTally) emit(r *report)                 { r.storage.classes = f }

// storageRows joins the three storage tallies of the resources listed
// successfully (nil: not listed) into the kube_telemetry_storage rows.
type storageRows struct {
	pvs     *pvTally
	pvcs    *pvcTally
	classes *storageClassTally
}

// emit writes one kube_telemetry_storage row per storage class: every
// StorageClass and every class a volume or claim names. PV fields are
// present only if persistentvolumes were listed, PVC fields only if
// persistentvolumeclaims were: a missing list never reads as zero.
func (s *storageRows) emit(e *emitter) {
	pvs, pvcs, scs := s.pvs, s.pvcs, s.classes
	if pvs == nil && pvcs == nil {
		return
	}
	names := map[string]bool{}
	if scs != nil {
		for n := range scs.provisioners {
			names[n] = true
		}
	}
	if pvs != nil {
		for n := range pvs.classes {
			names[n] = true
		}
	}
	if pvcs != nil {
		for n := range pvcs.classes {
			names[n] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	for _, name := range sorted {
		provisioner := ""
		if scs != nil {
			provisioner = scs.provisioners[name]
		}
		fields := make(map[string]any, 4)
		if pvs != nil {
			c := pvs.classes[name]
			if c == nil {
				c = &pvClass{}
			}
			if provisioner == "" {
				provisioner = c.provisioner
			}
			fields["persistent_volumes"] = c.volumes
			fields["pv_capacity_bytes"] = c.capacityBytes
		}
		if pvcs != nil {
			c := pvcs.classes[name]
			if c == nil {
				c = &pvcClass{}
			}
			fields["persistent_volume_claims"] = c.claims
			fields["pvc_requested_bytes"] = c.requestedBytes
		}
		if provisioner == "" {
			provisioner = unknownProvisioner
		}
		e.add(storageMetric, map[string]string{"storage_class": name, "provisioner": provisioner}, fields)
	}
}
