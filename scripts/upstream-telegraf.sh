#!/usr/bin/env bash
# Prints the path of upstream telegraf at the version go.mod pins, building it
# once with `go install` into the git-ignored cache. Used by the drop-in
# comparison and the binary benchmark.
#
# UPSTREAM_TAGS="custom,inputs.cpu,..." builds upstream's custom flavour with
# only those plugins (upstream's build tags): under 1.5 min cold on 2 cores
# instead of the ~20 min all of upstream takes. Each tag set gets
# its own cached binary; without UPSTREAM_TAGS it is the full build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telegraf-tkgi}
version=$(cd "$root" && go list -m -f '{{.Version}}' github.com/influxdata/telegraf)
# Upstream's release ldflags (its Makefile's, on a tag checkout): version,
# branch HEAD and the tag's short commit, so `telegraf version` has the shape
# a release prints.
commit=$(cd "$root" && go list -m -f '{{with .Origin}}{{.Hash}}{{end}}' "github.com/influxdata/telegraf@$version" | cut -c1-8)
internal=github.com/influxdata/telegraf/internal
ldflags="-s -w -X $internal.Version=${version#v} -X $internal.Branch=HEAD -X $internal.Commit=${commit:-unknown}"
tags=${UPSTREAM_TAGS:-}
dir="$cache/upstream/telegraf-$version-release"
if [ -n "$tags" ]; then
  dir="$dir-custom-$(printf '%s' "$tags" | sha256sum | cut -c1-12)"
fi
bin="$dir/telegraf"
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  exec 9>"$dir.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "upstream-telegraf: building telegraf $version${tags:+ with -tags $tags} (minutes cold)" >&2
    (cd "$dir" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$dir" \
      go install ${tags:+-tags "$tags"} -trimpath -ldflags "$ldflags" \
      "github.com/influxdata/telegraf/cmd/telegraf@$version") >&2
  fi
fi
echo "$bin"
