#!/usr/bin/env bash
# The operator's first look (`make demo`): one collection of a cluster, sent
# at each participation level to a local telemetry server, showing what was
# sent and where it landed, then everything stopped again.
#
#   scripts/demo.sh [BINARY]          (default bin/telegraf-tkgi)
#
# Without $KUBECONFIG: starts the local kube-apiserver of scripts/ and seeds
# a small TKGI-like cluster (20 nodes, 300 pods). With $KUBECONFIG: polls
# that cluster instead (read-only; the ClusterRole in
# configs/kubernetes/base/clusterrole.yaml is all it needs).
#
# Everything runs on loopback, under $DEMO_DIR (default .cache/demo), which
# is kept after the run for a closer look: the agent's and the server's
# configs and logs, sent-<level>.lp (exactly what was sent, after
# anonymization, before compression) and lake/telemetry.jsonl (what the
# server stored).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(realpath "${1:-$ROOT/bin/telegraf-tkgi}")
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telegraf-tkgi}
WORK=${DEMO_DIR:-$ROOT/.cache/demo}
LEVELS=(none standard enhanced)
CUSTOMER_NUMBER=CN-DEMO-0042

die() { echo "demo: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no binary at $BIN; run 'make build' (or 'make demo')"
for tool in curl jq; do
  command -v "$tool" >/dev/null || die "$tool not found; run scripts/test-deps.sh"
done

SERVER_PID=
KUBE_STATE=
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$KUBE_STATE" ]; then
    "$ROOT/scripts/kube-apiserver-down.sh" --purge "$KUBE_STATE" >/dev/null 2>&1 || true
  fi
  [ $rc -eq 0 ] || echo "demo: failed; logs are in $WORK" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK/lake" "$WORK/state"

# A loopback port nobody listens on.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

section() { printf '\n== %s\n' "$*"; }

# --- the cluster -------------------------------------------------------------
section "cluster"
if [ -n "${KUBECONFIG:-}" ]; then
  AGENT_KUBECONFIG=$KUBECONFIG
  ADMIN_KUBECONFIG=$KUBECONFIG
  echo "polling the cluster of \$KUBECONFIG ($KUBECONFIG)"
else
  KUBE_STATE=$WORK/kube
  echo "starting a local kube-apiserver and etcd (first run builds them: several minutes)"
  "$ROOT/scripts/kube-apiserver-up.sh" "$KUBE_STATE" >"$WORK/kube-up.log" 2>&1 ||
    { tail -20 "$WORK/kube-up.log" >&2; die "the local kube-apiserver did not start"; }
  # shellcheck disable=SC1091
  source "$KUBE_STATE/env"
  "$KUBESEED" -kubeconfig "$KUBECONFIG_ADMIN" -nodes 20 -pods 300 -seed 7 \
    -summary "$WORK/seed.json" >"$WORK/seed.log" 2>&1 ||
    { tail -20 "$WORK/seed.log" >&2; die "seeding the cluster failed"; }
  # The agent reads with the least-privilege user, as in a real cluster.
  AGENT_KUBECONFIG=$KUBECONFIG_TELEGRAF
  ADMIN_KUBECONFIG=$KUBECONFIG_ADMIN
  echo "seeded: $(jq -r '"\(.nodes | length) nodes, \(.pods.total) pods, CNI \(.cni)"' "$WORK/seed.json") (summary: $WORK/seed.json)"
fi
# The names the vendor must never see: every node name of the cluster.
kubectl --kubeconfig "$ADMIN_KUBECONFIG" get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' \
  >"$WORK/node-names.txt" || die "kubectl cannot list the cluster's nodes"
echo "$(wc -l <"$WORK/node-names.txt") nodes, e.g. $(head -2 "$WORK/node-names.txt" | paste -sd, -)"

# --- the server role ---------------------------------------------------------
section "server (inputs.vmware_telemetry_listener -> outputs.file)"
PORT=$(free_port)
cat >"$WORK/server.conf" <<EOF
[agent]
  interval = "60s"
  flush_interval = "1s"
  flush_jitter = "0s"
  metric_batch_size = 5000
  omit_hostname = true
[[inputs.vmware_telemetry_listener]]
  service_address = "127.0.0.1:$PORT"
  tokens = ["demo-telemetry-token"]
  ## plain HTTP on loopback for the demo; serve TLS (tls_cert, tls_key) in the field
  allow_tokens_over_http = true
  events_path = ""
  acknowledge = "delivered"
  dedup_file = "$WORK/state/listener-dedup.log"
[[outputs.file]]
  files = ["$WORK/lake/telemetry.jsonl"]
  data_format = "json"
  json_timestamp_units = "1ms"
EOF
"$BIN" --config "$WORK/server.conf" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server did not start"; }
  sleep 0.1
done
echo "listening on http://127.0.0.1:$PORT/ph/api/hyper/send, storing into $WORK/lake/telemetry.jsonl"

# --- the agent role, once per level -------------------------------------------
# Two vmware_telemetry outputs with the same key and settings: one sends, one
# previews (writes exactly what it would send), so the operator sees the
# bytes that went out.
agent_conf() {
  local level=$1 identity=""
  [ "$level" = enhanced ] && identity="customer_number = \"$CUSTOMER_NUMBER\"
  installation_label = \"demo-lab\"
  installation_type = \"poc\""
  local common="url = \"http://127.0.0.1:$PORT/ph/api/hyper/send\"
  participation_level = \"$level\"
  $identity
  pseudonym_key_file = \"$WORK/state/telemetry.key\"
  token = \"demo-telemetry-token\"
  use_system_proxy = false
  retry_within_write = \"20s\""
  cat <<EOF
[agent]
  omit_hostname = true
  metric_batch_size = 1000
[[inputs.kube_telemetry]]
  kubeconfig = "$AGENT_KUBECONFIG"
  cluster_name = "demo-cluster"
[[outputs.vmware_telemetry]]
  $common
[[outputs.vmware_telemetry]]
  $common
  preview = true
  preview_file = "$WORK/sent-$level.lp"
EOF
}

sent_count() { # level -> metrics sent (the preview file's comment lines are batch headers)
  [ -s "$WORK/sent-$1.lp" ] || { echo 0; return; }
  grep -c -v '^#' "$WORK/sent-$1.lp" || true
}

# lake_tags LEVEL MEASUREMENT JQ-OBJECT: some tags of the first record stored.
lake_tags() {
  jq -c --arg l "$1" --arg m "$2" "select(.tags.level == \$l and .name == \$m) | .tags | $3 | with_entries(select(.value != null))" \
    "$WORK/lake/telemetry.jsonl" | head -1 | sed "s/^/  $2 /"
}

lake_count() { # level -> records stored at that level
  [ -s "$WORK/lake/telemetry.jsonl" ] || { echo 0; return; }
  jq -s --arg l "$1" '[.[] | select(.tags.level == $l)] | length' "$WORK/lake/telemetry.jsonl"
}

wait_lake() { # level expected
  for _ in $(seq 50); do
    [ "$(lake_count "$1")" -ge "$2" ] && return 0
    sleep 0.2
  done
  return 1
}

for level in "${LEVELS[@]}"; do
  section "agent at participation_level = \"$level\""
  agent_conf "$level" >"$WORK/agent-$level.conf"
  "$BIN" --once --config "$WORK/agent-$level.conf" >"$WORK/agent-$level.log" 2>&1 ||
    { tail -20 "$WORK/agent-$level.log" >&2; die "the agent failed at level $level"; }
  if grep -q ' E! ' "$WORK/agent-$level.log"; then
    grep ' E! ' "$WORK/agent-$level.log" >&2
    die "the agent logged errors at level $level"
  fi
  if [ "$level" = none ]; then
    [ ! -s "$WORK/sent-none.lp" ] || die "something was prepared for sending at level none"
    grep -h 'Participation level none' "$WORK/agent-$level.log" | sed 's/^.*\] /agent: /' | head -1
    echo "sent: nothing; no connection opened; stored at level none: $(lake_count none)"
    continue
  fi
  sent=$(sent_count "$level")
  bytes=$(grep -v '^#' "$WORK/sent-$level.lp" | wc -c)
  grep -h 'Sent batch' "$WORK/agent-$level.log" | sed 's/^.*\] /agent: /'
  echo "sent: $sent metrics, $bytes bytes of line protocol before compression ($WORK/sent-$level.lp)"
  wait_lake "$level" "$sent" || die "the server stored $(lake_count "$level") of $sent metrics at level $level"
  echo "landed: $(lake_count "$level") records in $WORK/lake/telemetry.jsonl tagged level=$level; e.g."
  lake_tags "$level" kube_telemetry_node '{node, role, os_image, kubelet_version, cluster_uid, customer_number}'
  lake_tags "$level" kube_telemetry_cluster '{cluster_name, cluster_uid, customer_number, installation_label, installation_type}'
  leaked=$({ grep -v '^#' "$WORK/sent-$level.lp" | grep -F -o -w -f "$WORK/node-names.txt" || true; } | wc -l)
  identity=$(grep -c "customer_number=$CUSTOMER_NUMBER" "$WORK/sent-$level.lp" || true)
  echo "check: $leaked real node names sent; $identity metrics carry customer_number=$CUSTOMER_NUMBER"
done

section "summary"
printf '%-9s %8s %8s\n' level sent landed
for level in "${LEVELS[@]}"; do
  printf '%-9s %8s %8s\n' "$level" "$(sent_count "$level")" "$(lake_count "$level")"
done
echo "files: $WORK (agent-*.conf, sent-*.lp, lake/telemetry.jsonl, server.log)"
echo "stopping the server${KUBE_STATE:+ and the local kube-apiserver}"
