package configs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every kustomization that runs telegraf-tkgi names its image through
// kustomize's images: entry: an overlay setting it changes every container
// (and the sink controller's image for the Deployments it renders), and
// leaves no other telegraf-tkgi image behind.
func TestImageNameSetByKustomize(t *testing.T) {
	if testing.Short() {
		t.Skip("runs kubectl kustomize")
	}
	const want = "registry.example.com/tkgi/telegraf-tkgi:v9.8.7"
	imageLine := regexp.MustCompile(`(?m)^\s*(?:- )?image: (\S+)$`)
	for _, tc := range []struct {
		dir        string
		containers int
		agentImage bool
	}{
		{dir: ".", containers: 2},
		{dir: "sinks", containers: 2, agentImage: true},
		{dir: "sinks-webhook", containers: 2, agentImage: true},
		{dir: "kubernetes/server", containers: 1},
		{dir: "kubernetes/server-jetstream", containers: 2},
		{dir: "kubernetes/server-jetstream-relay", containers: 3},
		{dir: "kubernetes/examples", containers: 1},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			base, err := filepath.Abs(tc.dir)
			require.NoError(t, err)
			overlay := t.TempDir()
			// kustomize takes no absolute paths to bases.
			rel, err := filepath.Rel(overlay, base)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(
				"resources:\n  - "+rel+"\nimages:\n  - name: telegraf-tkgi\n    newName: registry.example.com/tkgi/telegraf-tkgi\n    newTag: v9.8.7\n"), 0o644))
			for _, dir := range []string{base, overlay} {
				out, err := exec.Command("kubectl", "kustomize", dir).CombinedOutput()
				require.NoError(t, err, "kubectl kustomize %s: %s", dir, out)
				image := "telegraf-tkgi:latest"
				if dir == overlay {
					image = want
				}
				var ours int
				for _, m := range imageLine.FindAllStringSubmatch(string(out), -1) {
					if strings.Contains(m[1], "telegraf-tkgi") {
						require.Equal(t, image, m[1])
						ours++
					}
				}
				require.Equal(t, tc.containers, ours, "containers running telegraf-tkgi in %s", tc.dir)
				if tc.agentImage {
					require.Contains(t, string(out), "- name: TELEGRAF_TKGI_AGENT_IMAGE\n          value: "+image+"\n")
				}
				require.NotContains(t, string(out), "--agent-image")
			}
		})
	}
}
