#!/usr/bin/env bash
# Drop-in check: upstream telegraf and telegraf-tkgi run on the same config
# files with the same flags. For every good config the measurement, tag-key
# and field-key sets of `--test` output must match; for every bad config both
# must fail (same exit code). Then the command line: every global flag and
# command upstream's --help lists must exist here (the list is read from
# upstream's binary, so a new upstream flag fails this until handled), and
# the behaviours of testdata/dropin/cli (version shape, config check and
# environment variables, filters, --select, pprof, --once, --test-wait,
# --debug, --quiet, --pidfile, secrets in the jose, systemd and docker
# stores, start as a systemd Type=notify service, ...) must agree on exit
# code, the output that matters and the files written. The systemd checks
# run systemd's user manager in a private mount namespace (root, unshare).
# Usage: scripts/dropin-compare.sh [bin/telegraf-tkgi]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tkgi=$(realpath "${1:-$root/bin/telegraf-tkgi}")
data="$here/testdata/dropin"
# Upstream is built with just the plugins and parsers the configs name (and
# the influx serializer --test prints with): the comparison needs nothing
# else, and the full build is most of a cold `make test`.
tags=custom,serializers.influx
for p in $(grep -hoE '^\[\[(inputs|outputs|processors|aggregators|secretstores)\.[a-z0-9_]+\]\]' "$data"/*.conf "$data"/cli/*.conf | tr -d '[]' | sort -u); do
  tags="$tags,$p"
done
for f in $(grep -hoE 'data_format *= *"[a-z_]+"' "$data"/*.conf | sed -E 's/.*"(.*)"/\1/' | sort -u); do
  tags="$tags,parsers.$f"
done
upstream=$(UPSTREAM_TAGS="$tags" "$here/upstream-telegraf.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$root" && go build -o "$work/lpkeys" ./scripts/lpkeys)
export DROPIN_DATA="$data" HOME="$work" TELEGRAF_CONFIG_PATH=/nonexistent

fail=0 passed=0
for conf in "$data"/*.conf; do
  name=$(basename "$conf" .conf)
  case "$name" in
    bad-*)
      set +e
      "$upstream" --config "$conf" --once >"$work/$name.up.out" 2>&1; up=$?
      "$tkgi" --config "$conf" --once >"$work/$name.tkgi.out" 2>&1; ours=$?
      set -e
      if [ "$up" -ne "$ours" ] || [ "$up" -eq 0 ]; then
        echo "FAIL $name: exit codes upstream=$up telegraf-tkgi=$ours"
        sed 's/^/  upstream: /' "$work/$name.up.out" | tail -3
        sed 's/^/  tkgi:     /' "$work/$name.tkgi.out" | tail -3
        fail=$((fail + 1))
      else
        echo "ok   $name: both exit $up"; passed=$((passed + 1))
      fi
      ;;
    *)
      "$upstream" --config "$conf" --test 2>"$work/$name.up.err" | "$work/lpkeys" >"$work/$name.up.keys"
      "$tkgi" --config "$conf" --test 2>"$work/$name.tkgi.err" | "$work/lpkeys" >"$work/$name.tkgi.keys"
      if [ ! -s "$work/$name.up.keys" ]; then
        echo "FAIL $name: upstream printed no metrics"; cat "$work/$name.up.err"; fail=$((fail + 1)); continue
      fi
      if diff -u "$work/$name.up.keys" "$work/$name.tkgi.keys" >"$work/$name.diff"; then
        echo "ok   $name: $(wc -l <"$work/$name.up.keys") series shapes match"; passed=$((passed + 1))
      else
        echo "FAIL $name: series shapes differ (- upstream, + telegraf-tkgi)"; cat "$work/$name.diff"; fail=$((fail + 1))
      fi
      ;;
  esac
done
# shellcheck source=dropin-cli.sh
. "$here/dropin-cli.sh"

echo "dropin-compare: $passed passed, $fail failed"
[ "$fail" -eq 0 ]
