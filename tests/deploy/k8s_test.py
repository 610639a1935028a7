#!/usr/bin/python3
"""Validates the Kubernetes manifests of deploy/k8s without a cluster.

Usage: tests/deploy/k8s_test.py BIN_DIR   (tests/deploy/k8s_test.sh runs it)

Both kustomizations, deploy/k8s (plaintext gRPC inside the cluster) and
deploy/k8s/tls (TLS everywhere), are rendered: by a small emulation of
kustomize (resources, namespace, configMapGenerator, JSON 6902 patches,
images) that needs nothing but python3-yaml, and, where `kubectl kustomize`
exists, by kubectl too, whose output must be the emulation's (generated
names' hash suffixes aside). Then, for each rendering:

  - every document has apiVersion, kind and metadata.name, with the
    apiVersion of its kind; everything is in one namespace;
  - Services, PodDisruptionBudgets and the NetworkPolicy select the pods
    they mean; the StatefulSet's serviceName is its headless Service;
  - ports agree: --listen / --metrics_listen in singleflightd's args, the
    containerPorts, the probes, the Services' targetPorts, the Prometheus
    annotations, the NetworkPolicy; HAProxy's binds and its containerPorts,
    probes, Service and annotations;
  - the probes: Kubernetes' gRPC probes, service singleflight.v1.SingleFlight
    for readiness and "" for liveness (tls/: sfctl health, the same names);
  - every ConfigMap a volume uses is generated, with the keys it mounts;
    every Secret is one docs/KUBERNETES.md tells the operator to create,
    with the keys it mounts; every file a flag names is in a mount;
  - HAProxy's server-template resolves the headless Service's SRV record,
    _grpc._tcp.SERVICE.NAMESPACE.svc.cluster.local, once its environment
    (the namespace from the downward API) is put in; it has a slot per
    replica; `haproxy -c` accepts the configuration (both variants);
  - draining fits: terminationGracePeriodSeconds > preStop sleeps +
    --drain_grace + --drain_timeout; --drain_grace covers HAProxy's checks
    (fall x inter + timeout check); the liveness probe outlasts a drain;
    HAProxy's preStop + hard-stop-after fits its grace period;
  - requests and limits are set, requests <= limits;
  - `singleflightd --check_config` accepts the container's args, with the
    mounted files replaced by local ones (token files, an openssl
    certificate);
and then, live, on loopback, for both renderings (plaintext and TLS): a fake
DNS server publishes the SRV record of three singleflightd replicas started
with the manifest's flags, and HAProxy runs the ConfigMap's configuration.
It must find the three and report itself ready (/ready); route calls with
the caller token (one execution for 40 callers of one key; keys spread over
the replicas; no token: UNAUTHENTICATED; InFlight needs the admin token);
agree with a second HAProxy started on the DNS answers in reverse order
(callers of one key through both share one execution); mark a replica DOWN
within its --drain_grace after SIGTERM, while the replica still serves, and
let it exit 0; on SIGUSR1 (the proxy's preStop) finish a call in progress,
stop listening and exit 0; answer 503 on /ready once no replica is left.
With tls/, the probes' sfctl commands must say SERVING.

Prints what it checked; exits 1 on any failure.
"""

import copy
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
DOCS = os.path.join(ROOT, "docs", "KUBERNETES.md")
HEALTH_SERVICE = "singleflight.v1.SingleFlight"
API_VERSIONS = {
    "Namespace": "v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
    "StatefulSet": "apps/v1", "Deployment": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
CLUSTER_SCOPED = {"Namespace"}

failures = []
passed = []


def ok(what):
    print(f"ok: {what}")
    passed.append(what)


def fail(what):
    print(f"FAIL: {what}")
    failures.append(what)


def check(condition, what):
    (ok if condition else fail)(what)
    return condition


# --- kustomize, emulated -------------------------------------------------

def json_pointer(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def apply_op(doc, op):
    parts = json_pointer(op["path"])
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        if kind == "add":
            index = len(parent) if last == "-" else int(last)
            parent.insert(index, copy.deepcopy(op["value"]))
        elif kind == "replace":
            parent[int(last)] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[int(last)]
        else:
            raise ValueError(f"op {kind} is not emulated")
    else:
        if kind in ("add", "replace"):
            if kind == "replace" and last not in parent:
                raise KeyError(f"replace of missing {op['path']}")
            parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[last]
        else:
            raise ValueError(f"op {kind} is not emulated")


def emulate_kustomize(directory):
    """The documents `kubectl kustomize DIRECTORY` makes, without the hash
    suffixes of generated names. Supports what deploy/k8s uses, and fails
    loudly on anything else."""
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    known = {"apiVersion", "kind", "namespace", "resources",
             "configMapGenerator", "patches", "images"}
    unknown = set(k) - known
    if unknown:
        raise ValueError(f"{directory}: kustomization fields not emulated: "
                         f"{sorted(unknown)}")
    docs = []
    for resource in k.get("resources", []):
        path = os.path.join(directory, resource)
        if os.path.isdir(path):
            docs += emulate_kustomize(path)
        else:
            with open(path) as f:
                docs += [d for d in yaml.safe_load_all(f) if d]
    for generator in k.get("configMapGenerator", []):
        if set(generator) - {"name", "files"}:
            raise ValueError(f"configMapGenerator fields not emulated: "
                             f"{sorted(generator)}")
        data = {}
        for entry in generator["files"]:
            key, _, path = entry.rpartition("=")
            with open(os.path.join(directory, path)) as f:
                data[key or os.path.basename(path)] = f.read()
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": generator["name"]}, "data": data})
    for patch in k.get("patches", []):
        if "path" in patch:
            with open(os.path.join(directory, patch["path"])) as f:
                ops = yaml.safe_load(f)
        else:
            ops = yaml.safe_load(patch["patch"])
        if not isinstance(ops, list):
            raise ValueError("only JSON 6902 patches are emulated")
        target = patch["target"]
        matched = [d for d in docs if d["kind"] == target["kind"]
                   and d["metadata"]["name"] == target["name"]]
        if len(matched) != 1:
            raise ValueError(f"patch target {target} matches {len(matched)}")
        for op in ops:
            apply_op(matched[0], op)
    for image in k.get("images", []):
        for doc in docs:
            for c in pod_containers(doc):
                name, _, _ = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = (image.get("newName", name) + ":" +
                                  image.get("newTag", "latest"))
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = k["namespace"]
    return docs


def kubectl_kustomize(directory):
    """kubectl's rendering, or None without a kubectl that has kustomize v4+
    (Debian's kubernetes-client 1.20 embeds kustomize 2, too old)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None
    try:
        version = subprocess.run([kubectl, "version", "--client"],
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Kustomize Version: v(\d+)", version.stdout)
    if not match or int(match.group(1)) < 4:
        return None
    out = subprocess.run([kubectl, "kustomize", directory],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        fail(f"kubectl kustomize {directory}: {out.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def strip_hash_suffixes(docs):
    """kubectl's rendering with generated ConfigMaps' names as written."""
    text = yaml.safe_dump_all(docs)
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            name = doc["metadata"]["name"]
            base = re.sub(r"-[a-z0-9]{10}$", "", name)
            text = re.sub(rf"\b{re.escape(name)}\b", base, text)
    return list(yaml.safe_load_all(text))


def canonical(docs):
    return sorted(json.dumps(d, sort_keys=True) for d in docs)


# --- helpers over the documents ------------------------------------------

def pod_spec(doc):
    if doc["kind"] in ("StatefulSet", "Deployment"):
        return doc["spec"]["template"]["spec"]
    return None


def pod_containers(doc):
    spec = pod_spec(doc)
    return spec["containers"] if spec else []


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def port_of(address):
    return int(address.rpartition(":")[2])


def duration_s(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    if not match:
        raise ValueError(f"duration {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def haproxy_time(text):
    """HAProxy's times: milliseconds unless a unit says otherwise."""
    return duration_s(text + "ms" if text.isdigit() else text)


def flags_of(args):
    flags = {}
    for a in args:
        name, eq, value = a.partition("=")
        flags[name.lstrip("-")] = value if eq else True
    return flags


def quantity(text):
    text = str(text)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3,
             "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[:-len(unit)]) * factor
    return float(text)


def preStop_sleeps(container):
    """Seconds of `sleep N` in the container's preStop hook: (before the
    first command that is not a sleep, in all)."""
    hook = container.get("lifecycle", {}).get("preStop")
    if not hook:
        return 0.0, 0.0
    if "sleep" in hook:
        s = float(hook["sleep"]["seconds"])
        return s, s
    command = " ".join(hook["exec"]["command"])
    before, total, seen_other = 0.0, 0.0, False
    for step in re.split(r"[;&|]+", command.split(" -c ", 1)[-1]):
        m = re.fullmatch(r"\s*sleep (\d+(?:\.\d+)?)\s*", step)
        if m:
            total += float(m.group(1))
            if not seen_other:
                before += float(m.group(1))
        elif step.strip():
            seen_other = True
    return before, total


def mounted_files(container, spec, docs, secrets_doc):
    """{path in the container: (kind, name, key)} for every file mounted."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        sources = []
        if "configMap" in volume:
            sources.append(("ConfigMap", volume["configMap"]))
        if "secret" in volume:
            sources.append(("Secret", volume["secret"]))
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                sources.append(("ConfigMap", source["configMap"]))
            if "secret" in source:
                sources.append(("Secret", source["secret"]))
        for kind, source in sources:
            name = source.get("name") or source.get("secretName")
            if kind == "ConfigMap":
                keys = set(find(docs, "ConfigMap", name).get("data", {})) \
                    if find(docs, "ConfigMap", name) else set()
            else:
                keys = secrets_doc.get(name, set())
            items = source.get("items") or [{"key": k, "path": k}
                                            for k in sorted(keys)]
            for item in items:
                files[mount["mountPath"] + "/" + item["path"]] = \
                    (kind, name, item["key"])
    return files


def find(docs, kind, name):
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    return None


def documented_secrets():
    """{secret name: {keys}} from the `kubectl ... create secret` commands
    of docs/KUBERNETES.md (continuation lines joined)."""
    if not os.path.exists(DOCS):
        return {}
    text = open(DOCS).read().replace("\\\n", " ")
    secrets = {}
    for line in text.splitlines():
        m = re.search(r"create secret (?:generic|tls) (\S+)(.*)", line)
        if not m:
            continue
        keys = set(re.findall(r"--from-file=([^=\s]+)=", m.group(2)))
        keys |= set(re.findall(r"--from-literal=([^=\s]+)=", m.group(2)))
        if "create secret tls" in line:
            keys |= {"tls.crt", "tls.key"}
        secrets.setdefault(m.group(1), set()).update(keys)
    return secrets


def expand_env(text, env):
    """HAProxy's "${NAME}" and "${NAME-default}" in a quoted string."""
    def one(m):
        name, dash, default = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        return default if dash else ""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(-?)([^}]*)\}", one,
                  text).replace('"', "")


def haproxy_env(container, namespace):
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") \
                == "metadata.namespace":
            env[e["name"]] = namespace
    return env


def haproxy_directive(cfg, env, section, keyword):
    """The lines of `keyword` in `section` that apply with `env` (the
    .if defined(NAME) / .else / .endif blocks followed)."""
    lines, current, stack = [], None, []
    for raw in cfg.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith(
            "tcp-check send-binary") else raw.strip()
        if not line:
            continue
        m = re.fullmatch(r"\.if defined\((\w+)\)", line)
        if m:
            stack.append(m.group(1) in env)
            continue
        if line == ".else":
            stack[-1] = not stack[-1]
            continue
        if line == ".endif":
            stack.pop()
            continue
        if not all(stack):
            continue
        if not raw.startswith((" ", "\t")):
            current = line
            continue
        if current and current.startswith(section) and \
                line.split()[0] == keyword.split()[0] and \
                line.startswith(keyword):
            lines.append(expand_env(line, env))
    return lines


# --- the checks of one rendering ----------------------------------------

def check_rendering(label, docs, bin_dir, work):
    print(f"--- {label}: {len(docs)} objects: " +
          ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs))
    secrets_doc = documented_secrets()

    # Shape of every document.
    for d in docs:
        name = d.get("metadata", {}).get("name")
        check(d.get("apiVersion") and d.get("kind") and name,
              f"{label}: {d.get('kind')}/{name} has apiVersion, kind, "
              "metadata.name")
        want = API_VERSIONS.get(d.get("kind"))
        check(want == d.get("apiVersion"),
              f"{label}: {d['kind']}/{name} is {d.get('apiVersion')} "
              f"(expected {want})")
    namespaces = {d["metadata"].get("namespace") for d in docs
                  if d["kind"] not in CLUSTER_SCOPED}
    check(len(namespaces) == 1 and None not in namespaces,
          f"{label}: every namespaced object in one namespace {namespaces}")
    namespace = next(iter(namespaces))
    check(find(docs, "Namespace", namespace) is not None,
          f"{label}: the Namespace {namespace} is among the objects")

    statefulsets = [d for d in docs if d["kind"] == "StatefulSet"]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    if not (check(len(statefulsets) == 1, f"{label}: one StatefulSet") and
            check(len(deployments) == 1, f"{label}: one Deployment")):
        return
    sts, proxy = statefulsets[0], deployments[0]
    workloads = [sts, proxy]
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        check(selects(w["spec"]["selector"]["matchLabels"], labels),
              f"{label}: {w['kind']}/{w['metadata']['name']} selector "
              "matches its pod labels")

    def selected(selector):
        return [w for w in workloads if selects(
            selector, w["spec"]["template"]["metadata"]["labels"])]

    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    headless = services.get(sts["spec"]["serviceName"])
    check(headless is not None and headless["spec"].get("clusterIP") == "None",
          f"{label}: StatefulSet serviceName {sts['spec']['serviceName']} is "
          "a headless Service")
    for name, svc in services.items():
        check(len(selected(svc["spec"]["selector"])) == 1,
              f"{label}: Service/{name} selects one workload")
    for d in docs:
        if d["kind"] == "PodDisruptionBudget":
            check(len(selected(d["spec"]["selector"]["matchLabels"])) == 1,
                  f"{label}: PodDisruptionBudget/{d['metadata']['name']} "
                  "selects one workload")
    check(any(selected(d["spec"]["selector"]["matchLabels"]) == [sts]
              for d in docs if d["kind"] == "PodDisruptionBudget"),
          f"{label}: a PodDisruptionBudget covers the replicas")

    # singleflightd: flags, ports, probes.
    server = pod_containers(sts)[0]
    spec = pod_spec(sts)
    args = server.get("args", [])
    flags = flags_of(args)
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    grpc_port = port_of(flags.get("listen", "127.0.0.1:50051"))
    metrics_port = port_of(flags["metrics_listen"]) \
        if "metrics_listen" in flags else None
    check(flags.get("listen", "").startswith("0.0.0.0:"),
          f"{label}: --listen={flags.get('listen')} listens on every address")
    check(ports.get("grpc") == grpc_port,
          f"{label}: containerPort grpc {ports.get('grpc')} = --listen port "
          f"{grpc_port}")
    check(ports.get("metrics") == metrics_port,
          f"{label}: containerPort metrics {ports.get('metrics')} = "
          f"--metrics_listen port {metrics_port}")

    def probe_check(probe, service, what):
        if "grpc" in probe:
            check(probe["grpc"]["port"] == grpc_port and
                  probe["grpc"].get("service", "") == service and
                  "service" in probe["grpc"],
                  f"{label}: {what} is a gRPC probe of service "
                  f"{service!r} on port {grpc_port}")
        elif "exec" in probe:
            command = probe["exec"]["command"]
            f = flags_of([c for c in command if c.startswith("--")])
            positional = [c for c in command[1:] if not c.startswith("--")]
            check(command[0] == "sfctl" and
                  port_of(f.get("target", "")) == grpc_port and
                  positional == ["health"] + ([service] if service else []),
                  f"{label}: {what} is `sfctl health {service}` on port "
                  f"{grpc_port}")
        else:
            fail(f"{label}: {what} is neither a gRPC nor an exec probe")

    probe_check(server["readinessProbe"], HEALTH_SERVICE, "readinessProbe")
    probe_check(server["livenessProbe"], "", "livenessProbe")
    tls = "tls_cert" in flags
    if not tls:
        check("grpc" in server["readinessProbe"] and
              "grpc" in server["livenessProbe"],
              f"{label}: plaintext replicas use Kubernetes' own gRPC probes")

    for name, svc in services.items():
        target = selected(svc["spec"]["selector"])[0]
        container_ports = {p["name"]: p["containerPort"]
                           for p in pod_containers(target)[0]["ports"]}
        for p in svc["spec"]["ports"]:
            t = p.get("targetPort", p["port"])
            resolved = container_ports.get(t) if isinstance(t, str) else t
            check(resolved in container_ports.values() and
                  resolved == p["port"],
                  f"{label}: Service/{name} port {p['name']} {p['port']} -> "
                  f"targetPort {t} = containerPort {resolved}")
    grpc_ports = [p for p in headless["spec"]["ports"] if p["name"] == "grpc"]
    check(len(grpc_ports) == 1 and grpc_ports[0].get("protocol", "TCP") ==
          "TCP", f"{label}: the headless Service has a TCP port named grpc "
          "(its SRV record _grpc._tcp)")
    annotations = sts["spec"]["template"]["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true" and
          int(annotations.get("prometheus.io/port", 0)) == metrics_port and
          annotations.get("prometheus.io/path") == "/metrics",
          f"{label}: replicas' Prometheus annotations scrape port "
          f"{metrics_port} /metrics")
    for d in docs:
        if d["kind"] == "NetworkPolicy" and selected(
                d["spec"]["podSelector"]["matchLabels"]) == [sts]:
            rules = d["spec"]["ingress"]
            grpc_rule = [r for r in rules if any(
                p["port"] == grpc_port for p in r.get("ports", []))]
            check(len(grpc_rule) == 1 and all(
                selected(f["podSelector"]["matchLabels"]) == [proxy]
                for f in grpc_rule[0].get("from", [{"podSelector": {
                    "matchLabels": {"none": "none"}}}])),
                f"{label}: NetworkPolicy lets only the proxies reach port "
                f"{grpc_port}")
            check(any(p["port"] == metrics_port for r in rules
                      for p in r.get("ports", [])),
                  f"{label}: NetworkPolicy opens the metrics port "
                  f"{metrics_port}")

    # Files: every ConfigMap and Secret a volume uses exists or is
    # documented, with its keys; every file a flag names is mounted.
    for w in workloads:
        for v in pod_spec(w).get("volumes", []):
            refs = []
            if "configMap" in v:
                refs.append(("ConfigMap", v["configMap"]["name"],
                             v["configMap"].get("items")))
            if "secret" in v:
                refs.append(("Secret", v["secret"]["secretName"],
                             v["secret"].get("items")))
            for s in v.get("projected", {}).get("sources", []):
                for kind in ("configMap", "secret"):
                    if kind in s:
                        refs.append((kind[0].upper() + kind[1:],
                                     s[kind]["name"], s[kind].get("items")))
            for kind, name, items in refs:
                if kind == "ConfigMap":
                    cm = find(docs, "ConfigMap", name)
                    keys = set(cm["data"]) if cm else None
                    where = "in the manifests"
                else:
                    keys = secrets_doc.get(name)
                    where = "created as docs/KUBERNETES.md says"
                    if find(docs, "Secret", name):
                        keys = set(find(docs, "Secret", name).get("data", {}))
                        where = "in the manifests"
                wanted = {i["key"] for i in items or []}
                check(keys is not None and wanted <= keys,
                      f"{label}: {kind}/{name} of volume {v['name']} is "
                      f"{where}, with keys {sorted(wanted) or 'all'}")
    files = mounted_files(server, spec, docs, secrets_doc)
    file_flags = ["config", "caller_token_file", "admin_token_file",
                  "tls_cert", "tls_key", "tls_client_ca"]
    for flag in file_flags:
        if flag in flags:
            check(flags[flag] in files,
                  f"{label}: --{flag}={flags[flag]} is a mounted file "
                  f"({files.get(flags[flag])})")
    for probe in ("readinessProbe", "livenessProbe"):
        for c in server[probe].get("exec", {}).get("command", []):
            if c.startswith(("--ca_cert=", "--client_cert=", "--client_key=",
                             "--token_file=")):
                path = c.partition("=")[2]
                check(path in files, f"{label}: {probe}'s {c} is mounted")
    check(not server.get("command"),
          f"{label}: the image's ENTRYPOINT (singleflightd) is kept; only "
          "args are given")

    # The config file: no address or drain keys (flags say those).
    config_text = None
    if "config" in flags and flags["config"] in files:
        kind, name, key = files[flags["config"]]
        config_text = find(docs, kind, name)["data"][key]
        config = yaml.safe_load(config_text) or {}
        doubled = {"listen", "metrics_listen", "drain_grace",
                   "drain_timeout"} & set(config)
        check(not doubled, f"{label}: the config file leaves "
              "listen/metrics_listen/drain_* to the flags "
              f"({sorted(doubled) or 'none set'})")

    # Draining and termination.
    drain_grace = duration_s(flags.get("drain_grace", "0s"))
    drain_timeout = duration_s(flags.get("drain_timeout", "10s"))
    _, pre_stop = preStop_sleeps(server)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    check(grace > pre_stop + drain_grace + drain_timeout,
          f"{label}: replicas' terminationGracePeriodSeconds {grace} > "
          f"preStop {pre_stop:g} + drain_grace {drain_grace:g} + "
          f"drain_timeout {drain_timeout:g} = "
          f"{pre_stop + drain_grace + drain_timeout:g}")
    live = server["livenessProbe"]
    live_window = live.get("periodSeconds", 10) * live.get(
        "failureThreshold", 3)
    check(live_window > drain_grace + drain_timeout,
          f"{label}: the liveness probe ({live_window} s to fail) outlasts "
          f"a drain ({drain_grace + drain_timeout:g} s)")

    # HAProxy.
    haproxy = pod_containers(proxy)[0]
    command = haproxy.get("command", [])
    check(command[:2] == ["haproxy", "-db"] and "-f" in command,
          f"{label}: HAProxy runs in the foreground on a config file "
          f"({' '.join(command)})")
    cfg_path = command[command.index("-f") + 1]
    pfiles = mounted_files(haproxy, pod_spec(proxy), docs, secrets_doc)
    if not check(cfg_path in pfiles and pfiles[cfg_path][0] == "ConfigMap",
                 f"{label}: HAProxy's {cfg_path} is mounted from a "
                 "ConfigMap"):
        return
    kind, name, key = pfiles[cfg_path]
    cfg = find(docs, kind, name)["data"][key]
    env = haproxy_env(haproxy, proxy["metadata"]["namespace"])
    templates = haproxy_directive(cfg, env, "backend", "server-template")
    check(len(templates) == 1, f"{label}: one server-template "
          f"({templates})")
    fqdn = templates[0].split()[3] if templates else ""
    want = (f"_grpc._tcp.{headless['metadata']['name']}."
            f"{headless['metadata']['namespace']}.svc.cluster.local")
    check(fqdn == want, f"{label}: server-template resolves {fqdn} = the "
          f"headless Service's SRV record {want}")
    slots = templates[0].split()[2] if templates else "0"
    count = (int(slots.split("-")[1]) - int(slots.split("-")[0]) + 1
             if "-" in slots else int(slots))
    check(count >= sts["spec"]["replicas"],
          f"{label}: {count} server slots >= {sts['spec']['replicas']} "
          "replicas")
    check(any("balance hdr(x-flight-key)" in line for line in
              haproxy_directive(cfg, env, "backend", "balance")) and
          haproxy_directive(cfg, env, "backend", "hash-type") ==
          ["hash-type consistent"],
          f"{label}: HAProxy hashes x-flight-key consistently")
    if tls:
        check("SF_TLS" in env, f"{label}: the replicas serve TLS and HAProxy "
              "has SF_TLS (TLS to them)")
    else:
        check("SF_TLS" not in env, f"{label}: plaintext replicas, no SF_TLS")
    hports = {p["name"]: p["containerPort"] for p in haproxy["ports"]}
    binds = haproxy_directive(cfg, env, "frontend grpc", "bind")
    stats = haproxy_directive(cfg, env, "frontend stats", "bind")
    check(binds and port_of(binds[0].split()[1]) == hports.get("grpc"),
          f"{label}: HAProxy's bind {binds} = containerPort grpc "
          f"{hports.get('grpc')}")
    check(stats and port_of(stats[0].split()[1]) == hports.get("stats"),
          f"{label}: HAProxy's stats bind {stats} = containerPort stats "
          f"{hports.get('stats')}")
    for probe in ("readinessProbe", "livenessProbe"):
        p = haproxy[probe]
        port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
        check(port == hports.get("stats"),
              f"{label}: HAProxy's {probe} uses the stats port {port}")
    check(haproxy["readinessProbe"].get("httpGet", {}).get("path") in
          [line.split()[1] for line in
           haproxy_directive(cfg, env, "frontend stats", "monitor-uri")],
          f"{label}: HAProxy's readiness path is its monitor-uri")
    pann = proxy["spec"]["template"]["metadata"].get("annotations", {})
    check(int(pann.get("prometheus.io/port", 0)) == hports.get("stats"),
          f"{label}: HAProxy's Prometheus annotation scrapes the stats port")
    if tls:
        tls_dir = env.get("SF_TLS_DIR", "/etc/haproxy/tls")
        for f in ("front.pem", "front.pem.key", "ca.crt"):
            check(f"{tls_dir}/{f}" in pfiles,
                  f"{label}: HAProxy's {tls_dir}/{f} is mounted "
                  f"({pfiles.get(f'{tls_dir}/{f}')})")

    # HAProxy's checks and draining.
    default_server = haproxy_directive(cfg, env, "backend", "default-server")
    ds = default_server[0].split() if default_server else []

    def ds_value(word, default):
        return ds[ds.index(word) + 1] if word in ds else default
    inter = haproxy_time(ds_value("inter", "2000"))
    fall = int(ds_value("fall", "3"))
    timeout_check = haproxy_time(haproxy_directive(
        cfg, env, "defaults", "timeout check")[0].split()[2])
    check(drain_grace >= fall * inter + timeout_check,
          f"{label}: --drain_grace {drain_grace:g} s >= HAProxy's time to "
          f"mark a replica DOWN: fall {fall} x inter {inter:g} s + timeout "
          f"check {timeout_check:g} s")
    before, total = preStop_sleeps(haproxy)
    hard = haproxy_directive(cfg, env, "global", "hard-stop-after")
    hard_s = haproxy_time(hard[0].split()[1]) if hard else float("inf")
    pgrace = pod_spec(proxy).get("terminationGracePeriodSeconds", 30)
    check(pgrace > before + hard_s and pgrace > total,
          f"{label}: HAProxy's terminationGracePeriodSeconds {pgrace} > "
          f"preStop sleep {before:g} + hard-stop-after {hard_s:g}, and > "
          f"its preStop sleeps in all ({total:g})")
    check(total - before >= hard_s,
          f"{label}: after SIGUSR1 the preStop hook waits {total - before:g} "
          f"s >= hard-stop-after {hard_s:g} s (its end would bring SIGTERM, "
          "a hard stop)")

    # Resources.
    for w in workloads:
        for c in pod_containers(w):
            r = c.get("resources", {})
            req, lim = r.get("requests", {}), r.get("limits", {})
            check({"cpu", "memory"} <= set(req) and
                  {"cpu", "memory"} <= set(lim) and
                  all(quantity(req[k]) <= quantity(lim[k])
                      for k in ("cpu", "memory")),
                  f"{label}: {w['metadata']['name']}/{c['name']} requests "
                  f"{req} <= limits {lim}")
            sc = {**pod_spec(w).get("securityContext", {}),
                  **c.get("securityContext", {})}
            check(sc.get("runAsNonRoot") and isinstance(
                sc.get("runAsUser"), int) and sc["runAsUser"] > 0,
                f"{label}: {c['name']} runs as non-root uid "
                f"{sc.get('runAsUser')}")

    # singleflightd accepts the flags, with local files in the mounts' place.
    local = os.path.join(work, label.replace("/", "_"))
    os.makedirs(local, exist_ok=True)
    local_args = localize_args(args, files, docs, local)
    if bin_dir:
        out = subprocess.run(
            [os.path.join(bin_dir, "singleflightd"),
             "--check_config=" + local_args["config_path"]] +
            local_args["args"], capture_output=True, text=True, timeout=60)
        check(out.returncode == 0 and "valid" in out.stdout,
              f"{label}: singleflightd --check_config accepts the "
              f"container's args ({out.stdout.strip()}{out.stderr.strip()})")
    else:
        print(f"skip: {label}: no singleflightd for --check_config")

    # haproxy -c.
    if shutil.which("haproxy"):
        cfg_file = os.path.join(local, "haproxy.cfg")
        with open(cfg_file, "w") as f:
            f.write(cfg)
        henv = dict(os.environ, **env)
        if tls:
            henv["SF_TLS_DIR"] = make_haproxy_tls_dir(local)
        out = subprocess.run(["haproxy", "-c", "-f", cfg_file], env=henv,
                             capture_output=True, text=True, timeout=60)
        check(out.returncode == 0,
              f"{label}: haproxy -c accepts the ConfigMap's haproxy.cfg "
              f"with the container's environment "
              f"{sorted(k for k in env)} ({(out.stdout + out.stderr).strip()})")
    else:
        fail("haproxy is not installed (apt-get install haproxy)")
    return {"args": args, "files": files, "docs": docs, "cfg": cfg,
            "env": env, "tls": tls, "flags": flags, "server": server,
            "namespace": namespace, "fqdn": fqdn, "config": config_text}


# --- local stand-ins for the mounted files ------------------------------

CERTS = {}


def make_certs(work):
    """A CA and a server certificate for localhost (the probes' target) and
    127.0.0.1, made with openssl once."""
    if CERTS:
        return CERTS
    d = os.path.join(work, "certs")
    os.makedirs(d, exist_ok=True)

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True,
                       timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=singleflight test CA", "-keyout", f"{d}/ca.key",
            "-out", f"{d}/ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", f"{d}/tls.key", "-out", f"{d}/tls.csr")
    ext = f"{d}/ext.cnf"
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{d}/tls.csr", "-CA", f"{d}/ca.crt",
            "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", f"{d}/tls.crt")
    CERTS.update({"tls.crt": f"{d}/tls.crt", "tls.key": f"{d}/tls.key",
                  "ca.crt": f"{d}/ca.crt"})
    return CERTS


def make_haproxy_tls_dir(work):
    certs = make_certs(work)
    d = os.path.join(work, "haproxy-tls")
    os.makedirs(d, exist_ok=True)
    shutil.copy(certs["tls.crt"], f"{d}/front.pem")
    shutil.copy(certs["tls.key"], f"{d}/front.pem.key")
    shutil.copy(certs["ca.crt"], f"{d}/ca.crt")
    return d


def local_file(kind, name, key, docs, local):
    """A local file holding what the mount would: a ConfigMap's data, a fake
    token, or the openssl certificate files."""
    path = os.path.join(local, f"{kind}-{name}-{key}")
    if kind == "ConfigMap":
        with open(path, "w") as f:
            f.write(find(docs, "ConfigMap", name)["data"][key])
    elif key in ("tls.crt", "tls.key", "ca.crt"):
        shutil.copy(make_certs(os.path.dirname(local))[key], path)
    else:
        with open(path, "w") as f:
            f.write(f"test-{key}-{name}\n")
    return path


def localize_args(args, files, docs, local):
    """The container's args with every mounted file replaced by a local
    one; --config split out (for --check_config)."""
    out, config_path, mapping = [], None, {}
    for a in args:
        name, eq, value = a.partition("=")
        if eq and value in files:
            path = local_file(*files[value], docs, local)
            mapping[value] = path
            if name == "--config":
                config_path = path
                continue
            a = f"{name}={path}"
        out.append(a)
    return {"args": out, "config_path": config_path, "mapping": mapping}


# --- live: fake DNS, replicas, HAProxy ----------------------------------

class FakeDns:
    """Answers SRV queries for one name with the given (target, port)
    records (and A records 127.0.0.1 for the targets, in the additional
    section too); NXDOMAIN for anything else."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.srv, self.records = "", []
        self.queries = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def set(self, srv, records):
        with self.lock:
            self.srv, self.records = srv.lower(), list(records)

    @staticmethod
    def encode(name):
        return b"".join(bytes([len(p)]) + p.encode()
                        for p in name.rstrip(".").split(".")) + b"\0"

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.answer(data, peer)
            except Exception:  # A malformed query: no answer.
                pass

    def answer(self, data, peer):
        qid = struct.unpack(">H", data[:2])[0]
        off, labels = 12, []
        while data[off]:
            labels.append(data[off + 1:off + 1 + data[off]].decode())
            off += 1 + data[off]
        name = ".".join(labels).lower()
        qtype = struct.unpack(">H", data[off + 1:off + 3])[0]
        question = data[12:off + 5]
        with self.lock:
            self.queries += 1
            srv, records = self.srv, self.records
        targets = {t.lower() for t, _ in records}
        answers, extra = [], []
        a_record = struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton(
            "127.0.0.1")
        if name == srv and qtype == 33:
            for target, port in records:
                rdata = struct.pack(">HHH", 0, 100, port) + self.encode(target)
                answers.append(b"\xc0\x0c" + struct.pack(
                    ">HHIH", 33, 1, 5, len(rdata)) + rdata)
                extra.append(self.encode(target) + a_record)
        elif name in targets and qtype == 1:
            answers.append(b"\xc0\x0c" + a_record)
        rcode = 0 if (name == srv and records) or name in targets else 3
        header = struct.pack(">HHHHHH", qid, 0x8400 | rcode, 1, len(answers),
                             0, len(extra))
        self.sock.sendto(header + question + b"".join(answers) +
                         b"".join(extra), peer)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    def __init__(self, bin_dir, work):
        self.bin, self.work = bin_dir, work
        self.procs = []

    def start(self, argv, log, env=None):
        f = open(log, "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.procs = []

    @staticmethod
    def wait_for(what, predicate, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        return None

    def replica(self, args, log):
        """singleflightd with the manifest's flags, on loopback ports, plus
        a slow echo fetcher to coalesce on."""
        argv = [os.path.join(self.bin, "singleflightd")]
        for a in args:
            if a.startswith("--listen="):
                a = "--listen=127.0.0.1:0"
            elif a.startswith("--metrics_listen="):
                a = "--metrics_listen=127.0.0.1:0"
            argv.append(a)
        argv.append("--fetcher=slow=echo:?delay=500ms")
        p = self.start(argv, log)

        def listening():
            if p.poll() is not None:
                return "exited"
            text = open(log).read()
            m = re.search(r"^singleflightd listening on [0-9.]+:(\d+)", text,
                          re.M)
            n = re.search(r"^singleflightd metrics on (http\S+)", text, re.M)
            return (int(m.group(1)), n.group(1)) if m and n else None
        started = self.wait_for("listening", listening)
        if not started or started == "exited":
            raise RuntimeError(f"replica did not start: {open(log).read()}")
        return p, started[0], started[1]

    def sfctl(self, *args, timeout=30):
        out = subprocess.run([os.path.join(self.bin, "sfctl"), *args],
                             capture_output=True, text=True, timeout=timeout)
        return out.returncode, out.stdout + out.stderr


def haproxy_states(stats_port):
    """{server name: (status, address)} of the backend singleflight (the
    address is empty in HAProxy 2.6's CSV)."""
    try:
        with urllib.request.urlopen(
                f"http://127.0.0.1:{stats_port}/stats;csv", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    lines = text.lstrip("# ").splitlines()
    header = lines[0].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "singleflight" and row["svname"] not in (
                "BACKEND", "FRONTEND"):
            out[row["svname"]] = (row["status"], row.get("addr", ""))
    return out


def metric(url, name, labels):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(
                f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run_live(label, r, bin_dir, work):
    """Three replicas with the rendering's flags, behind HAProxy with its
    configuration, found through a fake DNS server."""
    print(f"--- {label}: live, on loopback")
    live = Live(bin_dir, work)
    local = os.path.join(work, label.replace("/", "_") + "-live")
    os.makedirs(local, exist_ok=True)
    largs = localize_args(r["args"], r["files"], r["docs"], local)
    args = largs["args"] + ["--config=" + largs["config_path"]]
    token = largs["mapping"][r["flags"]["caller_token_file"]]
    admin = largs["mapping"][r["flags"]["admin_token_file"]]
    tls = r["tls"]
    dns = FakeDns()
    try:
        replicas = []
        for i in range(3):
            p, port, metrics_url = live.replica(
                args, os.path.join(local, f"replica{i}.log"))
            replicas.append({"proc": p, "port": port, "metrics": metrics_url,
                             "name": f"singleflight-{i}.singleflight."
                                     f"{r['namespace']}.svc.cluster.local"})
        dns.set(r["fqdn"], [(x["name"], x["port"]) for x in replicas])
        ok(f"{label}: three replicas started with the manifest's flags "
           f"(ports {[x['port'] for x in replicas]})")

        # The probes' commands, as the kubelet would run them (sfctl health
        # over TLS), with the local files.
        if tls:
            for probe, want in (("readinessProbe", HEALTH_SERVICE),
                                ("livenessProbe", "")):
                command = []
                for c in r["server"][probe]["exec"]["command"][1:]:
                    name, eq, value = c.partition("=")
                    if eq and value in r["files"]:
                        c = f"{name}={local_file(*r['files'][value], r['docs'], local)}"
                    elif name == "--target":
                        c = f"--target=localhost:{replicas[0]['port']}"
                    command.append(c)
                status, out = live.sfctl(*command)
                check(status == 0 and "SERVING" in out,
                      f"{label}: the {probe}'s command says SERVING: sfctl "
                      f"{' '.join(command[-2:])} -> {out.strip()}")

        cfg = r["cfg"].replace("parse-resolv-conf",
                               f"nameserver fake 127.0.0.1:{dns.port}")
        cfg_file = os.path.join(local, "haproxy.cfg")
        with open(cfg_file, "w") as f:
            f.write(cfg)
        front, stats = free_port(), free_port()
        env = dict(os.environ, **r["env"], SF_PROXY_LISTEN=f"127.0.0.1:{front}",
                   SF_PROXY_STATS=f"127.0.0.1:{stats}")
        if tls:
            env["SF_TLS_DIR"] = make_haproxy_tls_dir(local)
        proxy_a = live.start(["haproxy", "-db", "-f", cfg_file],
                             os.path.join(local, "haproxy.log"), env=env)

        def three_up_at(port):
            states = haproxy_states(port)
            up = [s for s, (status, _) in states.items() if status == "UP"]
            return states if len(up) == 3 else None
        states = live.wait_for("three UP", lambda: three_up_at(stats), 20)
        if not check(states, f"{label}: HAProxy found the three replicas in "
                     "DNS (SRV) and its gRPC health check finds them UP"):
            print(open(os.path.join(local, "haproxy.log")).read())
            return
        maint = sum(1 for s, _ in states.values() if s.startswith("MAINT"))
        ok(f"{label}: {len(states) - maint} slots filled, {maint} unused "
           "slots in maintenance")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{stats}/ready",
                                        timeout=2) as resp:
                ready = resp.status
        except OSError as e:
            ready = e
        check(ready == 200, f"{label}: HAProxy's /ready answers 200 ({ready})")

        client = ["--target=" + ("localhost" if tls else "127.0.0.1") +
                  f":{front}", "--token_file=" + token, "--timeout=20s"]
        if tls:
            client.append("--ca_cert=" + make_certs(work)["ca.crt"])
        status, out = live.sfctl(*client, "do", "hot", "--fetcher=slow",
                                 "-n", "40")
        executions = sum(metric(x["metrics"], "singleflight_executions_total",
                                {"fetcher": "slow"}) for x in replicas)
        check(status == 0 and "replies=40" in out and "errors=0" in out and
              executions == 1,
              f"{label}: 40 callers of one key through HAProxy, with the "
              f"caller token: {out.strip()}; executions in all: "
              f"{executions:g}")
        status, out = live.sfctl("--target=" + client[0].partition("=")[2],
                                 *client[2:], "do", "hot")
        check(status != 0 and "UNAUTHENTICATED" in out,
              f"{label}: without the token: {out.strip()}")
        for i in range(30):
            live.sfctl(*client, "do", f"k{i}", "--fetcher=quick")
        owners = [x for x in replicas if metric(
            x["metrics"], "singleflight_calls_total",
            {"fetcher": "quick", "code": "OK"}) > 0]
        check(len(owners) >= 2,
              f"{label}: 30 keys spread over {len(owners)} replicas")
        status, out = live.sfctl(*client, "inflight")
        check(status != 0 and "PERMISSION_DENIED" in out,
              f"{label}: the caller token may not call InFlight: "
              f"{out.strip()}")
        status, out = live.sfctl(*client, "--token_file=" + admin,
                                 "inflight")
        check(status == 0, f"{label}: the admin token may ({out.strip()!r})")

        # A second proxy, started while DNS lists the replicas in the
        # reverse order, fills its slots alike: callers of one key through
        # either proxy share one execution.
        dns.set(r["fqdn"], [(x["name"], x["port"]) for x in replicas][::-1])
        front2, stats2 = free_port(), free_port()
        env2 = dict(env, SF_PROXY_LISTEN=f"127.0.0.1:{front2}",
                    SF_PROXY_STATS=f"127.0.0.1:{stats2}")
        live.start(["haproxy", "-db", "-f", cfg_file],
                   os.path.join(local, "haproxy2.log"), env=env2)
        if check(live.wait_for("three UP", lambda: three_up_at(stats2), 20),
                 f"{label}: a second HAProxy (DNS answers reversed) finds "
                 "the three replicas"):
            client2 = [client[0].rpartition(":")[0] + f":{front2}"] + \
                client[1:]
            before = sum(metric(x["metrics"], "singleflight_executions_total",
                                {"fetcher": "slow"}) for x in replicas)
            keys = [f"both{i}" for i in range(6)]
            for key in keys:
                calls = [subprocess.Popen(
                    [os.path.join(bin_dir, "sfctl"), *c, "do", key,
                     "--fetcher=slow", "-n", "5"], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True)
                    for c in (client, client2)]
                outs = [c.communicate(timeout=30)[0] for c in calls]
                if any(c.returncode != 0 for c in calls):
                    fail(f"{label}: calls through both proxies: {outs}")
            after = sum(metric(x["metrics"], "singleflight_executions_total",
                               {"fetcher": "slow"}) for x in replicas)
            check(after - before == len(keys),
                  f"{label}: {len(keys)} keys, each called through both "
                  f"proxies at once: {after - before:g} executions (one per "
                  "key: the two proxies map keys alike)")
        dns.set(r["fqdn"], [(x["name"], x["port"]) for x in replicas])

        # SIGTERM of the replica that ran "hot": HAProxy marks it DOWN
        # while it still serves (--drain_grace), then it exits 0.
        owner = [x for x in replicas if metric(
            x["metrics"], "singleflight_executions_total",
            {"fetcher": "slow"}) > 0][0]
        owner["proc"].send_signal(signal.SIGTERM)
        start = time.time()
        down = live.wait_for("DOWN", lambda: [
            s for s, (status, _) in haproxy_states(stats).items()
            if status.startswith("DOWN")], 10)
        took = time.time() - start
        alive = owner["proc"].poll() is None
        grace = duration_s(r["flags"].get("drain_grace", "0s"))
        check(down and len(down) == 1 and alive and took < grace,
              f"{label}: after SIGTERM HAProxy marked {down} DOWN in "
              f"{took:.1f} s, within --drain_grace ({grace:g} s), while it "
              "still ran")
        status, out = live.sfctl(*client, "do", "hot", "--fetcher=slow")
        check(status == 0, f"{label}: a call for its key goes elsewhere "
              f"({out.strip()})")
        try:
            code = owner["proc"].wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = "still running"
        check(code == 0, f"{label}: the drained replica exited {code}")

        # The proxy's preStop hook: SIGUSR1 makes HAProxy stop listening,
        # finish the calls in progress, and exit.
        call = subprocess.Popen(
            [os.path.join(bin_dir, "sfctl"), *client, "do", "soft",
             "--fetcher=slow"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        time.sleep(0.25)
        proxy_a.send_signal(signal.SIGUSR1)
        out = call.communicate(timeout=30)[0]
        try:
            code = proxy_a.wait(timeout=25)
        except subprocess.TimeoutExpired:
            code = "still running"
        try:
            socket.create_connection(("127.0.0.1", front), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        check(call.returncode == 0 and code == 0 and refused,
              f"{label}: SIGUSR1 (the proxy's preStop): the call in "
              f"progress got its value ({out.strip()}), HAProxy exited "
              f"{code}, its port refuses connections: {refused}")

        # With no replica left, the other proxy is not ready (/ready 503).
        for x in replicas:
            if x["proc"].poll() is None:
                x["proc"].kill()

        def ready_status():
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{stats2}/ready", timeout=2) as resp:
                    return resp.status == 503 and 503
            except urllib.error.HTTPError as e:
                return e.code == 503 and 503
            except OSError:
                return None
        check(live.wait_for("503", ready_status, 10),
              f"{label}: with every replica gone, HAProxy's /ready answers "
              "503 (the proxy leaves the Service's endpoints)")
    finally:
        live.stop_all()
        dns.sock.close()


# --- main ----------------------------------------------------------------

def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "build", "bin")
    bin_dir = os.path.abspath(bin_dir)
    if not os.path.exists(os.path.join(bin_dir, "singleflightd")):
        print(f"skip: no {bin_dir}/singleflightd: no --check_config, no "
              "live run")
        bin_dir = None
    started = time.time()

    # yamllint, relaxed.
    yaml_files = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(K8S) for f in fs
        if f.endswith((".yaml", ".yml")))
    if shutil.which("yamllint"):
        out = subprocess.run(
            ["yamllint", "-f", "parsable", "-d",
             "{extends: relaxed, rules: {line-length: {max: 100}}}",
             *yaml_files], capture_output=True, text=True, timeout=60)
        check(out.returncode == 0 and "[error]" not in out.stdout,
              f"yamllint (relaxed) of {len(yaml_files)} files "
              f"{out.stdout.strip()}")
    else:
        print("skip: yamllint is not installed (apt-get install yamllint)")
    for f in yaml_files:
        try:
            with open(f) as fh:
                list(yaml.safe_load_all(fh))
        except yaml.YAMLError as e:
            fail(f"{f} is not YAML: {e}")
    ok(f"{len(yaml_files)} YAML files parse")

    check(os.path.exists(DOCS), "docs/KUBERNETES.md exists")
    secrets = documented_secrets()
    ok(f"docs/KUBERNETES.md creates the Secrets "
       f"{ {k: sorted(v) for k, v in secrets.items()} }")

    work = tempfile.mkdtemp(prefix="k8s_test.")
    renderings = {}
    try:
        for label, directory in (("deploy/k8s", K8S),
                                 ("deploy/k8s/tls", os.path.join(K8S, "tls"))):
            try:
                docs = emulate_kustomize(directory)
            except (ValueError, KeyError, IndexError, OSError) as e:
                fail(f"{label}: cannot render: {e}")
                continue
            theirs = kubectl_kustomize(directory)
            if theirs is None:
                print(f"skip: {label}: no kubectl with kustomize v4+ to "
                      "compare with")
            elif theirs:
                check(canonical(strip_hash_suffixes(theirs)) ==
                      canonical(docs),
                      f"{label}: kubectl kustomize renders what the "
                      "emulation does (hash suffixes aside)")
                r = check_rendering(label + " (kubectl)", theirs, bin_dir,
                                    work)
            renderings[label] = check_rendering(label, docs, bin_dir, work)
        if bin_dir and shutil.which("haproxy"):
            for label, r in renderings.items():
                if r:
                    try:
                        run_live(label, r, bin_dir, work)
                    except (RuntimeError, OSError,
                            subprocess.TimeoutExpired) as e:
                        fail(f"{label}: live: {e}")
        elif not shutil.which("haproxy"):
            fail("haproxy is not installed (apt-get install haproxy)")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"took {time.time() - started:.1f} s")
    print(f"k8s_test: {len(passed)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
