#!/usr/bin/env bash
# Side by side in one run: telegraf-tkgi against upstream's full telegraf at
# the pinned version, both stripped static builds. Reports binary size, time
# from exec to the first metric written, and idle RSS, with ratios.
# Usage: scripts/bench-binary.sh [bin/telegraf-tkgi] [rounds]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tkgi=$(realpath "${1:-$root/bin/telegraf-tkgi}")
rounds=${2:-5}
upstream=$("$here/upstream-telegraf.sh")
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Exec to first line in the output file, in milliseconds.
first_metric_ms() {
  local bin=$1 out="$work/first.out"
  rm -f "$out"
  cat >"$work/first.conf" <<CONF
[agent]
  interval = "1s"
  round_interval = false
  flush_interval = "1s"
  omit_hostname = true
[[inputs.mem]]
[[outputs.file]]
  files = ["$out"]
CONF
  local start; start=$(now_ms)
  "$bin" --config "$work/first.conf" --once >/dev/null 2>&1
  [ -s "$out" ] || { echo "no metric written by $bin" >&2; exit 1; }
  echo $(( $(now_ms) - start ))
}

# RSS in KiB of an agent running a typical small config, after it settles.
idle_rss_kb() {
  local bin=$1
  cat >"$work/idle.conf" <<CONF
[agent]
  interval = "10s"
  flush_interval = "10s"
[[inputs.cpu]]
[[inputs.mem]]
[[inputs.system]]
[[inputs.internal]]
[[outputs.discard]]
CONF
  "$bin" --config "$work/idle.conf" >/dev/null 2>&1 &
  local pid=$!
  pids+=("$pid")
  sleep 6
  local rss; rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rss"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for name in tkgi upstream; do : >"$work/$name.first"; : >"$work/$name.rss"; done
for _ in $(seq "$rounds"); do
  # Interleaved so machine noise hits both alike.
  first_metric_ms "$tkgi" >>"$work/tkgi.first"
  first_metric_ms "$upstream" >>"$work/upstream.first"
done
for _ in $(seq 3); do
  idle_rss_kb "$tkgi" >>"$work/tkgi.rss"
  idle_rss_kb "$upstream" >>"$work/upstream.rss"
done

size_t=$(stat -c %s "$tkgi"); size_u=$(stat -c %s "$upstream")
first_t=$(median <"$work/tkgi.first"); first_u=$(median <"$work/upstream.first")
rss_t=$(median <"$work/tkgi.rss"); rss_u=$(median <"$work/upstream.rss")
mb() { awk -v v="$1" -v d="$2" 'BEGIN { printf "%.1f", v / d }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

printf '\n%-28s %16s %16s %8s\n' "" "telegraf-tkgi" "telegraf $(basename "$(dirname "$upstream")" | sed 's/telegraf-//')" "ratio"
printf '%-28s %14.1f MB %14.1f MB %8s\n' "binary size" "$(mb "$size_t" 1048576)" "$(mb "$size_u" 1048576)" "$(ratio "$size_t" "$size_u")"
printf '%-28s %13d ms %13d ms %8s\n' "exec to first metric (med)" "$first_t" "$first_u" "$(ratio "$first_t" "$first_u")"
printf '%-28s %14.1f MB %14.1f MB %8s\n' "idle RSS (median of 3)" "$(mb "$rss_t" 1024)" "$(mb "$rss_u" 1024)" "$(ratio "$rss_t" "$rss_u")"
echo
awk -v s="$size_t" -v su="$size_u" -v r="$rss_t" -v ru="$rss_u" 'BEGIN {
  ok = 1
  if (s > 0.5 * su) { print "target missed: size above 0.5x"; ok = 0 }
  if (r > 0.7 * ru) { print "target missed: idle RSS above 0.7x"; ok = 0 }
  if (ok) print "targets met: size <= 0.5x, idle RSS <= 0.7x"
}'
