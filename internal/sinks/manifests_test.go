package sinks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
)

// The webhook variant builds, runs the controller with the webhook, and its
// built-in objects are accepted by the real API server (server-side dry
// run: a live webhook configuration would refuse the other tests' sinks).
// cert-manager's Issuer and Certificate are not known there and are only
// built.
func TestWebhookManifests(t *testing.T) {
	e := startEnv(t)
	out := kubectl(t, e.cluster, "kustomize", filepath.Join(testkube.RepoRoot(), "configs", "sinks-webhook"))
	require.Contains(t, out, "--webhook-port=9443")
	require.Contains(t, out, "cert-manager.io/inject-ca-from: telegraf-tkgi/telegraf-tkgi-sink-webhook")
	require.Contains(t, out, "path: "+WebhookPath)

	var keep []string
	for _, doc := range strings.Split(out, "\n---\n") {
		for _, kind := range []string{"ValidatingWebhookConfiguration", "Service", "Deployment"} {
			if strings.Contains(doc, "\nkind: "+kind+"\n") || strings.HasPrefix(doc, "kind: "+kind+"\n") {
				keep = append(keep, doc)
			}
		}
	}
	require.Len(t, keep, 3)
	f := filepath.Join(t.TempDir(), "webhook.yaml")
	require.NoError(t, os.WriteFile(f, []byte(strings.Join(keep, "\n---\n")), 0o600))
	kubectl(t, e.cluster, "apply", "--dry-run=server", "-f", f)
}
