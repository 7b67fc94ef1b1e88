# Command-line parity of upstream telegraf and telegraf-tkgi, sourced by
# dropin-compare.sh (which sets upstream, tkgi, work, data, passed, fail).
# Each check runs both binaries with the same arguments and compares the exit
# codes and the part of the output a script or an operator relies on.

cli="$data/cli"

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# runboth NAME ARGS...: runs both binaries; output in $work/NAME.{up,tk}.{out,err,rc}.
runboth() {
  local name=$1
  shift
  set +e
  timeout 60 "$upstream" "$@" >"$work/$name.up.out" 2>"$work/$name.up.err"
  echo $? >"$work/$name.up.rc"
  timeout 60 "$tkgi" "$@" >"$work/$name.tk.out" 2>"$work/$name.tk.err"
  echo $? >"$work/$name.tk.rc"
  set -e
}

# same NAME WHAT FILTER: the exit codes and FILTER applied to stdout agree.
same() {
  local name=$1 what=$2 filter=${3:-cat} up tk
  up=$(cat "$work/$name.up.rc") tk=$(cat "$work/$name.tk.rc")
  if [ "$up" != "$tk" ]; then
    bad "$name ($what): exit codes upstream=$up telegraf-tkgi=$tk"
    tail -3 "$work/$name.up.err" | sed 's/^/  upstream: /'
    tail -3 "$work/$name.tk.err" | sed 's/^/  tkgi:     /'
    return
  fi
  if ! diff -u <(sh -c "$filter" <"$work/$name.up.out") <(sh -c "$filter" <"$work/$name.tk.out") >"$work/$name.diff"; then
    bad "$name ($what): output differs (- upstream, + telegraf-tkgi)"
    cat "$work/$name.diff"
    return
  fi
  ok "$name ($what): both exit $up"
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
runboth cli-undefined-flag --no-such-flag
same cli-undefined-flag "undefined flag" "grep -c 'flag provided but not defined: -no-such-flag'"
runboth cli-unknown-command frobnicate
same cli-unknown-command "unknown command"

# --- Version: upstream's first two words ------------------------------------
for v in version --version; do
  runboth "cli-$v" "$v"
  same "cli-$v" "$v prints 'Telegraf <version>' first" "head -1 | cut -d' ' -f1,2"
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
