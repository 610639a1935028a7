#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. build/       unit and end-to-end tests (ctest labels: unit, e2e), the
#                   README's examples and every sh block of the docs (run,
#                   or covered by a step named in the page), the
#                   Python/Node/C++ clients together, unchanged Python and
#                   Node clients through proxy mode, the Python and Node
#                   clients installed as packages, the buf curl commands
#                   of docs/OPERATING.md, buf lint and buf breaking of
#                   proto/, the benchmarks with tiny bounds
#                   (scripts/bench.py --quick, the proxy benches), and an
#                   out-of-tree build against the installed client library,
#                   the compose file, and three replicas behind HAProxy;
#                   the locking annotations under clang's -Wthread-safety,
#                   and a short soak with a faulty origin (tests/soak/);
#   2. build-tsan/  core/ and the echo fetcher under ThreadSanitizer (label
#                   thread-sanitizer);
#   3. build-asan/  everything under AddressSanitizer + UBSan
#                   (label address-sanitizer), and the short soak again;
#   4. build-fuzz/  every libFuzzer target for 30 s (scripts/fuzz.sh).
# Any argument is passed to each ctest run, for example -L unit.
#
# scripts/test.sh --quick is the inner loop: it builds build/ and runs its
# unit tests only (under a minute after a build), nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
scripts/install-deps.sh

step() { echo; echo "=== $* ($(date +%T))"; }
# A hung test fails after 5 minutes instead of holding CI to its limit; a
# test with a TIMEOUT property of its own keeps it.
ctest_all() { ctest --output-on-failure -j2 --timeout 300 "$@"; }
# Each script step fails after 10 minutes if it hangs.
bounded() { timeout --kill-after=10 600 "$@"; }

if [[ "${1:-}" == "--quick" ]]; then
  shift
  step "build and run the unit tests (--quick)"
  scripts/build.sh
  ctest_all --test-dir build -L unit "$@"
  exit 0
fi

step "build and test"
scripts/build.sh
ctest_all --test-dir build "$@"

step "README examples, clients and tools: interop, operating by hand, install"
bounded /usr/bin/python3 tests/readme/readme_test.py README.md
bounded tests/clients/interop_test.sh build/bin
bounded tests/proxy/clients_test.sh build/bin
bounded tests/clients/python_package_test.sh build/bin
bounded tests/clients/node_package_test.sh build/bin
bounded tests/tools/operating_test.sh build/bin
bounded tests/clients/install_test.sh build
bounded /usr/bin/python3 tests/docs/sh_blocks_test.py build/bin README.md \
  CONTRIBUTING.md docs/*.md

step "the wire API: buf lint, and buf breaking against the previous commit"
# buf was installed into tests/tools by operating_test.sh.
buf=tests/tools/node_modules/.bin/buf
bounded "$buf" lint proto
if git rev-parse -q --verify HEAD~1 > /dev/null; then
  bounded "$buf" breaking proto --against '.git#ref=HEAD~1,subdir=proto'
else
  echo "no previous commit here (a shallow clone?): buf breaking skipped"
fi

step "deployment: compose file; three replicas behind HAProxy"
for test in tests/deploy/*_test.sh; do bounded "$test" build/bin; done

step "benchmarks with tiny bounds, so that they cannot rot (results discarded)"
bench_out=$(mktemp -d)
bounded /usr/bin/python3 scripts/bench.py --quick --skip-go \
  --only=micro,overhead,hot_key,many_waiters,large_values --out="$bench_out"
rm -rf "$bench_out"
bounded tests/deploy/proxy_bench.py --bin=build/bin --targets=direct,haproxy \
  --rounds=1 --duration=1s --scenario=throughput > /dev/null
bounded /usr/bin/python3 scripts/grpc_proxy_bench.py --bin=build/bin --quick \
  > /dev/null
bounded /usr/bin/python3 scripts/cache_bench.py --bin=build/bin --quick \
  > /dev/null

step "locking annotations: clang -Wthread-safety"
bounded scripts/check-thread-safety.sh build

step "soak with a faulty origin (3 rounds of 10 s)"
bounded tests/soak/soak.sh build/bin 3 10

step "ThreadSanitizer: core"
scripts/build-tsan-abseil.sh build-tsan/abseil
cmake -S . -B build-tsan -G Ninja -DSF_SANITIZER=thread -DSF_WITH_GRPC=OFF \
  -DCMAKE_PREFIX_PATH="$root/build-tsan/abseil" > /dev/null
cmake --build build-tsan
TSAN_OPTIONS="suppressions=$root/tests/tsan.supp halt_on_error=1" \
  ctest_all --test-dir build-tsan "$@"

step "AddressSanitizer + UBSan: everything"
cmake -S . -B build-asan -G Ninja -DSF_SANITIZER=address > /dev/null
cmake --build build-asan
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  ctest_all --test-dir build-asan "$@"

step "soak under AddressSanitizer + UBSan (3 rounds of 10 s)"
bounded tests/soak/soak.sh build-asan/bin 3 10

step "fuzzing: every target for 30 s"
bounded scripts/fuzz.sh 30

step "all tests passed"
