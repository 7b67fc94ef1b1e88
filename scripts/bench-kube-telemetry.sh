#!/usr/bin/env bash
# One collection of a seeded cluster, side by side in one run on the same
# real kube-apiserver: inputs.kube_telemetry with each list_strategy, stock
# inputs.kube_inventory (all namespaces, the same object kinds, both
# compiled into one telegraf-tkgi binary) and raw client-go reads of the same
# objects in each way the API server offers (scripts/bench-kube-telemetry/
# rawlist: paginated, unpaginated, resourceVersion=0, watch-list).
#
#   scripts/bench-kube-telemetry.sh [quick|full|both] [rounds]
#
#   quick  500 nodes / 15,000 pods                               (~3 min)
#   full   5,000 nodes / 150,000 pods (the Kubernetes
#          scalability limits)                                   (~20 min)
#
# Pods and nodes are written straight into etcd, the rest through the API.
#   both   (default) quick then full
#
# Each tool runs as its own process under /usr/bin/time -v, the tools
# interleaved in every round (default 3 rounds); the table gives medians of
# wall time, client CPU (user+sys), client peak RSS, the API server's CPU for
# the collection and the API server's peak RSS during it (VmRSS sampled every
# 20 ms; VmHWM cannot be reset) with its rise over the value just before the
# run, and ratios (API server CPU also net of its idle rate, measured in
# every round with no client); a last row is telegraf-tkgi's own floor
# (the same --once run with only inputs.mem). Results go to stdout and to
# $CACHE/bench-kube-telemetry/<size>.md. A fresh apiserver per size is
# started with scripts/kube-apiserver-up.sh and stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telegraf-tkgi}
SIZES=${1:-both}
ROUNDS=${2:-3}
case $SIZES in quick | full) ;; both) SIZES="quick full" ;; *)
  echo "usage: $0 [quick|full|both] [rounds]" >&2
  exit 2
  ;;
esac
OUT=$ROOT/.cache/bench-kube-telemetry
mkdir -p "$OUT"
WORK=$(mktemp -d)
STATE=""
log() { echo "bench-kube-telemetry: $*" >&2; }
cleanup() {
  if [ -n "$STATE" ]; then "$ROOT/scripts/kube-apiserver-down.sh" --purge "$STATE" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
exec 7<> <(:) # never readable: "read -t" on it is a sleep without a fork
[ -x /usr/bin/time ] || { log "/usr/bin/time is missing (apt-get install time)"; exit 1; }

# Our own build of telegraf-tkgi (kube_telemetry and kube_inventory are both
# in plugins/all) and of the baseline, so nobody else's build is measured.
log "building telegraf-tkgi and rawlist"
BIN=$OUT/telegraf-tkgi
RAW=$OUT/rawlist
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$BIN" ./cmd/telegraf-tkgi &&
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$RAW" ./scripts/bench-kube-telemetry/rawlist)

# measure NAME CMD...: runs CMD under time -v; appends a row
# "name wall_s cpu_s rss_mb apiserver_cpu_s anon_mb apiserver_peak_mb
# apiserver_rise_mb" to $WORK/rows. anon_mb is the peak of the process's
# anonymous memory (heap, stacks), sampled every 20 ms: peak RSS also counts
# the pages of the binary it touched. The API server's VmRSS is sampled in
# the same loop.
ticks() { awk '{ print $14 + $15 }' "/proc/$KUBE_APISERVER_PID/stat"; }
vmrss() {
  local k v _
  while read -r k v _; do [ "$k" = VmRSS: ] && { echo "$v"; return; }; done <"/proc/$KUBE_APISERVER_PID/status"
}
measure() {
  local name=$1 tf=$WORK/time.$1
  shift
  local before after tpid child="" anon=0 a rc=0 srv0 srvpeak
  srv0=$(vmrss)
  srvpeak=$srv0
  before=$(ticks)
  /usr/bin/time -v -o "$tf" "$@" >"$WORK/$name.stdout" 2>"$WORK/$name.stderr" &
  tpid=$!
  # Shell builtins only in the loop: no forks competing for the CPU.
  while kill -0 "$tpid" 2>/dev/null; do
    [ -n "$child" ] || child=$(pgrep -P "$tpid" | head -n 1 || true)
    if [ -n "$child" ] && [ -r "/proc/$child/status" ]; then
      while read -r k a _; do
        [ "$k" = RssAnon: ] && [ "$a" -gt "$anon" ] && anon=$a
      done <"/proc/$child/status" 2>/dev/null || true
    fi
    while read -r k a _; do
      [ "$k" = VmRSS: ] && [ "$a" -gt "$srvpeak" ] && srvpeak=$a
    done <"/proc/$KUBE_APISERVER_PID/status"
    read -r -t 0.02 -u 7 _ || true # a 20 ms sleep without forking
  done
  wait "$tpid" || rc=$?
  if [ "$rc" != 0 ]; then
    log "$name failed (exit $rc):"
    tail -n 20 "$WORK/$name.stderr" >&2
    exit 1
  fi
  after=$(ticks)
  awk -v name="$name" -v server="$((after - before))" -v hz="$(getconf CLK_TCK)" -v anon="$anon" \
    -v srvpeak="$srvpeak" -v srv0="$srv0" '
    /Elapsed \(wall clock\)/ { n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
    /User time/   { cpu += $NF }
    /System time/ { cpu += $NF }
    /Maximum resident set size/ { rss = $NF / 1024 }
    END { printf "%s %.2f %.2f %.1f %.2f %.1f %.1f %.1f\n", name, wall, cpu, rss, server / hz, anon / 1024,
      srvpeak / 1024, (srvpeak - srv0) / 1024 }' "$tf" >>"$WORK/rows"
}

# The tools of one round; the first round runs them in this order, which
# is also the table's.
TOOLS=(kube_telemetry_auto kube_telemetry_paginated kube_inventory raw_paginated raw_unpaginated raw_rv0
  raw_watchlist telegraf_tkgi_inputs_mem_only)
run_tool() {
  local strategy
  case $1 in
    kube_telemetry_*)
      strategy=${1#kube_telemetry_}
      rm -f "$WORK/kube_telemetry_$strategy.out"
      measure "$1" "$BIN" --config "$WORK/kube_telemetry_$strategy.conf" --once
      grep -q '^kube_telemetry_cluster.*[ ,]errors=0i' "$WORK/kube_telemetry_$strategy.out" ||
        { log "kube_telemetry ($strategy) reported errors:"; grep -E '^kube_telemetry_cluster|E!' "$WORK/kube_telemetry_$strategy.out" "$WORK/kube_telemetry_$strategy.stderr" >&2; exit 1; }
      ;;
    kube_inventory)
      measure kube_inventory "$BIN" --config "$WORK/kube_inventory.conf" --once
      if grep -q 'E!' "$WORK/kube_inventory.stderr"; then
        log "kube_inventory logged errors:"
        grep 'E!' "$WORK/kube_inventory.stderr" | head -5 >&2
        exit 1
      fi
      ;;
    # The plugin's own requests (metadata-only where it counts, two lists
    # at a time), in each way the API server offers.
    raw_paginated | raw_unpaginated | raw_rv0)
      measure "$1" "$RAW" -kubeconfig "$KUBECONFIG_TELEGRAF" -metadata -concurrency 2 -mode "${1#raw_}"
      ;;
    # The agent's role has no "watch": the watch-list runs as the admin.
    raw_watchlist)
      measure raw_watchlist "$RAW" -kubeconfig "$KUBECONFIG_ADMIN" -metadata -concurrency 2 -mode watchlist
      ;;
    telegraf_tkgi_inputs_mem_only)
      measure telegraf_tkgi_inputs_mem_only "$BIN" --config "$WORK/idle.conf" --once
      ;;
  esac
}

bench() {
  local size=$1 nodes pods direct=()
  case $size in
    quick) nodes=500 pods=15000 ;;
    full) nodes=5000 pods=150000 ;;
  esac
  STATE=$(mktemp -d "$CACHE/bench-kube-run.XXXXXX")
  "$ROOT/scripts/kube-apiserver-up.sh" "$STATE"
  # shellcheck disable=SC1091
  . "$STATE/env"
  # Pods and nodes straight into etcd at both sizes: through the API, 15k
  # pods take minutes on a busy machine and measure nothing here.
  direct=(-direct-etcd "$KUBE_ETCD_ENDPOINT")
  log "seeding $nodes nodes / $pods pods"
  "$KUBESEED" -kubeconfig "$KUBECONFIG_ADMIN" -nodes "$nodes" -pods "$pods" -seed 1 \
    -summary "$WORK/seed.json" "${direct[@]}" -wait 10m

  printf '%s\n' "$KUBE_TOKEN_TELEGRAF" >"$WORK/token"
  # kube_telemetry with each list_strategy ("auto" is "unpaginated" on
  # this API server, the log says so).
  local strategy mode
  for strategy in auto paginated; do
    cat >"$WORK/kube_telemetry_$strategy.conf" <<EOF
[agent]
  omit_hostname = true
[[inputs.kube_telemetry]]
  kubeconfig = "$KUBECONFIG_TELEGRAF"
  list_strategy = "$strategy"
[[outputs.file]]
  files = ["$WORK/kube_telemetry_$strategy.out"]
EOF
  done
  # Stock kube_inventory: all namespaces, the kinds the role grants that it
  # knows; response_timeout raised so its unpaginated lists can finish at
  # all (its 5 s default times out on big clusters).
  cat >"$WORK/kube_inventory.conf" <<EOF
[agent]
  omit_hostname = true
[[inputs.kube_inventory]]
  url = "$KUBE_API_URL"
  bearer_token = "$WORK/token"
  tls_ca = "$KUBE_CA_FILE"
  namespace = ""
  response_timeout = "300s"
  resource_include = ["daemonsets", "deployments", "ingress", "nodes", "persistentvolumes",
                      "persistentvolumeclaims", "pods", "services", "statefulsets"]
[[outputs.discard]]
EOF
  # The binary's own floor: the same --once run with a trivial input.
  cat >"$WORK/idle.conf" <<EOF
[agent]
  omit_hostname = true
[[inputs.mem]]
[[outputs.discard]]
EOF
  # Warm the apiserver's caches once, unmeasured. Right after a bulk write
  # into etcd the watch cache lags behind, and consistent reads fail
  # ("Too large resource version") until it has caught up.
  local try
  for try in $(seq 60); do
    "$RAW" -kubeconfig "$KUBECONFIG_TELEGRAF" >/dev/null 2>"$WORK/warmup.err" &&
      "$RAW" -kubeconfig "$KUBECONFIG_TELEGRAF" -mode unpaginated >/dev/null 2>"$WORK/warmup.err" && break
    log "warm-up $try: $(cat "$WORK/warmup.err")"
    [ "$try" = 60 ] && exit 1
    read -r -t 5 -u 7 _ || true
  done
  : >"$WORK/rows"
  for round in $(seq "$ROUNDS"); do
    log "$size round $round/$ROUNDS"
    # The API server's own background CPU (watch cache, etcd progress,
    # leases) over 5 s with no client: subtracted, per second of each
    # tool's wall time, in the "net" column, so a slow run on a busy
    # machine is not charged for the API server's idling.
    measure apiserver_idle sleep 5
    # The order turns by one tool each round: the first collection after
    # another one pays for the API server's garbage of the one before.
    local i n=${#TOOLS[@]}
    for ((i = 0; i < n; i++)); do
      run_tool "${TOOLS[$(((i + round - 1) % n))]}"
    done
  done
  # The plugin's counts must be the seed's: a fast wrong answer is no answer.
  local want got collection notes=""
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pods"]["total"])' "$WORK/seed.json")
  for strategy in auto paginated; do
    got=$(sed -n 's/^kube_telemetry_pods.*[ ,]total=\([0-9]*\)i.*/\1/p' "$WORK/kube_telemetry_$strategy.out")
    [ "$got" = "$want" ] || { log "kube_telemetry ($strategy) counted $got pods, the seed has $want"; exit 1; }
    collection=$(sed -n 's/^kube_telemetry_cluster.*collection_seconds=\([0-9.]*\).*/\1/p' "$WORK/kube_telemetry_$strategy.out")
    notes="$notes kube_telemetry_$strategy: collection_seconds $collection (last round), $got pods counted (seed: $want);"
  done
  notes="$notes auto chose: $(grep -o 'Listing [a-z]*: .*' "$WORK/kube_telemetry_auto.stderr" | head -n 1)."

  {
    echo "#### $nodes nodes / $pods pods ($size, median of $ROUNDS rounds, $(nproc) cores, $(date -u +%Y-%m-%d))"
    echo
    echo "| tool | wall s | wall vs kube_inventory | client CPU s | client peak RSS MB | of which anonymous MB | apiserver CPU s | apiserver CPU net of idle s | net vs kube_inventory | apiserver peak RSS MB | apiserver RSS rise MB |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    awk '
      { wall[$1] = wall[$1] " " $2; cpu[$1] = cpu[$1] " " $3; rss[$1] = rss[$1] " " $4; srv[$1] = srv[$1] " " $5
        anon[$1] = anon[$1] " " $6; speak[$1] = speak[$1] " " $7; srise[$1] = srise[$1] " " $8
        if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
      function median(s,   a, k, i, j, t) {
        k = split(s, a, " ")
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
      }
      END {
        idle = median(srv["apiserver_idle"]) / median(wall["apiserver_idle"])
        bw = median(wall["kube_inventory"]); bs = median(srv["kube_inventory"]) - idle * bw
        for (i = 1; i <= n; i++) {
          t = order[i]; w = median(wall[t]); s = median(srv[t]); net = s - idle * w
          if (t == "apiserver_idle") continue
          printf "| %s | %.2f | %.2fx | %.2f | %.0f | %.0f | %.2f | %.2f | %.2fx | %.0f | %.0f |\n", t, w, w / bw, median(cpu[t]),
            median(rss[t]), median(anon[t]), s, net, net / bs, median(speak[t]), median(srise[t])
        }
        printf "\nAPI server idle: %.3f s of CPU per second (median of the rounds).\n", idle
      }' "$WORK/rows"
    echo
    echo "$notes"
  } | tee "$OUT/$size.md"
  cp "$WORK/rows" "$OUT/$size.rows"

  "$ROOT/scripts/kube-apiserver-down.sh" --purge "$STATE" >/dev/null
  STATE=""
}

for size in $SIZES; do
  bench "$size"
done
