package sinks

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/exepages"
)

// Options configure the sink controller.
type Options struct {
	// Kubeconfig is a kubeconfig file; empty means $KUBECONFIG, then the
	// in-cluster ServiceAccount.
	Kubeconfig string
	// Namespace holds the node DaemonSet and its ConfigMap, ConfigMapName.
	Namespace     string
	ConfigMapName string
	// AgentImage is the image of the tenants' agent Deployments.
	AgentImage string
	// MetricsAddr and ProbeAddr serve the controller's metrics and health
	// checks; "0" turns one off.
	MetricsAddr string
	ProbeAddr   string
	// LeaderElect lets several replicas run with one active.
	LeaderElect bool
	// Checker checks every rendered configuration.
	Checker Checker
	// WebhookPort serves the validating webhook over TLS on all addresses
	// (0: no webhook), with tls.crt and tls.key from WebhookCertDir.
	WebhookPort    int
	WebhookCertDir string
	// WebhookCertSecret, when set, has the controller issue and rotate the
	// webhook's certificate itself (see webhookCerts), kept in this Secret
	// of Namespace, for the Service WebhookService (and WebhookHosts, names
	// or IPs of a webhook reached by URL), with the CA injected into the
	// ValidatingWebhookConfiguration WebhookConfiguration. Unset, the
	// files in WebhookCertDir come from elsewhere (cert-manager).
	WebhookCertSecret    string
	WebhookService       string
	WebhookConfiguration string
	WebhookHosts         []string
}

// DefaultOptions are the flags' defaults, matching configs/sinks/.
// conflictRetry is when a status update that lost to a newer version of
// the sink is tried again: the sink is read afresh then, without logging an
// error for what is a normal race with the cache.
const conflictRetry = time.Second

func DefaultOptions() Options {
	return Options{
		Namespace:     "telegraf-tkgi",
		ConfigMapName: "telegraf-tkgi-cluster-sinks",
		AgentImage:    "telegraf-tkgi:latest",
		MetricsAddr:   "0",
		ProbeAddr:     ":8081",
	}
}

// NewScheme knows the built-in kinds the controller renders and both sink kinds.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// RestConfig resolves the API server and credentials the way kubectl does,
// falling back to the in-cluster ServiceAccount.
func RestConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the Kubernetes client configuration failed: %w", err)
	}
	return cfg, nil
}

// NewManager builds the controller manager with both reconcilers.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	// Only the objects the controller renders are cached, not every
	// ConfigMap and Deployment of the cluster.
	ours := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{managedByLabel: managedBy})}
	logger := logr.FromSlogHandler(slog.Default().Handler())
	// client-go's informers log through controller-runtime's root logger.
	ctrl.SetLogger(logger)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Logger: logger,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}:      ours,
			&corev1.ServiceAccount{}: ours,
			&rbacv1.Role{}:           ours,
			&rbacv1.RoleBinding{}:    ours,
			&appsv1.Deployment{}:     ours,
			&corev1.Service{}:        ours,
		}},
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		WebhookServer:           webhookServer(o),
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "telegraf-tkgi-sink-controller",
		LeaderElectionNamespace: o.Namespace,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the controller manager failed: %w", err)
	}
	tenant := &tenantReconciler{client: mgr.GetClient(), image: o.AgentImage, checker: o.Checker}
	if err := tenant.setup(mgr); err != nil {
		return nil, fmt.Errorf("setting up the MetricSink controller failed: %w", err)
	}
	cluster := &clusterReconciler{client: mgr.GetClient(),
		configMap: types.NamespacedName{Namespace: o.Namespace, Name: o.ConfigMapName}, checker: o.Checker}
	if err := cluster.setup(mgr); err != nil {
		return nil, fmt.Errorf("setting up the ClusterMetricSink controller failed: %w", err)
	}
	if o.WebhookPort != 0 {
		mgr.GetWebhookServer().Register(WebhookPath, newValidator(scheme, o.Checker))
	}
	if o.ProbeAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
			if !mgr.GetCache().WaitForCacheSync(req.Context()) {
				return fmt.Errorf("the cache has not synced")
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return mgr, nil
}

// Run runs the controller until ctx ends.
func Run(ctx context.Context, o Options) error {
	cfg, err := RestConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	mgr, err := NewManager(cfg, o)
	if err != nil {
		return err
	}
	if o.WebhookPort != 0 && o.WebhookCertSecret != "" {
		// The webhook server reads its files when it starts: issue them
		// first, then keep them current beside the manager.
		direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return err
		}
		certs := newWebhookCerts(direct, o)
		if err := certs.ensure(ctx); err != nil {
			return fmt.Errorf("setting up the webhook certificate failed: %w", err)
		}
		if err := mgr.Add(certs); err != nil {
			return err
		}
	}
	// As the agent does: the executable's start-up pages are not needed.
	if r, err := exepages.Release(); err != nil {
		slog.Debug("Releasing start-up pages failed", "error", err)
	} else if r.Mappings > 0 {
		slog.Debug("Released start-up pages of the executable", "bytes", r.Bytes)
	}
	slog.Info("Sink controller starting", "namespace", o.Namespace, "configmap", o.ConfigMapName, "agent_image", o.AgentImage)
	return mgr.Start(ctx)
}

func webhookServer(o Options) webhook.Server {
	if o.WebhookPort == 0 {
		return nil
	}
	return webhook.NewServer(webhook.Options{Port: o.WebhookPort, CertDir: o.WebhookCertDir})
}
