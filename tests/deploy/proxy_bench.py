#!/usr/bin/python3
"""Measures the key-affinity fronts (HAProxy, nginx) against a direct connection.

Not a test: the figures of docs/PROXY.md come from it. CI runs it with tiny
bounds (one round of 1 s, direct and through HAProxy) so that it cannot rot.
Starts three singleflightd replicas on loopback, HAProxy with
deploy/haproxy.cfg and nginx with deploy/nginx.conf (its replica addresses
rewritten), then runs sfload in alternating rounds against one replica
directly, through HAProxy and through nginx:

  throughput  --mode=unary --keys=uniform --key_count=100000 --concurrency=64
              on the replicas' echo fetcher (answers at once);
  latency     the same keys, open loop at 5,000 calls/s (--rate=5000): the
              latency a proxy adds below saturation;
  waiters     --keys=hot --concurrency=2000 on a fetcher that answers after
              1 s, while `ss` counts the connections open to the replicas.

With --failover=SIGKILL or SIGTERM it runs instead, on a fresh tier each
time, 200 callers on one key (1 s flights) whose replica gets the signal
2.5 s into an 8 s run, and prints what the callers got (sfload does not
retry).

For each run it prints calls/s, latency, errors, and the CPU time per call of
the proxy, the replicas and sfload (they all share the machine's cores), then
the medians by target. Every process it starts is stopped before it exits.

Usage:
  tests/deploy/proxy_bench.py --bin=build/bin [--sfload=PATH] [--rounds=3]
      [--duration=10s] [--scenario=throughput|latency|waiters|all] [--json=FILE]
      [--targets=direct,haproxy,nginx] [--failover=SIGKILL|SIGTERM]
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def cpu_seconds(pids):
    """User + system CPU of `pids` and their threads, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / TICKS


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def replica_connections(ports, pids):
    """Established TCP connections to one of `ports` (the replicas) opened
    by one of `pids` (the proxy's processes, or sfload's)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established"],
                         capture_output=True, text=True).stdout
    count = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[3].rsplit(":", 1)[-1] not in ports:
            continue
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            count += 1
    return count


def executions(metrics_port):
    body = urllib.request.urlopen(
        f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(
        r"^singleflight_executions_total\{[^}]*\} (\S+)$", body, re.M))


class Tier:
    """Three replicas, HAProxy and (given its config) nginx, on loopback."""

    def __init__(self, bin_dir, workdir, haproxy_cfg, nginx_conf):
        self.procs = []
        try:
            self._start(bin_dir, workdir, haproxy_cfg, nginx_conf)
        except BaseException:
            self.stop()
            raise

    def _start(self, bin_dir, workdir, haproxy_cfg, nginx_conf):
        self.replicas = []  # (grpc port, metrics port, pid)
        for _ in range(3):
            proc = subprocess.Popen(
                [os.path.join(bin_dir, "singleflightd"),
                 "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
                 "--fetcher=slow=echo:?delay=1s", "--log_level=warning"],
                stdout=subprocess.PIPE, text=True)
            self.procs.append(proc)
            grpc_port = metrics_port = None
            while grpc_port is None or metrics_port is None:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("singleflightd exited")
                if m := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
                    grpc_port = int(m.group(1))
                if m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)", line):
                    metrics_port = int(m.group(1))
            self.replicas.append((grpc_port, metrics_port, proc.pid))
        self.replica_ports = {str(r[0]) for r in self.replicas}

        self.haproxy_port = free_port()
        env = dict(os.environ,
                   SF_PROXY_LISTEN=f"127.0.0.1:{self.haproxy_port}",
                   SF_PROXY_STATS=f"127.0.0.1:{free_port()}")
        for i, (port, _, _) in enumerate(self.replicas, 1):
            env[f"SF_REPLICA{i}"] = f"127.0.0.1:{port}"
        self.haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", haproxy_cfg],
            env=env, stdout=subprocess.DEVNULL)
        self.procs.append(self.haproxy)

        wait_port(self.haproxy_port)
        if nginx_conf is None:
            return
        self.nginx_port = free_port()
        conf = open(nginx_conf).read()
        for i, (port, _, _) in enumerate(self.replicas, 1):
            conf = conf.replace(f"replica{i}:50051", f"127.0.0.1:{port}")
        conf = conf.replace("listen 50051", f"listen 127.0.0.1:{self.nginx_port}")
        nginx_dir = os.path.join(workdir, "nginx")
        os.makedirs(nginx_dir, exist_ok=True)
        with open(os.path.join(nginx_dir, "nginx.conf"), "w") as f:
            f.write(conf)
        self.nginx = subprocess.Popen(
            ["nginx", "-p", nginx_dir, "-c", os.path.join(nginx_dir, "nginx.conf"),
             "-g", "daemon off;"], stdout=subprocess.DEVNULL)
        self.procs.append(self.nginx)
        wait_port(self.nginx_port)

    def pids(self, target):
        if target == "haproxy":
            return [self.haproxy.pid]
        if target == "nginx":
            return [self.nginx.pid] + children(self.nginx.pid)
        return []

    def port(self, target):
        if target == "nginx":
            return self.nginx_port
        return {"direct": self.replicas[0][0],
                "haproxy": self.haproxy_port}[target]

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_sfload(tier, sfload, target, args, sample_connections):
    replica_pids = [r[2] for r in tier.replicas]
    proxy_before = cpu_seconds(tier.pids(target))
    replicas_before = cpu_seconds(replica_pids)
    exec_before = sum(executions(r[1]) for r in tier.replicas)
    peak = [0]
    done = threading.Event()

    proc = subprocess.Popen(
        [sfload, f"--target=127.0.0.1:{tier.port(target)}", "--json"] + args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    owners = set(tier.pids(target)) or {proc.pid}

    def sample():
        while not done.wait(0.25):
            peak[0] = max(peak[0],
                          replica_connections(tier.replica_ports, owners))

    sampler = threading.Thread(target=sample)
    if sample_connections:
        sampler.start()
    output = {}
    readers = [threading.Thread(
        target=lambda name=name: output.update({name: getattr(proc, name).read()}))
        for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    # wait4: sfload's own CPU time (RUSAGE_CHILDREN would add ss's).
    _, wait_status, loader_usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(wait_status)
    for reader in readers:
        reader.join()
    stdout, stderr = output["stdout"], output["stderr"]
    done.set()
    if sample_connections:
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"sfload failed: {stderr}")
    report = json.loads(stdout)
    calls = max(report["calls"], 1)
    loader_cpu = loader_usage.ru_utime + loader_usage.ru_stime
    return {
        "target": target,
        "calls_per_s": report["throughput"],
        "p50_us": report["latency_us"]["p50"],
        "p99_us": report["latency_us"]["p99"],
        "errors": report["error_count"],
        "error_codes": report["errors"],
        "shared_ratio": report["shared_ratio"],
        # Warm-up included: about one a second in the waiters scenario.
        "executions": sum(executions(r[1]) for r in tier.replicas) - exec_before,
        "proxy_cpu_us_per_call":
            1e6 * (cpu_seconds(tier.pids(target)) - proxy_before) / calls,
        "replicas_cpu_us_per_call":
            1e6 * (cpu_seconds(replica_pids) - replicas_before) / calls,
        "loader_cpu_us_per_call": 1e6 * loader_cpu / calls,
        "peak_replica_connections": peak[0] if sample_connections else None,
        "calls": report["calls"],
    }


def flight_owner(tier, sfctl, key):
    """Index of the replica running the flight of `key`, or None."""
    for index, (port, _, _) in enumerate(tier.replicas):
        out = subprocess.run([sfctl, f"--target=127.0.0.1:{port}", "--json",
                              "inflight"], capture_output=True, text=True).stdout
        if any(f["key"] == key for f in json.loads(out).get("flights", [])):
            return index
    return None


def run_failover(args, sfload, target, signal_name):
    """200 callers on one key (1 s flights) through `target`, whose replica
    running the flight gets `signal_name` 2.5 s into the run."""
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as workdir:
        tier = Tier(args.bin, workdir, args.haproxy_cfg,
                    args.nginx_conf if target == "nginx" else None)
        try:
            proc = subprocess.Popen(
                [sfload, f"--target=127.0.0.1:{tier.port(target)}", "--json",
                 "--keys=hot", "--key_prefix=failover-", "--concurrency=200",
                 "--fetcher=slow", "--duration=8s", "--deadline=20s"],
                stdout=subprocess.PIPE, text=True)
            time.sleep(2.5)
            victim = flight_owner(tier, os.path.join(args.bin, "sfctl"),
                                  "failover-0")
            if victim is not None:
                os.kill(tier.replicas[victim][2], getattr(signal, signal_name))
            report = json.loads(proc.communicate()[0])
        finally:
            tier.stop()
    return {"scenario": "failover-" + signal_name, "target": target,
            "victim": None if victim is None else victim + 1,
            "calls": report["calls"], "ok": report["ok"],
            "errors": report["errors"],
            "max_ms": report["latency_us"]["max"] / 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, "build/bin"))
    parser.add_argument("--sfload", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--scenario", default="all",
                        choices=["throughput", "latency", "waiters", "all"])
    parser.add_argument("--targets", default="direct,haproxy,nginx")
    parser.add_argument("--json", default="")
    parser.add_argument("--failover", default="", choices=["", "SIGKILL", "SIGTERM"],
                        help="instead of the scenarios: kill the replica "
                        "running a hot key's flight mid-run, once a round "
                        "for each target, and report the callers' errors")
    parser.add_argument("--haproxy_cfg",
                        default=os.path.join(ROOT, "deploy/haproxy.cfg"))
    parser.add_argument("--nginx_conf",
                        default=os.path.join(ROOT, "deploy/nginx.conf"))
    args = parser.parse_args()
    sfload = args.sfload or os.path.join(args.bin, "sfload")
    targets = args.targets.split(",")

    scenarios = {
        "throughput": ["--mode=unary", "--keys=uniform", "--key_count=100000",
                       "--concurrency=64", "--warmup=2s",
                       f"--duration={args.duration}"],
        "latency": ["--mode=unary", "--keys=uniform", "--key_count=100000",
                    "--rate=5000", "--warmup=2s", f"--duration={args.duration}"],
        "waiters": ["--mode=unary", "--keys=hot", "--concurrency=2000",
                    "--fetcher=slow", "--deadline=30s", "--warmup=2s",
                    f"--duration={args.duration}"],
    }
    chosen = list(scenarios) if args.scenario == "all" else [args.scenario]

    # SIGTERM (for example from `timeout`) stops the tier like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.failover:
        for _ in range(args.rounds):
            for target in targets:
                print(json.dumps(run_failover(args, sfload, target,
                                              args.failover)), flush=True)
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as workdir:
        tier = Tier(args.bin, workdir, args.haproxy_cfg,
                    args.nginx_conf if "nginx" in targets else None)
        try:
            for scenario in chosen:
                for round_number in range(1, args.rounds + 1):
                    for target in targets:
                        result = run_sfload(tier, sfload, target,
                                            scenarios[scenario],
                                            scenario == "waiters")
                        result.update(scenario=scenario, round=round_number)
                        results.append(result)
                        print(json.dumps(result), flush=True)
        finally:
            tier.stop()

    print()
    print(f"{'scenario':<11}{'target':<9}{'calls/s':>10}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'errors':>8}{'proxy us/call':>15}"
          f"{'replicas us/call':>18}{'sfload us/call':>16}{'conns':>7}")
    for scenario in chosen:
        for target in targets:
            rows = [r for r in results
                    if r["scenario"] == scenario and r["target"] == target]
            med = lambda key: statistics.median(r[key] for r in rows)
            conns = (max(r["peak_replica_connections"] for r in rows)
                     if scenario == "waiters" else "")
            print(f"{scenario:<11}{target:<9}{med('calls_per_s'):>10.0f}"
                  f"{med('p50_us') / 1000:>9.2f}{med('p99_us') / 1000:>9.2f}"
                  f"{sum(r['errors'] for r in rows):>8}"
                  f"{med('proxy_cpu_us_per_call'):>15.1f}"
                  f"{med('replicas_cpu_us_per_call'):>18.1f}"
                  f"{med('loader_cpu_us_per_call'):>16.1f}{conns:>7}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
