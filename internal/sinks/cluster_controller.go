package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// clusterReconciler renders every ClusterMetricSink into the node
// DaemonSet's one ConfigMap. Any sink's change re-renders all of them, so
// the reconciler has a single work item: the ConfigMap.
type clusterReconciler struct {
	client    client.Client
	configMap types.NamespacedName
	checker   Checker
}

func (r *clusterReconciler) setup(mgr ctrl.Manager) error {
	toConfigMap := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: r.configMap}}
	})
	isOurConfigMap := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.configMap.Namespace && o.GetName() == r.configMap.Name
	})
	// One render at start, so the node agents have a ConfigMap to mount
	// before any sink exists.
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &corev1.ConfigMap{}}
	return ctrl.NewControllerManagedBy(mgr).
		Named("clustermetricsink").
		WatchesRawSource(source.Channel(start, toConfigMap)).
		Watches(&ClusterMetricSink{}, toConfigMap, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// The ConfigMap edited or deleted by hand is put back.
		Watches(&corev1.ConfigMap{}, toConfigMap, builder.WithPredicates(isOurConfigMap)).
		Complete(r)
}

func (r *clusterReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var list ClusterMetricSinkList
	if err := r.client.List(ctx, &list); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing ClusterMetricSinks failed: %w", err)
	}
	// Each sink is checked alone, so one invalid sink neither breaks the
	// agents nor hides the others' data: it is left out and told why.
	outcomes := make(map[string]outcome, len(list.Items))
	invalid := func(name string, err error) {
		log.FromContext(ctx).Info("ClusterMetricSink is invalid", "sink", name, "error", err.Error())
		outcomes[name] = invalidOutcome(err)
	}
	var loaded []*ClusterMetricSink
	parsed := make(map[string]ClusterSink, len(list.Items))
	for i := range list.Items {
		s := &list.Items[i]
		if !s.DeletionTimestamp.IsZero() {
			continue
		}
		cs, err := r.checker.ValidateClusterMetricSink(s)
		if err != nil {
			invalid(s.Name, err)
			continue
		}
		loaded = append(loaded, s)
		parsed[s.Name] = cs
	}
	// Sinks that load alone may still want the same port together.
	clashes := portClashes(loaded)
	var valid []ClusterSink
	for _, s := range loaded {
		if err := clashes[s.Name]; err != nil {
			invalid(s.Name, err)
			continue
		}
		valid = append(valid, parsed[s.Name])
	}

	applyErr := r.apply(ctx, valid)
	for _, cs := range valid {
		if applyErr != nil {
			outcomes[cs.Name] = failedOutcome(ReasonApplyFailed, applyErr)
		} else {
			outcomes[cs.Name] = validOutcome(fmt.Sprintf("rendered into ConfigMap %s", r.configMap))
		}
	}
	var statusErrs []error
	var result ctrl.Result
	for i := range list.Items {
		s := &list.Items[i]
		o, ok := outcomes[s.Name]
		if !ok || !applyOutcome(&s.Status, s.Generation, o) {
			continue
		}
		err := r.client.Status().Update(ctx, s)
		if apierrors.IsConflict(err) {
			result.RequeueAfter = conflictRetry
			continue
		}
		if err != nil {
			statusErrs = append(statusErrs, fmt.Errorf("updating the status of ClusterMetricSink %s failed: %w", s.Name, err))
		}
	}
	return result, errors.Join(append([]error{applyErr}, statusErrs...)...)
}

func (r *clusterReconciler) apply(ctx context.Context, sinks []ClusterSink) error {
	conf, err := RenderCluster(sinks)
	if err == nil {
		// Sinks that load alone may still clash together.
		err = r.checker.Check(conf)
	}
	if err != nil {
		names := make([]string, 0, len(sinks))
		for _, s := range sinks {
			names = append(names, s.Name)
		}
		return fmt.Errorf("the ClusterMetricSinks %s do not load together: %w", strings.Join(names, ", "), err)
	}
	cm := clusterConfigMap(r.configMap.Namespace, r.configMap.Name, conf)
	if err := r.client.Apply(ctx, cm, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying ConfigMap %s failed: %w", r.configMap, err)
	}
	return nil
}
