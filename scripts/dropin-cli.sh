# Command-line parity of upstream telegraf and telegraf-tkgi, sourced by
# dropin-compare.sh (which sets upstream, tkgi, work, data, passed, fail).
# Each check runs both binaries with the same arguments and compares the exit
# codes and the part of the output a script or an operator relies on.

cli="$data/cli"

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# runboth NAME ARGS...: runs both binaries (each under "${wrap[@]}" when
# set); output in $work/NAME.{up,tk}.{out,err,rc}. A config's file output
# (${DROPIN_OUT}) goes to $outdir/NAME.{up,tk}.file ($outdir: $work).
wrap=()
runboth() {
  local name=$1
  shift
  set +e
  DROPIN_OUT="${outdir:-$work}/$name.up.file" timeout 60 "${wrap[@]}" "$upstream" "$@" >"$work/$name.up.out" 2>"$work/$name.up.err"
  echo $? >"$work/$name.up.rc"
  DROPIN_OUT="${outdir:-$work}/$name.tk.file" timeout 60 "${wrap[@]}" "$tkgi" "$@" >"$work/$name.tk.out" 2>"$work/$name.tk.err"
  echo $? >"$work/$name.tk.rc"
  set -e
}

# same NAME WHAT FILTER [STREAM]: the exit codes and FILTER applied to
# stdout (STREAM=err: stderr) agree.
same() {
  local name=$1 what=$2 filter=${3:-cat} stream=${4:-out} up tk
  up=$(cat "$work/$name.up.rc") tk=$(cat "$work/$name.tk.rc")
  if [ "$up" != "$tk" ]; then
    bad "$name ($what): exit codes upstream=$up telegraf-tkgi=$tk"
    tail -3 "$work/$name.up.err" | sed 's/^/  upstream: /'
    tail -3 "$work/$name.tk.err" | sed 's/^/  tkgi:     /'
    return
  fi
  if ! diff -u <(sh -c "$filter" <"$work/$name.up.$stream") <(sh -c "$filter" <"$work/$name.tk.$stream") >"$work/$name.diff"; then
    bad "$name ($what): std$stream differs (- upstream, + telegraf-tkgi)"
    cat "$work/$name.diff"
    return
  fi
  ok "$name ($what): both exit $up"
}

# samefile NAME WHAT FILTER: both runs wrote $work/NAME.{up,tk}.file alike
# (FILTER applied), or neither wrote it.
samefile() {
  local name=$1 what=$2 filter=${3:-cat} up=absent tk=absent
  [ -e "$work/$name.up.file" ] && up=$(sh -c "$filter" <"$work/$name.up.file")
  [ -e "$work/$name.tk.file" ] && tk=$(sh -c "$filter" <"$work/$name.tk.file")
  if [ "$up" = "$tk" ]; then
    ok "$name ($what): file $([ "$up" = absent ] && echo 'written by neither' || echo 'alike')"
  else
    bad "$name ($what): files differ (- upstream, + telegraf-tkgi)"
    diff -u <(echo "$up") <(echo "$tk") || true
  fi
}

# Log lines without their timestamp, for comparing what the agent loaded.
loaded() { sed -nE 's/^[^ ]+ I! (Loaded (inputs|outputs|secretstores): .*)/\1/p' "$1"; }

# --- Flags and commands, read from upstream's help ---------------------------
up_help=$("$upstream" --help)
tk_help=$("$tkgi" --help)
flags=$(sed -n '/^GLOBAL OPTIONS:/,$p' <<<"$up_help" | grep -oE '^ +--[a-z0-9-]+' | tr -d ' ' | sort -u)
missing=""
for f in $flags; do
  grep -qE "^ +$f[ ,]" <<<"$tk_help" || missing="$missing $f"
done
if [ -n "$missing" ]; then
  bad "global flags: telegraf-tkgi --help lacks$missing"
else
  ok "global flags: all $(wc -w <<<"$flags") of upstream's defined"
fi

commands() { sed -n '/^COMMANDS:/,/^$/p' | grep -oE '^ +[a-z]+' | tr -d ' ' | grep -vx help; }
options() { sed -n '/^OPTIONS:/,$p' | grep -oE '^ +--[a-z0-9-]+' | tr -d ' ' | sort -u; }
# suboptions CMD...: the flags of upstream's CMD that telegraf-tkgi's CMD lacks.
suboptions() { comm -23 <("$upstream" "$@" --help | options) <("$tkgi" "$@" --help | options) | tr '\n' ' '; }
missing=""
ncmds=0
for c in $(commands <<<"$up_help"); do
  ncmds=$((ncmds + 1))
  grep -qE "^ +$c[ ,]" <<<"$tk_help" || { missing="$missing $c"; continue; }
  tk_sub=$("$tkgi" "$c" --help)
  [ -z "$(suboptions "$c")" ] || missing="$missing $c($(suboptions "$c"))"
  for s in $("$upstream" "$c" --help | commands); do
    ncmds=$((ncmds + 1))
    grep -qE "^ +$s[ ,]" <<<"$tk_sub" || { missing="$missing $c/$s"; continue; }
    lacks=$(suboptions "$c" "$s")
    [ -z "$lacks" ] || missing="$missing $c/$s($lacks)"
  done
done
if [ -n "$missing" ]; then
  bad "commands: telegraf-tkgi lacks$missing"
else
  ok "commands: all $ncmds of upstream's commands and subcommands defined with their options"
fi

runboth cli-plugins-inputs plugins inputs
same cli-plugins-inputs "plugins inputs lists one category" "grep -vc '^inputs\.'"

# The same flag library: an undefined flag and an unknown command fail alike.
runboth cli-config-check config check --config "$cli/idle.conf"
same cli-config-check "config check is silent on success"
printf '[[inputs.mem]]\n  no_such_option = 1\n' >"$work/bad-check.conf"
runboth cli-config-check-bad config check --config "$work/bad-check.conf"
same cli-config-check-bad "config check of a bad option fails"
# config check and environment variables: without a flag upstream checks
# non-strictly and warns that the agent is strict; a variable replacing a
# non-string value passes only then (or with --non-strict-env-handling); an
# unset one fails either way. --old-env-behavior is the agent's alone.
envlines="sed -nE '/ W! .*nvironment variable/{s/.*/warn: environment variables/p;d}; / W! .*skip_processors_after_aggregators/{s/.*/warn: skip_processors_after_aggregators/p;d}; / E! /{s/.*/error/p;d}'"
for set in unset set; do
  for flag in "" --strict-env-handling --non-strict-env-handling; do
    name="cli-check-env-$set${flag:+-${flag#--}}"
    if [ "$set" = set ]; then
      DROPIN_UNSET_INTERVAL='"5s"' runboth "$name" config check $flag --config "$cli/env.conf"
    else
      runboth "$name" config check $flag --config "$cli/env.conf"
    fi
    same "$name" "config check, variable $set, ${flag:-no env flag}: silent stdout"
    same "$name" "config check, variable $set, ${flag:-no env flag}: warnings and errors" "$envlines" err
  done
done
DROPIN_UNSET_INTERVAL='"5s"' runboth cli-check-env-both config check --strict-env-handling --non-strict-env-handling --config "$cli/env.conf"
same cli-check-env-both "config check with both env flags fails"
DROPIN_UNSET_INTERVAL='"5s"' runboth cli-check-env-old --old-env-behavior config check --config "$cli/env.conf"
same cli-check-env-old "--old-env-behavior before config check" "$envlines" err
runboth cli-undefined-flag --no-such-flag
same cli-undefined-flag "undefined flag" "grep -c 'flag provided but not defined: -no-such-flag'"
runboth cli-unknown-command frobnicate
same cli-unknown-command "unknown command"

# --- Version: upstream's release shape ------------------------------------
# Upstream is built with its release ldflags, so its line reads "Telegraf
# <version> (git: <branch>@<commit>)". The shape telegraf-tkgi must have is
# derived from it: the same words up to the parenthesis, one parenthesised
# part, one line.
for v in version --version; do
  runboth "cli-$v" "$v"
  up_line=$(cat "$work/cli-$v.up.out")
  if ! grep -qxE 'Telegraf [0-9]+\.[0-9]+\.[0-9]+ \(git: [^@ ]+@[0-9a-f]+\)' <<<"$up_line"; then
    bad "cli-$v: upstream is not a release build: $up_line"
    continue
  fi
  shape="^$(sed -E 's/^(Telegraf [^ ]+ )\(.*$/\1/; s/[.]/\\./g' <<<"$up_line")\\([^()]+\\)\$"
  same "cli-$v" "$v has the shape $shape" "sed -E 's|$shape|(shape)|'"
done

# --- Filters: unknown names are ignored, the rest runs ----------------------
runboth cli-filter --config "$cli/labels.conf" --input-filter mem:nosuch --output-filter nosuch:discard --once
same cli-filter "unknown filter names"
if diff <(loaded "$work/cli-filter.up.err") <(loaded "$work/cli-filter.tk.err") >/dev/null; then
  ok "cli-filter: both loaded $(loaded "$work/cli-filter.tk.err" | tr '\n' ' ')"
else
  bad "cli-filter: loaded plugins differ"; diff <(loaded "$work/cli-filter.up.err") <(loaded "$work/cli-filter.tk.err") || true
fi
runboth cli-config-filter config --section-filter agent:inputs:bogus --input-filter mem:nosuch
same cli-config-filter "config ignores unknown filter names" "grep -E '^\[(agent|\[inputs\.[a-z_]+)\]'"
runboth cli-filter-none --config "$cli/labels.conf" --input-filter nosuch --once
same cli-filter-none "a filter matching no input fails"

# --- --select (plugin labels) ------------------------------------------------
keys="$work/lpkeys"
i=0
for sel in "app=web" "app=*;tier=front" "app=db --select tier=front" "app=nomatch"; do
  i=$((i + 1))
  # shellcheck disable=SC2086 # word-split the second --select on purpose
  runboth "cli-select-$i" --config "$cli/labels.conf" --test --select $sel
  same "cli-select-$i" "--select $sel" "$keys"
done
runboth cli-select-bad --config "$cli/labels.conf" --test --select app
same cli-select-bad "--select without '=' fails"

# --- pprof on a taken port: the agent stops ---------------------------------
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(300)' >"$work/port" &
holder=$!
until [ -s "$work/port" ]; do sleep 0.1; done
runboth cli-pprof --config "$cli/idle.conf" --pprof-addr "127.0.0.1:$(cat "$work/port")"
kill "$holder"
same cli-pprof "--pprof-addr on a taken port stops the agent (124 would be still running)"

# --- Run modes: --once, --test-wait, --debug, --quiet, --pidfile ------------
# levels: the log levels a run used, in order of first use.
levels="sed -nE 's/^[^ ]+ ([DIWE])! .*/\1/p' | awk '!seen[\$0]++'"
runboth cli-once --config "$cli/once.conf" --once
same cli-once "--once prints nothing"
samefile cli-once "--once writes one gather to the file output" "$keys"
runboth cli-test-wait --config "$cli/once.conf" --test-wait 1
same cli-test-wait "--test-wait alone is test mode" "$keys"
samefile cli-test-wait "--test-wait alone leaves outputs unused"
runboth cli-once-wait --config "$cli/once.conf" --once --test-wait 1
samefile cli-once-wait "--once --test-wait writes one gather" "$keys"
runboth cli-debug --config "$cli/once.conf" --once --debug
same cli-debug "--debug adds debug lines" "$levels | sort" err
runboth cli-no-debug --config "$cli/once.conf" --once
same cli-no-debug "without --debug no debug lines" "$levels | grep -c D" err
# With an env flag given, nothing is logged before --quiet applies.
runboth cli-quiet --config "$cli/once.conf" --once --quiet --strict-env-handling
same cli-quiet "--quiet logs nothing when all goes well" "$levels" err
samefile cli-quiet "--quiet still writes the gather" "$keys"
outdir=/nonexistent runboth cli-quiet-error --config "$cli/once.conf" --once --quiet --strict-env-handling
same cli-quiet-error "--quiet logs only the error" "$levels" err
runboth cli-env-warning --config "$cli/once.conf" --once --quiet
same cli-env-warning "without an env flag, a warning even with --quiet" "$levels" err

# pidrun NAME BIN SIDE ARGS...: runs BIN in the background, waits (30 s at
# most) for its pidfile, stops it with SIGTERM; NAME.SIDE.out says whether
# the pidfile held the pid and whether it was left after exit.
pidrun() {
  local name=$1 bin=$2 side=$3 pid held=none
  shift 3
  local pidfile="$work/$name.$side.pid"
  "$bin" "$@" --pidfile "$pidfile" >/dev/null 2>"$work/$name.$side.err" &
  pid=$!
  for _ in $(seq 300); do
    [ -s "$pidfile" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -s "$pidfile" ]; then
    [ "$(cat "$pidfile")" = "$pid" ] && held="its pid" || held="$(cat "$pidfile")"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  set +e
  wait "$pid"
  echo $? >"$work/$name.$side.rc"
  set -e
  echo "pidfile held: $held; after exit: $([ -e "$pidfile" ] && echo kept || echo removed)" >"$work/$name.$side.out"
}
pidrun cli-pidfile "$upstream" up --config "$cli/idle.conf"
pidrun cli-pidfile "$tkgi" tk --config "$cli/idle.conf"
same cli-pidfile "--pidfile holds the pid while running: $(cat "$work/cli-pidfile.tk.out")"
runboth cli-pidfile-once --config "$cli/once.conf" --once --pidfile "$work/once.pid"
if [ -e "$work/once.pid" ]; then
  bad "cli-pidfile-once: a pidfile was left by --once"
else
  same cli-pidfile-once "--once --pidfile"
fi

# --- Flags that print and exit, and flag conflicts --------------------------
runboth cli-input-list --input-list
same cli-input-list "--input-list" "sed -n 2p"
runboth cli-output-list --output-list
same cli-output-list "--output-list" "sed -n 2p"
runboth cli-deprecation-list --deprecation-list
same cli-deprecation-list "--deprecation-list" "grep '^Deprecated'"
runboth cli-sample-config --sample-config --section-filter inputs --input-filter mem
same cli-sample-config "--sample-config" "grep -c '^\[\[inputs.mem\]\]'"
runboth cli-usage --usage mem
same cli-usage "--usage" "grep -c '^\[\[inputs.mem\]\]'"
runboth cli-env-both --config "$cli/labels.conf" --strict-env-handling --non-strict-env-handling --once
same cli-env-both "--strict-env-handling with --non-strict-env-handling fails"
runboth cli-old-env --config "$cli/labels.conf" --old-env-behavior --strict-env-handling --test
same cli-old-env "--old-env-behavior" "$keys"
runboth cli-plugin-dir --config "$cli/labels.conf" --plugin-directory "$work" --once
same cli-plugin-dir "--plugin-directory (no Go plugin support in either build)"
runboth cli-sources --config "$cli/labels.conf" --print-plugin-config-source --once
same cli-sources "--print-plugin-config-source"
if grep -q "$cli/labels.conf" "$work/cli-sources.up.err" && grep -q "$cli/labels.conf" "$work/cli-sources.tk.err"; then
  ok "cli-sources: both name the config file"
else
  bad "cli-sources: the plugin sources do not name $cli/labels.conf"
fi

# --- Secrets: a jose store written by one binary is read by the other -------
secrets() { # secrets NAME DIR ARGS...: both binaries, each on its own DIR.up / DIR.tk
  local name=$1 dir=$2
  shift 2
  set +e
  DROPIN_SECRETS="$dir.up" "$upstream" --config "$cli/secrets.conf" "$@" >"$work/$name.up.out" 2>"$work/$name.up.err"
  echo $? >"$work/$name.up.rc"
  DROPIN_SECRETS="$dir.tk" "$tkgi" --config "$cli/secrets.conf" "$@" >"$work/$name.tk.out" 2>"$work/$name.tk.err"
  echo $? >"$work/$name.tk.rc"
  set -e
}
secrets cli-secrets-set "$work/own" --password pw secrets set vault token s3cr3t
same cli-secrets-set "secrets set"
# Swap the stores: each binary reads what the other wrote.
mv "$work/own.up" "$work/swap.tk" && mv "$work/own.tk" "$work/swap.up"
secrets cli-secrets-get "$work/swap" --password pw secrets get vault token
same cli-secrets-get "secrets get of the other binary's store"
secrets cli-secrets-list "$work/swap" --password pw secrets list --reveal-secret
same cli-secrets-list "secrets list --reveal-secret"
secrets cli-secrets-filter "$work/swap" --password pw --secretstore-filter http secrets list
same cli-secrets-filter "--secretstore-filter"
secrets cli-secrets-badpw "$work/swap" --password wrong secrets get vault token
same cli-secrets-badpw "wrong --password fails"
secrets cli-secrets-nostore "$work/swap" --password pw secrets get nostore token
same cli-secrets-nostore "unknown store fails"

# --- Secrets: the systemd and docker stores read files -----------------------
# The systemd store asks systemd's version over D-Bus before it reads
# $CREDENTIALS_DIRECTORY. A real systemd answers: its user manager, started
# in a private mount namespace whose /run says the host booted with systemd,
# on a bus in $work; the binaries reach it as their system bus.
sd="$work/systemd"
mkdir -p "$sd/home" && mkdir -m 0700 "$sd/run"
HOME="$sd/home" XDG_RUNTIME_DIR="$sd/run" unshare -m --propagation private \
  sh -c 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec /usr/lib/systemd/systemd --user' \
  >"$sd/log" 2>&1 &
sdpid=$!
trap 'kill "$sdpid" 2>/dev/null; wait "$sdpid" 2>/dev/null; rm -rf "$work"' EXIT
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$sd/run/bus"
sdversion=""
for _ in $(seq 300); do
  sdversion=$(busctl --system get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.systemd1.Manager Version 2>/dev/null) && break
  kill -0 "$sdpid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$sdversion" ] || { bad "systemd: its user manager did not answer on $DBUS_SYSTEM_BUS_ADDRESS"; cat "$sd/log"; }
# Started by systemd as a Type=notify service, as upstream's unit file has
# it: the start completes only once the process sends READY=1.
notifyrun() { # notifyrun SIDE BIN
  local unit="dropin-notify-$1"
  set +e
  XDG_RUNTIME_DIR="$sd/run" timeout 60 systemd-run --user --quiet --unit="$unit" -p Type=notify -p TimeoutStartSec=20 \
    "$2" --config "$cli/idle.conf" >"$work/cli-notify.$1.out" 2>"$work/cli-notify.$1.err"
  echo $? >"$work/cli-notify.$1.rc"
  XDG_RUNTIME_DIR="$sd/run" systemctl --user show -p ActiveState -p SubState "$unit" >>"$work/cli-notify.$1.out"
  XDG_RUNTIME_DIR="$sd/run" systemctl --user stop "$unit" 2>/dev/null
  XDG_RUNTIME_DIR="$sd/run" systemctl --user reset-failed "$unit" 2>/dev/null
  set -e
}
notifyrun up "$upstream"
notifyrun tk "$tkgi"
same cli-notify "Type=notify service: $(tr '\n' ' ' <"$work/cli-notify.tk.out")"

# A service's credentials as systemd lays them out: a private read-only
# folder, one read-only file per credential, named by the credential's id
# (the store strips its "telegraf." prefix).
creds="$work/credentials/telegraf.service"
mkdir -p "$creds"
printf 's3cr3t-systemd' >"$creds/telegraf.scrape_password"
printf 'line one\nline two\n' >"$creds/telegraf.multiline"
chmod 0400 "$creds"/* && chmod 0500 "$creds"
export CREDENTIALS_DIRECTORY="$creds"
# Docker secrets: one file per secret under the store's folder.
docker_secrets="$work/docker-secrets"
mkdir -p "$docker_secrets"
printf 'agent' >"$docker_secrets/scrape_user"
printf 's3cr3t-docker' >"$docker_secrets/api_key"
export DROPIN_DOCKER_SECRETS="$docker_secrets"

runboth cli-secrets-files-list --config "$cli/secretfiles.conf" secrets list --reveal-secret
same cli-secrets-files-list "systemd and docker stores: secrets list --reveal-secret"
runboth cli-secrets-systemd-get --config "$cli/secretfiles.conf" secrets get creds multiline
same cli-secrets-systemd-get "systemd store: secrets get"
runboth cli-secrets-docker-get --config "$cli/secretfiles.conf" secrets get dock api_key
same cli-secrets-docker-get "docker store: secrets get"
runboth cli-secrets-traversal --config "$cli/secretfiles.conf" secrets get dock ../credentials
same cli-secrets-traversal "docker store refuses a key outside its folder"
CREDENTIALS_DIRECTORY="" runboth cli-secrets-systemd-nodir --config "$cli/secretfiles.conf" secrets list creds
same cli-secrets-systemd-nodir "systemd store without CREDENTIALS_DIRECTORY fails"

# A plugin resolves @{creds:...} and @{dock:...}: the docker store at its
# default /run/secrets, a tmpfs in a private mount namespace as Docker
# mounts it; the scrape succeeds only with both values.
python3 -c '
import base64, http.server, sys
want = "Basic " + base64.b64encode(b"agent:s3cr3t-systemd").decode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get("Authorization") == want
        body = b"# TYPE scraped_ok gauge\nscraped_ok 1\n" if ok else b"unauthorized\n"
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()' >"$work/scrape.port" &
scraper=$!
until [ -s "$work/scrape.port" ]; do sleep 0.1; done
export DROPIN_SCRAPE_URL="http://127.0.0.1:$(cat "$work/scrape.port")/metrics"
wrap=(unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /run && mkdir /run/secrets &&
  cp "$DROPIN_DOCKER_SECRETS"/* /run/secrets/ && exec "$@"' sh)
runboth cli-secrets-use --config "$cli/secretuse.conf" --test
wrap=()
kill "$scraper"
same cli-secrets-use "a plugin's credentials from the systemd and docker stores" "$keys"
if grep -q '^> scraped_ok' "$work/cli-secrets-use.tk.out"; then
  ok "cli-secrets-use: telegraf-tkgi scraped with the stored credentials"
else
  bad "cli-secrets-use: telegraf-tkgi did not scrape"; tail -5 "$work/cli-secrets-use.tk.err"
fi
