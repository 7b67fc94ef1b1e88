package kube_telemetry

import (
	"time"

	"github.com/influxdata/telegraf"
)

// emitter writes metrics of the schema with the cluster's identity tags and
// the gather's one timestamp. A tag or field the schema does not declare,
// or a value of another type, is not written but reported as an error, so
// no test that gathers can miss it.
type emitter struct {
	acc  telegraf.Accumulator
	ts   time.Time
	tags map[string]string
}

func (e *emitter) add(m *measurement, tags map[string]string, fields map[string]any) {
	all := make(map[string]string, len(tags)+len(e.tags))
	for k, v := range e.tags {
		all[k] = v
	}
	for k, v := range tags {
		all[k] = v
	}
	if errs := m.check(all, fields); len(errs) > 0 {
		for _, err := range errs {
			e.acc.AddError(err)
		}
		return
	}
	e.acc.AddFields(m.name, fields, all, e.ts)
}

// report is one gather's output. Folds write their own metrics through its
// emitter and add to the rows several resources share: the object counts,
// the storage classes and the add-ons, written by finish once every fold
// has reported.
type report struct {
	e       *emitter
	objects map[string]any
	storage storageRows
	addons  addonSet
}

func newReport(e *emitter) *report {
	return &report{e: e, objects: map[string]any{}}
}

// count sets one field of kube_telemetry_objects.
func (r *report) count(field string, n int64) { r.objects[field] = n }

// finish writes the shared rows. kube_telemetry_objects has a field per
// resource listed successfully; a resource that failed or was excluded has
// none rather than a false zero.
func (r *report) finish() {
	if len(r.objects) > 0 {
		r.e.add(objectsMetric, nil, r.objects)
	}
	r.storage.emit(r.e)
	r.addons.emit(r.e)
}
