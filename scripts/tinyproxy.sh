#!/usr/bin/env bash
# Debian's tinyproxy on a random loopback port, for proxy tests.
#
#   scripts/tinyproxy.sh start DIR [allow|deny] [USER:PASSWORD]
#       installs tinyproxy if missing (apt-get, as root), writes DIR/tinyproxy.conf,
#       starts it in the background (pid in DIR/tinyproxy.pid, log in
#       DIR/tinyproxy.log: one "Request ...: POST http://..." line per proxied
#       request) and prints 127.0.0.1:PORT once it accepts connections.
#       allow: proxies loopback clients; deny: answers every client 403;
#       USER:PASSWORD: requires proxy basic auth (407 without).
#   scripts/tinyproxy.sh stop DIR
#       stops the instance started in DIR (by its pid).
set -euo pipefail

usage() { echo "usage: $0 start DIR [allow|deny] [USER:PASSWORD] | stop DIR" >&2; exit 2; }

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage

case "$cmd" in
stop)
  if [ -f "$dir/tinyproxy.pid" ]; then
    pid=$(cat "$dir/tinyproxy.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/tinyproxy.pid"
  fi
  exit 0 ;;
start) ;;
*) usage ;;
esac

mode=${3:-allow}; auth=${4:-}
case "$mode" in allow|deny) ;; *) echo "tinyproxy.sh: mode \"$mode\" unknown; use allow or deny" >&2; exit 2 ;; esac

bin=$(command -v tinyproxy || true)
if [ -z "$bin" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tinyproxy.sh: tinyproxy is not installed; run: sudo apt-get install -y tinyproxy" >&2
    exit 1
  fi
  echo "tinyproxy.sh: installing tinyproxy" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Debian would start the system service; keep it off, tests run their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends tinyproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends tinyproxy >/dev/null; }
  bin=$(command -v tinyproxy)
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# A random port nobody answers on; a race with another process taking it
# meanwhile only costs an attempt.
free_port() {
  local p
  while :; do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

for attempt in 1 2 3 4 5; do
  port=$(free_port)
  {
    echo "Port $port"
    echo "Listen 127.0.0.1"
    echo "Timeout 30"
    echo "LogFile \"$dir/tinyproxy.log\""
    echo "LogLevel Info"
    echo "MaxClients 64"
    echo "DisableViaHeader Yes"
    if [ "$mode" = deny ]; then
      # Only a TEST-NET address may use it: every real client gets 403.
      echo "Allow 192.0.2.1"
    else
      echo "Allow 127.0.0.1"
    fi
    if [ -n "$auth" ]; then
      echo "BasicAuth ${auth%%:*} ${auth#*:}"
    fi
  } > "$dir/tinyproxy.conf"
  : > "$dir/tinyproxy.log"
  nohup "$bin" -d -c "$dir/tinyproxy.conf" >"$dir/tinyproxy.out" 2>&1 &
  pid=$!
  echo "$pid" > "$dir/tinyproxy.pid"
  for _ in $(seq 50); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "127.0.0.1:$port"
      exit 0
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  echo "tinyproxy.sh: attempt $attempt on port $port failed: $(tail -n 3 "$dir/tinyproxy.out" "$dir/tinyproxy.log" 2>/dev/null | tr '\n' ' ')" >&2
done
echo "tinyproxy.sh: could not start tinyproxy" >&2
exit 1
