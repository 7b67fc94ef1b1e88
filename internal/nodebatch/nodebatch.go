// Package nodebatch writes the load the telemetry server is measured with:
// batches of per-node kube_telemetry series, as a large cluster's agent
// sends them at the standard level (the bench-listener and hostile-listener
// tools post them).
package nodebatch

import (
	"fmt"
	"strings"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// Lines is one batch of n node lines of cluster (a pseudonym) whose i-th
// node is node(i) (a pseudonym too), timestamped from seq seconds after a
// fixed epoch.
func Lines(cluster string, node func(i int) string, seq, n int) []byte {
	var b strings.Builder
	ts := int64(1_700_000_000_000_000_000) + int64(seq)*1_000_000_000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "kube_telemetry_node,cluster_uid=%s,node=%s,role=worker,os_image=Ubuntu\\ 22.04.4\\ LTS,"+
			"kernel_version=5.15.0-105-generic,operating_system=linux,architecture=amd64,kubelet_version=v1.36.3,"+
			"container_runtime_version=containerd://1.7.27 ready=true,cpu_capacity_millicores=16000i,memory_capacity_bytes=67430776832i,"+
			"pods_capacity=110i,cpu_allocatable_millicores=15800i,memory_allocatable_bytes=66893905920i,pods_allocatable=110i,"+
			"gpu_capacity=0i,gpu_allocatable=0i %d\n", cluster, node(i), ts+int64(i))
	}
	return []byte(b.String())
}

// Pseudonym formats v as a pseudonym-shaped hex string.
func Pseudonym(v uint64) string {
	return fmt.Sprintf("%0*x", telemetry.PseudonymLength, v)
}
