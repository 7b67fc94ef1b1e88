#!/usr/bin/env bash
# End-to-end check of the test apiserver, the RBAC users and the seeder:
# starts a fresh apiserver in its own state dir, seeds it, recomputes the
# whole seed summary from what kubectl lists (as the read-only user
# "telegraf") and diffs it section by section against the summary kubeseed
# wrote, checks the RBAC users, and stops it again.
#
#   scripts/kube-apiserver-smoke.sh [-nodes N] [-pods P] [-seed S] [-direct-etcd] [-cni C]
#
# Defaults: 50 nodes, 500 pods, through the API. -direct-etcd writes nodes
# and pods straight into etcd (the benchmark path). Needs kubectl and jq.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODES=50 PODS=500 SEED=1 DIRECT=0 CNI=antrea
while [ $# -gt 0 ]; do
  case $1 in
    -nodes) NODES=$2; shift 2 ;;
    -pods) PODS=$2; shift 2 ;;
    -seed) SEED=$2; shift 2 ;;
    -cni) CNI=$2; shift 2 ;;
    -direct-etcd) DIRECT=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "kube-apiserver-smoke: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in kubectl jq curl; do
  command -v "$tool" >/dev/null || { echo "kube-apiserver-smoke: $tool is not installed (Debian package $tool)" >&2; exit 1; }
done

STATE=$(mktemp -d "${TMPDIR:-/tmp}/kube-smoke.XXXXXX")
trap '"$ROOT/scripts/kube-apiserver-down.sh" --purge "$STATE"' EXIT
FAILED=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILED=1; }

t0=$(date +%s.%N)
"$ROOT/scripts/kube-apiserver-up.sh" "$STATE"
t1=$(date +%s.%N)
set -a
# shellcheck disable=SC1091
. "$STATE/env"
set +a
args=(-kubeconfig "$KUBECONFIG_ADMIN" -nodes "$NODES" -pods "$PODS" -seed "$SEED" -cni "$CNI" -summary "$STATE/seed.json")
[ "$DIRECT" = 1 ] && args+=(-direct-etcd "$KUBE_ETCD_ENDPOINT")
"$KUBESEED" "${args[@]}" 2> >(grep -v "context canceled" >&2)
t2=$(date +%s.%N)

K=(kubectl --kubeconfig "$KUBECONFIG_TELEGRAF")
KL=(kubectl --kubeconfig "$KUBECONFIG_TELEGRAF_LIMITED")
D=$STATE/lists
mkdir -p "$D"
for res in nodes pods namespaces services deployments.apps replicasets.apps statefulsets.apps daemonsets.apps \
    jobs.batch cronjobs.batch ingresses.networking.k8s.io ingressclasses.networking.k8s.io \
    storageclasses.storage.k8s.io csidrivers.storage.k8s.io persistentvolumes persistentvolumeclaims \
    customresourcedefinitions.apiextensions.k8s.io; do
  "${K[@]}" get "$res" -A -o json --chunk-size=1000 >"$D/${res%%.*}.json" || bad "listing $res as user telegraf"
done
t3=$(date +%s.%N)

# Quantities as kubectl prints them ("3820m", "16Gi", "8055580263") -> numbers.
JQ_LIB='
def qty: tostring |
  if endswith("m") then (rtrimstr("m") | tonumber) / 1000
  elif endswith("Ki") then (rtrimstr("Ki") | tonumber) * 1024
  elif endswith("Mi") then (rtrimstr("Mi") | tonumber) * 1048576
  elif endswith("Gi") then (rtrimstr("Gi") | tonumber) * 1073741824
  elif endswith("Ti") then (rtrimstr("Ti") | tonumber) * 1099511627776
  elif endswith("k") then (rtrimstr("k") | tonumber) * 1000
  elif endswith("M") then (rtrimstr("M") | tonumber) * 1000000
  elif endswith("G") then (rtrimstr("G") | tonumber) * 1000000000
  else tonumber end;
def cond($t): ([.status.conditions[]? | select(.type == $t) | .status] | first) // "Unknown";
def gpu($l): [$l // {} | to_entries[] | select(.key | endswith("/gpu")) | .value | qty] | add // 0;
'

derived() {
  jq -n -S "$JQ_LIB"'
  def count(f): [.[] | select(f)] | length;
  ($nodes[0].items) as $n | ($pods[0].items) as $p | ($svc[0].items) as $s |
  {
    nodes: [$n[] | {
      name: .metadata.name,
      role: ([.metadata.labels // {} | keys[] | select(startswith("node-role.kubernetes.io/")) | ltrimstr("node-role.kubernetes.io/")] | first // "none"),
      os_image: .status.nodeInfo.osImage, kernel_version: .status.nodeInfo.kernelVersion,
      operating_system: .status.nodeInfo.operatingSystem, architecture: .status.nodeInfo.architecture,
      kubelet_version: .status.nodeInfo.kubeletVersion, container_runtime_version: .status.nodeInfo.containerRuntimeVersion,
      ready: (cond("Ready") == "True"), ready_status: cond("Ready"),
      memory_pressure: (cond("MemoryPressure") == "True"), disk_pressure: (cond("DiskPressure") == "True"),
      pid_pressure: (cond("PIDPressure") == "True"), network_unavailable: (cond("NetworkUnavailable") == "True"),
      unschedulable: (.spec.unschedulable // false),
      cpu_capacity_millicores: (.status.capacity.cpu | qty * 1000 | round),
      memory_capacity_bytes: (.status.capacity.memory | qty),
      pods_capacity: (.status.capacity.pods | qty),
      cpu_allocatable_millicores: (.status.allocatable.cpu | qty * 1000 | round),
      memory_allocatable_bytes: (.status.allocatable.memory | qty),
      pods_allocatable: (.status.allocatable.pods | qty),
      gpu_capacity: gpu(.status.capacity), gpu_allocatable: gpu(.status.allocatable)
    }] | sort_by(.name),
    pods: {
      total: ($p | length),
      pending: ($p | count(.status.phase == "Pending")), running: ($p | count(.status.phase == "Running")),
      succeeded: ($p | count(.status.phase == "Succeeded")), failed: ($p | count(.status.phase == "Failed")),
      unknown: ($p | count(.status.phase == "Unknown")),
      qos_guaranteed: ($p | count(.status.qosClass == "Guaranteed")),
      qos_burstable: ($p | count(.status.qosClass == "Burstable")),
      qos_best_effort: ($p | count(.status.qosClass == "BestEffort")),
      containers: ([$p[] | .spec.containers | length] | add // 0),
      init_containers: ([$p[] | .spec.initContainers // [] | length] | add // 0)
    },
    objects: {
      namespaces: ($ns[0].items | length), deployments: ($deploy[0].items | length),
      replicasets: ($rs[0].items | length), statefulsets: ($sts[0].items | length),
      daemonsets: ($ds[0].items | length), jobs: ($jobs[0].items | length), cronjobs: ($cj[0].items | length),
      services: ($s | length),
      services_cluster_ip: ($s | count(.spec.type == "ClusterIP")),
      services_node_port: ($s | count(.spec.type == "NodePort")),
      services_load_balancer: ($s | count(.spec.type == "LoadBalancer")),
      services_external_name: ($s | count(.spec.type == "ExternalName")),
      services_headless: ($s | count(.spec.clusterIP == "None")),
      ingresses: ($ing[0].items | length), ingress_classes: ($ic[0].items | length),
      storage_classes: ($sc[0].items | length), csi_drivers: ($csi[0].items | length),
      persistent_volumes: ($pv[0].items | length), persistent_volume_claims: ($pvc[0].items | length),
      crds: ($crd[0].items | length)
    },
    storage: [$sc[0].items[] | .metadata.name as $c | {
      storage_class: $c, provisioner: .provisioner,
      persistent_volumes: ([$pv[0].items[] | select(.spec.storageClassName == $c)] | length),
      persistent_volume_claims: ([$pvc[0].items[] | select(.spec.storageClassName == $c)] | length),
      pv_capacity_bytes: ([$pv[0].items[] | select(.spec.storageClassName == $c) | .spec.capacity.storage | qty] | add // 0),
      pvc_requested_bytes: ([$pvc[0].items[] | select(.spec.storageClassName == $c) | .spec.resources.requests.storage | qty] | add // 0)
    }] | sort_by(.storage_class),
    kube_system_uid: ($ns[0].items[] | select(.metadata.name == "kube-system") | .metadata.uid)
  }' \
    --slurpfile nodes "$D/nodes.json" --slurpfile pods "$D/pods.json" --slurpfile svc "$D/services.json" \
    --slurpfile ns "$D/namespaces.json" --slurpfile deploy "$D/deployments.json" --slurpfile rs "$D/replicasets.json" \
    --slurpfile sts "$D/statefulsets.json" --slurpfile ds "$D/daemonsets.json" --slurpfile jobs "$D/jobs.json" \
    --slurpfile cj "$D/cronjobs.json" --slurpfile ing "$D/ingresses.json" --slurpfile ic "$D/ingressclasses.json" \
    --slurpfile sc "$D/storageclasses.json" --slurpfile csi "$D/csidrivers.json" --slurpfile pv "$D/persistentvolumes.json" \
    --slurpfile pvc "$D/persistentvolumeclaims.json" --slurpfile crd "$D/customresourcedefinitions.json"
}
derived >"$STATE/derived.json"
for section in nodes pods objects storage kube_system_uid; do
  if diff <(jq -S ".$section | if type == \"array\" then sort_by(.name // .storage_class) else . end" "$STATE/seed.json") \
          <(jq -S ".$section" "$STATE/derived.json") >"$STATE/diff.$section"; then
    ok "summary .$section equals what kubectl lists"
  else
    bad "summary .$section differs from what kubectl lists (< summary, > kubectl):"
    head -40 "$STATE/diff.$section"
  fi
done
jq -e '.server_version == "'"$(curl -s --cacert "$KUBE_CA_FILE" -H "Authorization: Bearer $KUBE_TOKEN_TELEGRAF" "$KUBE_API_URL/version" | jq -r .gitVersion)"'"' \
  "$STATE/seed.json" >/dev/null && ok "server_version matches /version" || bad "server_version differs from /version"

# Add-ons: the kube-system workloads' desired/ready and image tags.
"${K[@]}" get daemonsets.apps,deployments.apps -n kube-system -o json | jq -S '[.items[] | {
    kind, name: .metadata.name,
    tag: (.spec.template.spec.containers[0].image | split("/") | last | split(":") | .[1]),
    desired: (if .kind == "DaemonSet" then .status.desiredNumberScheduled else .spec.replicas end),
    ready: (if .kind == "DaemonSet" then .status.numberReady else (.status.readyReplicas // 0) end)}]' >"$STATE/kube-system.json"
if jq -e --slurpfile ks "$STATE/kube-system.json" 'all(.addons[]; . as $a |
    any($ks[0][]; .kind == $a.kind and .tag == $a.version and .desired == $a.desired and .ready == $a.ready))' "$STATE/seed.json" >/dev/null; then
  ok "summary .addons match the kube-system workloads ($(jq -r '[.addons[].addon] | join(", ")' "$STATE/seed.json"))"
else
  bad "summary .addons do not match kube-system:"; jq -c '.addons[]' "$STATE/seed.json"; jq -c '.[]' "$STATE/kube-system.json"
fi

# RBAC.
n=$("${K[@]}" get pods -A --no-headers | wc -l)
[ "$n" = "$PODS" ] && ok "kubectl get pods -A as telegraf: $n pods" || bad "kubectl get pods -A as telegraf: $n pods, want $PODS"
[ "$("${K[@]}" auth can-i list secrets 2>/dev/null || true)" = no ] && ok "telegraf cannot list secrets" || bad "telegraf can list secrets"
out=$("${K[@]}" get secrets -A 2>&1 || true)
grep -q 'User "telegraf" cannot list resource "secrets"' <<<"$out" && ok "listing secrets as telegraf: 403" || bad "listing secrets as telegraf: $out"
out=$("${KL[@]}" get persistentvolumes 2>&1 || true)
grep -q 'User "telegraf-limited" cannot list resource "persistentvolumes"' <<<"$out" &&
  ok "telegraf-limited cannot list persistentvolumes" || bad "telegraf-limited persistentvolumes: $out"
n=$("${KL[@]}" get pods -A --no-headers | wc -l)
[ "$n" = "$PODS" ] && ok "telegraf-limited still lists $n pods" || bad "telegraf-limited lists $n pods, want $PODS"
n=$("${KL[@]}" get pvc -A --no-headers | wc -l)
[ "$n" = "$(jq .objects.persistent_volume_claims "$STATE/seed.json")" ] && ok "telegraf-limited still lists $n persistentvolumeclaims" ||
  bad "telegraf-limited lists $n persistentvolumeclaims"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$KUBE_CA_FILE" -H "Authorization: Bearer not-a-token" "$KUBE_API_URL/api/v1/pods")
[ "$code" = 401 ] && ok "a bad token gets 401" || bad "a bad token gets $code"

awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
  printf "timing: up %.1fs, seed %.1fs, kubectl lists %.1fs\n", b - a, c - b, d - c }'
[ "$FAILED" = 0 ] && echo "kube-apiserver-smoke: PASS ($NODES nodes, $PODS pods, seed $SEED$([ "$DIRECT" = 1 ] && echo ", direct etcd"))" ||
  { echo "kube-apiserver-smoke: FAIL"; exit 1; }
