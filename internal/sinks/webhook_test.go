package sinks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// webhookLabel selects the sinks this test's webhook configuration sends
// to the controller, so the other tests can still create invalid sinks and
// watch their status.
const webhookLabel = "test.telegraf-tkgi.io/webhook"

// The API server calls the controller's webhook over loopback TLS, and
// `kubectl apply` of a bad sink fails with the plugin's own message.
func TestWebhookRefusesBadSinksAtApply(t *testing.T) {
	e := startEnv(t)
	name := e.registerWebhook(t)
	ns := e.namespace(t, "sinks-webhook")
	apply := func(manifest string) (string, error) {
		f := filepath.Join(t.TempDir(), "sink.yaml")
		require.NoError(t, os.WriteFile(f, []byte(manifest), 0o600))
		return e.cluster.Kubectl(e.cluster.AdminKubeconfig, "-n", ns, "apply", "-f", f)
	}
	labelled := func(manifest string) string {
		return strings.Replace(manifest, "metadata:\n", fmt.Sprintf("metadata:\n  labels:\n    %s: %s\n", webhookLabel, name), 1)
	}

	// A good sink passes once the webhook serves (its configuration is
	// read by the API server asynchronously).
	eventually(t, "a valid sink admitted", func() (bool, string) {
		out, err := apply(labelled(tenantSink("good", "prometheus_client", ":9273")))
		return err == nil, out
	})

	tests := []struct {
		name     string
		manifest string
		want     string
	}{
		{"an unknown option, in the plugin's words", strings.Replace(tenantSink("bad", "prometheus_client", ":9273"), "listen:", "lisen:", 1), `"lisen"`},
		{"a kubelet input in a MetricSink", strings.Replace(tenantSink("kubelet", "discard", ":1"), "type: prometheus\n", "type: kubernetes\n", 1), `input "kubernetes" is not allowed in a MetricSink`},
		{"a ClusterMetricSink that does not load", fmt.Sprintf(`apiVersion: pksapi.io/v1beta1
kind: ClusterMetricSink
metadata:
  name: %s-bad
spec:
  outputs:
  - type: file
    filez: [stdout]
`, name), `"filez"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := apply(labelled(tt.manifest))
			require.Error(t, err, out)
			require.Contains(t, out, "denied the request")
			require.Contains(t, out, tt.want)
		})
	}
}

// registerWebhook has the API server send the sinks labelled
// webhookLabel=NAME to the controller's webhook; it returns NAME.
func (e *env) registerWebhook(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := "sinks-test-" + suffix()
	url := fmt.Sprintf("https://127.0.0.1:%d%s", e.webhookPort, WebhookPath)
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "sinks.pksapi.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: e.webhookCA},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}, Rule: admissionregistrationv1.Rule{APIGroups: []string{"pksapi.io"}, APIVersions: []string{"v1beta1"}, Resources: []string{"metricsinks", "clustermetricsinks"}}}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{webhookLabel: name}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	_, err := e.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = e.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}
