package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// seeder sends the plan to the apiserver.
type seeder struct {
	cs      kubernetes.Interface
	ext     apiextensionsclient.Interface
	workers int
	now     time.Time
	log     *log.Logger
}

// forEach runs fn over items with a fixed number of workers and stops at the
// first error.
func forEach[T any](ctx context.Context, workers int, items []T, fn func(context.Context, T) error) error {
	g, ctx := errgroup.WithContext(ctx)
	ch := make(chan T)
	g.Go(func() error {
		defer close(ch)
		for _, it := range items {
			select {
			case ch <- it:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for i := 0; i < workers; i++ {
		g.Go(func() error {
			for it := range ch {
				if err := fn(ctx, it); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// transient tells errors worth retrying: apiserver overload and dropped
// connections, not validation or conflicts (those are bugs in the seeder).
func transient(err error) bool {
	if apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "http2: client connection lost")
}

func retry(ctx context.Context, what string, fn func() error) error {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if attempt >= 8 || !transient(err) {
			return fmt.Errorf("%s failed: %w", what, err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%s failed: %w", what, ctx.Err())
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// stage runs one step over all its items and logs its duration.
func stage[T any](ctx context.Context, s *seeder, name string, items []T, fn func(context.Context, T) error) error {
	if len(items) == 0 {
		return nil
	}
	start := time.Now()
	if err := forEach(ctx, s.workers, items, fn); err != nil {
		return err
	}
	s.log.Printf("%-22s %7d in %6.2fs", name, len(items), time.Since(start).Seconds())
	return nil
}

// preflight refuses a cluster that already holds seeded objects (the summary
// would be wrong) and records what the apiserver made by itself.
func (s *seeder) preflight(ctx context.Context) (existing, string, string, error) {
	var pre existing
	ver, err := s.cs.Discovery().ServerVersion()
	if err != nil {
		return pre, "", "", fmt.Errorf("asking the apiserver for its version failed: %w", err)
	}
	if minor, err := strconv.Atoi(strings.TrimRight(ver.Minor, "+")); err == nil && ver.Major == "1" && minor < 31 {
		interimJobConditions = false
	}
	ks, err := s.cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return pre, "", "", fmt.Errorf("getting namespace kube-system failed: %w", err)
	}
	nodes, err := s.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return pre, "", "", fmt.Errorf("listing nodes failed: %w", err)
	}
	pods, err := s.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return pre, "", "", fmt.Errorf("listing pods failed: %w", err)
	}
	if len(nodes.Items) > 0 || len(pods.Items) > 0 {
		return pre, "", "", errors.New("the cluster already has nodes or pods: kubeseed seeds a fresh cluster only " +
			"(restart it with scripts/kube-apiserver-down.sh and scripts/kube-apiserver-up.sh)")
	}
	nss, err := s.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return pre, "", "", fmt.Errorf("listing namespaces failed: %w", err)
	}
	pre.Namespaces = len(nss.Items)
	svcs, err := s.cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return pre, "", "", fmt.Errorf("listing services failed: %w", err)
	}
	for _, svc := range svcs.Items {
		pre.Services = append(pre.Services, servicePlan{Namespace: svc.Namespace, Name: svc.Name,
			Type: string(svc.Spec.Type), Headless: svc.Spec.ClusterIP == corev1.ClusterIPNone})
	}
	return pre, string(ks.UID), ver.GitVersion, nil
}

// applyBase creates the namespaces, their default ServiceAccounts and the
// few cluster-scoped objects (storage and ingress classes, CSI drivers,
// CRDs); always through the API, CRDs need the apiserver to establish them.
func (s *seeder) applyBase(ctx context.Context, p *plan) error {
	cs := s.cs
	namespaces := append([]string{}, p.Namespaces...)
	if err := stage(ctx, s, "namespaces", namespaces, func(ctx context.Context, ns string) error {
		return retry(ctx, "creating namespace "+ns, func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, buildNamespace(ns), metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	// No controller-manager runs, so nothing creates the default
	// ServiceAccounts the ServiceAccount admission plugin insists on.
	if err := stage(ctx, s, "serviceaccounts", append([]string{"kube-system", "default"}, namespaces...), func(ctx context.Context, ns string) error {
		return retry(ctx, "creating serviceaccount "+ns+"/default", func() error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, buildServiceAccount(ns), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		})
	}); err != nil {
		return err
	}

	if err := stage(ctx, s, "storageclasses", p.StorageClasses, func(ctx context.Context, sc *storageClassPlan) error {
		return retry(ctx, "creating storageclass "+sc.Name, func() error {
			_, err := cs.StorageV1().StorageClasses().Create(ctx, buildStorageClass(sc), metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	if err := stage(ctx, s, "csidrivers", p.CSIDrivers, func(ctx context.Context, name string) error {
		return retry(ctx, "creating csidriver "+name, func() error {
			_, err := cs.StorageV1().CSIDrivers().Create(ctx, buildCSIDriver(name), metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	if err := stage(ctx, s, "ingressclasses", p.IngressClasses, func(ctx context.Context, ic *ingressClassPlan) error {
		return retry(ctx, "creating ingressclass "+ic.Name, func() error {
			_, err := cs.NetworkingV1().IngressClasses().Create(ctx, buildIngressClass(ic), metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	if err := stage(ctx, s, "customresourcedefs", p.CRDs, func(ctx context.Context, c crdPlan) error {
		return retry(ctx, "creating customresourcedefinition "+c.Plural+"."+c.Group, func() error {
			_, err := s.ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, buildCRD(c), metav1.CreateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	return nil
}

// applyBulk creates everything else but nodes and pods, in dependency order:
// owners before what they own, since owner references need the server's UIDs.
func (s *seeder) applyBulk(ctx context.Context, p *plan) error {
	cs := s.cs
	if err := stage(ctx, s, "persistentvolumes", p.PVs, func(ctx context.Context, pv *pvPlan) error {
		return retry(ctx, "creating persistentvolume "+pv.Name, func() error {
			created, err := cs.CoreV1().PersistentVolumes().Create(ctx, buildPV(pv), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			created.Status.Phase = corev1.PersistentVolumePhase(pv.Phase)
			_, err = cs.CoreV1().PersistentVolumes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
			return err
		})
	}); err != nil {
		return err
	}

	var top, children, cronJobs []*workload
	for _, w := range p.Workloads {
		switch {
		case w.Kind == kindBarePod:
		case w.Parent == nil:
			top = append(top, w)
		default:
			children = append(children, w)
		}
		if w.Kind == kindCronJob {
			cronJobs = append(cronJobs, w)
		}
	}
	jobsOf := p.jobsOf()
	if err := stage(ctx, s, "workloads", top, s.createWorkload); err != nil {
		return err
	}
	if err := stage(ctx, s, "replicasets+cron jobs", children, s.createWorkload); err != nil {
		return err
	}
	if err := stage(ctx, s, "cronjob status", cronJobs, func(ctx context.Context, w *workload) error {
		return retry(ctx, "writing status of cronjob "+w.Namespace+"/"+w.Name, func() error {
			cj, err := cs.BatchV1().CronJobs(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cronJobStatus(w, jobsOf[w], cj, s.now)
			_, err = cs.BatchV1().CronJobs(w.Namespace).UpdateStatus(ctx, cj, metav1.UpdateOptions{})
			return err
		})
	}); err != nil {
		return err
	}

	if err := stage(ctx, s, "services", p.Services, func(ctx context.Context, sp *servicePlan) error {
		return retry(ctx, "creating service "+sp.Namespace+"/"+sp.Name, func() error {
			created, err := cs.CoreV1().Services(sp.Namespace).Create(ctx, buildService(sp), metav1.CreateOptions{})
			if err != nil || sp.LBIP == "" {
				return err
			}
			created.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: sp.LBIP, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}
			_, err = cs.CoreV1().Services(sp.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	if err := stage(ctx, s, "persistentvolumeclaims", p.PVCs, func(ctx context.Context, c *pvcPlan) error {
		return retry(ctx, "creating persistentvolumeclaim "+c.Namespace+"/"+c.Name, func() error {
			created, err := cs.CoreV1().PersistentVolumeClaims(c.Namespace).Create(ctx, buildPVC(c), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			pvcStatus(c, created)
			_, err = cs.CoreV1().PersistentVolumeClaims(c.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
			return err
		})
	}); err != nil {
		return err
	}
	return stage(ctx, s, "ingresses", p.Ingresses, func(ctx context.Context, in *ingressPlan) error {
		return retry(ctx, "creating ingress "+in.Namespace+"/"+in.Name, func() error {
			_, err := cs.NetworkingV1().Ingresses(in.Namespace).Create(ctx, buildIngress(in), metav1.CreateOptions{})
			return err
		})
	})
}

// createWorkload creates one pod owner and writes its status.
func (s *seeder) createWorkload(ctx context.Context, w *workload) error {
	apps, batch := s.cs.AppsV1(), s.cs.BatchV1()
	what := fmt.Sprintf("creating %s %s/%s", strings.ToLower(string(w.Kind)), w.Namespace, w.Name)
	return retry(ctx, what, func() error {
		switch w.Kind {
		case kindDeployment:
			d, err := apps.Deployments(w.Namespace).Create(ctx, buildDeployment(w), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			w.UID = string(d.UID)
			deploymentStatus(w, d, s.now)
			_, err = apps.Deployments(w.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
			return err
		case kindReplicaSet:
			rs, err := apps.ReplicaSets(w.Namespace).Create(ctx, buildReplicaSet(w), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			w.UID = string(rs.UID)
			replicaSetStatus(w, rs)
			_, err = apps.ReplicaSets(w.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
			return err
		case kindStatefulSet:
			class, bytes := "vsphere-csi-default", int64(gib)
			for _, c := range s.claimsOf(w) {
				class, bytes = c.Class.Name, c.Bytes
			}
			st, err := apps.StatefulSets(w.Namespace).Create(ctx, buildStatefulSet(w, class, bytes), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			w.UID = string(st.UID)
			statefulSetStatus(w, st)
			_, err = apps.StatefulSets(w.Namespace).UpdateStatus(ctx, st, metav1.UpdateOptions{})
			return err
		case kindDaemonSet:
			ds, err := apps.DaemonSets(w.Namespace).Create(ctx, buildDaemonSet(w), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			w.UID = string(ds.UID)
			daemonSetStatus(w, ds)
			_, err = apps.DaemonSets(w.Namespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{})
			return err
		case kindJob:
			j, err := batch.Jobs(w.Namespace).Create(ctx, buildJob(w), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			w.UID = string(j.UID)
			jobStatus(w, j, s.now)
			_, err = batch.Jobs(w.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{})
			return err
		case kindCronJob:
			cj, err := batch.CronJobs(w.Namespace).Create(ctx, buildCronJob(w), metav1.CreateOptions{})
			if err != nil {
				return err
			}
			w.UID = string(cj.UID)
			return nil
		}
		return fmt.Errorf("unknown workload kind %q", w.Kind)
	})
}

// claimsOf finds a StatefulSet's claims by their volumeClaimTemplate names.
func (s *seeder) claimsOf(w *workload) []*pvcPlan { return w.claims }

func (s *seeder) createNodes(ctx context.Context, nodes []*nodePlan) error {
	return stage(ctx, s, "nodes", nodes, func(ctx context.Context, n *nodePlan) error {
		return retry(ctx, "creating node "+n.Name, func() error {
			// Nodes, unlike most kinds, keep the status given on create.
			_, err := s.cs.CoreV1().Nodes().Create(ctx, buildNode(n, s.now), metav1.CreateOptions{})
			return err
		})
	})
}

func (s *seeder) createPods(ctx context.Context, pods []*podPlan) error {
	return stage(ctx, s, "pods", pods, func(ctx context.Context, pod *podPlan) error {
		what := "creating pod " + pod.Owner.Namespace + "/" + pod.Name
		want := buildPod(pod, s.now)
		status := want.Status
		want.Status = corev1.PodStatus{}
		var created *corev1.Pod
		attempt := 0
		if err := retry(ctx, what, func() error {
			var err error
			attempt++
			created, err = s.cs.CoreV1().Pods(pod.Owner.Namespace).Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) && attempt > 1 { // an earlier attempt went through after all
				created, err = s.cs.CoreV1().Pods(pod.Owner.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			}
			return err
		}); err != nil {
			return err
		}
		// The apiserver derives the QoS class from the resources; the plan
		// (and so the summary) must agree with it.
		if created.Status.QOSClass != status.QOSClass {
			return fmt.Errorf("pod %s/%s: apiserver computed QoS class %s, the plan says %s",
				created.Namespace, created.Name, created.Status.QOSClass, status.QOSClass)
		}
		created.Status = status
		return retry(ctx, "writing status of pod "+pod.Owner.Namespace+"/"+pod.Name, func() error {
			_, err := s.cs.CoreV1().Pods(pod.Owner.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
			return err
		})
	})
}

// count returns how many objects a list would return, from one item and the
// server's remainingItemCount.
func count1(ctx context.Context, list func(context.Context, metav1.ListOptions) (int, *int64, error)) (int, error) {
	n, remaining, err := list(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, err
	}
	if remaining != nil {
		n += int(*remaining)
	}
	return n, nil
}

// visible is one count the apiserver must reach after seeding.
type visible struct {
	what string
	want int
	list func(context.Context, metav1.ListOptions) (int, *int64, error)
}

func listCount[L any](list func(context.Context, metav1.ListOptions) (L, error), items func(L) int, meta func(L) *int64) func(context.Context, metav1.ListOptions) (int, *int64, error) {
	return func(ctx context.Context, o metav1.ListOptions) (int, *int64, error) {
		l, err := list(ctx, o)
		if err != nil {
			return 0, nil, err
		}
		return items(l), meta(l), nil
	}
}

// waitVisible waits until the apiserver lists the seeded numbers of nodes,
// pods, services, PVs and PVCs (the direct etcd path reaches it through its
// watch, and a missing object means a name collision or a lost write).
func (s *seeder) waitVisible(ctx context.Context, p *plan, sum *summary, timeout time.Duration) error {
	core := s.cs.CoreV1()
	checks := []visible{
		{"nodes", len(p.Nodes), listCount(core.Nodes().List,
			func(l *corev1.NodeList) int { return len(l.Items) }, func(l *corev1.NodeList) *int64 { return l.RemainingItemCount })},
		{"pods", len(p.Pods), listCount(core.Pods("").List,
			func(l *corev1.PodList) int { return len(l.Items) }, func(l *corev1.PodList) *int64 { return l.RemainingItemCount })},
		{"services", sum.Objects.Services, listCount(core.Services("").List,
			func(l *corev1.ServiceList) int { return len(l.Items) }, func(l *corev1.ServiceList) *int64 { return l.RemainingItemCount })},
		{"persistentvolumes", len(p.PVs), listCount(core.PersistentVolumes().List,
			func(l *corev1.PersistentVolumeList) int { return len(l.Items) }, func(l *corev1.PersistentVolumeList) *int64 { return l.RemainingItemCount })},
		{"persistentvolumeclaims", len(p.PVCs), listCount(core.PersistentVolumeClaims("").List,
			func(l *corev1.PersistentVolumeClaimList) int { return len(l.Items) }, func(l *corev1.PersistentVolumeClaimList) *int64 { return l.RemainingItemCount })},
	}
	deadline := time.Now().Add(timeout)
	for _, c := range checks {
		for {
			got, err := count1(ctx, c.list)
			if err != nil {
				return fmt.Errorf("counting %s failed: %w", c.what, err)
			}
			if got == c.want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the apiserver lists %d %s after %s, want %d", got, c.what, timeout, c.want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}
