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

type pvFold struct {
	n       int64
	classes map[string]*pvClass
	obj     corev1.PersistentVolume // reused for every item
}

func newPVFold() *pvFold { return &pvFold{classes: map[string]*pvClass{}} }

func (f *pvFold) item(raw []byte) error {
	if err := decodeInto(&f.obj, raw); err != nil {
		return err
	}
	f.add(&f.obj)
	return nil
}

func (f *pvFold) reset()       { *f = *newPVFold() }
func (f *pvFold) count() int64 { return f.n }

func (f *pvFold) add(pv *corev1.PersistentVolume) {
	f.n++
	name := pv.Spec.StorageClassName
	if name == "" {
		name = pv.Annotations[betaStorageClassAnnotation]
	}
	if name == "" {
		name = noStorageClass
	}
	c := f.classes[name]
	if c == nil {
		c = &pvClass{}
		f.classes[name] = c
	}
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

type pvcFold struct {
	n       int64
	classes map[string]*pvcClass
	obj     corev1.PersistentVolumeClaim // reused for every item
}

func newPVCFold() *pvcFold { return &pvcFold{classes: map[string]*pvcClass{}} }

func (f *pvcFold) item(raw []byte) error {
	if err := decodeInto(&f.obj, raw); err != nil {
		return err
	}
	f.add(&f.obj)
	return nil
}

func (f *pvcFold) reset()       { *f = *newPVCFold() }
func (f *pvcFold) count() int64 { return f.n }

func (f *pvcFold) add(pvc *corev1.PersistentVolumeClaim) {
	f.n++
	name := ""
	if pvc.Spec.StorageClassName != nil {
		name = *pvc.Spec.StorageClassName
	}
	if name == "" {
		name = pvc.Annotations[betaStorageClassAnnotation]
	}
	if name == "" {
		name = noStorageClass
	}
	c := f.classes[name]
	if c == nil {
		c = &pvcClass{}
		f.classes[name] = c
	}
	c.claims++
	if q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		c.requestedBytes += q.Value()
	}
}

// storageClassFold keeps each class's provisioner: the storage rows are
// tagged with it.
type storageClassFold struct {
	provisioners map[string]string
	obj          storagev1.StorageClass // reused for every item
}

func newStorageClassFold() *storageClassFold {
	return &storageClassFold{provisioners: map[string]string{}}
}

func (f *storageClassFold) item(raw []byte) error {
	if err := decodeInto(&f.obj, raw); err != nil {
		return err
	}
	f.provisioners[f.obj.Name] = f.obj.Provisioner
	return nil
}

func (f *storageClassFold) reset()       { *f = *newStorageClassFold() }
func (f *storageClassFold) count() int64 { return int64(len(f.provisioners)) }

// emitStorage writes one kube_telemetry_storage row per storage class:
// every StorageClass and every class a volume or claim names. PV fields are
// present only if persistentvolumes were listed, PVC fields only if
// persistentvolumeclaims were: a missing list never reads as zero.
func emitStorage(e *emitter, pvs *pvFold, pvcs *pvcFold, scs *storageClassFold) {
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
		e.add("kube_telemetry_storage", map[string]string{"storage_class": name, "provisioner": provisioner}, fields)
	}
}
