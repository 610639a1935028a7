#!/usr/bin/env bash
# Installs, from Debian's packages, whatever the build and tests need that is
# missing, and the packages named as arguments (for the benchmarks' extra
# tools). Run as root on Debian 12. Installs nothing if all is there.
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config dpkg-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  grpc-proto libabsl-dev libyaml-cpp-dev libcurl4-openssl-dev prometheus-cpp-dev libspdlog-dev openssl libssl-dev
  curl python3-grpcio python3-protobuf jq haproxy docker-compose libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libfuzzer-14-dev libclang-rt-14-dev python3-venv python3-wheel
  prometheus yamllint python3-yaml nghttp2-client
  "$@"
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
      grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The tests want promtool, not a Prometheus server on :9090 (the port
  # of the README's metrics example).
  if command -v systemctl > /dev/null &&
      systemctl is-active --quiet prometheus 2> /dev/null; then
    systemctl disable --now prometheus
  fi
fi
