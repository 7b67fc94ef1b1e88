#!/usr/bin/env bash
# Starts a real kube-apiserver and etcd on loopback for the tests.
#
#   scripts/kube-apiserver-up.sh [--foreground] [STATE_DIR]
#
# Builds both (once, from the Go module proxy, see scripts/kube-apiserver/)
# into $CACHE/kube/<version>/, starts etcd and kube-apiserver on random free
# loopback ports with generated certificates and static tokens, applies the
# plugin's ClusterRole for the users "telegraf" and "telegraf-limited" (the
# same role without persistentvolumes), waits for /readyz and writes into
# STATE_DIR (default $KUBE_STATE_DIR or .cache/kube-run):
#
#   env                     KEY=value lines: KUBE_API_URL, KUBECONFIG_*, KUBE_TOKEN_*, ...
#   admin.kubeconfig        group system:masters
#   telegraf.kubeconfig     bound to configs/kubernetes/base/clusterrole.yaml
#   telegraf-limited.kubeconfig   the same role minus persistentvolumes
#   etcd.log kube-apiserver.log, pki/, etcd-data/
#
# KUBE_APISERVER_ARGS adds kube-apiserver flags (e.g. --feature-gates=...).
# KUBE_APISERVER_MODULE names another wrapper module to build kube-apiserver
# from (e.g. scripts/kube-apiserver-1.30, the oldest minor supported); etcd
# and the seeder still come from scripts/kube-apiserver.
# If the cluster in STATE_DIR is already up and ready it is reused. Stop it
# with scripts/kube-apiserver-down.sh [STATE_DIR]. With --foreground the
# script stays attached and stops both on Ctrl-C / SIGTERM.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/telegraf-tkgi}
MOD=$ROOT/scripts/kube-apiserver
APIMOD=${KUBE_APISERVER_MODULE:-$MOD}
case $APIMOD in /*) ;; *) APIMOD=$ROOT/$APIMOD ;; esac
FOREGROUND=0
STATE=${KUBE_STATE_DIR:-$ROOT/.cache/kube-run}
for arg in "$@"; do
  case $arg in
    --foreground) FOREGROUND=1 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "kube-apiserver-up: unknown option $arg" >&2; exit 2 ;;
    *) STATE=$arg ;;
  esac
done
case $STATE in
  *[[:space:]]*) echo "kube-apiserver-up: state dir '$STATE' must not contain spaces (the env file is KEY=value)" >&2; exit 2 ;;
esac
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

log() { echo "kube-apiserver-up: $*" >&2; }
die() { log "$*"; exit 1; }
for tool in go openssl curl kubectl flock; do
  command -v "$tool" >/dev/null || die "$tool is not installed (needed to build/run the test apiserver)"
done

K8S_VERSION=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$APIMOD/go.mod")
ETCD_VERSION=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$MOD/go.mod")
[ -n "$K8S_VERSION" ] && [ -n "$ETCD_VERSION" ] || die "cannot read versions from $MOD/go.mod"
BIN=$CACHE/kube/$K8S_VERSION
# The binaries are rebuilt when the pinned versions, the staging replaces or
# the Go toolchain change (not for the seeder's own test dependencies).
STAMP=$( (echo "$K8S_VERSION $ETCD_VERSION"; sed -n '/^replace (/,/^)/p' "$APIMOD/go.mod"; go version) | sha256sum | cut -c1-16)
MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)

# --- build (once; flock so concurrent callers wait for one build) -----------
build() {
  mkdir -p "$BIN"
  exec 8>"$CACHE/kube/.build.lock"
  flock 8
  local tmp
  export GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false
  if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/etcd" ] || [ "$(cat "$BIN/.stamp" 2>/dev/null)" != "$STAMP" ]; then
    log "building kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION into $BIN (cold: several minutes, ~2 GB RAM)"
    local start=$SECONDS
    tmp=$(mktemp -d "$BIN/.build.XXXXXX")
    (cd "$APIMOD" && go build -trimpath -ldflags "-s -w \
        -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
        -X k8s.io/component-base/version.gitMajor=1 \
        -X k8s.io/component-base/version.gitMinor=$MINOR \
        -X k8s.io/component-base/version.gitTreeState=clean" \
        -o "$tmp/" ./cmd/kube-apiserver &&
      cd "$MOD" && go build -trimpath -ldflags "-s -w" -o "$tmp/" ./cmd/etcd) || { rm -rf "$tmp"; die "building kube-apiserver/etcd failed"; }
    mv -f "$tmp/kube-apiserver" "$tmp/etcd" "$BIN/" && rm -rf "$tmp"
    echo "$STAMP" >"$BIN/.stamp"
    log "built in $((SECONDS - start))s"
  fi
  # The seeder changes more often: rebuild it when its sources are newer.
  if [ ! -x "$BIN/kubeseed" ] || [ -n "$(find "$MOD/cmd/kubeseed" "$MOD/go.mod" "$MOD/go.sum" -newer "$BIN/kubeseed" -print -quit)" ]; then
    tmp=$(mktemp -d "$BIN/.build.XXXXXX")
    (cd "$MOD" && go build -trimpath -ldflags "-s -w" -o "$tmp/kubeseed" ./cmd/kubeseed) || { rm -rf "$tmp"; die "building kubeseed failed"; }
    mv -f "$tmp/kubeseed" "$BIN/kubeseed" && rm -rf "$tmp"
  fi
  flock -u 8
  exec 8>&-
}
mkdir -p "$CACHE/kube"
build

# --- one up/down at a time per state dir -------------------------------------
exec 9>"$STATE/.lock"
flock 9

alive() { # pid binary: is pid still that binary of ours?
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q "^$2 "
}
foreground() {
  flock -u 9
  exec 9>&-
  [ "$FOREGROUND" = 1 ] || exit 0
  trap '"$ROOT/scripts/kube-apiserver-down.sh" "$STATE"; exit 0' INT TERM
  log "foreground: Ctrl-C stops it"
  while alive "$(cat "$STATE/kube-apiserver.pid" 2>/dev/null)" "$BIN/kube-apiserver"; do sleep 1; done
  log "kube-apiserver exited"
  tail_logs
  "$ROOT/scripts/kube-apiserver-down.sh" "$STATE" >/dev/null 2>&1 || true
  exit 1
}
tail_logs() {
  for f in etcd.log kube-apiserver.log; do
    [ -f "$STATE/$f" ] || continue
    echo "----- last lines of $STATE/$f -----" >&2
    tail -n 40 "$STATE/$f" >&2
  done
}
if [ -f "$STATE/env" ] && [ -f "$STATE/kube-apiserver.pid" ] &&
   alive "$(cat "$STATE/kube-apiserver.pid")" "$BIN/kube-apiserver"; then
  # shellcheck disable=SC1091
  . "$STATE/env"
  if curl -sf --max-time 5 --cacert "$KUBE_CA_FILE" -H "Authorization: Bearer $KUBE_TOKEN_ADMIN" "$KUBE_API_URL/readyz" >/dev/null; then
    log "already running at $KUBE_API_URL (state $STATE); reusing it"
    foreground
  fi
fi
# Anything left over from an earlier run is stopped and wiped.
"$ROOT/scripts/kube-apiserver-down.sh" --locked "$STATE" >/dev/null 2>&1 || true
rm -rf "$STATE/etcd-data" "$STATE/pki" "$STATE"/*.kubeconfig "$STATE/env" "$STATE/tokens.csv"

# --- ports --------------------------------------------------------------------
used_ports() { ss -Hltn 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }'; }
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    used_ports | grep -qx "$port" && continue
    case " ${PICKED:-} " in *" $port "*) continue ;; esac
    PICKED="${PICKED:-} $port"
    echo "$port"
    return
  done
}

# --- certificates and tokens ---------------------------------------------------
PKI=$STATE/pki
mkdir -p "$PKI"
(
  cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kube-test-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile server.ext -out server.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  rm -f server.csr server.ext ca.srl
) || die "generating certificates with openssl failed"
TOKEN_ADMIN=$(openssl rand -hex 24)
TOKEN_TELEGRAF=$(openssl rand -hex 24)
TOKEN_LIMITED=$(openssl rand -hex 24)
umask 077
cat >"$STATE/tokens.csv" <<EOF
$TOKEN_ADMIN,admin,admin-uid,"system:masters"
$TOKEN_TELEGRAF,telegraf,telegraf-uid
$TOKEN_LIMITED,telegraf-limited,telegraf-limited-uid
EOF
umask 022

# --- start ---------------------------------------------------------------------
fail() {
  log "$*"
  tail_logs
  "$ROOT/scripts/kube-apiserver-down.sh" --locked "$STATE" >/dev/null 2>&1 || true
  exit 1
}

start_etcd() {
  ETCD_PORT=$(free_port)
  ETCD_PEER_PORT=$(free_port)
  ETCD_URL=http://127.0.0.1:$ETCD_PORT
  # No fsync and an 8 GiB quota: test data, big seeds.
  setsid "$BIN/etcd" --name kube-test --data-dir "$STATE/etcd-data" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "kube-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes $((8 << 30)) \
    --log-level warn >"$STATE/etcd.log" 2>&1 </dev/null &
  echo $! >"$STATE/etcd.pid"
  for _ in $(seq 100); do
    curl -sf --max-time 1 "$ETCD_URL/health" | grep -q '"health":"true"' && return 0
    alive "$(cat "$STATE/etcd.pid")" "$BIN/etcd" || return 1
    sleep 0.1
  done
  return 1
}

start_apiserver() {
  API_PORT=$(free_port)
  API_URL=https://127.0.0.1:$API_PORT
  setsid "$BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address=127.0.0.1 \
    --etcd-servers="$ETCD_URL" \
    --tls-cert-file="$PKI/server.crt" --tls-private-key-file="$PKI/server.key" \
    --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --endpoint-reconciler-type=none \
    --authorization-mode=RBAC --token-auth-file="$STATE/tokens.csv" --anonymous-auth=false \
    --allow-privileged=true --profiling=false \
    --v=1 ${KUBE_APISERVER_ARGS:-} >"$STATE/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$STATE/kube-apiserver.pid"
  # A restart over 150k stored pods takes ~20 s to fill the watch cache.
  for _ in $(seq 1200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$PKI/ca.crt" \
        -H "Authorization: Bearer $TOKEN_ADMIN" "$API_URL/readyz")" = 200 ] && return 0
    alive "$(cat "$STATE/kube-apiserver.pid")" "$BIN/kube-apiserver" || return 1
    sleep 0.1
  done
  return 1
}

START=$(date +%s.%N)
# A port picked free can be taken before the process binds it: retry then.
for attempt in 1 2 3; do
  if start_etcd; then break; fi
  grep -q "address already in use" "$STATE/etcd.log" 2>/dev/null && [ "$attempt" -lt 3 ] &&
    { kill "$(cat "$STATE/etcd.pid")" 2>/dev/null || true; rm -rf "$STATE/etcd-data"; continue; }
  fail "etcd did not become healthy on $ETCD_URL"
done
for attempt in 1 2 3; do
  if start_apiserver; then break; fi
  grep -q "address already in use" "$STATE/kube-apiserver.log" 2>/dev/null && [ "$attempt" -lt 3 ] && continue
  fail "kube-apiserver did not become ready at $API_URL"
done
READY=$(date +%s.%N)

# --- kubeconfigs ---------------------------------------------------------------
CA_DATA=$(base64 -w0 <"$PKI/ca.crt")
kubeconfig() { # file user token
  cat >"$STATE/$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kube-test
  cluster:
    server: $API_URL
    certificate-authority-data: $CA_DATA
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@kube-test
  context:
    cluster: kube-test
    user: $2
current-context: $2@kube-test
EOF
  chmod 600 "$STATE/$1"
}
kubeconfig admin.kubeconfig admin "$TOKEN_ADMIN"
kubeconfig telegraf.kubeconfig telegraf "$TOKEN_TELEGRAF"
kubeconfig telegraf-limited.kubeconfig telegraf-limited "$TOKEN_LIMITED"

# --- RBAC ----------------------------------------------------------------------
ROLE_FILE=$ROOT/configs/kubernetes/base/clusterrole.yaml
ROLE=$(awk '/^metadata:/ { m = 1 } m && $1 == "name:" { print $2; exit }' "$ROLE_FILE")
[ -n "$ROLE" ] || fail "cannot find the ClusterRole name in $ROLE_FILE"
KA=(kubectl --kubeconfig "$STATE/admin.kubeconfig")
{
  "${KA[@]}" apply -f "$ROLE_FILE"
  "${KA[@]}" create clusterrolebinding telegraf-tkgi-kube-telemetry --clusterrole="$ROLE" --user=telegraf
  # The same role without persistentvolumes, to prove that one forbidden
  # resource is reported while the rest still works.
  sed -e "s/^\(  name: \)$ROLE\$/\1$ROLE-limited/" \
      -e 's/\bpersistentvolumes, //; s/, persistentvolumes\b\([],]\)/\1/' "$ROLE_FILE" | "${KA[@]}" apply -f -
  "${KA[@]}" create clusterrolebinding telegraf-tkgi-kube-telemetry-limited --clusterrole="$ROLE-limited" --user=telegraf-limited
} >"$STATE/rbac.log" 2>&1 || { cat "$STATE/rbac.log" >&2; fail "applying RBAC failed"; }
can() { "${KA[@]}" auth can-i "$@" 2>/dev/null || true; }
[ "$(can list pods --as=telegraf)" = yes ] || fail "user telegraf cannot list pods after applying $ROLE_FILE"
[ "$(can list persistentvolumes --as=telegraf)" = yes ] || fail "user telegraf cannot list persistentvolumes: does $ROLE_FILE still grant them?"
[ "$(can list persistentvolumes --as=telegraf-limited)" = no ] || fail "the limited role still grants persistentvolumes (sed on $ROLE_FILE missed)"
[ "$(can list pods --as=telegraf-limited)" = yes ] || fail "user telegraf-limited cannot list pods"

# --- env -----------------------------------------------------------------------
cat >"$STATE/env.tmp" <<EOF
KUBE_TEST_DIR=$STATE
KUBE_BIN_DIR=$BIN
KUBE_VERSION=$K8S_VERSION
KUBE_API_URL=$API_URL
KUBE_CA_FILE=$PKI/ca.crt
KUBE_ETCD_ENDPOINT=$ETCD_URL
KUBECONFIG_ADMIN=$STATE/admin.kubeconfig
KUBECONFIG_TELEGRAF=$STATE/telegraf.kubeconfig
KUBECONFIG_TELEGRAF_LIMITED=$STATE/telegraf-limited.kubeconfig
KUBE_TOKEN_ADMIN=$TOKEN_ADMIN
KUBE_TOKEN_TELEGRAF=$TOKEN_TELEGRAF
KUBE_TOKEN_TELEGRAF_LIMITED=$TOKEN_LIMITED
KUBESEED=$BIN/kubeseed
KUBE_APISERVER_PID=$(cat "$STATE/kube-apiserver.pid")
ETCD_PID=$(cat "$STATE/etcd.pid")
EOF
mv "$STATE/env.tmp" "$STATE/env"
log "ready at $API_URL in $(awk -v a="$START" -v b="$READY" 'BEGIN { printf "%.1f", b - a }')s (etcd $ETCD_URL); env: $STATE/env"
foreground
