package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The TKGI-shaped files in testdata/ applied as they are with kubectl, on
// the real API server with the controller running: each is stored as
// written (null lists, a namespace on a cluster-scoped kind), rendered or
// refused as tkgiExamples says, and the webhook admits or refuses the same.
func TestTKGIExamplesApply(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	// The examples name their namespace; it is kept between runs (no
	// namespace controller runs here to finish deleting it).
	_, err := e.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "spring-petclinic"}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	files := map[string]bool{}
	for _, ex := range tkgiExamples {
		files[ex.file] = true
	}
	for f := range files {
		path := filepath.Join("testdata", f)
		t.Cleanup(func() {
			_, _ = e.cluster.Kubectl(e.cluster.AdminKubeconfig, "delete", "--ignore-not-found", "--wait=true", "-f", path)
		})
		kubectl(t, e.cluster, "apply", "-f", path)
	}

	// What the API server stored: a null list is dropped (the schema's
	// lists are not nullable, so the null is pruned, not refused) and the
	// namespace of a cluster-scoped object is cleared.
	raw := kubectl(t, e.cluster, "get", "clustermetricsink", "tkgi-node-metrics", "-o", "json")
	var stored struct {
		Metadata map[string]interface{} `json:"metadata"`
		Spec     map[string]interface{} `json:"spec"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &stored))
	require.NotContains(t, stored.Metadata, "namespace")
	require.NotContains(t, stored.Spec, "inputs")
	require.Contains(t, stored.Spec, "outputs")
	raw = kubectl(t, e.cluster, "-n", "spring-petclinic", "get", "metricsink", "petclinic-default", "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(raw), &stored))
	require.NotContains(t, stored.Spec, "inputs")

	clusterKey := client.ObjectKey{Namespace: controllerNamespace, Name: e.cmName}
	for _, ex := range tkgiExamples {
		t.Run(ex.name, func(t *testing.T) {
			var (
				st  *SinkStatus
				key client.ObjectKey
			)
			switch ex.kind {
			case "ClusterMetricSink":
				s := &ClusterMetricSink{ObjectMeta: metav1.ObjectMeta{Name: ex.name}}
				st = e.waitStatus(t, s, func() *SinkStatus { return &s.Status }, 1)
				key = clusterKey
			case "MetricSink":
				s := &MetricSink{ObjectMeta: metav1.ObjectMeta{Namespace: ex.namespace, Name: ex.name}}
				st = e.waitStatus(t, s, func() *SinkStatus { return &s.Status }, 1)
				key = client.ObjectKey{Namespace: ex.namespace, Name: TenantObjectName(ex.name)}
			}
			if ex.wantErr != "" {
				require.Equal(t, metav1.ConditionTrue, condition(st, ConditionInvalid).Status, "%+v", st)
				require.Equal(t, metav1.ConditionFalse, condition(st, ConditionReady).Status, "%+v", st)
				require.Contains(t, condition(st, ConditionInvalid).Message, ex.wantErr)
				return
			}
			require.Equal(t, metav1.ConditionTrue, condition(st, ConditionReady).Status, "%+v", st)
			require.Equal(t, metav1.ConditionFalse, condition(st, ConditionInvalid).Status, "%+v", st)

			var cm corev1.ConfigMap
			eventually(t, "ConfigMap "+key.String()+" rendering "+ex.name, func() (bool, string) {
				if err := e.admin.Get(ctx, key, &cm); err != nil {
					return false, err.Error()
				}
				conf := cm.Data[ConfigKey]
				for _, want := range ex.contains {
					if !strings.Contains(conf, want) {
						return false, conf
					}
				}
				return ex.kind == "MetricSink" || strings.Contains(strings.SplitN(conf, "\n", 2)[0], ex.name), conf
			})
			conf := cm.Data[ConfigKey]
			require.NoError(t, e.checker.Check([]byte(conf)))
			loaded := loadedPlugins(t, e.checker, conf)
			if ex.kind == "MetricSink" {
				require.Equal(t, ex.plugins, loaded)
				return
			}
			// The shared configuration holds every sink's plugins.
			for _, p := range ex.plugins {
				require.Contains(t, loaded, p)
			}
		})
	}
	// The refused sink is left out of the shared configuration.
	var cm corev1.ConfigMap
	require.NoError(t, e.admin.Get(ctx, clusterKey, &cm))
	require.NotContains(t, cm.Data[ConfigKey], "stackdriver")

	// Through the webhook: every accepted example is admitted (server-side
	// dry run), the one naming a plugin this build lacks is refused at
	// apply with the same message.
	name := e.registerWebhook(t)
	for f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		require.NoError(t, err)
		labelled := strings.ReplaceAll(string(b), "metadata:\n", fmt.Sprintf("metadata:\n  labels:\n    %s: %s\n", webhookLabel, name))
		path := filepath.Join(t.TempDir(), f)
		require.NoError(t, os.WriteFile(path, []byte(labelled), 0o600))
		refuse := ""
		for _, ex := range tkgiExamples {
			if ex.file == f && ex.wantErr != "" {
				refuse = ex.wantErr
			}
		}
		if refuse == "" {
			eventually(t, f+" admitted by the webhook", func() (bool, string) {
				out, err := e.cluster.Kubectl(e.cluster.AdminKubeconfig, "apply", "--dry-run=server", "-f", path)
				return err == nil, out
			})
			continue
		}
		eventually(t, f+" refused by the webhook", func() (bool, string) {
			out, err := e.cluster.Kubectl(e.cluster.AdminKubeconfig, "apply", "--dry-run=server", "-f", path)
			return err != nil && strings.Contains(out, "denied the request") && strings.Contains(out, refuse), out
		})
	}
}

// A namespace given to a cluster-scoped sink, by kubectl's -n or in the
// object sent to the API server, is not an error and is not stored.
func TestClusterMetricSinkIgnoresNamespace(t *testing.T) {
	e := startEnv(t)
	path := filepath.Join("testdata", "tkgi-2-namespaced-null-inputs.yaml")
	t.Cleanup(func() {
		_, _ = e.cluster.Kubectl(e.cluster.AdminKubeconfig, "delete", "--ignore-not-found", "--wait=true", "-f", path)
	})
	// pks-system does not exist here: kubectl and the API server do not look.
	kubectl(t, e.cluster, "-n", "pks-system", "apply", "-f", path)
	ns := kubectl(t, e.cluster, "get", "clustermetricsink", "tkgi-node-metrics", "-o", "jsonpath={.metadata.namespace}")
	require.Empty(t, ns)
	kubectl(t, e.cluster, "delete", "-f", path)

	body := `{"apiVersion":"pksapi.io/v1beta1","kind":"ClusterMetricSink",
"metadata":{"name":"tkgi-node-metrics","namespace":"pks-system"},
"spec":{"inputs":null,"outputs":[{"type":"discard"}]}}`
	f := filepath.Join(t.TempDir(), "raw.json")
	require.NoError(t, os.WriteFile(f, []byte(body), 0o600))
	out := kubectl(t, e.cluster, "create", "--raw", "/apis/pksapi.io/v1beta1/clustermetricsinks", "-f", f)
	var created struct {
		Metadata map[string]interface{} `json:"metadata"`
		Spec     map[string]interface{} `json:"spec"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &created), out)
	require.NotContains(t, created.Metadata, "namespace")
	require.NotContains(t, created.Spec, "inputs")
}
