#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ in build-fuzz/ (clang, ASan,
# UBSan; see cmake/fuzz.cmake) and runs each for a while:
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# 30 seconds each and every target by default; a target is named as in
# tests/fuzz/ without "_fuzzer" (request, stream, config, fetcher_uri,
# http_response, plugin_settings). Each runs on a copy of its committed seed
# corpus, build-fuzz/corpus/NAME, which keeps growing from run to run; what
# it finds (crash, leak, timeout, out of memory) is written to
# build-fuzz/findings/NAME/ and fails the script. Prints per target the
# executions per second and the final corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
all_targets=(request stream config fetcher_uri http_response plugin_settings)
targets=("$@")
if ((${#targets[@]} == 0)); then targets=("${all_targets[@]}"); fi

# clang 14 and libFuzzer are among them.
scripts/install-deps.sh

CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DSF_FUZZ=ON \
  > /dev/null
flock /tmp/sf-build-fuzz.lock \
  cmake --build build-fuzz -j2 --target "${targets[@]/%/_fuzzer}"

summary=()
failed=()
for name in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$name"
  findings="build-fuzz/findings/$name"
  mkdir -p "$corpus" "$findings"
  cp tests/fuzz/corpus/"$name"/* "$corpus"/
  dictionary=()
  if [[ -f "tests/fuzz/$name.dict" ]]; then
    dictionary=("-dict=tests/fuzz/$name.dict")
  fi
  log="build-fuzz/findings/$name.log"
  echo "=== $name: ${seconds}s (log: $log)"
  status=0
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "build-fuzz/bin/${name}_fuzzer" "$corpus" "${dictionary[@]}" \
      -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="$findings/" \
      > "$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  files=$(find "$corpus" -type f | wc -l)
  line=$(printf '%-16s %8s exec/s %10s runs  corpus %5s files' "$name" \
    "${per_second:-?}" "${runs:-?}" "$files")
  summary+=("$line")
  if ((status != 0)); then
    failed+=("$name")
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz invariant|artifact_prefix)' \
      "$log" | head -5 || true
    echo "=== $name FAILED (exit $status): see $log and $findings/"
  fi
done

echo
echo "=== fuzzing summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "=== findings in: ${failed[*]}"
  exit 1
fi
echo "=== no findings"
