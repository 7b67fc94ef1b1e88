package sinks

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testmonitor"
)

// configs/sinks-webhook/ applied as shipped; the built binary runs the
// controller's container as a pod would: its args and env from the applied
// Deployment, its ServiceAccount token and CA where the kubelet projects
// them (a private mount namespace), KUBERNETES_SERVICE_HOST/PORT naming the
// API server, its emptyDir volume. It issues the webhook's certificate into
// the Secret, injects the CA into the shipped ValidatingWebhookConfiguration,
// and the API server, trusting only that caBundle, calls it over loopback
// TLS: a bad sink is refused at `kubectl apply` with the plugin's message,
// a good one accepted. A second start keeps the certificate.
//
// Two changes to what is shipped, because the API server runs on loopback
// here without a pod network: the webhook's clientConfig is a url
// (https://127.0.0.1:PORT) rather than the Service, so the controller gets
// --webhook-host=127.0.0.1 for its certificate; and its fixed ports (9443,
// 8081) are replaced by free ones, as other tests share the machine.
func TestShippedWebhookIssuesItsCertificate(t *testing.T) {
	binary := testbin.Path(t)
	e := startEnv(t)
	ctx := context.Background()
	const (
		secretName = "telegraf-tkgi-sink-webhook-tls"
		vwcName    = "telegraf-tkgi-sinks"
	)
	// A live webhook with failurePolicy Fail refuses every sink once its
	// controller is gone: it must not outlive the test.
	t.Cleanup(func() {
		_, _ = e.cluster.Kubectl(e.cluster.AdminKubeconfig, "delete", "validatingwebhookconfiguration", vwcName, "--ignore-not-found")
		_, _ = e.cluster.Kubectl(e.cluster.AdminKubeconfig, "-n", controllerNamespace, "delete", "secret", secretName, "--ignore-not-found")
	})
	kubectl(t, e.cluster, "-n", controllerNamespace, "delete", "secret", secretName, "--ignore-not-found")
	kubectl(t, e.cluster, "apply", "-k", filepath.Join(testkube.RepoRoot(), "configs", "sinks-webhook"))

	port := testmonitor.FreePort(t)
	hook := fmt.Sprintf("https://127.0.0.1:%d%s", port, WebhookPath)
	kubectl(t, e.cluster, "patch", "validatingwebhookconfiguration", vwcName, "--type=json",
		"-p", fmt.Sprintf(`[{"op":"replace","path":"/webhooks/0/clientConfig","value":{"url":%q}}]`, hook))

	var d appsv1.Deployment
	require.NoError(t, json.Unmarshal([]byte(kubectl(t, e.cluster, "-n", controllerNamespace, "get",
		"deployment/telegraf-tkgi-sink-controller", "-o", "json")), &d))
	newPod := func() *controllerPodSpec {
		pod := controllerPod(t, e, d, map[string]string{
			"--webhook-port=9443":               fmt.Sprintf("--webhook-port=%d", port),
			"--health-probe-bind-address=:8081": fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", testmonitor.FreePort(t)),
		})
		pod.args = append(pod.args, "--webhook-host=127.0.0.1")
		return pod
	}
	pod := newPod()

	ns := e.namespace(t, "sinks-certs")
	apply := func(manifest string) (string, error) {
		f := filepath.Join(t.TempDir(), "sink.yaml")
		require.NoError(t, os.WriteFile(f, []byte(manifest), 0o600))
		return e.cluster.Kubectl(e.cluster.AdminKubeconfig, "-n", ns, "apply", "-f", f)
	}

	stop := pod.start(t, binary)
	eventually(t, "a valid sink admitted through the shipped webhook", func() (bool, string) {
		out, err := apply(tenantSink("good", "prometheus_client", ":9273"))
		return err == nil, out
	})
	out, err := apply(strings.Replace(tenantSink("bad", "prometheus_client", ":9273"), "listen:", "lisen:", 1))
	require.Error(t, err, out)
	require.Contains(t, out, `admission webhook "sinks.pksapi.io" denied the request`)
	require.Contains(t, out, `"lisen"`)

	// What made the API server trust it: the Secret's CA, in the caBundle.
	var secret corev1.Secret
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: controllerNamespace, Name: secretName}, &secret))
	require.Equal(t, corev1.SecretTypeTLS, secret.Type)
	vwc, err := e.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, vwcName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, string(secret.Data["ca.crt"]), string(vwc.Webhooks[0].ClientConfig.CABundle))
	block, _ := pem.Decode(secret.Data["tls.crt"])
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	require.Contains(t, cert.DNSNames, "telegraf-tkgi-sink-webhook.telegraf-tkgi.svc")
	served, err := os.ReadFile(filepath.Join(pod.volume(t, "webhook-certs"), "serving-certs", "tls.crt"))
	require.NoError(t, err)
	require.Equal(t, string(secret.Data["tls.crt"]), string(served), "the pod serves the Secret's certificate")

	// A restart (or a second replica) keeps the Secret's certificate.
	stop()
	newPod().start(t, binary)
	eventually(t, "a sink admitted after the restart", func() (bool, string) {
		out, err := apply(strings.Replace(tenantSink("good", "prometheus_client", ":9273"), ":9273", ":9274", 1))
		return err == nil, out
	})
	var again corev1.Secret
	require.NoError(t, e.admin.Get(ctx, client.ObjectKey{Namespace: controllerNamespace, Name: secretName}, &again))
	require.Equal(t, string(secret.Data["tls.crt"]), string(again.Data["tls.crt"]), "the certificate is reused, not reissued")
}

// controllerPodSpec is how the test runs the controller's container.
type controllerPodSpec struct {
	args    []string
	env     []string
	saDir   string
	volumes map[string]string // volume name -> host dir
	mounts  map[string]string // volume name -> mount path
	logPath string
}

// controllerPod is the applied Deployment's container as the kubelet would
// run it: $(VAR) in args expanded from its env, each arg in replace swapped,
// a fresh ServiceAccount token.
func controllerPod(t *testing.T, e *env, d appsv1.Deployment, replace map[string]string) *controllerPodSpec {
	t.Helper()
	spec := d.Spec.Template.Spec
	require.Len(t, spec.Containers, 1)
	ctr := spec.Containers[0]
	dir := t.TempDir()
	p := &controllerPodSpec{saDir: filepath.Join(dir, "serviceaccount"), volumes: map[string]string{},
		mounts: map[string]string{}, logPath: filepath.Join(dir, "controller.log")}

	api, err := url.Parse(e.cluster.APIURL)
	require.NoError(t, err)
	vars := map[string]string{}
	for _, v := range ctr.Env {
		if v.ValueFrom == nil {
			vars[v.Name] = v.Value
			continue
		}
		require.NotNil(t, v.ValueFrom.FieldRef, "env %s", v.Name)
		require.Equal(t, "metadata.namespace", v.ValueFrom.FieldRef.FieldPath, "env %s", v.Name)
		vars[v.Name] = d.Namespace
	}
	p.env = []string{"PATH=/usr/bin:/bin", "KUBERNETES_SERVICE_HOST=" + api.Hostname(), "KUBERNETES_SERVICE_PORT=" + api.Port()}
	for k, v := range vars {
		p.env = append(p.env, k+"="+v)
	}
	for _, a := range ctr.Args {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		if r, ok := replace[a]; ok {
			a = r
		}
		p.args = append(p.args, a)
	}

	for _, vm := range ctr.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == vm.Name {
				require.NotNil(t, v.EmptyDir, "volume %s: only emptyDir volumes are laid out here", v.Name)
			}
		}
		p.volumes[vm.Name] = filepath.Join(dir, "volumes", vm.Name)
		p.mounts[vm.Name] = vm.MountPath
		require.NoError(t, os.MkdirAll(p.volumes[vm.Name], 0o700))
	}

	require.NoError(t, os.MkdirAll(p.saDir, 0o755))
	token := strings.TrimSpace(kubectl(t, e.cluster, "-n", d.Namespace, "create", "token", spec.ServiceAccountName, "--duration", "1h"))
	ca, err := os.ReadFile(e.cluster.CAFile)
	require.NoError(t, err)
	for name, content := range map[string]string{"token": token, "ca.crt": string(ca), "namespace": d.Namespace} {
		require.NoError(t, os.WriteFile(filepath.Join(p.saDir, name), []byte(content), 0o644))
	}
	return p
}

func (p *controllerPodSpec) volume(t *testing.T, name string) string {
	t.Helper()
	dir, ok := p.volumes[name]
	require.True(t, ok, "no volume %s", name)
	return dir
}

// start runs the binary in a private mount namespace where the
// ServiceAccount directory and the volumes are where a pod has them; it
// returns a stop function (also run at cleanup).
func (p *controllerPodSpec) start(t *testing.T, binary string) func() {
	t.Helper()
	// Sources are bound under the fresh /run first: a tmpfs over /tmp (where
	// the pod's emptyDir may go) would hide the test's directories.
	var b strings.Builder
	b.WriteString("set -e\nmount -t tmpfs tmpfs /run\n")
	// The binary too: a checkout (and bin/) may itself live under /tmp.
	b.WriteString("mkdir -p /run/bin && : > /run/bin/telegraf-tkgi\n")
	fmt.Fprintf(&b, "mount --bind %q /run/bin/telegraf-tkgi\n", binary)
	b.WriteString("mkdir -p /run/secrets/kubernetes.io/serviceaccount\n")
	fmt.Fprintf(&b, "mount --bind %q /run/secrets/kubernetes.io/serviceaccount\n", p.saDir)
	for name, src := range p.volumes {
		fmt.Fprintf(&b, "mkdir -p /run/volumes/%[1]s\nmount --bind %[2]q /run/volumes/%[1]s\n", name, src)
	}
	b.WriteString("mount -t tmpfs tmpfs /tmp\n")
	for name, dst := range p.mounts {
		fmt.Fprintf(&b, "mkdir -p %[2]q\nmount --bind /run/volumes/%[1]s %[2]q\n", name, dst)
	}
	b.WriteString(`exec /run/bin/telegraf-tkgi "$@"` + "\n")
	logFile, err := os.Create(p.logPath)
	require.NoError(t, err)
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", b.String(), "sh"}, p.args...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, logFile, logFile
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			data, _ := os.ReadFile(p.logPath)
			t.Logf("sink controller log:\n%s", testmonitor.Tail(string(data), 60))
		}
	})
	return stop
}
