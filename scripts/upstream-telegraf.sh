#!/usr/bin/env bash
# Prints the path of upstream telegraf at the version go.mod pins, building it
# once with `go install` into the git-ignored cache. Used by the drop-in
# comparison and the binary benchmark.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-$root/.cache}
version=$(cd "$root" && go list -m -f '{{.Version}}' github.com/influxdata/telegraf)
dir="$cache/upstream/telegraf-$version"
bin="$dir/telegraf"
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  exec 9>"$dir.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "upstream-telegraf: building telegraf $version (several minutes cold)" >&2
    (cd "$dir" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$dir" \
      go install -trimpath -ldflags "-s -w -X github.com/influxdata/telegraf/internal.Version=${version#v}" \
      "github.com/influxdata/telegraf/cmd/telegraf@$version") >&2
  fi
fi
echo "$bin"
