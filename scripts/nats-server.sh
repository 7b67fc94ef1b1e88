#!/usr/bin/env bash
# Prints the path of nats-server at the version in go.mod's module graph
# (telegraf's NATS plugins pull it in), building it once from the Go module
# proxy into the git-ignored user cache. The JetStream tests start a three-node
# cluster of it on loopback (internal/testnats). NATS_SERVER=/path names
# another build instead: `make test` runs the JetStream tests again on
# Debian's package (/usr/sbin/nats-server, the oldest version tested).
set -euo pipefail
if [ -n "${NATS_SERVER:-}" ]; then
  if [ ! -x "$NATS_SERVER" ]; then
    echo "nats-server: NATS_SERVER=$NATS_SERVER is not an executable" >&2
    exit 1
  fi
  echo "$NATS_SERVER"
  exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telegraf-tkgi}
version=$(cd "$root" && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
dir="$cache/nats/$version"
bin="$dir/nats-server"
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  exec 9>"$dir.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "nats-server: building nats-server $version (a minute cold)" >&2
    (cd "$dir" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$dir" \
      go install -trimpath -ldflags "-s -w" "github.com/nats-io/nats-server/v2@$version") >&2
  fi
fi
echo "$bin"
