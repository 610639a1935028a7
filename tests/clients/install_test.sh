#!/usr/bin/env bash
# The C++ client as a library: `cmake --install` of a build into a temporary
# prefix, then a project outside the repository (tests/clients/consumer)
# finds it with find_package(singleflight CONFIG REQUIRED), links
# singleflight::client, and calls a live singleflightd; the installed sfctl
# does too.
#
# Usage: tests/clients/install_test.sh [BUILD_DIR]
# BUILD_DIR (default build) is a build of this repository; it is brought up
# to date first.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=$(realpath "${1:-build}")
source tests/clients/live_server.sh
sf_setup
prefix=$SF_WORK/prefix

cmake --build "$build" --parallel 2 >/dev/null
install_package() {
  cmake --install "$build" --prefix "$prefix" >"$SF_WORK/install.log" ||
    { cat "$SF_WORK/install.log"; return 1; }
}
sf_check "cmake --install into a new prefix" install_package
installed() {
  local file
  for file in lib/cmake/singleflight/singleflightConfig.cmake \
      lib/cmake/singleflight/singleflightConfigVersion.cmake \
      lib/cmake/singleflight/singleflightTargets.cmake \
      include/singleflight/client/client.h \
      include/singleflight/client/flight_key.h \
      include/singleflight/singleflight/v1/singleflight.grpc.pb.h \
      include/singleflight/grpc/health/v1/health.grpc.pb.h \
      lib/libsf_client.a lib/libsf_proto.a bin/sfctl; do
    [[ -f "$prefix/$file" ]] || { echo "missing: $file"; return 1; }
  done
}
sf_check "the package, headers, libraries and sfctl are installed" installed
build_consumer() {
  if ! cmake -S tests/clients/consumer -B "$SF_WORK/consumer" -G Ninja \
      -DCMAKE_PREFIX_PATH="$prefix" >"$SF_WORK/consumer.log" 2>&1 ||
    ! cmake --build "$SF_WORK/consumer" >>"$SF_WORK/consumer.log" 2>&1; then
    cat "$SF_WORK/consumer.log"
    return 1
  fi
}
sf_check "an outside project builds against the installed package" \
  build_consumer

sf_start_server "$build/bin"
consumer_calls() {
  local out
  out=$("$SF_WORK/consumer/consumer" "$SF_TARGET") || return 1
  echo "$out"
  # The flight key of ("", "consumer"), as every client computes it.
  [[ $out == "value=consumer shared=false health=SERVING flight_key=d7b909d089a77dd7" ]]
}
sf_check "the outside project calls the live server" consumer_calls
sf_check "the installed sfctl calls it too" \
  "$prefix/bin/sfctl" --target="$SF_TARGET" health

sf_summary install
