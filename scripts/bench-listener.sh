#!/usr/bin/env bash
# Load benchmark of the telemetry server: N concurrent agents on loopback
# post the same line protocol batches to inputs.vmware_telemetry_listener
# (zstd, de-duplication on, acknowledged after delivery; and once more
# acknowledged on acceptance) and to stock inputs.http_listener_v2 (gzip,
# the only compression both take), all compiled into the same binary and
# writing to outputs.discard. The servers alternate within each round;
# prints requests/s, metrics/s, p50/p99 latency, peak RSS, CPU per metric
# and the ratios against http_listener_v2. With -jetstream: the listener's
# embedded store (1 replica) against 1 and 3 replicas on a local three-node
# NATS JetStream cluster (scripts/nats-server.sh), NATS CPU counted and
# split between the replicas and the NATS servers, and per NATS server by
# role (leader of the stream, of the key bucket, or follower).
# Usage: scripts/bench-listener.sh [bin/telegraf-tkgi] [go run flags: -agents 32 -duration 20s -rounds 3 -jetstream ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${1:-$root/bin/telegraf-tkgi}
shift || true
[ -x "$bin" ] || { echo "bench-listener: $bin not found; run make build" >&2; exit 1; }
cd "$root"
go build -o "${TMPDIR:-/tmp}/bench-listener.$$" ./scripts/bench-listener
trap 'rm -f "${TMPDIR:-/tmp}/bench-listener.$$"' EXIT
"${TMPDIR:-/tmp}/bench-listener.$$" -bin "$(realpath "$bin")" "$@"
