#!/usr/bin/env bash
# Stops the kube-apiserver and etcd that scripts/kube-apiserver-up.sh started.
#
#   scripts/kube-apiserver-down.sh [--purge] [STATE_DIR]
#
# STATE_DIR defaults to $KUBE_STATE_DIR or .cache/kube-run. Logs stay in it
# for post-mortems; --purge removes the whole state dir. Only the processes
# whose pids the up script recorded are stopped, and only if they still are
# the binaries it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telegraf-tkgi}
STATE=${KUBE_STATE_DIR:-$ROOT/.cache/kube-run}
PURGE=0
LOCKED=0
for arg in "$@"; do
  case $arg in
    --purge) PURGE=1 ;;
    --locked) LOCKED=1 ;; # called by the up script, which holds the lock
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "kube-apiserver-down: unknown option $arg" >&2; exit 2 ;;
    *) STATE=$arg ;;
  esac
done
[ -d "$STATE" ] || exit 0
if [ "$LOCKED" = 0 ]; then
  exec 9>"$STATE/.lock"
  flock 9
fi

# stop NAME: TERM, then KILL after 15 s.
stop() {
  local pidfile=$STATE/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
     tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "^[^ ]*/$1 "; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
      [ -d "/proc/$pid" ] || break
      # A zombie has exited already; its parent reaps it.
      [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
      echo "kube-apiserver-down: $1 (pid $pid) ignored SIGTERM for 15 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}
# The apiserver first, so it does not log etcd errors while stopping.
stop kube-apiserver
stop etcd
rm -f "$STATE/env"
if [ "$PURGE" = 1 ]; then
  rm -rf "$STATE"
fi
