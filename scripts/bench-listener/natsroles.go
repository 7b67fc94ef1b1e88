package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetrystream"
)

// natsRoles splits the NATS servers' CPU by what each server leads, so the
// projection can say how one stream leader's load grows with the rate:
// "stream leader", "bucket leader", both, or "follower" of both.
type natsRoles struct {
	ticks   map[string]int64 // CPU ticks of the servers in that role
	metrics map[string]int64 // metrics stored while a server was in it, once per server
	servers map[string]int   // server-rounds in that role
	moved   int              // rounds in which a leader moved while measuring
	// over the rounds counted: all NATS servers' CPU, the replicas' CPU
	// (the rest of the row's), and the metrics stored, once
	natsTicks, replicaTicks, windowMetrics int64
}

func (r *natsRoles) add(b natsRoles) {
	if b.ticks == nil && b.moved == 0 {
		return // not a JetStream row
	}
	if r.ticks == nil {
		r.ticks, r.metrics, r.servers = map[string]int64{}, map[string]int64{}, map[string]int{}
	}
	for k, v := range b.ticks {
		r.ticks[k] += v
		r.metrics[k] += b.metrics[k]
		r.servers[k] += b.servers[k]
	}
	r.moved += b.moved
	r.natsTicks += b.natsTicks
	r.replicaTicks += b.replicaTicks
	r.windowMetrics += b.windowMetrics
}

// natsSample is each server's CPU and who leads the stream and the bucket
// at one moment.
type natsSample struct {
	ticks        []int64
	streamLeader string
	bucketLeader string
}

// nodeTicks reads each server's CPU, in node order.
func nodeTicks(c *testnats.Cluster) []int64 {
	ticks := make([]int64, len(c.Names()))
	for i := range ticks {
		ticks[i] = cpuTicks([]int{c.PID(i)})
	}
	return ticks
}

// natsLeaders asks JetStream who leads the stream and the bucket; the
// sample's ticks are the caller's.
func natsLeaders(c *testnats.Cluster) (natsSample, error) {
	var s natsSample
	nc, err := nats.Connect(strings.Join(c.URLs(), ","), nats.Timeout(2*time.Second))
	if err != nil {
		return s, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return s, err
	}
	leader := func(stream string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return "", fmt.Errorf("looking up stream %s: %w", stream, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return "", fmt.Errorf("stream %s info: %w", stream, err)
		}
		if info.Cluster == nil {
			return "", fmt.Errorf("stream %s has no cluster info", stream)
		}
		return info.Cluster.Leader, nil
	}
	if s.streamLeader, err = leader(telemetrystream.DefaultStream); err != nil {
		return s, err
	}
	s.bucketLeader, err = leader("KV_" + telemetrystream.DefaultDedupBucket)
	return s, err
}

// rolesBetween attributes each server's CPU between two samples to its
// role, with the metrics stored meanwhile; allTicks is the row's CPU (NATS
// servers and replicas) over the same window.
func rolesBetween(names []string, before, after natsSample, metrics, allTicks int64) natsRoles {
	r := natsRoles{ticks: map[string]int64{}, metrics: map[string]int64{}, servers: map[string]int{}}
	if before.streamLeader != after.streamLeader || before.bucketLeader != after.bucketLeader {
		r.moved = 1
		return r
	}
	for i, name := range names {
		role := "follower"
		switch {
		case name == after.streamLeader && name == after.bucketLeader:
			role = "stream+bucket leader"
		case name == after.streamLeader:
			role = "stream leader"
		case name == after.bucketLeader:
			role = "bucket leader"
		}
		r.ticks[role] += after.ticks[i] - before.ticks[i]
		r.metrics[role] += metrics
		r.servers[role]++
		r.natsTicks += after.ticks[i] - before.ticks[i]
	}
	r.replicaTicks = allTicks - r.natsTicks
	r.windowMetrics = metrics
	return r
}

// reportRoles prints CPU per metric of one NATS server in each role.
func reportRoles(name string, r natsRoles) {
	if r.ticks == nil {
		return
	}
	roles := make([]string, 0, len(r.ticks))
	for role := range r.ticks {
		roles = append(roles, role)
	}
	slices.Sort(roles)
	var parts []string
	for _, role := range roles {
		parts = append(parts, fmt.Sprintf("%s %.2f us/m (%d server-rounds)", role,
			float64(r.ticks[role])*1e4/float64(max(r.metrics[role], 1)), r.servers[role]))
	}
	moved := ""
	if r.moved > 0 {
		moved = fmt.Sprintf("; %d rounds left out: a leader moved", r.moved)
	}
	perMetric := func(ticks int64) float64 { return float64(ticks) * 1e4 / float64(max(r.windowMetrics, 1)) } // ticks are 10 ms
	fmt.Printf("  %s: replicas %.2f us/m, NATS servers %.2f us/m; per NATS server: %s%s\n", name,
		perMetric(r.replicaTicks), perMetric(r.natsTicks), strings.Join(parts, ", "), moved)
}
