#!/usr/bin/env bash
# lookout at fleet scale, on one machine and on loopback only:
#
#   N lookout agents (hosts fleet-01 .. fleet-N, each with its own port and data directory)
#   -> a two-member Alertmanager cluster (every agent posts every alert to both members)
#   -> a webhook receiver (tests/support/http_receiver.py, one JSON line per POST)
#   and Prometheus scraping every agent and evaluating the agents' own rules, exported with
#   `lookout rules export --format prometheus`, sending its alerts to the same cluster.
#
# Every agent fires one alert (LookoutFleetWatchdog, watchdog.yaml). The run passes when the
# receiver got each host's alert EXACTLY once (the cluster deduplicated the two copies, and
# the agents' periodic re-sends did not notify again), every Alertmanager holds every host's
# alert from the agent and from Prometheus, and Prometheus scrapes all N agents and evaluates
# the exported rules without error. See docs/fleet.md.
#
# Usage: packaging/fleet/run.sh [--bin LOOKOUT_BIN] [--keep] [N]
#   N             number of agents (default: $FLEET_N, else 20)
#   --bin PATH    the lookout binary (default: $LOOKOUT_BIN, else the newer of
#                 target/release/lookout and target/debug/lookout, else `lookout` on PATH)
#   --keep        keep the run directory (configs, logs, data) even on success
# Environment: FLEET_N, LOOKOUT_BIN, FLEET_KEEP=1, FLEET_PEER_TIMEOUT (Alertmanager
# --cluster.peer-timeout in seconds, default 5), FLEET_DEADLINE (seconds to wait for the
# alerts, default 120).
#
# Exit status: 0 passed, 1 a check failed, 2 usage error, missing program or start failure.
# Everything it starts is stopped on exit, Ctrl-C or SIGTERM.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ALERT=LookoutFleetWatchdog

die() { echo "run.sh: $*" >&2; exit 2; }
fail() { echo "FAIL: $*"; exit 1; }
START_MS=$(($(date +%s%N) / 1000000))
say() { # a progress line, with the seconds since the start
    local ms=$(($(date +%s%N) / 1000000 - START_MS))
    printf '[%3d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}

N=${FLEET_N:-20}
BIN=${LOOKOUT_BIN:-}
KEEP=${FLEET_KEEP:-0}
while [ $# -gt 0 ]; do
    case $1 in
        --bin) [ $# -ge 2 ] || die "--bin needs a path"; BIN=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) N=$1; shift ;;
    esac
done
case $N in ''|*[!0-9]*) die "N must be a number of agents, got '$N'" ;; esac
[ "$N" -ge 1 ] && [ "$N" -le 500 ] || die "N must be from 1 to 500, got $N"
PEER_TIMEOUT=${FLEET_PEER_TIMEOUT:-5}
DEADLINE=${FLEET_DEADLINE:-120}

# --- the programs this needs ---------------------------------------------------------------
require() { # program debian-package
    command -v "$1" >/dev/null 2>&1 ||
        die "\`$1\` is not installed; install it with \`apt-get install -y $2\`"
}
require prometheus prometheus
require promtool prometheus
require prometheus-alertmanager prometheus-alertmanager
require amtool prometheus-alertmanager
require python3 python3
require curl curl
RECEIVER=$REPO/tests/support/http_receiver.py
[ -f "$RECEIVER" ] || die "$RECEIVER is missing (run.sh runs from a lookout checkout)"
[ -d "$REPO/rules" ] || die "$REPO/rules is missing (run.sh runs from a lookout checkout)"
if [ -z "$BIN" ]; then
    rel=$REPO/target/release/lookout dbg=$REPO/target/debug/lookout
    if [ -x "$rel" ] && { [ ! -x "$dbg" ] || [ "$rel" -nt "$dbg" ]; }; then BIN=$rel
    elif [ -x "$dbg" ]; then BIN=$dbg
    else BIN=$(command -v lookout || true)
    fi
    [ -n "$BIN" ] || die "no lookout binary: build it (\`cargo build -p lookout\`) or set LOOKOUT_BIN"
fi
[ -x "$BIN" ] || die "$BIN is not an executable lookout binary"
CHECK=(python3 "$HERE/fleetcheck.py")

# --- the run directory and the clean-up --------------------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/lookout-fleet.XXXXXX")
PIDS=() NAMES=() WAVES=()
# stop_wave W: SIGTERM to every process of wave W, up to 5 s for them to exit, then SIGKILL.
stop_wave() {
    local wave=$1 i alive
    for i in "${!PIDS[@]}"; do
        [ "${WAVES[$i]}" = "$wave" ] && kill -TERM "${PIDS[$i]}" 2>/dev/null
    done
    for _ in $(seq 50); do
        alive=0
        for i in "${!PIDS[@]}"; do
            [ "${WAVES[$i]}" = "$wave" ] && kill -0 "${PIDS[$i]}" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && return 0
        sleep 0.1
    done
    for i in "${!PIDS[@]}"; do
        if [ "${WAVES[$i]}" = "$wave" ] && kill -0 "${PIDS[$i]}" 2>/dev/null; then
            echo "run.sh: ${NAMES[$i]} (pid ${PIDS[$i]}) did not stop within 5 s: SIGKILL" >&2
            kill -KILL "${PIDS[$i]}" 2>/dev/null
        fi
    done
    return 0
}
# Stops everything started, the last started first: the agents together, then Prometheus,
# then the Alertmanagers ONE AT A TIME (two members leaving the cluster at once each wait
# for the other's acknowledgement), then the receiver.
cleanup() {
    local rc=$? i last=""
    trap - EXIT INT TERM
    set +e
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        [ "${WAVES[$i]}" = "$last" ] && continue
        last=${WAVES[$i]}
        stop_wave "$last"
    done
    wait 2>/dev/null || true
    [ ${#PIDS[@]} = 0 ] || say "stopped all ${#PIDS[@]} processes"
    if [ "$rc" = 0 ] && [ "$KEEP" != 1 ]; then
        rm -rf "$RUN"
    else
        echo "run directory kept: $RUN (logs: */*.log)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME WAVE LOG COMMAND...: runs COMMAND in the background, remembered for the
# clean-up, which stops the processes of one WAVE together; its pid is in $PID_<NAME>.
start() {
    local name=$1 wave=$2 log=$3
    shift 3
    "$@" >"$log" 2>&1 &
    PIDS+=($!) NAMES+=("$name") WAVES+=("$wave")
    eval "PID_$name=$!"
}

# wait_for die|fail|return WHAT SECONDS COMMAND...: polls COMMAND (quietly) every 0.5 s
# until it succeeds. After SECONDS it shows COMMAND's last output and exits through `die`
# (2: a start failure) or `fail` (1: a check that did not hold), or returns 1.
wait_for() {
    local how=$1 what=$2 limit=$3 i
    shift 3
    for i in $(seq $((limit * 2))); do
        if "$@" >"$RUN/wait.out" 2>&1; then return 0; fi
        sleep 0.5
    done
    cat "$RUN/wait.out"
    [ "$how" = return ] && { echo "$what: not within ${limit}s"; return 1; }
    "$how" "$what: not within ${limit}s"
}

read -r -a PORTS <<<"$("${CHECK[@]}" ports $((N + 6)))"
RECEIVER_PORT=${PORTS[0]}
AM_WEB=("${PORTS[1]}" "${PORTS[2]}")
AM_CLUSTER=("${PORTS[3]}" "${PORTS[4]}")
PROM_PORT=${PORTS[5]}
AGENT_PORTS=("${PORTS[@]:6}")
AMS=("http://127.0.0.1:${AM_WEB[0]}" "http://127.0.0.1:${AM_WEB[1]}")
PROM=http://127.0.0.1:$PROM_PORT
host() { printf 'fleet-%02d' "$1"; }

say "lookout fleet: $N agents, $("$BIN" --version), run directory $RUN"

# --- configuration -----------------------------------------------------------------------
# The rules every agent loads: the built-in set (rules.files replaces it, so name it) and the
# fleet's watchdog. One copy, linked from every agent's directory as its rules/.
mkdir -p "$RUN/rules" "$RUN/prometheus/targets"
# The fleet's tokens, as on real hosts: every POST needs the API token, every GET but the
# probes the read token, which Prometheus sends (prometheus.yml: credentials_file).
(umask 077 && for t in api read; do head -c 32 /dev/urandom | base64 >"$RUN/$t-token"; done)
cp "$RUN/read-token" "$RUN/prometheus/lookout-read-token"
cp "$REPO"/rules/*.yaml "$HERE/watchdog.yaml" "$RUN/rules/"
am_urls() { sed -e "s#127.0.0.1:9093#127.0.0.1:${AM_WEB[0]}#" -e "s#127.0.0.1:9094#127.0.0.1:${AM_WEB[1]}#" "$@"; }
targets="["
for i in $(seq "$N"); do
    h=$(host "$i") port=${AGENT_PORTS[$((i - 1))]}
    mkdir -p "$RUN/$h"
    ln -s ../rules "$RUN/$h/rules"
    {
        printf 'agent:\n  hostname: %s\n  listen: 127.0.0.1:%s\n  data_dir: %s\n' "$h" "$port" "$RUN/$h/data"
        printf '  api_token_file: %s\n  read_token_file: %s\n\n' "$RUN/api-token" "$RUN/read-token"
        am_urls "$HERE/lookout.yaml"
    } >"$RUN/$h/lookout.yaml"
    "$BIN" check -c "$RUN/$h/lookout.yaml" >"$RUN/$h/check.log" 2>&1 ||
        { cat "$RUN/$h/check.log"; die "lookout check failed for $h"; }
    [ "$i" = 1 ] || targets+=","
    targets+="{\"targets\":[\"127.0.0.1:$port\"],\"labels\":{\"host\":\"$h\"}}"
done
echo "$targets]" >"$RUN/prometheus/targets/lookout.json"

# The agents' rules for Prometheus: generated from the same configuration, never committed,
# so they cannot go stale.
"$BIN" rules export --format prometheus -c "$RUN/fleet-01/lookout.yaml" >"$RUN/prometheus/lookout-rules.yml"
am_urls "$HERE/prometheus.yml" >"$RUN/prometheus/prometheus.yml"
cp "$HERE/fleet-rules.yml" "$RUN/prometheus/"
promtool check config "$RUN/prometheus/prometheus.yml" >"$RUN/prometheus/check.log" 2>&1 ||
    { cat "$RUN/prometheus/check.log"; die "promtool check config failed"; }
say "exported $(grep -c '^ *- alert:' "$RUN/prometheus/lookout-rules.yml") alerting rules for Prometheus; promtool accepts the config"

sed "s#http://127.0.0.1:9099/#http://127.0.0.1:$RECEIVER_PORT/#" "$HERE/alertmanager.yml" >"$RUN/alertmanager.yml"
amtool check-config "$RUN/alertmanager.yml" >"$RUN/amtool.log" 2>&1 ||
    { cat "$RUN/amtool.log"; die "amtool check-config failed"; }

# --- the receiver, the Alertmanager cluster, Prometheus ------------------------------------
start receiver receiver "$RUN/receiver.log" python3 "$RECEIVER" "$RECEIVER_PORT" "$RUN/received.jsonl" ok
for m in 0 1; do
    other=$((1 - m))
    mkdir -p "$RUN/am-$((m + 1))"
    start "am$m" "am$m" "$RUN/am-$((m + 1))/am.log" prometheus-alertmanager \
        --config.file="$RUN/alertmanager.yml" \
        --storage.path="$RUN/am-$((m + 1))/data" \
        --web.listen-address="127.0.0.1:${AM_WEB[$m]}" \
        --web.external-url="${AMS[$m]}" \
        --cluster.listen-address="127.0.0.1:${AM_CLUSTER[$m]}" \
        --cluster.peer="127.0.0.1:${AM_CLUSTER[$other]}" \
        --cluster.peer-timeout="${PEER_TIMEOUT}s"
done
wait_for die "the webhook receiver" 10 curl -fsS -o /dev/null -X POST -d '' "http://127.0.0.1:$RECEIVER_PORT/ping"
rm -f "$RUN/received.jsonl" # the probe above is not an alert
wait_for die "Alertmanager am-1 ready" 30 curl -fsS -o /dev/null "${AMS[0]}/-/ready"
wait_for die "Alertmanager am-2 ready" 30 curl -fsS -o /dev/null "${AMS[1]}/-/ready"
say "Alertmanagers up: am-1 ${AMS[0]}, am-2 ${AMS[1]} (peer timeout ${PEER_TIMEOUT}s); the cluster settles meanwhile"

start prom prom "$RUN/prometheus/prometheus.log" prometheus \
    --config.file="$RUN/prometheus/prometheus.yml" \
    --storage.tsdb.path="$RUN/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT"
wait_for die "Prometheus ready" 30 curl -fsS -o /dev/null "$PROM/-/ready"
say "Prometheus ready: $PROM"

# --- the agents ----------------------------------------------------------------------------
for i in $(seq "$N"); do
    h=$(host "$i")
    start "agent$i" agents "$RUN/$h/agent.log" env LOOKOUT_LOG=info "$BIN" run -c "$RUN/$h/lookout.yaml"
done
for i in $(seq "$N"); do
    wait_for die "agent $(host "$i") ready" 30 curl -fsS -o /dev/null "http://127.0.0.1:${AGENT_PORTS[$((i - 1))]}/readyz"
done
say "$N agents ready: $(host 1) .. $(host "$N") on 127.0.0.1:${AGENT_PORTS[0]}.."
# Alertmanager sends nothing before its cluster has settled (stable membership), so alerts
# that arrived before are held, not lost or sent twice.
wait_for die "the Alertmanager cluster (2 members, ready)" 60 "${CHECK[@]}" cluster "${AMS[@]}"
say "Alertmanager cluster ready: both members see each other"

# --- the alerts ----------------------------------------------------------------------------
report() {
    echo
    "${CHECK[@]}" report "$RUN/received.jsonl" "$N" "$ALERT" "$PROM" "$PID_prom" "${AMS[@]}"
}
wait_for return "every host's $ALERT at the receiver" "$DEADLINE" \
    "${CHECK[@]}" received "$RUN/received.jsonl" "$N" "$ALERT" ||
    { report || true; fail "not every host's $ALERT reached the receiver within ${DEADLINE}s"; }
say "every host's $ALERT received; watching for duplicates"

# A duplicate comes from the second Alertmanager (it sends peer-timeout after the first
# unless the first's notification-log entry reached it by gossip), or from a re-send of the
# agents (every resend_interval, 10s in lookout.yaml) that Alertmanager would take as a change
# of the group (flushed every group_interval, 10s in alertmanager.yml). Watch longer than all
# of that together.
SETTLE=$((10 + 10 + PEER_TIMEOUT + 3))
for _ in $(seq "$SETTLE"); do sleep 1; done # (one long sleep would delay a SIGTERM's clean-up)
# Prometheus needs a scrape and an evaluation of each group, then sends its own alerts.
if wait_for return "Prometheus and Alertmanager checks" 30 \
    "${CHECK[@]}" central "$PROM" "$N" "$ALERT" lookout-rules.yml "${AMS[@]}"; then
    say "Prometheus scrapes all $N agents and evaluates the exported rules; both Alertmanagers hold every host's alert from the agent and from Prometheus"
else
    report || true
    fail "Prometheus or an Alertmanager did not see the whole fleet (above)"
fi

report || fail "the receiver did not get each host's $ALERT exactly once"
say "PASS: $N agents, each host's $ALERT delivered exactly once through the Alertmanager cluster"
