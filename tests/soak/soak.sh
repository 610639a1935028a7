#!/bin/sh
# Soak test of singleflightd with a faulty origin (tests/soak/soak.py).
#
# Usage: tests/soak/soak.sh BIN_DIR [ROUNDS] [SECONDS_PER_ROUND] [soak.py options...]
#   CI (brief):  tests/soak/soak.sh build/bin 3 10
#                tests/soak/soak.sh build-asan/bin 3 10
#   one hour:    tests/soak/soak.sh build/bin 60 60
# Needs /usr/bin/python3 with Debian's python3-grpcio, protoc and
# /usr/bin/grpc_python_plugin (protobuf-compiler, protobuf-compiler-grpc).
# Exits 0 if every check passed, 1 otherwise (see soak.py's docstring).
set -eu
if [ $# -lt 1 ]; then
  sed -n '2,11p' "$0" >&2
  exit 2
fi
bin_dir=$1
rounds=${2:-3}
seconds=${3:-10}
shift $(( $# < 3 ? $# : 3 ))
if [ ! -x "$bin_dir/singleflightd" ]; then
  echo "soak.sh: no $bin_dir/singleflightd" >&2
  exit 2
fi
exec /usr/bin/python3 "$(dirname "$0")/soak.py" \
  --server-bin "$bin_dir/singleflightd" --rounds "$rounds" \
  --seconds-per-round "$seconds" "$@"
