#!/usr/bin/env bash
# Installs the Debian packages the tests run for real: tinyproxy (proxy
# tests), prometheus and influxdb (end-to-end with the stock outputs),
# nats-server (the JetStream tests run a second time on Debian's build), plus
# the tools the scripts use: openssl, curl, jq, GNU time (benchmarks),
# util-linux (flock; unshare, nsenter and setpriv for the shipped-pair e2e
# test's namespaces), iproute2 (ip) and systemd (systemd-analyze verifies the
# server's unit; installing it in a container starts nothing). Only missing packages are installed. kubectl is not a
# Debian bookworm package: it comes with the machine image, and its absence
# is reported here rather than halfway through the tests.
set -euo pipefail

if ! command -v kubectl >/dev/null; then
  echo "test-deps: kubectl not found in PATH; the manifest tests apply configs/ with it (install kubectl v1.36)" >&2
  exit 1
fi

want=(openssl curl jq time procps util-linux iproute2 systemd tinyproxy prometheus influxdb nats-server)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: missing packages ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps prometheus from pulling in its exporters;
# policy-rc.d stops Debian from starting the daemons: tests start their own
# instances on loopback ports.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
