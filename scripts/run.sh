#!/usr/bin/env bash
# Installs what is missing, builds, and starts singleflightd on its embedded
# default fetcher (echo). Extra arguments go to singleflightd, for example
#   scripts/run.sh --listen=0.0.0.0:50051 --fetcher=slow=echo:?delay=1s
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/bin/singleflightd "$@"
