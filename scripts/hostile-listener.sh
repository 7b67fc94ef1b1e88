#!/usr/bin/env bash
# Hostile clients against the telemetry server: the built binary runs
# configs/server.conf (given only its environment) while concurrent clients
# send decompression bombs, event array bombs, slow bodies, long values and
# many batch ids, and real agents post valid batches. Fails if the server's
# peak RSS exceeds the bound the listener computes from its settings, or if
# an agent batch is lost. With -jetstream: configs/server-jetstream.conf on
# a local three-node NATS cluster (scripts/nats-server.sh), the lake written
# by configs/lake-jetstream.conf. See scripts/hostile-listener/main.go.
# Usage: scripts/hostile-listener.sh [bin/telegraf-tkgi] [-size small|full] [-duration 60s] [-jetstream]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${1:-$root/bin/telegraf-tkgi}
shift || true
[ -x "$bin" ] || { echo "hostile-listener: $bin not found; run make build" >&2; exit 1; }
cd "$root"
exe="${TMPDIR:-/tmp}/hostile-listener.$$"
go build -o "$exe" ./scripts/hostile-listener
trap 'rm -f "$exe"' EXIT
"$exe" -bin "$(realpath "$bin")" "$@"
