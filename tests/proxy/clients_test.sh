#!/usr/bin/env bash
# Tests singleflightd's transparent coalescing proxy mode with unchanged
# generated clients (Python, Node, buf curl) of an ordinary gRPC service,
# demo.v1.Greeter (demo.proto), served by greeter_upstream.py:
#   1. proxy A, --proxy_coalesce of SayHello and Fail: 100 concurrent
#      identical SayHello calls (Python, then Node) make one upstream call
#      and get one reply; different names make calls of their own; a later
#      identical call is a new upstream call; Fail's code, message,
#      grpc-status-details-bin and trailers are the upstream's, for each of
#      20 concurrent callers too; the initial and trailing metadata reach
#      every caller; when the first caller of a flight gives up (deadline),
#      the others still get the reply; Count, Countdown, Chat and Gather are
#      forwarded; buf curl works through it;
#   2. proxy B, --proxy_descriptor_set and '/demo.v1.Greeter/*': SayHello is
#      coalesced, the streaming methods still work one to one;
#   3. proxy C, --proxy_coalesce of Fail only: concurrent SayHello calls are
#      forwarded one to one (no coalescing of methods not named);
#   4. proxy D, '/demo.v1.Greeter/*' without descriptors, in front of an
#      upstream with server reflection (greeter_upstream.py --reflection):
#      SayHello is coalesced, the streaming methods work one to one.
# Prints PASS or FAIL (with the output that failed) for each check, then a
# summary; exit status 0 iff all passed. Takes about 17 s.
#
# Usage: tests/proxy/clients_test.sh [BIN_DIR]
# BIN_DIR (default build/bin) holds singleflightd. Needs protoc,
# /usr/bin/grpc_python_plugin, /usr/bin/python3 with python3-grpcio, node
# and npm (client/node's and tests/tools' (buf) dependencies are installed
# with npm ci when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-build/bin}")
here=tests/proxy
buf=tests/tools/node_modules/.bin/buf
work=$(mktemp -d)
pids=()
passed=0
failed=0

cleanup() {  # Stops what this script started (SIGTERM, then SIGKILL at 5 s).
  local pid i
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for PID FILE REGEX [SECS]: waits for a line of FILE matching REGEX,
# while process PID lives.
wait_for() {
  local pid=$1 file=$2 regex=$3 seconds=${4:-20} i
  for ((i = 0; i < seconds * 20; i++)); do
    grep -qE "$regex" "$file" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "it exited before printing /$regex/; its output:"
      cat "$file"
      return 1
    fi
    sleep 0.05
  done
  echo "timed out waiting for /$regex/ in $file:"
  cat "$file"
  return 1
}

check() {  # WHAT CMD...: runs CMD; PASS, or FAIL and CMD's output.
  local what=$1
  shift
  if "$@" >"$work/check.out" 2>&1; then
    echo "PASS: $what"
    passed=$((passed + 1))
  else
    echo "FAIL: $what"
    cut -c1-300 "$work/check.out" | sed 's/^/    /'
    failed=$((failed + 1))
    return 1
  fi
}

summary() {
  echo "proxy clients: $passed passed, $failed failed"
  ((failed == 0))
}

py() { timeout 40 /usr/bin/python3 "$here/greeter_client.py" "$@"; }
nd() { timeout 40 node "$here/greeter_client.mjs" "$@"; }

start_upstream() {  # NAME ARGS...: greeter_upstream.py; sets upstream.
  local out="$work/upstream-$1.out"
  shift
  /usr/bin/python3 "$here/greeter_upstream.py" --port 0 "$@" >"$out" 2>&1 &
  pids+=("$!")
  wait_for "$!" "$out" '^listening on ' || return 1
  upstream=$(sed -n 's/^listening on //p' "$out")
  echo "upstream on $upstream"
}

start_proxy() {  # NAME ARGS...: singleflightd in proxy mode; sets proxy.
  local out="$work/proxy-$1.out"
  shift
  proxy=
  "$bin/singleflightd" --listen=127.0.0.1:0 --proxy_upstream="$upstream" \
    "$@" >"$out" 2>&1 &
  pids+=("$!")
  wait_for "$!" "$out" '^singleflightd listening on ' || return 1
  proxy=$(sed -n \
    's/^singleflightd listening on \([0-9.]*:[0-9]*\).*/\1/p' "$out")
  echo "proxy on $proxy"
  [[ -n $proxy ]]
}

calls() { py --target "$upstream" count; }  # The upstream's SayHello count.

# coalesced CLIENT TARGET NAME: 100 concurrent identical SayHello calls
# (500 ms each) make one upstream call; all get its reply.
coalesced() {
  local client=$1 target=$2 name=$3 before after out
  before=$(calls) || return 1
  out=$("$client" --target "$target" hello "$name" -n 100 --delay_ms 500) ||
    { echo "$out"; return 1; }
  after=$(calls) || return 1
  echo "$out"
  echo "upstream count: $before -> $after"
  [[ $out == "replies=100 distinct=1 upstream_calls=$((before + 1))" &&
     $after == $((before + 1)) ]]
}

# separate TARGET: two names at once (50 calls each) make two upstream calls.
separate() {
  local target=$1 before after alice bob
  before=$(calls) || return 1
  py --target "$target" hello alice -n 50 --delay_ms 500 >"$work/alice" &
  alice=$!
  py --target "$target" hello bob -n 50 --delay_ms 500 >"$work/bob" &
  bob=$!
  wait "$alice" || { cat "$work/alice"; return 1; }  # bounded by timeout
  wait "$bob" || { cat "$work/bob"; return 1; }
  after=$(calls) || return 1
  cat "$work/alice" "$work/bob"
  echo "upstream count: $before -> $after"
  grep -qx 'replies=50 distinct=1 upstream_calls=[0-9]*' "$work/alice" &&
    grep -qx 'replies=50 distinct=1 upstream_calls=[0-9]*' "$work/bob" &&
    ! cmp -s "$work/alice" "$work/bob" && [[ $after == $((before + 2)) ]]
}

# one_to_one TARGET N: N concurrent identical SayHello calls make N upstream
# calls (a method that is not coalesced).
one_to_one() {
  local target=$1 n=$2 before after out
  before=$(calls) || return 1
  out=$(py --target "$target" hello solo -n "$n" --delay_ms 300) ||
    { echo "$out"; return 1; }
  after=$(calls) || return 1
  echo "${out:0:200}"
  echo "upstream count: $before -> $after"
  [[ $out == "replies=$n distinct=$n upstream_calls="* &&
     $after == $((before + n)) ]]
}

# later_call TARGET: once a flight is over, the same call is a new one.
later_call() {
  local target=$1 before out
  before=$(calls) || return 1
  out=$(py --target "$target" hello again) || { echo "$out"; return 1; }
  echo "$out"
  [[ $out == "replies=1 distinct=1 upstream_calls=$((before + 1))" ]] || return 1
  out=$(py --target "$target" hello again) || { echo "$out"; return 1; }
  echo "$out"
  [[ $out == "replies=1 distinct=1 upstream_calls=$((before + 2))" ]]
}

# metadata CLIENT TARGET: 20 coalesced callers all get the initial metadata
# and the trailers of the one upstream call.
metadata() {
  local client=$1 target=$2 before out
  before=$(calls) || return 1
  out=$("$client" --target "$target" hello "meta-$client" -n 20 \
    --delay_ms 300 --metadata) || { echo "$out"; return 1; }
  echo "$out"
  [[ $out == "replies=20 distinct=1 upstream_calls=$((before + 1))
x-upstream-served-by=greeter x-upstream-calls=$((before + 1))" ]]
}

# same_as_upstream CLIENT TARGET ARGS...: the same output through TARGET as
# from the upstream directly.
same_as_upstream() {
  local client=$1 target=$2 direct through
  shift 2
  direct=$("$client" --target "$upstream" "$@") || true
  through=$("$client" --target "$target" "$@") || true
  echo "direct:"
  echo "$direct"
  echo "through $target:"
  echo "$through"
  [[ -n $direct && $direct == "$through" ]]
}

# prints CMD... EXPECTED: CMD succeeds and prints EXPECTED.
prints() {
  local expected=${*: -1} out
  out=$("${@:1:$#-1}") || { echo "$out"; return 1; }
  echo "$out"
  [[ $out == "$expected" ]]
}

streams() {  # TARGET: Countdown, Chat and Gather (Python; Chat in Node too).
  local target=$1
  prints py --target "$target" countdown $'3\n2\n1' &&
    prints py --target "$target" chat A B C $'echo: A\necho: B\necho: C' &&
    prints nd --target "$target" chat x y $'echo: x\necho: y' &&
    prints py --target "$target" gather A B C 'A,B,C'
}

# deadline_leader TARGET: the first caller of a flight gives up (its deadline
# passes) while 20 others wait on it: it gets DEADLINE_EXCEEDED, they still
# get the one upstream call's reply.
deadline_leader() {
  local target=$1 before out leader i
  before=$(calls) || return 1
  py --target "$target" --timeout 0.8 hello leaver --delay_ms 1500 \
    >"$work/leader" &
  leader=$!
  for ((i = 0; i < 40; i++)); do  # until its call reached the upstream
    [[ $(calls) == $((before + 1)) ]] && break
    sleep 0.05
  done
  out=$(py --target "$target" hello leaver -n 20 --delay_ms 1500) || true
  wait "$leader" || true  # bounded by timeout
  echo "first caller: $(cat "$work/leader")"
  echo "the others: $out"
  echo "upstream count: $before -> $(calls)"
  grep -q '^error DEADLINE_EXCEEDED' "$work/leader" &&
    [[ $out == "replies=20 distinct=1 upstream_calls=$((before + 1))" &&
       $(calls) == $((before + 1)) ]]
}

count_forwarded() {  # TARGET: Count through TARGET = Count from the upstream.
  local direct through
  direct=$(calls) && through=$(py --target "$1" count) || return 1
  echo "direct $direct, through $1: $through"
  [[ $direct == "$through" ]]
}

buf_curl() {  # TARGET: buf curl SayHello through TARGET.
  local out
  out=$(timeout 30 "$buf" curl --protocol grpc --http2-prior-knowledge \
    --schema "$here/demo.proto" "http://$1/demo.v1.Greeter/SayHello" \
    -d '{"name":"buf"}') || { echo "$out"; return 1; }
  echo "$out"
  /usr/bin/python3 -c '
import json, sys
reply = json.loads(sys.argv[1])
sys.exit(reply.get("message") != "Hello, buf!" or
         not int(reply.get("upstreamCalls", 0)))' "$out"
}

buf_lint() {  # demo.proto: buf lint (classic Greeter names allowed), format.
  timeout 30 "$buf" lint "$here/demo.proto" --config '{"version": "v2",
    "lint": {"use": ["STANDARD", "COMMENTS"], "except": [
      "PACKAGE_DIRECTORY_MATCH", "SERVICE_SUFFIX",
      "RPC_REQUEST_RESPONSE_UNIQUE", "RPC_REQUEST_STANDARD_NAME",
      "RPC_RESPONSE_STANDARD_NAME"]}}' &&
    timeout 30 "$buf" format --diff --exit-code "$here/demo.proto"
}

# Node's and buf's dependencies, as the other client and tool tests install
# them.
if [[ ! client/node/node_modules/.package-lock.json -nt \
      client/node/package-lock.json ]]; then
  timeout 300 npm ci --prefix client/node --no-audit --no-fund \
    --loglevel=error || true
fi
if [[ ! tests/tools/node_modules/.package-lock.json -nt \
      tests/tools/package-lock.json ]]; then
  timeout 300 npm ci --prefix tests/tools --no-audit --no-fund \
    --loglevel=error || true
fi

check "the upstream (greeter_upstream.py) starts" start_upstream plain
check "the upstream answers directly" prints py --target "$upstream" \
  hello direct 'replies=1 distinct=1 upstream_calls=1'
check "demo.proto passes buf lint and buf format" buf_lint

# 1. Proxy A: SayHello and Fail coalesced, by name, without descriptors.
if check "proxy A starts (--proxy_coalesce SayHello, Fail)" start_proxy a \
    --proxy_coalesce=/demo.v1.Greeter/SayHello \
    --proxy_coalesce=/demo.v1.Greeter/Fail; then
  proxy_a=$proxy
  check "A: Python, 100 concurrent identical SayHello: one upstream call" \
    coalesced py "$proxy_a" world
  check "A: Node, 100 concurrent identical SayHello: one upstream call" \
    coalesced nd "$proxy_a" node-world
  check "A: two names at once: two upstream calls" separate "$proxy_a"
  check "A: a later identical call is a new upstream call" \
    later_call "$proxy_a"
  check "A: Python callers get x-upstream-served-by and x-upstream-calls" \
    metadata py "$proxy_a"
  check "A: Node callers get x-upstream-served-by and x-upstream-calls" \
    metadata nd "$proxy_a"
  check "A: Python Fail: code, message, details and trailers as upstream's" \
    same_as_upstream py "$proxy_a" fail 5 'no such "thing"'
  check "A: Python Fail with code 16 and a non-ASCII message" \
    same_as_upstream py "$proxy_a" fail 16 'qui êtes-vous ?'
  check "A: Node Fail: code, message, details and trailers as upstream's" \
    same_as_upstream nd "$proxy_a" fail 9 'not now'
  check "A: 20 concurrent identical Fail (Python) all get the upstream's" \
    same_as_upstream py "$proxy_a" fail 8 'shared' -n 20 --delay_ms 300
  check "A: 20 concurrent identical Fail (Node) all get the upstream's" \
    same_as_upstream nd "$proxy_a" fail 14 'shared' -n 20 --delay_ms 300
  check "A: a first caller that gives up does not fail the others" \
    deadline_leader "$proxy_a"
  check "A: Count (not coalesced) is forwarded" count_forwarded "$proxy_a"
  check "A: Countdown, Chat, Gather are forwarded" streams "$proxy_a"
  if [[ -x $buf ]]; then
    check "A: buf curl SayHello" buf_curl "$proxy_a"
  else
    check "A: buf curl SayHello (buf is not installed)" false
  fi
fi

# 2. Proxy B: the whole service, with its descriptors.
check "protoc writes demo.proto's descriptor set" protoc --include_imports \
  --proto_path="$here" -o "$work/demo.pb" demo.proto
if check "proxy B starts (--proxy_descriptor_set, /demo.v1.Greeter/*)" \
    start_proxy b --proxy_descriptor_set="$work/demo.pb" \
    '--proxy_coalesce=/demo.v1.Greeter/*'; then
  proxy_b=$proxy
  check "B: Python, 100 concurrent identical SayHello: one upstream call" \
    coalesced py "$proxy_b" star
  check "B: Countdown, Chat, Gather are forwarded one to one" \
    streams "$proxy_b"
  check "B: Python Fail as upstream's" \
    same_as_upstream py "$proxy_b" fail 7 denied
fi

# 3. Proxy C: only Fail coalesced; SayHello is forwarded one to one.
if check "proxy C starts (--proxy_coalesce Fail only)" start_proxy c \
    --proxy_coalesce=/demo.v1.Greeter/Fail; then
  proxy_c=$proxy
  check "C: 10 concurrent SayHello (not coalesced): 10 upstream calls" \
    one_to_one "$proxy_c" 10
fi

# 4. Proxy D: the whole service, its methods from the upstream's reflection.
# (From here on, $upstream is the second upstream.)
if check "a second upstream, with server reflection, starts" \
    start_upstream reflection --reflection &&
  check "proxy D starts (/demo.v1.Greeter/*, no descriptor set)" \
    start_proxy d '--proxy_coalesce=/demo.v1.Greeter/*'; then
  proxy_d=$proxy
  check "D: Python, 100 concurrent identical SayHello: one upstream call" \
    coalesced py "$proxy_d" reflected
  check "D: Node, 100 concurrent identical SayHello: one upstream call" \
    coalesced nd "$proxy_d" node-reflected
  check "D: Countdown, Chat, Gather are forwarded one to one" \
    streams "$proxy_d"
fi

summary
