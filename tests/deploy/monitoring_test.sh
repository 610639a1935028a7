#!/usr/bin/env bash
# Checks the monitoring of a singleflight tier: the Prometheus rules
# (deploy/prometheus/alerts.yml) with promtool and their unit tests
# (alerts_test.yml: the alerts fire on synthetic series), the Prometheus
# configuration (deploy/prometheus/prometheus.yml) and that it keeps the
# pods and ports deploy/k8s declares, the Grafana dashboard
# (deploy/grafana/singleflight.json: its structure, and every query parsed by
# promtool), and, against a live singleflightd and a live HAProxy
# (deploy/haproxy.cfg in front of it): that promtool accepts the server's
# /metrics as they are, and that every metric the dashboard and the rules
# use is in that output.
#
# Usage: tests/deploy/monitoring_test.sh [BIN_DIR]   (default: build/bin)
# Needs promtool (Debian `prometheus`), haproxy, curl and python3-yaml.
# Takes about 5 s; bounded to 120 s. Ends with "monitoring_test: P passed,
# F failed"; exits 1 if any check failed.
set -euo pipefail

if [[ -z "${MONITORING_TEST_BOUNDED:-}" ]]; then
  MONITORING_TEST_BOUNDED=1 exec timeout -k 5 120 bash "$0" "$@"
fi

root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$(cd "${1:-$root/build/bin}" 2>/dev/null && pwd)" ||
  { echo "FAIL: no directory ${1:-$root/build/bin}" >&2; exit 1; }
cd "$root"
# shellcheck source=tests/clients/live_server.sh
source tests/clients/live_server.sh

for tool in promtool haproxy curl; do
  if ! command -v "$tool" > /dev/null; then
    package=$tool
    [[ "$tool" == promtool ]] && package=prometheus
    echo "FAIL: $tool is not installed (apt-get install $package)" >&2
    exit 1
  fi
done
sf_setup
rules=deploy/prometheus/alerts.yml
dashboard=deploy/grafana/singleflight.json

# 1. The rules, and their unit tests (and the YAML, relaxed, if yamllint is
#    installed).
if command -v yamllint > /dev/null; then
  sf_check "yamllint (relaxed) deploy/prometheus/*.yml" \
    yamllint -d '{extends: relaxed, rules: {line-length: disable}}' \
    deploy/prometheus/*.yml
else
  echo "skip: yamllint is not installed (apt-get install yamllint)"
fi
sf_check "promtool check rules $rules" promtool check rules "$rules"
sf_check "promtool test rules deploy/prometheus/alerts_test.yml" \
  promtool test rules deploy/prometheus/alerts_test.yml

# 2. The Prometheus configuration. Debian's promtool is built without
#    Kubernetes service discovery (it rejects kubernetes_sd_configs as an
#    unknown field), so it checks a copy where static targets stand in for
#    it; everything else (relabelling, rule files) is checked as written.
#    Then the relabelling must keep what deploy/k8s declares: the pods'
#    labels and annotations, and the ports named metrics and stats.
mkdir -p "$SF_WORK/prometheus"
cp "$rules" "$SF_WORK/prometheus/"
check_prometheus_config() {
  /usr/bin/python3 - "$SF_WORK/prometheus/prometheus.yml" <<'PY'
import re, sys, yaml
config = yaml.safe_load(open("deploy/prometheus/prometheus.yml"))
assert config["rule_files"] == ["alerts.yml"], config["rule_files"]
manifests = {}
for name in ("statefulset.yaml", "proxy.yaml"):
    for doc in yaml.safe_load_all(open(f"deploy/k8s/base/{name}")):
        if doc and doc["kind"] in ("StatefulSet", "Deployment"):
            manifests[doc["kind"]] = doc
want = {"singleflight": ("StatefulSet", "metrics"),
        "haproxy": ("Deployment", "stats")}
jobs = {job["job_name"]: job for job in config["scrape_configs"]}
assert set(jobs) == set(want), sorted(jobs)
for name, (kind, port_name) in want.items():
    job = jobs[name]
    template = manifests[kind]["spec"]["template"]
    labels = template["metadata"]["labels"]
    annotations = template["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"]
             for p in template["spec"]["containers"][0]["ports"]}
    meta = {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name":
            labels["app.kubernetes.io/name"],
        "__meta_kubernetes_pod_label_app_kubernetes_io_component":
            labels["app.kubernetes.io/component"],
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape":
            annotations["prometheus.io/scrape"],
        "__meta_kubernetes_pod_annotation_prometheus_io_path":
            annotations["prometheus.io/path"],
    }
    # Pod discovery makes a target per container port: exactly the one
    # named port_name (the annotation's port) must be kept.
    kept = []
    for port, number in ports.items():
        target = dict(meta, __meta_kubernetes_pod_container_port_name=port)
        keep = True
        for rule in job["relabel_configs"]:
            if rule.get("action") != "keep":
                continue
            value = ";".join(target.get(l, "") for l in rule["source_labels"])
            keep = keep and re.fullmatch(rule["regex"], value) is not None
        if keep:
            kept.append((port, number))
    assert kept == [(port_name, int(annotations["prometheus.io/port"]))], \
        f"job {name} keeps {kept} of {ports}"
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == [
        "singleflight"], job["kubernetes_sd_configs"]
    print(f"job {name}: keeps the {kind}'s port {kept[0]}")
    job.pop("kubernetes_sd_configs")
    job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
yaml.safe_dump(config, open(sys.argv[1], "w"))
PY
}
sf_check "deploy/prometheus/prometheus.yml keeps the pods and ports of deploy/k8s" \
  check_prometheus_config
sf_check "promtool check config deploy/prometheus/prometheus.yml (static targets for Kubernetes discovery)" \
  promtool check config "$SF_WORK/prometheus/prometheus.yml"

# 3. The dashboard: a Prometheus data source variable that every panel
#    uses, and queries that parse (promtool, as recording rules, with
#    Grafana's variables replaced).
check_dashboard() {
  /usr/bin/python3 - "$dashboard" "$SF_WORK/dashboard_rules.yml" <<'PY'
import json, sys, yaml
d = json.load(open(sys.argv[1]))
variables = {v["name"]: v for v in d["templating"]["list"]}
assert variables["datasource"]["type"] == "datasource", variables
assert variables["datasource"]["query"] == "prometheus", variables
panels = [p for p in d["panels"] if p["type"] != "row"]
rules, titles = [], set()
for p in panels:
    assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p
    assert p["title"] not in titles, p["title"]
    titles.add(p["title"])
    for t in p["targets"]:
        expr = (t["expr"].replace("$__rate_interval", "5m")
                .replace("$job", ".+").replace("$fetcher", ".*"))
        rules.append({"record": f"dashboard:panel_{p['id']}_{t['refId']}",
                      "expr": expr})
for v in variables.values():
    if v["type"] == "query":
        assert v["datasource"]["uid"] == "${datasource}", v
wanted = ["Executions per call", "Waiters per flight", "Wait time",
          "Rejections by reason", "Errors by code", "Stream read pauses",
          "Build info"]
missing = [w for w in wanted if w not in titles]
assert not missing, f"no panel {missing}"
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]},
               open(sys.argv[2], "w"))
print(f"{len(panels)} panels, {len(rules)} queries")
PY
}
sf_check "$dashboard: data source variable, the panels asked for" check_dashboard
sf_check "promtool parses every query of $dashboard" \
  promtool check rules "$SF_WORK/dashboard_rules.yml"

# 4. A live server with series of every family: calls that succeed, share,
#    are refused by max_waiters, name an unknown fetcher; a DoStream.
sf_start_server "$bin" --metrics_listen=127.0.0.1:0 \
  --fetcher='slow=echo:?delay=300ms' --max_waiters=2
sfctl="$bin/sfctl --target=$SF_TARGET --timeout=10s"
$sfctl do hello > /dev/null
$sfctl do hot --fetcher=slow -n 6 > /dev/null 2>&1 || true  # 4 refused
$sfctl do key --fetcher=nope > /dev/null 2>&1 || true        # NOT_FOUND
$sfctl stream a b c > /dev/null
curl -sf "$SF_METRICS_URL" > "$SF_WORK/metrics.txt"
check_metrics() {
  local status=0
  promtool check metrics < "$SF_WORK/metrics.txt" > "$SF_WORK/promtool.out" 2>&1 ||
    status=$?
  if ((status != 0)) || [[ -s "$SF_WORK/promtool.out" ]]; then
    echo "promtool check metrics (exit $status) complains about $SF_METRICS_URL:"
    cat "$SF_WORK/promtool.out"
    return 1
  fi
}
sf_check "promtool check metrics accepts the server's /metrics ($(grep -vc '^#' "$SF_WORK/metrics.txt") samples)" \
  check_metrics
sf_check "a max_waiters rejection was counted" \
  grep -q '^singleflight_rejected_total{.*reason="max_waiters"' "$SF_WORK/metrics.txt"

# 5. HAProxy (deploy/haproxy.cfg) in front of it, for its exporter's names.
read -r proxy_port stats_port < <(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
SF_PROXY_LISTEN="127.0.0.1:$proxy_port" SF_PROXY_STATS="127.0.0.1:$stats_port" \
SF_REPLICA1="$SF_TARGET" SF_REPLICA2=127.0.0.1:1 SF_REPLICA3=127.0.0.1:2 \
  sf_background haproxy -db -f deploy/haproxy.cfg > "$SF_WORK/haproxy.log" 2>&1
haproxy_metrics() {
  curl -sf "http://127.0.0.1:$stats_port/metrics" > "$SF_WORK/haproxy.txt" &&
    grep -q '^haproxy_backend_active_servers{proxy="singleflight"} 1' "$SF_WORK/haproxy.txt"
}
for _ in $(seq 1 50); do haproxy_metrics && break; sleep 0.1; done
sf_check "HAProxy's exporter answers, with its replica UP" haproxy_metrics

# 6. Every metric the dashboard and the rules name is in those outputs.
check_names() {
  /usr/bin/python3 - "$dashboard" "$rules" "$SF_WORK/metrics.txt" \
    "$SF_WORK/haproxy.txt" <<'PY'
import json, re, sys, yaml
dashboard, rules, server, haproxy = sys.argv[1:5]
exprs = []
d = json.load(open(dashboard))
for p in d["panels"]:
    exprs += [t["expr"] for t in p.get("targets", [])]
for v in d["templating"]["list"]:
    if v["type"] == "query":
        exprs.append(v["query"]["query"])
for group in yaml.safe_load(open(rules))["groups"]:
    exprs += [r["expr"] for r in group["rules"]]
names = set()
for e in exprs:
    names |= set(re.findall(r"\b((?:singleflight|haproxy)_[a-z0-9_]+)\b", e))
    if re.search(r"\bup\{", e):
        names.add("up")
present = set()
for path in (server, haproxy):
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            present.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
missing = sorted(n for n in names if n not in present and n != "up")
for n in sorted(names):
    where = ("made by Prometheus" if n == "up" else
             "live" if n in present else "MISSING")
    print(f"  {n}: {where}")
if missing:
    print(f"not in the live /metrics outputs: {missing}")
    sys.exit(1)
PY
}
sf_check "every metric of $dashboard and $rules is in the live server's or HAProxy's /metrics" \
  check_names

sf_summary monitoring_test
