#!/usr/bin/env bash
# Runs every buf command of docs/OPERATING.md ("Operating it by hand") and
# README.md against a live singleflightd and compares its output with the
# page's (run_doc_commands.py), then checks what OPERATING.md claims of the
# forgotten flight: the later caller started a second execution.
#
# Usage: tests/tools/operating_test.sh [BIN_DIR]
# BIN_DIR (default build/bin) holds singleflightd and sfctl. Needs node and
# npm (buf is installed into tests/tools with npm ci when missing), jq,
# protoc and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-build/bin}")
docs=(docs/OPERATING.md README.md)
source tests/clients/live_server.sh
sf_setup

if [[ ! tests/tools/node_modules/.package-lock.json -nt \
      tests/tools/package-lock.json ]]; then
  npm ci --prefix tests/tools --no-audit --no-fund --loglevel=error
fi

# The page's server: a slow fetcher, so that a flight can be looked at.
sf_start_server "$bin" --metrics_listen=127.0.0.1:0 \
  --fetcher=slow=echo:?delay=5s

run_doc() {
  timeout 120 python3 tests/tools/run_doc_commands.py \
    "$SF_TARGET" "${docs[@]}" \
    --cwd tests/tools --select "npx buf" \
    --flights "$bin/sfctl --target=$SF_TARGET inflight" >"$SF_WORK/run.log"
  local status=$?
  cat "$SF_WORK/run.log"
  return "$status"
}
sf_check "every buf command of ${docs[*]} gives the output shown" run_doc
ran_all() {
  local shown ran
  shown=$(cat "${docs[@]}" | grep -cE '^\$ (npx buf|wait$)')
  ran=$(sed -n 's/^ran \([0-9]*\) commands.*/\1/p' "$SF_WORK/run.log")
  echo "commands shown: $shown, run: $ran"
  ((shown > 0 && ran == shown))
}
sf_check "the run covered them all" ran_all
executions() {
  python3 - "$SF_METRICS_URL" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
line = re.search(r'^singleflight_executions_total\{fetcher="slow"\} (\S+)$',
                 text, re.M)
print(line.group(0) if line else "no executions counter for slow")
sys.exit(not line or float(line.group(1)) != 2)
PY
}
sf_check "after Forget, the later caller started a second execution" executions

sf_summary operating
