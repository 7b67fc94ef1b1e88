// Command rawlist is the baseline of scripts/bench-kube-telemetry.sh: it
// reads the same resources inputs.kube_telemetry lists, with client-go and
// nothing else (no Telegraf, no folding), dropping each response, and prints
// what it fetched and how long it took.
//
//	rawlist -kubeconfig F [-mode paginated] [-page-size 500] [-concurrency 1] [-metadata]
//
// Modes, each a way the API server offers to read every object of a kind:
//
//	paginated    limit=page-size, resourceVersion unset, continue tokens
//	unpaginated  no limit, resourceVersion unset (a consistent read)
//	rv0          limit=page-size with resourceVersion=0 (the watch cache,
//	             which answers in one response, ignoring the limit)
//	watchlist    a watch with sendInitialEvents=true and
//	             resourceVersionMatch=NotOlderThan, read until the bookmark
//	             that ends the initial events
//
// client-go holds a whole response in memory (unpaginated and rv0 hold the
// whole list): the client's memory is not the point of those modes, the API
// server's cost is.
//
// Without -metadata every resource is read as typed protobuf; with it the
// resources the plugin only counts are read metadata-only, as the plugin
// does, so the requests are the plugin's own.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

type res struct {
	gvr     schema.GroupVersionResource
	newList func() runtime.Object // nil: metadata-only in any mode
	counted bool                  // the plugin lists it metadata-only
}

func gvr(g, v, r string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: g, Version: v, Resource: r}
}

// The plugin's resources, in its order.
var resources = []res{
	{gvr("", "v1", "pods"), func() runtime.Object { return &corev1.PodList{} }, false},
	{gvr("apps", "v1", "replicasets"), func() runtime.Object { return &appsv1.ReplicaSetList{} }, true},
	{gvr("", "v1", "nodes"), func() runtime.Object { return &corev1.NodeList{} }, false},
	{gvr("", "v1", "services"), func() runtime.Object { return &corev1.ServiceList{} }, false},
	{gvr("apps", "v1", "deployments"), func() runtime.Object { return &appsv1.DeploymentList{} }, false},
	{gvr("", "v1", "persistentvolumeclaims"), func() runtime.Object { return &corev1.PersistentVolumeClaimList{} }, false},
	{gvr("", "v1", "persistentvolumes"), func() runtime.Object { return &corev1.PersistentVolumeList{} }, false},
	{gvr("batch", "v1", "jobs"), func() runtime.Object { return &batchv1.JobList{} }, true},
	{gvr("batch", "v1", "cronjobs"), func() runtime.Object { return &batchv1.CronJobList{} }, true},
	{gvr("apps", "v1", "statefulsets"), func() runtime.Object { return &appsv1.StatefulSetList{} }, true},
	{gvr("apps", "v1", "daemonsets"), func() runtime.Object { return &appsv1.DaemonSetList{} }, false},
	{gvr("networking.k8s.io", "v1", "ingresses"), func() runtime.Object { return &networkingv1.IngressList{} }, true},
	{gvr("", "v1", "namespaces"), func() runtime.Object { return &corev1.NamespaceList{} }, true},
	{gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions"), nil, true},
	{gvr("networking.k8s.io", "v1", "ingressclasses"), func() runtime.Object { return &networkingv1.IngressClassList{} }, true},
	{gvr("storage.k8s.io", "v1", "storageclasses"), func() runtime.Object { return &storagev1.StorageClassList{} }, false},
	{gvr("storage.k8s.io", "v1", "csidrivers"), func() runtime.Object { return &storagev1.CSIDriverList{} }, true},
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of a user that may list the resources")
	pageSize := flag.Int64("page-size", 500, "items per page")
	concurrency := flag.Int("concurrency", 1, "lists in flight at once")
	useMetadata := flag.Bool("metadata", false, "list the resources the plugin only counts metadata-only")
	mode := flag.String("mode", "paginated", "paginated, unpaginated, rv0 or watchlist")
	flag.Parse()
	if err := run(*kubeconfig, *mode, *pageSize, *concurrency, *useMetadata); err != nil {
		fmt.Fprintf(os.Stderr, "rawlist: %v\n", err)
		os.Exit(1)
	}
}

func run(kubeconfig, mode string, pageSize int64, concurrency int, useMetadata bool) error {
	base := metav1.ListOptions{}
	switch mode {
	case "paginated":
		base.Limit = pageSize
	case "unpaginated":
	case "rv0":
		base.Limit, base.ResourceVersion = pageSize, "0"
	case "watchlist":
		base.Watch = true
		base.SendInitialEvents = ptr(true)
		base.ResourceVersionMatch = metav1.ResourceVersionMatchNotOlderThan
		base.AllowWatchBookmarks = true
	default:
		return fmt.Errorf("unknown -mode %q", mode)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100 // as the plugin
	// The generated typed clients pick protobuf per request; a bare REST
	// client needs it said.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return err
	}
	md, err := metadata.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return err
	}
	restFor := func(gv schema.GroupVersion) rest.Interface {
		switch gv.Group {
		case "":
			return kube.CoreV1().RESTClient()
		case "apps":
			return kube.AppsV1().RESTClient()
		case "batch":
			return kube.BatchV1().RESTClient()
		case "networking.k8s.io":
			return kube.NetworkingV1().RESTClient()
		case "storage.k8s.io":
			return kube.StorageV1().RESTClient()
		}
		return nil
	}

	ctx := context.Background()
	start := time.Now()
	var items, pages atomic.Int64
	sem := make(chan struct{}, concurrency)
	errs := make(chan error, len(resources))
	var wg sync.WaitGroup
	for _, r := range resources {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			metadataOnly := r.newList == nil || (useMetadata && r.counted)
			if mode == "watchlist" {
				var w watch.Interface
				var err error
				if metadataOnly {
					w, err = md.Resource(r.gvr).Watch(ctx, base)
				} else {
					w, err = restFor(r.gvr.GroupVersion()).Get().Resource(r.gvr.Resource).
						VersionedParams(&base, scheme.ParameterCodec).Watch(ctx)
				}
				if err == nil {
					var n int64
					n, err = initialEvents(w)
					items.Add(n)
					pages.Add(1)
				}
				if err != nil {
					errs <- fmt.Errorf("watch-listing %s: %w", r.gvr.Resource, err)
				}
				return
			}
			opts := base
			for {
				var next string
				var n int
				if metadataOnly {
					l, err := md.Resource(r.gvr).List(ctx, opts)
					if err != nil {
						errs <- fmt.Errorf("listing %s: %w", r.gvr.Resource, err)
						return
					}
					next, n = l.Continue, len(l.Items)
				} else {
					obj := r.newList()
					err := restFor(r.gvr.GroupVersion()).Get().Resource(r.gvr.Resource).
						VersionedParams(&opts, scheme.ParameterCodec).Do(ctx).Into(obj)
					if err != nil {
						errs <- fmt.Errorf("listing %s: %w", r.gvr.Resource, err)
						return
					}
					lm, _ := meta.ListAccessor(obj)
					next, n = lm.GetContinue(), meta.LenList(obj)
				}
				items.Add(int64(n))
				pages.Add(1)
				if next == "" {
					return
				}
				opts.Continue = next
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"mode": mode, "items": items.Load(), "pages": pages.Load(), "seconds": time.Since(start).Seconds(),
	})
}

// initialEvents counts the objects of a watch-list's initial events, up to
// the bookmark the API server sends at their end, and stops the watch.
func initialEvents(w watch.Interface) (int64, error) {
	defer w.Stop()
	var n int64
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added:
			n++
		case watch.Bookmark:
			m, err := meta.Accessor(ev.Object)
			if err != nil {
				return n, err
			}
			if m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
				return n, nil
			}
		case watch.Error:
			return n, apierrors.FromObject(ev.Object)
		}
	}
	return n, errors.New("the watch ended before its initial events did")
}

func ptr[T any](v T) *T { return &v }
