package sinks

import (
	"fmt"
	"sort"
)

// portClashes finds the ClusterMetricSinks whose prometheus_client outputs
// listen on a port already taken, and says why. All ClusterMetricSinks run
// in one agent, which cannot listen twice on a port: it would fail to
// start. The earlier sink (by creation time, then name) keeps the port; the
// later one is left out. Ports are compared without their host, since a
// wildcard listener takes the port on every address.
func portClashes(sinks []*ClusterMetricSink) map[string]error {
	sorted := append([]*ClusterMetricSink(nil), sinks...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ti, tj := sorted[i].CreationTimestamp, sorted[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return sorted[i].Name < sorted[j].Name
	})
	owner := make(map[int32]string)
	clashes := make(map[string]error)
	for _, s := range sorted {
		ports := prometheusClientPorts(s.Spec.Outputs)
		mine := make(map[int32]bool, len(ports))
		for _, p := range ports {
			switch {
			case mine[p]:
				clashes[s.Name] = fmt.Errorf("spec.outputs: two prometheus_client outputs listen on port %d; one agent cannot listen twice on a port", p)
			case owner[p] != "":
				clashes[s.Name] = fmt.Errorf("spec.outputs: prometheus_client listen port %d is already used by ClusterMetricSink %s; all ClusterMetricSinks share one agent, so give each its own port", p, owner[p])
			}
			if clashes[s.Name] != nil {
				break
			}
			mine[p] = true
		}
		if clashes[s.Name] != nil {
			continue
		}
		for p := range mine {
			owner[p] = s.Name
		}
	}
	return clashes
}
