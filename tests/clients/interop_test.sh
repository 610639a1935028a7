#!/usr/bin/env bash
# Interop tests of the C++ (sfctl), Python and Node clients against a live
# singleflightd and a fake server (fake_server.py):
#   1. one caller of each language joins one flight at the same time: one
#      execution (the server's singleflight_executions_total), the same value
#      and shared: true for all three; and each receives a 10 MiB value
#      (from an HTTP origin), over gRPC's default 4 MiB receive limit;
#   2. the Python and Node clients' own tests (python_client_test.py,
#      node_client.test.js): sharing, error mapping (NOT_FOUND,
#      INVALID_ARGUMENT, DEADLINE_EXCEEDED), deadlines, Forget, InFlight,
#      stream ids and order, the x-flight-key header and retries;
#   3. sfctl (the C++ client) against the fake: the x-flight-key header of
#      every test vector, retries on UNAVAILABLE, Forget never retried;
#   4. sfctl over mutual TLS, with certificates made here by openssl.
#
# Usage: tests/clients/interop_test.sh [BIN_DIR]
# BIN_DIR (default build/bin) holds singleflightd and sfctl. Needs protoc,
# /usr/bin/grpc_python_plugin, /usr/bin/python3 with python3-grpcio, openssl,
# node and npm (client/node's dependencies are installed with npm ci when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-build/bin}")
source tests/clients/live_server.sh
sf_setup

# Python stubs (not kept in the repository) and Node dependencies.
/usr/bin/python3 client/python/build_stubs.py "$SF_WORK/stubs" >/dev/null
export PYTHONPATH="$PWD/client/python:$SF_WORK/stubs"
if [[ ! client/node/node_modules/.package-lock.json -nt \
      client/node/package-lock.json ]]; then
  npm ci --prefix client/node --no-audit --no-fund --loglevel=error
fi

# An origin of 10 MiB values, larger than gRPC's default receive limit.
sf_background /usr/bin/python3 tests/origin/http_origin.py --port 0 \
  >"$SF_WORK/origin.out" 2>&1
sf_wait_for "$SF_WORK/origin.out" '^listening on '
origin=$(sed -n 's/^listening on //p' "$SF_WORK/origin.out")
sf_start_server "$bin" --metrics_listen=127.0.0.1:0 \
  --fetcher=slow=echo:?delay=1s --fetcher=joint=echo:?delay=3s \
  --fetcher="big=http://$origin/v/{key}?size=10485760"
server=$SF_TARGET
metrics=$SF_METRICS_URL
sf_background /usr/bin/python3 tests/clients/fake_server.py \
  >"$SF_WORK/fake.out" 2>&1
sf_wait_for "$SF_WORK/fake.out" '^fake listening on '
fake=$(sed -n 's/^fake listening on //p' "$SF_WORK/fake.out")
sfctl=("$bin/sfctl" --timeout=20s)

# 1. Three languages, one flight.
waiters_on_joint() {  # Waits until the joint flight has $1 waiters.
  local i
  for ((i = 0; i < 100; i++)); do
    "${sfctl[@]}" --target="$server" inflight |
      grep -q "key=joint:1 waiters=$1 " && return 0
    sleep 0.02
  done
  return 1
}
"${sfctl[@]}" --target="$server" --json "do" joint:1 --fetcher=joint \
  >"$SF_WORK/cpp.json" &
cpp=$!
sf_check "C++ caller started the flight" waiters_on_joint 1
/usr/bin/python3 tests/clients/do_once.py "$server" joint:1 joint \
  >"$SF_WORK/python.json" &
python=$!
node tests/clients/do_once.mjs "$server" joint:1 joint >"$SF_WORK/node.json" &
node=$!
sf_check "Python and Node callers joined it" waiters_on_joint 3
sf_check "C++ caller succeeded" wait "$cpp"
sf_check "Python caller succeeded" wait "$python"
sf_check "Node caller succeeded" wait "$node"
same_shared_value() {
  /usr/bin/python3 - "$SF_WORK"/{cpp,python,node}.json <<'PY'
import base64, json, sys
replies = [json.load(open(path)) for path in sys.argv[1:]]
expected = {"value": base64.b64encode(b"joint:1").decode(), "shared": True}
print(replies)
sys.exit(any(reply != expected for reply in replies))
PY
}
sf_check "every caller got the same value, shared: true" same_shared_value
one_execution() {
  /usr/bin/python3 - "$metrics" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
line = re.search(r'^singleflight_executions_total\{fetcher="joint"\} (\S+)$',
                 text, re.M)
print(line.group(0) if line else "no executions counter for joint")
sys.exit(not line or float(line.group(1)) != 1)
PY
}
sf_check "the fetcher ran once" one_execution
ten_mib_value_from() {  # OUT CMD...: runs CMD, whose reply must hold 10 MiB.
  local out=$1
  shift
  "$@" >"$out" && /usr/bin/python3 - "$out" <<'PY'
import base64, json, sys
value = base64.b64decode(json.load(open(sys.argv[1]))["value"])
print(f"{len(value)} bytes")
sys.exit(len(value) != 10 << 20)
PY
}
sf_check "sfctl receives a 10 MiB value" ten_mib_value_from \
  "$SF_WORK/big-cpp.json" "${sfctl[@]}" --target="$server" --json "do" \
  big:cpp --fetcher=big
sf_check "the Python client receives a 10 MiB value" ten_mib_value_from \
  "$SF_WORK/big-python.json" /usr/bin/python3 tests/clients/do_once.py \
  "$server" big:python big
sf_check "the Node client receives a 10 MiB value" ten_mib_value_from \
  "$SF_WORK/big-node.json" node tests/clients/do_once.mjs "$server" \
  big:node big

# 2. Each client's own tests, side by side.
export SF_TARGET=$server SF_FAKE_TARGET=$fake
timeout 60 /usr/bin/python3 tests/clients/python_client_test.py \
  >"$SF_WORK/python.log" 2>&1 &
python=$!
timeout 60 node --test --test-reporter=spec tests/clients/node_client.test.js \
  >"$SF_WORK/node.log" 2>&1 &
node=$!
python_ok=0 node_ok=0
wait "$python" || python_ok=$?
wait "$node" || node_ok=$?
cat "$SF_WORK/python.log" "$SF_WORK/node.log"
sf_check "Python client tests" test "$python_ok" -eq 0
sf_check "Node client tests" test "$node_ok" -eq 0

# 3. What sfctl sends.
# (Fields split on 0x1f: a tab is whitespace to read, which would merge
# an empty fetcher into the next field.)
while IFS=$'\x1f' read -r fetcher key expected; do
  sf_check "sfctl sends x-flight-key $expected" test \
    "$("${sfctl[@]}" --target="$fake" "do" "$key" --fetcher="$fetcher")" = \
    "$expected"
done < <(/usr/bin/python3 -c '
import json
for v in json.load(open("tests/clients/flight_key_vectors.json"))["vectors"]:
    print(v["fetcher"], v["key"], v["flight_key"], sep="\x1f")')
attempts() {  # The fake's count of attempts for key $1.
  "${sfctl[@]}" --target="$fake" inflight |
    sed -n "s/.* key=$1 waiters=\([0-9]*\) .*/\1/p"
}
retried_do() {
  "${sfctl[@]}" --target="$fake" "do" flaky:cpp | grep -qE '^[0-9a-f]{16}$'
}
sf_check "sfctl retries UNAVAILABLE" retried_do
sf_check "... on the third attempt" test "$(attempts flaky:cpp)" = 3
forget_fails() {
  ! "${sfctl[@]}" --target="$fake" forget flaky:cpp-forget 2>"$SF_WORK/err" &&
    grep -q '^sfctl: UNAVAILABLE: ' "$SF_WORK/err"
}
sf_check "sfctl forget fails with UNAVAILABLE" forget_fails
sf_check "... after one attempt" test "$(attempts flaky:cpp-forget)" = 1
sf_check "sfctl stream sends its first request's x-flight-key" test \
  "$("${sfctl[@]}" --target="$fake" stream hello other --fetcher=slow |
     sed 's/.* value=//' | sort -u)" = 93923c4fd69e8af0

# 4. TLS: a CA, and a server (127.0.0.1) and a client certificate it signed.
sf_check "openssl makes the certificates" sf_make_certificates "$SF_WORK/certs"
certs=$SF_WORK/certs
sf_start_server "$bin" --tls_cert="$certs/server.pem" \
  --tls_key="$certs/server.key" --tls_client_ca="$certs/ca.pem"
sf_check "sfctl health over mutual TLS" test "$("${sfctl[@]}" \
  --target="$SF_TARGET" --ca_cert="$certs/ca.pem" \
  --client_cert="$certs/client.pem" --client_key="$certs/client.key" \
  health)" = SERVING
refused_without_client_certificate() {
  ! "${sfctl[@]}" --target="$SF_TARGET" --timeout=5s \
    --ca_cert="$certs/ca.pem" health 2>"$SF_WORK/err" &&
    grep -q '^sfctl: UNAVAILABLE: ' "$SF_WORK/err"
}
sf_check "... refused without a client certificate" \
  refused_without_client_certificate

sf_summary interop
