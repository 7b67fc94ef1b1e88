package kube_telemetry

import (
	"context"
	"fmt"
	"regexp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// identityNamespace's UID identifies the cluster: it exists in every
	// cluster, is created once and never renamed.
	identityNamespace = "kube-system"

	maxClusterIDLength = 128
)

// clusterIDPattern keeps cluster_id to what a UID, a TKGI cluster UUID or
// an inventory key looks like: no spaces, quotes or separators a log line
// or a line-protocol tag would have to escape.
var clusterIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// checkClusterID validates the cluster_id setting; empty means unset.
func checkClusterID(id string) error {
	if id == "" {
		return nil
	}
	if len(id) > maxClusterIDLength || !clusterIDPattern.MatchString(id) {
		return fmt.Errorf("cluster_id %q must be 1 to %d letters, digits, '.', '_', ':' or '-', starting with a letter or digit "+
			"(e.g. the UID of kube-system: kubectl get namespace kube-system -o jsonpath='{.metadata.uid}')",
			id, maxClusterIDLength)
	}
	return nil
}

// clusterUID is the value of the tag cluster_uid: cluster_id if configured
// (kube-system is then not read at all), else the UID of kube-system. When
// kube-system cannot be read the error names the missing rule and the
// gather goes on without the tag: every other metric is still worth having.
func (k *KubeTelemetry) clusterUID(ctx context.Context, c *clients) (string, error) {
	if k.ClusterID != "" {
		return k.ClusterID, nil
	}
	ns, err := c.kube.CoreV1().Namespaces().Get(ctx, identityNamespace, metav1.GetOptions{})
	if err != nil {
		return "", &apiError{action: "getting namespace " + identityNamespace + " (the cluster's identity)",
			verb: "get", res: resourceByName("namespaces"), name: identityNamespace,
			advice: "the metrics carry no cluster_uid until then; or set cluster_id", err: err}
	}
	return string(ns.UID), nil
}
