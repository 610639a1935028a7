#!/usr/bin/env bash
# Validates the container deployment without a Docker engine (none runs in
# CI): docker-compose.yml parses and names the expected services, the files it
# and the Dockerfiles refer to exist, the Dockerfile keeps its promises
# (Debian 12 bases, non-root user, health check, ports), deploy/haproxy.cfg
# parses, Prometheus scrapes every replica, and, given the built binaries,
# singleflightd starts on deploy/singleflight.yaml.
#
# Usage: tests/deploy/compose_test.sh [BIN_DIR]   (default: build/bin)
# Needs docker-compose (Debian `docker-compose`) and haproxy. Takes a few
# seconds; exits 1 with a FAIL line on the first problem.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:-$root/build/bin}"
cd "$root"

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

command -v docker-compose > /dev/null ||
  fail "docker-compose is not installed (apt-get install docker-compose)"

# 1. The compose file, as docker-compose reads it.
docker-compose -f docker-compose.yml config -q ||
  fail "docker-compose -f docker-compose.yml config -q rejected the file (above)"
services="$(docker-compose -f docker-compose.yml config --services | sort | xargs)"
[[ "$services" == "origin prometheus proxy replica1 replica2 replica3" ]] ||
  fail "services are \"$services\""
ok "docker-compose.yml is valid: $services"

# 2. What it and the Dockerfiles refer to.
for file in Dockerfile deploy/haproxy.Dockerfile deploy/haproxy.cfg \
    deploy/prometheus.yml deploy/singleflight.yaml tests/origin/http_origin.py \
    scripts/install-deps.sh config/examples; do
  [[ -e "$file" ]] || fail "$file is missing"
done
ok "referenced files exist"

# 3. The Dockerfile's promises.
expect_line() {  # FILE REGEX WHAT
  grep -Eq "$2" "$1" || fail "$1: no $3 (no line matches /$2/)"
}
expect_line Dockerfile '^FROM debian:bookworm AS build$' "Debian 12 build stage"
expect_line Dockerfile '^FROM debian:bookworm-slim$' "Debian 12 runtime stage"
expect_line Dockerfile '^USER singleflight' "non-root user"
expect_line Dockerfile '^HEALTHCHECK ' "health check"
expect_line Dockerfile '^EXPOSE 50051 9090$' "EXPOSE of the gRPC and metrics ports"
expect_line deploy/haproxy.Dockerfile '^FROM debian:bookworm-slim$' "Debian 12 base"
expect_line deploy/haproxy.Dockerfile '^USER haproxy$' "non-root user"
ok "Dockerfiles: Debian 12 bases, non-root users, health check, ports"

# 4. The proxy configuration, with the compose file's addresses (which this
#    machine cannot resolve: HAProxy only warns) and with loopback ones.
if command -v haproxy > /dev/null; then
  haproxy -c -q -f deploy/haproxy.cfg 2>/dev/null ||
    haproxy -c -f deploy/haproxy.cfg || fail "deploy/haproxy.cfg does not parse"
  SF_PROXY_LISTEN=127.0.0.1:50051 SF_PROXY_STATS=127.0.0.1:8404 \
  SF_REPLICA1=127.0.0.1:1 SF_REPLICA2=127.0.0.1:2 SF_REPLICA3=127.0.0.1:3 \
    haproxy -c -q -f deploy/haproxy.cfg || fail "deploy/haproxy.cfg with loopback addresses"
  ok "deploy/haproxy.cfg parses"
else
  fail "haproxy is not installed (apt-get install haproxy)"
fi

# 5. Prometheus scrapes each replica's metrics port, and HAProxy's.
/usr/bin/python3 - <<'PY' || fail "deploy/prometheus.yml does not scrape what docker-compose.yml runs"
import yaml  # python3-yaml, a dependency of docker-compose
prometheus = yaml.safe_load(open("deploy/prometheus.yml"))
targets = {t for job in prometheus["scrape_configs"]
           for group in job["static_configs"] for t in group["targets"]}
want = {"replica1:9090", "replica2:9090", "replica3:9090", "proxy:8404"}
assert targets == want, f"targets {sorted(targets)}, want {sorted(want)}"
config = yaml.safe_load(open("deploy/singleflight.yaml"))
assert config["listen"] == "0.0.0.0:50051", config["listen"]
assert config["metrics_listen"] == "0.0.0.0:9090", config["metrics_listen"]
PY
ok "deploy/prometheus.yml scrapes the three replicas and HAProxy"
# ... and its rules file is the alerts of deploy/prometheus/ (mounted there).
prometheus_check() {
  local copy
  copy=$(mktemp)
  sed "s|/etc/prometheus/alerts.yml|$PWD/deploy/prometheus/alerts.yml|" \
    deploy/prometheus.yml > "$copy"
  promtool check config "$copy" > /dev/null &&
    grep -q "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml" \
      docker-compose.yml
  local status=$?
  rm -f "$copy"
  return $status
}
prometheus_check || fail "deploy/prometheus.yml or its alerts do not load"
ok "deploy/prometheus.yml loads, with the alerts docker-compose.yml mounts"

# 6. The replicas' configuration loads (ports overridden to free ones).
if [[ -x "$bin/singleflightd" ]]; then
  out="$(mktemp)"
  "$bin/singleflightd" --config=deploy/singleflight.yaml --listen=127.0.0.1:0 \
    --metrics_listen=127.0.0.1:0 > "$out" 2>&1 &
  pid=$!
  trap '[[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null; rm -f "$out"' EXIT
  for _ in $(seq 1 100); do
    grep -q "listening on" "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "listening on" "$out" ||
    fail "singleflightd did not start on deploy/singleflight.yaml: $(cat "$out")"
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  pid=""
  ((status == 0)) || fail "singleflightd did not exit cleanly on SIGTERM: $(cat "$out")"
  ok "singleflightd starts on deploy/singleflight.yaml"
else
  echo "skip: no $bin/singleflightd to load deploy/singleflight.yaml"
fi

echo "compose_test: all passed"
