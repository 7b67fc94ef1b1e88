package sinks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
)

// Both webhook variants build and their built-in objects are accepted by
// the real API server (server-side dry run: a live webhook configuration
// would refuse the other tests' sinks). The controller's own certificate
// handling is run for real by TestShippedWebhookIssuesItsCertificate;
// cert-manager's Issuer and Certificate are not known here and are only
// built.
func TestWebhookManifests(t *testing.T) {
	e := startEnv(t)
	for _, tc := range []struct {
		dir   string
		want  []string
		kinds []string
	}{
		{"sinks-webhook", []string{"--webhook-port=9443", "--webhook-cert-secret=telegraf-tkgi-sink-webhook-tls", "path: " + WebhookPath},
			[]string{"ValidatingWebhookConfiguration", "Service", "Deployment", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}},
		{"sinks-webhook/cert-manager", []string{"--webhook-port=9443", "--webhook-cert-dir=/etc/telegraf-tkgi-webhook",
			"cert-manager.io/inject-ca-from: telegraf-tkgi/telegraf-tkgi-sink-webhook", "kind: Certificate", "path: " + WebhookPath},
			[]string{"ValidatingWebhookConfiguration", "Service", "Deployment"}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			out := kubectl(t, e.cluster, "kustomize", filepath.Join(testkube.RepoRoot(), "configs", tc.dir))
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
			if tc.dir == "sinks-webhook/cert-manager" {
				require.NotContains(t, out, "--webhook-cert-secret", "cert-manager issues the certificate")
			}
			var keep []string
			for _, doc := range strings.Split(out, "\n---\n") {
				for _, kind := range tc.kinds {
					if strings.Contains(doc, "\nkind: "+kind+"\n") || strings.HasPrefix(doc, "kind: "+kind+"\n") {
						keep = append(keep, doc)
					}
				}
			}
			require.GreaterOrEqual(t, len(keep), len(tc.kinds))
			f := filepath.Join(t.TempDir(), "webhook.yaml")
			require.NoError(t, os.WriteFile(f, []byte(strings.Join(keep, "\n---\n")), 0o600))
			kubectl(t, e.cluster, "apply", "--dry-run=server", "-f", f)
		})
	}
}
