package sinks

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// fieldOwner is the controller's server-side apply identity.
const fieldOwner = "telegraf-tkgi-sink-controller"

// tenantReconciler renders one MetricSink into its namespace.
type tenantReconciler struct {
	client  client.Client
	image   string
	checker Checker
}

func (r *tenantReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("metricsink").
		// Status writes do not change the generation: no reconcile for them.
		For(&MetricSink{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// An owned object edited or deleted by hand is put back.
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Complete(r)
}

func (r *tenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var sink MetricSink
	if err := r.client.Get(ctx, req.NamespacedName, &sink); err != nil {
		// A deleted sink's objects go with it through their owner references.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	o, applyErr := r.render(ctx, &sink)
	if applyOutcome(&sink.Status, sink.Generation, o) {
		err := r.client.Status().Update(ctx, &sink)
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: conflictRetry}, applyErr
		}
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("updating the status of MetricSink %s failed: %w", req, err)
		}
	}
	return ctrl.Result{}, applyErr
}

// render checks the sink and, when it loads, applies its objects. An invalid
// sink leaves the objects of its last valid version running.
func (r *tenantReconciler) render(ctx context.Context, sink *MetricSink) (outcome, error) {
	conf, err := r.checker.ValidateMetricSink(sink)
	if err != nil {
		log.FromContext(ctx).Info("MetricSink is invalid", "error", err.Error())
		return invalidOutcome(err), nil
	}
	for _, obj := range tenantObjects(sink, conf, r.image) {
		if err := r.client.Apply(ctx, obj, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			err = fmt.Errorf("applying %s failed: %w", describe(obj), err)
			return failedOutcome(ReasonApplyFailed, err), err
		}
	}
	name := TenantObjectName(sink.Name)
	if len(prometheusClientPorts(sink.Spec.Outputs)) == 0 {
		// No metrics port any more: no Service pointing at nothing.
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: sink.Namespace, Name: name}}
		if err := r.client.Delete(ctx, svc); client.IgnoreNotFound(err) != nil {
			err = fmt.Errorf("deleting Service %s failed: %w", name, err)
			return failedOutcome(ReasonApplyFailed, err), err
		}
	}
	return validOutcome(fmt.Sprintf("rendered into ConfigMap %s and Deployment %s", name, name)), nil
}

// describe names an apply configuration for an error message.
func describe(obj runtime.ApplyConfiguration) string {
	type named interface {
		GetName() *string
		GetKind() *string
	}
	if n, ok := obj.(named); ok && n.GetName() != nil && n.GetKind() != nil {
		return *n.GetKind() + " " + *n.GetName()
	}
	return fmt.Sprintf("%T", obj)
}
