#!/usr/bin/env bash
# Installs what is missing (as scripts/install-deps.sh, plus wrk and gnuplot),
# builds (and the Go baseline server of bench/go into build/go-baseline/,
# from Debian's Go packages, offline), and runs every benchmark
# (scripts/bench.py); the results go to docs/bench/. Arguments go to bench.py
# (--quick for a smoke run; --skip-go leaves out, and does not build, the Go
# baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh wrk gnuplot-nox
scripts/build.sh
if [[ " $* " != *" --skip-go "* ]]; then
  bench/go/build.sh build/go-baseline
fi
exec /usr/bin/python3 scripts/bench.py "$@"
