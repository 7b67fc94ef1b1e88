// Command kubeseed fills a fresh kube-apiserver (no controllers running) with
// a realistic TKGI-like cluster: nodes of many kinds and states, workloads
// with their pods in every phase and QoS class, services, storage, ingresses,
// CRDs and the kube-system add-ons. The same -seed gives the same cluster. It
// writes the ground truth of what the cluster holds as JSON (-summary) for
// tests to compare the plugin's metrics with.
//
// Usage:
//
//	kubeseed -kubeconfig admin.kubeconfig -nodes 50 -pods 500 -seed 1 -summary seed.json
//	kubeseed ... -nodes 5000 -pods 150000 -direct-etcd http://127.0.0.1:PORT
//
// With -direct-etcd, nodes, pods and the other bulk objects are written into
// etcd in the apiserver's storage encoding (seconds for 150k pods); only
// namespaces, ServiceAccounts, classes, CSI drivers and CRDs go through the
// API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

type options struct {
	kubeconfig  string
	nodes       int
	pods        int
	seed        uint64
	summary     string
	cni         string
	workers     int
	qps         float64
	burst       int
	directEtcd  string
	etcdPrefix  string
	etcdBatch   int
	etcdWorkers int
	waitTimeout time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of a cluster admin (default $KUBECONFIG)")
	flag.IntVar(&o.nodes, "nodes", 50, "number of nodes")
	flag.IntVar(&o.pods, "pods", 500, "number of pods, across all namespaces including kube-system")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed; the same seed gives the same cluster")
	flag.StringVar(&o.summary, "summary", "", "write the seed summary JSON to this file (\"-\" for stdout)")
	flag.StringVar(&o.cni, "cni", "antrea", "CNI DaemonSet in kube-system: antrea or nsx-node-agent")
	flag.IntVar(&o.workers, "workers", 32, "concurrent API requests")
	flag.Float64Var(&o.qps, "qps", 5000, "client-side request rate limit")
	flag.IntVar(&o.burst, "burst", 10000, "client-side request burst")
	flag.StringVar(&o.directEtcd, "direct-etcd", "", "etcd endpoint (http://127.0.0.1:PORT): write nodes, pods and the other bulk objects straight into etcd")
	flag.StringVar(&o.etcdPrefix, "etcd-prefix", "/registry", "the apiserver's --etcd-prefix")
	flag.IntVar(&o.etcdBatch, "etcd-batch", 100, "puts per etcd transaction")
	flag.IntVar(&o.etcdWorkers, "etcd-workers", 8, "concurrent etcd transactions")
	flag.DurationVar(&o.waitTimeout, "wait", 3*time.Minute, "how long to wait for the apiserver to list every seeded node and pod")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kubeseed: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "kubeseed: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	logger := log.New(os.Stderr, "kubeseed: ", 0)
	if o.kubeconfig == "" {
		return errors.New("-kubeconfig is required (an admin kubeconfig, e.g. .cache/kube-run/admin.kubeconfig)")
	}
	if o.workers < 1 {
		return fmt.Errorf("-workers must be at least 1, got %d", o.workers)
	}
	start := time.Now()
	p, err := newPlan(o.seed, o.nodes, o.pods, o.cni)
	if err != nil {
		return err
	}
	logger.Printf("plan: %d nodes, %d pods, %d workloads, %d services in %.2fs",
		len(p.Nodes), len(p.Pods), len(p.Workloads), len(p.Services), time.Since(start).Seconds())

	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig %s failed: %w", o.kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	cfg.UserAgent = "kubeseed"
	jsonCfg := rest.CopyConfig(cfg) // CRDs have no protobuf encoding
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating the client failed: %w", err)
	}
	ext, err := apiextensionsclient.NewForConfig(jsonCfg)
	if err != nil {
		return fmt.Errorf("creating the apiextensions client failed: %w", err)
	}
	s := &seeder{cs: cs, ext: ext, workers: o.workers, now: time.Now(), log: logger}

	pre, ksUID, version, err := s.preflight(ctx)
	if err != nil {
		return err
	}
	var ew *etcdWriter
	if o.directEtcd != "" {
		ew, err = newEtcdWriter(o.directEtcd, o.etcdPrefix, o.etcdBatch, o.etcdWorkers, o.seed, s.now)
		if err != nil {
			return err
		}
		defer ew.Close()
	}

	if err := s.applyBase(ctx, p); err != nil {
		return err
	}
	if ew != nil {
		nodes, rest, pods := ew.items(p)
		for _, step := range []struct {
			name  string
			items []item
		}{{"nodes+ipaddresses", nodes}, {"other objects", rest}, {"pods", pods}} {
			t := time.Now()
			if err := ew.write(ctx, step.items); err != nil {
				return err
			}
			logger.Printf("%-22s %7d in %6.2fs (etcd)", step.name, len(step.items), time.Since(t).Seconds())
		}
	} else {
		if err := s.createNodes(ctx, p.Nodes); err != nil {
			return err
		}
		if err := s.applyBulk(ctx, p); err != nil {
			return err
		}
		if err := s.createPods(ctx, p.Pods); err != nil {
			return err
		}
	}
	sum := p.summarize(pre, ksUID, version)
	t := time.Now()
	if err := s.waitVisible(ctx, p, sum, o.waitTimeout); err != nil {
		return err
	}
	logger.Printf("%-22s %7s in %6.2fs", "apiserver lists all", "", time.Since(t).Seconds())

	logger.Printf("done in %.1fs: %s", time.Since(start).Seconds(), sum)
	if o.summary != "" {
		if err := sum.write(o.summary); err != nil {
			return err
		}
	}
	return nil
}
