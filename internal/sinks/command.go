package sinks

import (
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Command is `telegraf-tkgi sink-controller`.
func Command() *cli.Command {
	d := DefaultOptions()
	return &cli.Command{
		Name:  "sink-controller",
		Usage: "run the controller that renders ClusterMetricSink and MetricSink resources (pksapi.io/v1beta1)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kubeconfig", Usage: "kubeconfig file; default $KUBECONFIG, then the in-cluster ServiceAccount"},
			&cli.StringFlag{Name: "namespace", Value: d.Namespace, Usage: "namespace of the node DaemonSet's ConfigMap (and of the leader election lease)"},
			&cli.StringFlag{Name: "cluster-configmap", Value: d.ConfigMapName, Usage: "name of the ConfigMap rendered from all ClusterMetricSinks"},
			&cli.StringFlag{Name: "agent-image", Value: d.AgentImage, EnvVars: []string{"TELEGRAF_TKGI_AGENT_IMAGE"}, Usage: "image of the agent Deployment each MetricSink renders"},
			&cli.StringFlag{Name: "metrics-bind-address", Value: d.MetricsAddr, Usage: "address of the controller's Prometheus metrics; 0 turns them off"},
			&cli.StringFlag{Name: "health-probe-bind-address", Value: d.ProbeAddr, Usage: "address of /healthz and /readyz; 0 turns them off"},
			&cli.BoolFlag{Name: "leader-elect", Usage: "elect one active replica through a Lease"},
			&cli.IntFlag{Name: "webhook-port", Usage: "serve the validating webhook over TLS on this port; 0 serves none"},
			&cli.StringFlag{Name: "webhook-cert-dir", Value: "/tmp/k8s-webhook-server/serving-certs", Usage: "directory holding the webhook's tls.crt and tls.key"},
			&cli.StringFlag{Name: "webhook-cert-secret", Usage: "issue and rotate the webhook's certificate, kept in this Secret of --namespace, and write it to --webhook-cert-dir; unset, the files come from elsewhere (cert-manager)"},
			&cli.StringFlag{Name: "webhook-service", Value: "telegraf-tkgi-sink-webhook", Usage: "the webhook's Service in --namespace, whose DNS names the certificate carries"},
			&cli.StringFlag{Name: "webhook-configuration", Value: "telegraf-tkgi-sinks", Usage: "the ValidatingWebhookConfiguration whose caBundle gets the certificate's CA"},
			&cli.StringSliceFlag{Name: "webhook-host", Usage: "another DNS name or IP address for the certificate, for a webhook reached by URL (repeatable)"},
		},
		Action: func(cCtx *cli.Context) error {
			// SIGTERM (the kubelet stopping the pod) ends the manager cleanly,
			// releasing the leader lease.
			ctx, stop := signal.NotifyContext(cCtx.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return Run(ctx, Options{
				Kubeconfig:     cCtx.String("kubeconfig"),
				Namespace:      cCtx.String("namespace"),
				ConfigMapName:  cCtx.String("cluster-configmap"),
				AgentImage:     cCtx.String("agent-image"),
				MetricsAddr:    cCtx.String("metrics-bind-address"),
				ProbeAddr:      cCtx.String("health-probe-bind-address"),
				LeaderElect:    cCtx.Bool("leader-elect"),
				WebhookPort:    cCtx.Int("webhook-port"),
				WebhookCertDir: cCtx.String("webhook-cert-dir"),

				WebhookCertSecret:    cCtx.String("webhook-cert-secret"),
				WebhookService:       cCtx.String("webhook-service"),
				WebhookConfiguration: cCtx.String("webhook-configuration"),
				WebhookHosts:         cCtx.StringSlice("webhook-host"),
			})
		},
	}
}
