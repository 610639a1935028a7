#!/usr/bin/env bash
# Coalescing across replicas, on loopback, with real processes: the example
# HTTP origin (tests/origin/http_origin.py), three singleflightd replicas, and
# HAProxy with deploy/haproxy.cfg in front, all as the current user. sfctl is
# the client (it sends x-flight-key and retries UNAVAILABLE).
#
#   1. 300 callers over 30 connections on one key: one origin request, every
#      caller gets the value, shared.
#   2. 60 keys: each replica executes some (singleflight_executions_total).
#   3. SIGKILL of a replica while its flights run: every caller still gets an
#      answer; its keys move to the other two, where they coalesce again.
#   4. SIGTERM of the replica running a hot key under load (sfload): HAProxy's
#      gRPC health check sees NOT_SERVING during the replica's --drain_grace
#      and moves the key; no call fails (none ends UNKNOWN), the replica
#      exits 0.
#
# Usage: tests/deploy/replicas_test.sh [BIN_DIR]   (default: build/bin)
# Needs haproxy (Debian `haproxy`) and python3. Takes about 25 s. Exits 0 on
# success, 1 with a FAIL line otherwise. Bounded: it ends after 90 s at most;
# every process it started is killed and its temporary directory removed on
# any exit.
set -euo pipefail

# The whole run is bounded: re-run under timeout(1), which sends SIGTERM to
# this script and everything it started after 90 s (SIGKILL 5 s later).
if [[ -z "${REPLICAS_TEST_BOUNDED:-}" ]]; then
  REPLICAS_TEST_BOUNDED=1 exec timeout -k 5 90 bash "$0" "$@"
fi

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$(cd "${1:-$root/build/bin}" 2>/dev/null && pwd)" ||
  { echo "FAIL: no directory ${1:-$root/build/bin}" >&2; exit 1; }
sfctl="$bin/sfctl"
work="$(mktemp -d "${TMPDIR:-/tmp}/replicas_test.XXXXXX")"

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # Every process still running is a job of this shell (jobs -p never lists
  # one already reaped, whose pid could have been reused).
  local running
  running="$(jobs -p)"
  disown -a  # No "Killed" notices.
  [[ -n "$running" ]] && kill -9 $running 2>/dev/null || true
  if ((status != 0)); then
    for log in "$work"/*.log; do
      [[ -s "$log" ]] && { echo "--- $(basename "$log") (last lines)"; tail -n 15 "$log"; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'echo "FAIL: interrupted or timed out" >&2; exit 1' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "=== $* ($(date +%T))"; }

# Waits up to $1 seconds for the command "${@:2}" to succeed.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The first "PORT" of "PATTERN 127.0.0.1:PORT" in file $2.
port_in() { sed -n "s/.*$1 \(http:\/\/\)\{0,1\}127\.0\.0\.1:\([0-9]*\).*/\2/p" "$2" | head -n 1; }
has_port() { [[ -n "$(port_in "$1" "$2")" ]]; }

http_get() {
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}

origin_hits() { http_get "http://127.0.0.1:$origin_port/_hits?path=/item/$1"; }

# singleflight_executions_total of replica $1 (1..3), all fetchers.
executions() {
  http_get "http://127.0.0.1:${metrics_ports[$1]}/metrics" | python3 -c '
import re, sys
print(int(sum(float(v) for v in re.findall(
    r"^singleflight_executions_total\{[^}]*\} (\S+)$", sys.stdin.read(), re.M))))'
}

# "KEY WAITERS" for each flight in progress on replica $1 (1..3), asked
# directly, not through the proxy.
flights_on() {
  "$sfctl" --target="127.0.0.1:${grpc_ports[$1]}" --timeout=2s --json inflight |
    python3 -c '
import json, sys
for flight in json.load(sys.stdin).get("flights", []):
    print(flight["key"], flight.get("waiters", 0))'
}

# Whether HAProxy's stats show every replica with status $1 (UP or DOWN;
# with $2, only replica $2).
replicas_are() {
  http_get "http://127.0.0.1:$stats_port/stats;csv" | python3 -c '
import csv, sys
want, only = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
rows = [r for r in csv.DictReader(l.lstrip("# ") for l in sys.stdin)
        if r["pxname"] == "singleflight" and r["svname"].startswith("replica")]
rows = [r for r in rows if only is None or r["svname"] == "replica" + only]
sys.exit(0 if rows and all(r["status"].startswith(want) for r in rows) else 1)' "$@"
}

command -v haproxy > /dev/null || fail "haproxy is not installed (apt-get install haproxy)"
[[ -x "$sfctl" && -x "$bin/singleflightd" && -x "$bin/sfload" ]] ||
  fail "no sfctl/singleflightd/sfload in $bin"

step "origin, three replicas, HAProxy"
python3 "$root/tests/origin/http_origin.py" --port 0 > "$work/origin.log" 2>&1 &
wait_for 20 has_port "listening on" "$work/origin.log" || fail "origin did not start"
origin_port="$(port_in "listening on" "$work/origin.log")"

grpc_ports=(none)
metrics_ports=(none)
replica_pids=(none)
for i in 1 2 3; do
  # web: 800 ms a request; slow: 4 s, so that a whole crowd joins one flight.
  "$bin/singleflightd" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --fetcher="web=http://127.0.0.1:$origin_port/item/{key}?delay_ms=800" \
    --fetcher="slow=http://127.0.0.1:$origin_port/item/{key}?delay_ms=4000" \
    --default_fetcher=web --drain_grace=2s --log_level=warning \
    > "$work/replica$i.log" 2>&1 &
  replica_pids+=($!)
done
for i in 1 2 3; do
  wait_for 20 has_port "metrics on" "$work/replica$i.log" || fail "replica $i did not start"
  grpc_ports+=("$(port_in "listening on" "$work/replica$i.log")")
  metrics_ports+=("$(port_in "metrics on" "$work/replica$i.log")")
done

proxy_port="$(free_port)"
stats_port="$(free_port)"
SF_PROXY_LISTEN="127.0.0.1:$proxy_port" SF_PROXY_STATS="127.0.0.1:$stats_port" \
SF_REPLICA1="127.0.0.1:${grpc_ports[1]}" SF_REPLICA2="127.0.0.1:${grpc_ports[2]}" \
SF_REPLICA3="127.0.0.1:${grpc_ports[3]}" \
  haproxy -db -f "$root/deploy/haproxy.cfg" -p "$work/haproxy.pid" > "$work/haproxy.log" 2>&1 &
haproxy_pid=$!
wait_for 20 replicas_are UP || fail "HAProxy does not see three replicas UP"
proxy=(--target="127.0.0.1:$proxy_port")
echo "origin :$origin_port, replicas :${grpc_ports[1]} :${grpc_ports[2]} :${grpc_ports[3]}, HAProxy :$proxy_port (pid $haproxy_pid)"

step "1. 300 callers on 30 connections, one key"
key=crowd
crowd_pids=()
for c in $(seq 1 30); do
  "$sfctl" "${proxy[@]}" --timeout=20s --json do -n 10 --fetcher=slow "$key" \
    > "$work/crowd$c.json" 2> "$work/crowd$c.err" &
  crowd_pids+=($!)
done
# All 300 must be waiting on one flight of one replica before it ends.
all_joined() {
  for i in 1 2 3; do
    flights_on "$i" | grep -qx "$key 300" && return 0
  done
  return 1
}
wait_for 15 all_joined || fail "300 callers never waited on one flight of one replica"
for pid in "${crowd_pids[@]}"; do
  wait "$pid" || fail "an sfctl caller failed: $(cat "$work"/crowd*.err)"
done
cat "$work"/crowd*.json | python3 -c '
import json, sys
replies = [json.loads(line) for line in sys.stdin]
assert len(replies) == 30, replies
for r in replies:
    # Every caller of the process got the same value, and shared the flight.
    assert (r["replies"], r["shared"], r["errors"], r["distinct_values"]) == (10, 10, 0, 1), r
' || fail "callers did not all share one value: $(cat "$work"/crowd*.json)"
hits="$(origin_hits "$key")"
# One origin request: every reply, in every process, is that request's value.
[[ "$hits" == 1 ]] || fail "origin got $hits requests for $key, want 1"
echo "30 connections x 10 callers: all shared, origin hits=$hits"

step "2. 60 keys spread over the replicas"
before=(none "$(executions 1)" "$(executions 2)" "$(executions 3)")
spread_pids=()
for k in $(seq 1 60); do
  "$sfctl" "${proxy[@]}" --timeout=20s do "spread-$k" > /dev/null 2>> "$work/spread.err" &
  spread_pids+=($!)
done
for pid in "${spread_pids[@]}"; do wait "$pid" || fail "a spread call failed: $(cat "$work/spread.err")"; done
counts=""
for i in 1 2 3; do
  n=$(($(executions "$i") - ${before[$i]}))
  counts+=" replica$i=$n"
  ((n > 0)) || fail "replica $i executed none of 60 keys:$counts"
done
echo "executions:$counts"

step "3. a replica killed while its flights run"
keys=()
for k in $(seq 1 30); do keys+=("moved-$k"); done
wave() {  # $1: the wave's name; one sfctl process (5 callers) a key.
  wave_pids=()
  for k in "${keys[@]}"; do
    "$sfctl" "${proxy[@]}" --timeout=25s --json do -n 5 --fetcher=slow "$k" \
      > "$work/$1-$k.json" 2> "$work/$1-$k.err" &
    wave_pids+=($!)
  done
}
wave_answered() {  # Every caller of wave $1 got a value.
  for pid in "${wave_pids[@]}"; do wait "$pid" || true; done
  python3 - "$work" "$1" "${keys[@]}" <<'PY' || fail "wave $1: some callers got no value"
import json, sys
work, wave, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
bad = []
for key in keys:
    try:
        reply = json.load(open(f"{work}/{wave}-{key}.json"))
    except (OSError, ValueError):
        reply = {}
    if reply.get("replies") != 5 or reply.get("errors") != 0:
        bad.append(f"{key}: {reply} {open(f'{work}/{wave}-{key}.err').read()}")
if bad:
    sys.exit("\n".join(bad))
PY
}
# Which replica runs each key: asked of the replicas while the flights run.
owners_file="$work/owners"
map_owners() {
  : > "$owners_file"
  for i in 1 2 3; do flights_on "$i" | sed -n "s/^\(moved-[0-9]*\) 5$/\1 $i/p" >> "$owners_file"; done
  [[ "$(wc -l < "$owners_file")" == "${#keys[@]}" ]]
}
wave before
wait_for 15 map_owners || fail "the 30 flights were not all seen in progress: $(cat "$owners_file")"
victim=2
moved=($(awk -v v="$victim" '$2 == v {print $1}' "$owners_file"))
((${#moved[@]} > 0)) || fail "replica $victim runs none of the 30 keys"
kill -9 "${replica_pids[$victim]}"
{ wait "${replica_pids[$victim]}"; } 2>/dev/null || true  # No "Killed" notice.
echo "$(date +%T) killed replica $victim (SIGKILL) with ${#moved[@]} of 30 flights in progress"
wave_answered before
echo "$(date +%T) every caller of the 30 keys got an answer"
wait_for 10 replicas_are DOWN "$victim" || fail "HAProxy did not mark replica $victim DOWN"

# The moved keys now belong to the survivors, and coalesce there again.
http_get "http://127.0.0.1:$origin_port/_hits" > "$work/hits-before.json"
# For the record: a killed flight's callers were replayed on a survivor
# (HAProxy's retry-on empty-response), as one more flight.
python3 - "$work/hits-before.json" "${moved[@]}" <<'PY'
import json, sys
hits = json.load(open(sys.argv[1]))
print("origin requests of the killed replica's keys:",
      sorted(hits.get(f"/item/{k}", 0) for k in sys.argv[2:]))
PY
wave after
wait_for 15 map_owners || fail "the 30 flights were not all seen in progress after the kill"
awk -v v="$victim" '$2 == v {exit 1}' "$owners_file" || fail "a key still on replica $victim"
wave_answered after
http_get "http://127.0.0.1:$origin_port/_hits" > "$work/hits-after.json"
python3 - "$work" "${keys[@]}" <<'PY' || fail "the second wave did not coalesce"
import json, sys
work, keys = sys.argv[1], sys.argv[2:]
before = json.load(open(f"{work}/hits-before.json"))
after = json.load(open(f"{work}/hits-after.json"))
bad = {k: after.get(f"/item/{k}", 0) - before.get(f"/item/{k}", 0) for k in keys}
bad = {k: n for k, n in bad.items() if n != 1}
if bad:
    sys.exit(f"origin requests for one wave of 5 callers, want 1 a key: {bad}")
PY
echo "after the kill: ${#moved[@]} keys moved to the survivors; one origin request a key"

step "4. the replica running a hot key SIGTERMed under load"
# 200 callers in a closed loop on one key (800 ms flights) through HAProxy,
# for 6 s (about 1,500 calls); the replica running the key gets SIGTERM
# 2.5 s in. It reports NOT_SERVING for its --drain_grace (2 s) while still
# answering; HAProxy's gRPC health check marks it DOWN and sends the key's
# new calls to the survivor; then it drains (its last flight has ended) and
# exits. Every call must get its value: none may end UNKNOWN (a reply cut
# before its trailers) or be refused.
hot=hot-0
"$bin/sfload" "${proxy[@]}" --keys=hot --key_prefix=hot- --concurrency=200 \
  --channels=8 --duration=6s --deadline=20s --json \
  > "$work/hot.json" 2> "$work/hot.err" &
load_pid=$!
started=$SECONDS
hot_owner() {
  for i in 1 3; do
    flights_on "$i" | grep -q "^$hot " && { victim2=$i; return 0; }
  done
  return 1
}
wait_for 5 hot_owner || fail "no replica runs $hot"
sleep "$(python3 -c "print(max(0, 2.5 - ($SECONDS - $started)))")"
kill -TERM "${replica_pids[$victim2]}"
echo "$(date +%T) SIGTERM to replica $victim2, which runs $hot"
wait "$load_pid" || fail "sfload failed: $(cat "$work/hot.err")"
drained=0
wait "${replica_pids[$victim2]}" || drained=$?
((drained == 0)) || fail "replica $victim2 exited with status $drained after SIGTERM"
replicas_are DOWN "$victim2" || fail "HAProxy does not show replica $victim2 DOWN"
python3 - "$work/hot.json" <<'PY' || fail "calls failed through the SIGTERM: $(cat "$work/hot.json")"
import json, sys
report = json.load(open(sys.argv[1]))
print(f"calls={report['calls']} ok={report['ok']} errors={report['errors']}")
assert report["calls"] >= 1000, report
assert "UNKNOWN" not in report["errors"], report["errors"]
assert report["error_count"] == 0, report["errors"]
PY
echo "replica $victim2 drained and exited 0"

step "all passed"
