#!/usr/bin/python3
"""Measures singleflightd's transparent gRPC proxy mode against HAProxy.

Not a test: the figures of docs/bench/GRPC_PROXY.md come from it. CI may run
it with --quick (one short round of everything, under 30 s) so that it
cannot rot. Python 3 standard library only; needs h2load and nghttp (Debian
`nghttp2-client`) and haproxy (Debian `haproxy`, 2.6) on PATH, and
singleflightd and proxy_upstream in --bin.

Starts, on loopback, once for the whole run:
  upstream      bench/proxy_upstream: echoes every unary call; methods
                ending in Slow answer after --slow_ms; /bench.Upstream/Count
                answers how many calls it has received (the script reads it
                before and after each measurement);
  haproxy       HAProxy in front of the upstream: mode http, h2c on both
                sides (proto h2), http-reuse always, as deploy/haproxy.cfg;
                its default threads (one per core);
  singleflightd --proxy_upstream=upstream, no --proxy_coalesce: every call
                forwarded one to one;
  coalescing    singleflightd --proxy_upstream=upstream
                --proxy_coalesce=/bench.Upstream/EchoSlow.

Then, in each of --rounds rounds (the order of targets rotates from round to
round), with h2load sending pre-framed unary gRPC calls (flag 0, 4-byte
big-endian length, --message_bytes bytes; content-type application/grpc,
te: trailers), on fixed and equal load parameters for the three targets:
  throughput  /bench.Upstream/Echo, --connections x --streams calls in
              flight, for --duration, directly, through HAProxy and through
              singleflightd;
  serial      the same, one call at a time (1 connection, 1 stream): the
              latency a proxy adds without queueing;
  coalescing  /bench.Upstream/EchoSlow, --hot_calls identical calls in
              flight (4 connections), for --hot_duration, through the
              coalescing singleflightd and, for contrast, through the plain
              one: the upstream calls received per execution window
              (duration / --slow_ms).

h2load counts HTTP 200 as success even when grpc-status is an error, so
every call is checked otherwise: h2load's DATA bytes received must be one
echoed message per successful call (an error is trailers-only, with no
message), the upstream must have received at least as many calls as were
answered (a/b/c: one each), and before measuring, one call to each target
through nghttp must end with grpc-status 0 and the echoed bytes.

CPU per call: utime + stime (/proc/PID/stat) of the proxy and of the
upstream over the measurement, divided by the calls the upstream received
(a/b/c) or that h2load got answered (coalescing); h2load's own CPU comes
from getrusage(RUSAGE_CHILDREN). All share the machine's cores.

Latency: h2load --log-file gives each call's time; mean, p50 and p99 come
from it. calls/s is h2load's.

Prints Markdown tables (medians of the rounds, then every round); with
--out DIR also writes DIR/grpc_proxy.md and DIR/grpc_proxy.json. Exits 1 if
a check fails (an error, a missing message, more than one upstream call per
execution window of the coalesced method), 0 otherwise: CPU is reported,
not enforced. Every process it starts is stopped before it exits.

Usage:
  scripts/grpc_proxy_bench.py [--bin=build/bin] [--out=DIR] [--quick]
      [--rounds=3] [--duration=8] [--serial_duration=4] [--hot_duration=5]
      [--connections=4] [--streams=32] [--hot_calls=100] [--slow_ms=20]
      [--message_bytes=100]
"""

import argparse
import datetime
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
ECHO = "/bench.Upstream/Echo"
SLOW = "/bench.Upstream/EchoSlow"
COUNT = "/bench.Upstream/Count"
GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
TARGETS = ["direct", "haproxy", "singleflightd"]

HAPROXY_CFG = """\
# Written by scripts/grpc_proxy_bench.py: deploy/haproxy.cfg's gRPC
# settings (mode http, h2c on both sides, shared server connections), one
# server, no health checks, no key hashing.
global
    maxconn 1000
    tune.h2.max-concurrent-streams 1000

defaults
    mode http
    timeout connect 1s
    timeout client 1m
    timeout server 1m
    timeout http-keep-alive 1m

frontend grpc
    bind 127.0.0.1:{port} proto h2
    default_backend upstream

backend upstream
    http-reuse always
    server upstream 127.0.0.1:{upstream_port} proto h2
"""


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


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                         capture_output=True, text=True, timeout=10).stdout
    return [int(p) for p in out.split()]


def cpu_seconds(pids):
    """User + system CPU of `pids` (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / TICKS


def context_switches(pids):
    """Context switches (voluntary and not) of every thread of `pids`."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if "ctxt_switches:" in line:
                            total += int(line.split()[1])
            except FileNotFoundError:
                pass
    return total


def machine_ticks():
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def frame(message):
    """A gRPC length-prefixed message: flag 0, 4-byte big-endian length."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def nghttp(port, method, body_file, verbose):
    """nghttp's stdout: the frames it saw (verbose), or the response body."""
    argv = ["nghttp", *GRPC_HEADERS, "-d", body_file,
            f"http://127.0.0.1:{port}{method}"]
    if verbose:
        argv.insert(1, "-v")
    return subprocess.run(argv, capture_output=True, timeout=20).stdout


def grpc_call(port, method, body_file):
    """One unary call through nghttp: (grpc-status, response body)."""
    trace = nghttp(port, method, body_file, verbose=True)
    statuses = re.findall(rb"recv \(stream_id=\d+\) grpc-status: (\d+)", trace)
    body = nghttp(port, method, body_file, verbose=False)
    return (int(statuses[-1]) if statuses else None), body


def upstream_calls(port, body_file):
    """Calls the upstream has received (its Count method)."""
    status, body = grpc_call(port, COUNT, body_file)
    if status != 0 or len(body) < 5:
        raise RuntimeError(f"{COUNT}: grpc-status {status}, body {body!r}")
    return int(body[5:].decode())


class Processes:
    """The upstream, HAProxy and both singleflightd, on loopback."""

    def __init__(self, bin_dir, workdir, slow_ms):
        self.procs = []
        self.workdir = workdir
        try:
            self._start(bin_dir, slow_ms)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name, argv, pattern, timeout=20.0):
        """Starts `argv`, stderr to WORKDIR/NAME.log; waits for `pattern` on
        its stdout and returns the match's first group (a port)."""
        log = open(os.path.join(self.workdir, f"{name}.log"), "w")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log)
        log.close()
        self.procs.append(proc)
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
                if m := re.search(pattern, seen):
                    return proc, int(m.group(1))
            elif proc.poll() is not None:
                break
        said = seen.decode(errors="replace")
        raise RuntimeError(f"{name} did not start: {said} "
                           f"(see {self.workdir}/{name}.log)")

    def _start(self, bin_dir, slow_ms):
        self.upstream, self.upstream_port = self._spawn(
            "upstream", [os.path.join(bin_dir, "proxy_upstream"), "--port=0",
                         f"--slow_ms={slow_ms}"],
            rb"listening on 127\.0\.0\.1:(\d+)")
        sfd = os.path.join(bin_dir, "singleflightd")
        listening = rb"singleflightd listening on 127\.0\.0\.1:(\d+)"
        # The upstream has no reflection: a descriptor set tells the proxy
        # that its methods are unary.
        descriptors = os.path.join(self.workdir, "proxy_upstream.pb")
        subprocess.run(["protoc", f"--proto_path={ROOT}/bench", "-o",
                        descriptors, "proxy_upstream.proto"], check=True)
        common = ["--listen=127.0.0.1:0",
                  f"--proxy_upstream=127.0.0.1:{self.upstream_port}",
                  f"--proxy_descriptor_set={descriptors}",
                  "--log_level=warning"]
        self.plain, self.plain_port = self._spawn(
            "singleflightd", [sfd, *common], listening)
        self.coalescing, self.coalescing_port = self._spawn(
            "singleflightd-coalescing",
            [sfd, *common, f"--proxy_coalesce={SLOW}"], listening)

        self.haproxy_port = free_port()
        cfg = os.path.join(self.workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(port=self.haproxy_port,
                                       upstream_port=self.upstream_port))
        log = open(os.path.join(self.workdir, "haproxy.log"), "w")
        self.haproxy = subprocess.Popen(["haproxy", "-db", "-f", cfg],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(self.haproxy)
        wait_port(self.haproxy_port)

    def port(self, target):
        return {"direct": self.upstream_port, "haproxy": self.haproxy_port,
                "singleflightd": self.plain_port,
                "coalescing": self.coalescing_port}[target]

    def proxy_pids(self, target):
        if target == "haproxy":
            return [self.haproxy.pid] + children(self.haproxy.pid)
        if target == "singleflightd":
            return [self.plain.pid]
        if target == "coalescing":
            return [self.coalescing.pid]
        return []

    def stop(self):
        """Stops every process started, the upstream last; returns the
        upstream's report (calls per method)."""
        report = ""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            if proc is getattr(self, "upstream", None) and out:
                report = out.decode(errors="replace")
        return report


def parse_duration(value, unit):
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def h2load(port, method, body_file, connections, streams, duration, log_file):
    # h2load appends to an existing log file.
    if os.path.exists(log_file):
        os.remove(log_file)
    argv = ["h2load", "-c", str(connections), "-m", str(streams),
            "-D", str(duration), "--log-file", log_file, "-d", body_file,
            *GRPC_HEADERS, f"http://127.0.0.1:{port}{method}"]
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=duration + 60).stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, "
                  r"(\d+) succeeded, (\d+) failed, (\d+) errored, "
                  r"(\d+) timeout", out)
    finished = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    data = re.search(r"traffic: .*?, \S+ \((\d+)\) data", out)
    if not (m and finished and data):
        raise RuntimeError(f"cannot read h2load's output:\n{out}")
    latencies = []
    with open(log_file) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 3 and fields[1] == "200":
                latencies.append(int(fields[2]))  # microseconds
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "succeeded": int(m.group(4)),
        "failed": int(m.group(5)) + int(m.group(6)) + int(m.group(7)),
        "seconds": parse_duration(finished.group(1), finished.group(2)),
        "calls_per_s": float(finished.group(3)),
        "data_bytes": int(data.group(1)),
        "mean_us": statistics.fmean(latencies) if latencies else 0.0,
        "p50_us": pct(0.50) if latencies else 0,
        "p99_us": pct(0.99) if latencies else 0,
    }


def measure(procs, target, method, body_file, message_bytes, connections,
            streams, duration, workdir):
    """One h2load run against `target`, with the CPU it cost and the calls
    the upstream saw."""
    port = procs.port(target)
    proxy_pids = procs.proxy_pids(target)
    upstream_pid = [procs.upstream.pid]
    before_calls = upstream_calls(procs.upstream_port, body_file)
    before_proxy = cpu_seconds(proxy_pids)
    before_upstream = cpu_seconds(upstream_pid)
    before_client = children_cpu()
    before_switches = context_switches(proxy_pids)
    before_busy, before_total = machine_ticks()
    result = h2load(port, method, body_file, connections, streams, duration,
                    os.path.join(workdir, "h2load.log"))
    after_busy, after_total = machine_ticks()
    switches = context_switches(proxy_pids) - before_switches
    client = children_cpu() - before_client
    proxy = cpu_seconds(proxy_pids) - before_proxy
    upstream = cpu_seconds(upstream_pid) - before_upstream
    # Count calls do not count themselves.
    result["upstream_calls"] = (upstream_calls(procs.upstream_port, body_file)
                                - before_calls)
    result["answered_with_message"] = (result["data_bytes"]
                                       // (5 + message_bytes))
    per_call = max(1, result["upstream_calls"] if method == ECHO
                   else result["succeeded"])
    result["proxy_cpu_us"] = proxy / per_call * 1e6 if proxy_pids else None
    result["upstream_cpu_us"] = upstream / per_call * 1e6
    # Threads that exit meanwhile take their count along: a lower bound.
    result["proxy_switches"] = switches / per_call if proxy_pids else None
    result["h2load_cpu_us"] = client / per_call * 1e6
    result["machine_busy"] = ((after_busy - before_busy)
                              / max(1, after_total - before_total))
    return result


def check(result, target, scenario, slow_ms, problems):
    """Adds to `problems` what is wrong with `result`."""
    name = f"{scenario} via {target}"
    if result["failed"]:
        problems.append(
            f"{name}: h2load counted {result['failed']} failed calls")
    # Calls still open when h2load stops may have had their message (not
    # their trailers) already: more messages than calls is no error.
    if result["answered_with_message"] < result["succeeded"]:
        problems.append(
            f"{name}: {result['succeeded']} calls succeeded but "
            f"{result['answered_with_message']} messages came back "
            "(grpc errors?)")
    if scenario != "coalescing" or target != "coalescing":
        if result["upstream_calls"] < result["succeeded"]:
            problems.append(
                f"{name}: the upstream saw {result['upstream_calls']} calls "
                f"for {result['succeeded']} answered")
    if scenario == "coalescing":
        windows = result["seconds"] * 1000 / slow_ms
        result["windows"] = windows
        result["upstream_per_window"] = result["upstream_calls"] / windows
        if target == "coalescing" and result["upstream_per_window"] > 1.0:
            problems.append(f"{name}: {result['upstream_per_window']:.2f} "
                            "upstream calls per execution window (> 1)")


def fmt(value, digits=1):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def report(args, results, env, problems):
    lines = []
    add = lines.append
    add("# gRPC proxy benchmark (scripts/grpc_proxy_bench.py)")
    add("")
    add(f"{env['date']}; {env['cores']} cores; before the run: load average "
        f"{env['loadavg']}, cores {env['busy_before']} busy (1 s, other "
        f"work); {env['haproxy']}; {env['h2load']}; commit "
        f"{env['commit']}. Rounds: {args.rounds}, medians.")
    add("")
    add(f"## Throughput: /bench.Upstream/Echo, h2load -c {args.connections} "
        f"-m {args.streams} ({args.connections * args.streams} calls in "
        f"flight) -D {args.duration}, {args.message_bytes}-byte messages")
    add("")
    add("| target | calls/s | mean ms | p50 ms | p99 ms | proxy CPU µs/call "
        "| proxy context switches/call | upstream CPU µs/call "
        "| h2load CPU µs/call | machine busy |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    tput = {t: [r for r in results if r["scenario"] == "throughput"
                and r["target"] == t] for t in TARGETS}
    for t in TARGETS:
        rows = tput[t]
        add(f"| {t} | {fmt(median(rows, 'calls_per_s'), 0)} "
            f"| {fmt(median(rows, 'mean_us') / 1e3, 2)} "
            f"| {fmt(median(rows, 'p50_us') / 1e3, 2)} "
            f"| {fmt(median(rows, 'p99_us') / 1e3, 2)} "
            f"| {fmt(median(rows, 'proxy_cpu_us'))} "
            f"| {fmt(median(rows, 'proxy_switches'), 2)} "
            f"| {fmt(median(rows, 'upstream_cpu_us'))} "
            f"| {fmt(median(rows, 'h2load_cpu_us'))} "
            f"| {fmt(median(rows, 'machine_busy') * 100, 0)}% |")
    add("")
    add(f"## Serial: the same calls one at a time (h2load -c 1 -m 1 -D "
        f"{args.serial_duration})")
    add("")
    add("| target | calls/s | mean µs | p50 µs | p99 µs | p50 added µs "
        "| proxy CPU µs/call | proxy context switches/call "
        "| upstream CPU µs/call |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    serial = {t: [r for r in results if r["scenario"] == "serial"
                  and r["target"] == t] for t in TARGETS}
    direct_p50 = median(serial["direct"], "p50_us")
    for t in TARGETS:
        rows = serial[t]
        p50 = median(rows, "p50_us")
        add(f"| {t} | {fmt(median(rows, 'calls_per_s'), 0)} "
            f"| {fmt(median(rows, 'mean_us'), 0)} | {fmt(p50, 0)} "
            f"| {fmt(median(rows, 'p99_us'), 0)} "
            f"| {fmt(p50 - direct_p50, 0) if t != 'direct' else '–'} "
            f"| {fmt(median(rows, 'proxy_cpu_us'))} "
            f"| {fmt(median(rows, 'proxy_switches'), 2)} "
            f"| {fmt(median(rows, 'upstream_cpu_us'))} |")
    add("")
    add(f"## Coalescing: {SLOW} (upstream answers after {args.slow_ms} ms), "
        f"{args.hot_calls} identical calls in flight (h2load -c 4 -m "
        f"{args.hot_calls // 4}) -D {args.hot_duration}")
    add("")
    add("| proxy | calls answered | calls/s | upstream calls | execution "
        "windows | upstream calls per window | mean ms | proxy CPU µs/call "
        "answered |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t, label in (("coalescing", f"singleflightd --proxy_coalesce={SLOW}"),
                     ("singleflightd", "singleflightd, not coalesced")):
        rows = [r for r in results if r["scenario"] == "coalescing"
                and r["target"] == t]
        add(f"| {label} | {fmt(median(rows, 'succeeded'), 0)} "
            f"| {fmt(median(rows, 'calls_per_s'), 0)} "
            f"| {fmt(median(rows, 'upstream_calls'), 0)} "
            f"| {fmt(median(rows, 'windows'), 0)} "
            f"| {fmt(median(rows, 'upstream_per_window'), 3)} "
            f"| {fmt(median(rows, 'mean_us') / 1e3, 1)} "
            f"| {fmt(median(rows, 'proxy_cpu_us'))} |")
    add("")
    sf = median(tput["singleflightd"], "proxy_cpu_us")
    ha = median(tput["haproxy"], "proxy_cpu_us")
    coalesced = [r["upstream_per_window"] for r in results
                 if r["scenario"] == "coalescing"
                 and r["target"] == "coalescing"]
    add("## Verdict")
    add("")
    if sf is not None and ha:
        add(f"- Proxy CPU per non-coalesced call (throughput, medians): "
            f"singleflightd {sf:.1f} µs, HAProxy {ha:.1f} µs: "
            f"{sf / ha:.2f}x HAProxy's -> "
            f"{'meets' if sf <= ha else 'MISSES'} \"no more than HAProxy's\".")
        per_round = [
            f"{a['proxy_cpu_us'] / b['proxy_cpu_us']:.2f}"
            for a, b in zip(tput["singleflightd"], tput["haproxy"])]
        add(f"  By round (singleflightd / HAProxy): {', '.join(per_round)}.")
    if coalesced:
        add(f"- Upstream calls per execution window of the coalesced method: "
            f"at most {max(coalesced):.3f} over {len(coalesced)} round(s) -> "
            f"{'meets' if max(coalesced) <= 1.0 else 'MISSES'} \"<= 1\".")
    add(f"- Checks (grpc-status 0 on sample calls, one echoed message per "
        f"call, upstream calls >= calls answered): "
        f"{'all passed' if not problems else 'FAILED'}.")
    for problem in problems:
        add(f"  - {problem}")
    add("")
    add("## Every round")
    add("")
    add("| round | scenario | target | calls/s | succeeded | upstream calls "
        "| mean µs | p99 µs | proxy CPU µs/call | upstream CPU µs/call "
        "| machine busy |")
    add("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        add(f"| {r['round']} | {r['scenario']} | {r['target']} "
            f"| {fmt(r['calls_per_s'], 0)} | {r['succeeded']} "
            f"| {r['upstream_calls']} | {fmt(r['mean_us'], 0)} "
            f"| {fmt(r['p99_us'], 0)} | {fmt(r['proxy_cpu_us'])} "
            f"| {fmt(r['upstream_cpu_us'])} "
            f"| {fmt(r['machine_busy'] * 100, 0)}% |")
    return "\n".join(lines) + "\n"


def environment():
    def first_line(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True,
                                 timeout=10)
            return (out.stdout or out.stderr).splitlines()[0].strip()
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    with open("/proc/loadavg") as f:
        loadavg = " ".join(f.read().split()[:3])
    # What else keeps the cores busy (other builds and tests), over 1 s.
    busy, total = machine_ticks()
    time.sleep(1)
    busy_after, total_after = machine_ticks()
    idle_busy = (busy_after - busy) / max(1, total_after - total)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "loadavg": loadavg,
        "busy_before": f"{idle_busy * 100:.0f}%",
        "haproxy": first_line(["haproxy", "-v"]).split(" - ")[0],
        "h2load": first_line(["h2load", "--version"]),
        "commit": first_line(["git", "-C", ROOT, "rev-parse", "--short",
                              "HEAD"]),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"),
                        help="where singleflightd and proxy_upstream are")
    parser.add_argument("--out", help="write grpc_proxy.md and .json here")
    parser.add_argument("--quick", action="store_true",
                        help="one round of 1 s runs (CI: under 30 s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8,
                        help="seconds of each throughput run")
    parser.add_argument("--serial_duration", type=int, default=4)
    parser.add_argument("--hot_duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=32,
                        help="calls in flight per connection")
    parser.add_argument("--hot_calls", type=int, default=100,
                        help="identical calls in flight (a multiple of 4)")
    parser.add_argument("--slow_ms", type=int, default=20)
    parser.add_argument("--message_bytes", type=int, default=100)
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
        args.duration = args.serial_duration = args.hot_duration = 1
    if not (1 <= args.rounds <= 20 and 1 <= args.duration <= 120
            and 1 <= args.serial_duration <= 120
            and 1 <= args.hot_duration <= 120 and args.hot_calls >= 4):
        parser.error("rounds 1-20, durations 1-120 s, hot_calls >= 4")

    env = environment()
    problems = []
    results = []
    workdir = tempfile.mkdtemp(prefix="grpc_proxy_bench.")
    body_file = os.path.join(workdir, "request.bin")
    message = bytes((i * 7 + 11) % 251 for i in range(args.message_bytes))
    with open(body_file, "wb") as f:
        f.write(frame(message))

    procs = Processes(args.bin, workdir, args.slow_ms)
    upstream_report = ""
    try:
        for target in TARGETS + ["coalescing"]:
            for method in (ECHO, SLOW):
                status, body = grpc_call(procs.port(target), method, body_file)
                if status != 0 or body != frame(message):
                    problems.append(
                        f"sample {method} via {target}: grpc-status "
                        f"{status}, {len(body)} bytes back")
        for round_number in range(1, args.rounds + 1):
            shift = (round_number - 1) % len(TARGETS)
            order = TARGETS[shift:] + TARGETS[:shift]
            runs = [("throughput", t, ECHO, args.connections, args.streams,
                     args.duration) for t in order]
            runs += [("serial", t, ECHO, 1, 1, args.serial_duration)
                     for t in order]
            hot = ["coalescing", "singleflightd"]
            if round_number % 2 == 0:
                hot.reverse()
            runs += [("coalescing", t, SLOW, 4, args.hot_calls // 4,
                      args.hot_duration) for t in hot]
            for scenario, target, method, conns, streams, duration in runs:
                result = measure(procs, target, method, body_file,
                                 args.message_bytes, conns, streams, duration,
                                 workdir)
                result.update(round=round_number, scenario=scenario,
                              target=target)
                check(result, target, scenario, args.slow_ms, problems)
                results.append(result)
                print(f"round {round_number} {scenario:10} {target:13} "
                      f"{result['calls_per_s']:9.0f} calls/s, upstream "
                      f"{result['upstream_calls']}, proxy CPU "
                      f"{fmt(result['proxy_cpu_us'])} µs/call",
                      file=sys.stderr, flush=True)
    finally:
        upstream_report = procs.stop()

    text = report(args, results, env, problems)
    text += "\nThe upstream's own count, by method, at exit:\n\n```\n"
    text += upstream_report + "```\n"
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "grpc_proxy.md"), "w") as f:
            f.write(text)
        with open(os.path.join(args.out, "grpc_proxy.json"), "w") as f:
            json.dump({"environment": env, "arguments": vars(args),
                       "results": results, "problems": problems}, f, indent=1)
    if problems:
        print(f"logs kept in {workdir}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
