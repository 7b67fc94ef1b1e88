package kube_telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/influxdata/telegraf/testutil"
)

// churn creates and deletes pods, configmaps and namespaces in a loop on
// the real API server while the plugin collects. Counters move only after
// the API server answered, and one call is in flight at a time, so the
// number of live churned objects at any moment lies within one of what
// they say.
type churn struct {
	kube   kubernetes.Interface
	ns     string // holds the churned pods and configmaps
	cancel context.CancelFunc
	done   chan error

	podsCreated, podsDeleted atomic.Int64
	nsCreated, nsDeleted     atomic.Int64
}

type churnCounts struct{ podsCreated, podsDeleted, nsCreated, nsDeleted int64 }

func (c *churn) counts() churnCounts {
	return churnCounts{c.podsCreated.Load(), c.podsDeleted.Load(), c.nsCreated.Load(), c.nsDeleted.Load()}
}

// startChurn creates its namespace (with the default ServiceAccount the
// admission plugin wants for pods: no controller-manager runs here) and
// starts churning. keep objects of each kind stay alive at a time.
func startChurn(t *testing.T, kube kubernetes.Interface, name string, keep int) *churn {
	t.Helper()
	ctx := context.Background()
	c := &churn{kube: kube, ns: name, done: make(chan error, 1)}
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kube.CoreV1().ServiceAccounts(name).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.cleanup()) })

	runCtx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	go func() { c.done <- c.run(runCtx, keep) }()
	return c
}

func (c *churn) run(ctx context.Context, keep int) error {
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return nil
		}
		if err := c.step(ctx, i, keep); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// step creates the i-th pod, configmap and namespace and deletes the
// (i-keep)-th.
func (c *churn) step(ctx context.Context, i, keep int) error {
	core := c.kube.CoreV1()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("churn-%d", i)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if _, err := core.Pods(c.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating pod: %w", err)
	}
	c.podsCreated.Add(1)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("churn-%d", i)}, Data: map[string]string{"i": fmt.Sprint(i)}}
	if _, err := core.ConfigMaps(c.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating configmap: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", c.ns, i)}}
	if _, err := core.Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace: %w", err)
	}
	c.nsCreated.Add(1)
	if i < keep {
		return nil
	}
	old := fmt.Sprintf("churn-%d", i-keep)
	if err := core.Pods(c.ns).Delete(ctx, old, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		return fmt.Errorf("deleting pod: %w", err)
	}
	c.podsDeleted.Add(1)
	if err := core.ConfigMaps(c.ns).Delete(ctx, old, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("deleting configmap: %w", err)
	}
	if err := removeNamespace(ctx, c.kube, fmt.Sprintf("%s-%d", c.ns, i-keep)); err != nil {
		return err
	}
	c.nsDeleted.Add(1)
	return nil
}

// removeNamespace deletes an empty namespace for good. Without a namespace
// controller a deleted namespace stays Terminating on its "kubernetes"
// finalizer: the test finalizes it as the controller would, then deletes
// it again.
func removeNamespace(ctx context.Context, kube kubernetes.Interface, name string) error {
	nss := kube.CoreV1().Namespaces()
	if err := nss.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting namespace %s: %w", name, err)
	}
	ns, err := nss.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ns.Spec.Finalizers = nil
	if _, err := nss.Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("finalizing namespace %s: %w", name, err)
	}
	if err := nss.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting namespace %s: %w", name, err)
	}
	if _, err := nss.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %s still there after its deletion: %v", name, err)
	}
	return nil
}

// cleanup stops the churn and removes everything it created, so the other
// tests see the seed alone.
func (c *churn) cleanup() error {
	c.cancel()
	err := <-c.done
	ctx := context.Background()
	core := c.kube.CoreV1()
	errs := []error{err,
		core.Pods(c.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{}),
		core.ConfigMaps(c.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}),
		core.ServiceAccounts(c.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}),
	}
	// One more than counted: a create cancelled by the stop may have
	// reached the API server without its answer reaching the churn.
	for i := int64(0); i <= c.nsCreated.Load(); i++ {
		errs = append(errs, removeNamespace(ctx, c.kube, fmt.Sprintf("%s-%d", c.ns, i)))
	}
	errs = append(errs, removeNamespace(ctx, c.kube, c.ns))
	return errors.Join(errs...)
}

// TestIntegrationConcurrentWrites: with pods and namespaces created and
// deleted while the plugin collects, with each list strategy, every
// collection succeeds without a restart loop, and its counts are those of
// one moment of the collection: between what existed at its start less
// what was deleted during it and what existed plus what was created.
func TestIntegrationConcurrentWrites(t *testing.T) {
	c := realCluster(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.env["KUBECONFIG_ADMIN"])
	require.NoError(t, err)
	cfg.QPS, cfg.Burst = 200, 400
	admin, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)

	const keep = 5
	const wantOverlapping = 3 // collections during which the churn moved
	for _, strategy := range listStrategies {
		t.Run(strategy, func(t *testing.T) {
			ch := startChurn(t, admin, "churn-"+strategy, keep)
			// Small pages: a paginated collection spans many requests,
			// so writes land between its pages.
			k := startPlugin(t, &KubeTelemetry{Kubeconfig: c.env["KUBECONFIG_TELEGRAF"], ListStrategy: strategy, PageSize: 20,
				ResourceInclude: []string{"pods", "namespaces", "nodes"}})
			// What exists besides the churn: the seed, and the churn's own
			// namespace.
			seedPods, seedNamespaces := c.summary.Pods["total"], c.summary.Objects["namespaces"]+1

			overlapping := 0
			for gathers := 0; overlapping < wantOverlapping; gathers++ {
				require.Less(t, gathers, 50, "the churn never moved during a collection")
				before := ch.counts()
				var acc testutil.Accumulator
				require.NoError(t, k.Gather(&acc))
				after := ch.counts()
				require.Empty(t, acc.Errors)
				if after == before {
					continue
				}
				overlapping++
				t.Logf("collection %d: %d pods and %d namespaces created, %d and %d deleted during it", gathers,
					after.podsCreated-before.podsCreated, after.nsCreated-before.nsCreated,
					after.podsDeleted-before.podsDeleted, after.nsDeleted-before.nsDeleted)

				pods, ok := acc.Get("kube_telemetry_pods")
				require.True(t, ok)
				requireWithin(t, "pods", pods.Fields["total"].(int64),
					seedPods+before.podsCreated-after.podsDeleted-1, seedPods+after.podsCreated-before.podsDeleted+1)
				objects, ok := acc.Get("kube_telemetry_objects")
				require.True(t, ok)
				requireWithin(t, "namespaces", objects.Fields["namespaces"].(int64),
					seedNamespaces+before.nsCreated-after.nsDeleted-1, seedNamespaces+after.nsCreated-before.nsDeleted+1)
				for _, res := range []string{"pods", "namespaces", "nodes"} {
					m := findMetric(t, &acc, "kube_telemetry_resource", "resource", res)
					require.Equal(t, int64(0), m.Fields["errors"], res)
					require.LessOrEqual(t, m.Fields["restarts"].(int64), int64(1), "%s restarted more than once", res)
				}
				nodes, ok := acc.Get("kube_telemetry_nodes")
				require.True(t, ok)
				require.Equal(t, int64(len(c.summary.Nodes)), nodes.Fields["total"], "nodes were not churned")
			}
		})
	}
}

func requireWithin(t *testing.T, what string, got, lower, upper int64) {
	t.Helper()
	require.Truef(t, got >= lower && got <= upper, "%s: counted %d, outside [%d, %d], what existed during the collection",
		what, got, lower, upper)
}
