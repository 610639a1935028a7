#!/usr/bin/env bash
# Validates the Kubernetes deployment (deploy/k8s, deploy/k8s/tls) without a
# cluster: renders both kustomizations, checks that ports, probes, Secrets,
# ConfigMaps, HAProxy's DNS discovery and the drain timings agree, that
# singleflightd accepts the container's flags (--check_config) and HAProxy
# its configuration (haproxy -c), then runs three replicas with those flags
# behind that HAProxy, found through a fake DNS server, on loopback
# (tests/deploy/k8s_test.py says what in detail).
#
# Usage: tests/deploy/k8s_test.sh [BIN_DIR]   (default: build/bin)
# Needs python3-yaml, haproxy and openssl; uses yamllint and kubectl if
# installed. Takes about 25 s. Exits 1 with FAIL lines on any problem.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:-$root/build/bin}"
exec timeout -k 5 240 /usr/bin/python3 "$root/tests/deploy/k8s_test.py" "$bin"
