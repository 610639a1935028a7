#!/usr/bin/python3
"""Runs every benchmark of docs/PERFORMANCE.md and writes the results.

Usage: scripts/bench.py [--quick] [--skip-go] [--only=STEP,...]
                        [--waiters=N,...] [--out=DIR]
       (from the repository root, after a build; scripts/bench.sh installs
       wrk and gnuplot, builds this and the Go baseline, and runs this)

Writes docs/bench/RESULTS.md (the tables, each with the command that made
it), docs/bench/throughput.png (throughput and p99 against concurrency) and
docs/bench/hot_key_vs_go.png (memory and fan-out time against waiters, for
singleflightd and the Go baseline).
Every service benchmark measures its baseline in the same run. --quick runs
each load for a second, for a smoke test; the figures are then meaningless.
--skip-go leaves out the comparisons with the Go baseline server
(bench/go, built into build/go-baseline/ by scripts/bench.sh); --only runs
the named steps only (micro, overhead, hot_key, backend_saved, many_waiters,
hot_key_vs_go, stream_vs_go, large_values, sweep); --waiters sets
hot_key_vs_go's waiter counts (1000,10000,30000,100000 by default); --out
writes elsewhere than docs/bench.
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def option(name, default):
    """The value of --NAME=VALUE on the command line, else default."""
    for arg in sys.argv[1:]:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


BIN = "build/bin"
GO_BASELINE = "build/go-baseline/sf-go-baseline"
QUICK = "--quick" in sys.argv
SKIP_GO = "--skip-go" in sys.argv
ONLY = [step for step in option("only", "").split(",") if step]
WAITERS = [int(n) for n in
           option("waiters", "5000" if QUICK else "1000,10000,30000,100000").split(",")]
SECONDS = 1 if QUICK else 8
ROUNDS = 1 if QUICK else 3
OUT = option("out", "docs/bench")


class Process:
    """A server started in the background; its first lines tell its ports."""

    def __init__(self, args, ready_pattern):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.popen = subprocess.Popen(args, stdout=self.log,
                                      stderr=subprocess.STDOUT,
                                      start_new_session=True)
        deadline = time.time() + 30
        while True:
            self.log.seek(0)
            text = self.log.read()
            found = re.findall(ready_pattern, text)
            if found:
                self.ports = [int(port) for port in found]
                return
            if time.time() > deadline or self.popen.poll() is not None:
                raise RuntimeError(f"{args[0]} did not start: {text}")
            time.sleep(0.05)

    def cpu_seconds(self):
        with open(f"/proc/{self.popen.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def singleflightd(*flags):
    return Process([f"{BIN}/singleflightd", "--listen=127.0.0.1:0",
                    "--metrics_listen=127.0.0.1:0", "--log_level=warning",
                    *flags], r"127\.0\.0\.1:(\d+)")


def sfload(port, *flags, metrics_port=None):
    args = [f"{BIN}/sfload", f"--target=127.0.0.1:{port}", "--json",
            f"--duration={SECONDS}s", *flags]
    if metrics_port:
        args.append(f"--metrics_url=http://127.0.0.1:{metrics_port}/metrics")
    result = subprocess.run(args, stdout=subprocess.PIPE, text=True,
                            check=True, timeout=SECONDS + 120)
    return json.loads(result.stdout)


def median(values):
    return statistics.median(values)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)


def micro(report):
    args = [f"{BIN}/group_benchmark", "--benchmark_format=json",
            f"--benchmark_min_time={0.05 if QUICK else 0.5}"]
    data = json.loads(subprocess.run(args, stdout=subprocess.PIPE, text=True,
                                     check=True).stdout)
    rows = [(b["name"], f'{b["real_time"]:.0f}', f'{b["cpu_time"]:.0f}',
             f'{b.get("items_per_second", 0):.3g}')
            for b in data["benchmarks"]]
    report.append("## Core microbenchmarks\n\n`" + " ".join(args) + "`\n\n" +
                  table(["benchmark", "real ns", "cpu ns", "items/s"], rows))


def overhead(report):
    flags = ["--mode=unary", "--keys=uniform", "--key_count=100000",
             "--concurrency=64"]
    bare, single = [], []
    for _ in range(ROUNDS):
        for name, runs in (("bare", bare), ("singleflightd", single)):
            server = (Process([f"{BIN}/bare_server", "--listen=127.0.0.1:0"],
                              r"listening on 127\.0\.0\.1:(\d+)")
                      if name == "bare" else singleflightd())
            runs.append(sfload(server.ports[0], *flags))
            server.stop()
    rows = []
    for name, runs in (("bare gRPC server", bare), ("singleflightd", single)):
        rows.append((name, f'{median([r["throughput"] for r in runs]):.0f}',
                     f'{median([r["latency_us"]["p50"] for r in runs]):.0f}',
                     f'{median([r["latency_us"]["p99"] for r in runs]):.0f}'))
    ratio = (median([r["throughput"] for r in single]) /
             median([r["throughput"] for r in bare]))
    report.append(
        f"## (a) Overhead against a bare gRPC server\n\n`sfload "
        f"{' '.join(flags)} --duration={SECONDS}s`, {ROUNDS} alternating "
        f"rounds, medians.\n\n" +
        table(["server", "calls/s", "p50 µs", "p99 µs"], rows) +
        f"\n\nsingleflightd / bare: **{ratio:.1%}** (target ≥ 85%)")


def hot_key(report):
    server = singleflightd("--fetcher=hot=echo:?delay=10ms")
    port, metrics = server.ports
    flags = ["--keys=hot", "--concurrency=1000", "--fetcher=hot",
             "--channels=8"]
    run = sfload(port, *flags, metrics_port=metrics)
    server.stop()
    executions = run["server"]["executions"]
    windows = run["elapsed_s"] / 0.010
    report.append(
        f"## (b) One hot key, 1,000 callers, 10 ms executions\n\n`sfload "
        f"{' '.join(flags)} --duration={SECONDS}s`\n\n" +
        table(["calls/s", "executions", "per 10 ms window", "p50 ms",
               "p99 ms", "p99.9 ms"],
              [(f'{run["throughput"]:.0f}', executions,
                f"{executions / windows:.3f}",
                f'{run["latency_us"]["p50"] / 1000:.1f}',
                f'{run["latency_us"]["p99"] / 1000:.1f}',
                f'{run["latency_us"]["p99_9"] / 1000:.1f}')]) +
        "\n\nTargets: at most 1.05 executions per 10 ms window; p99 within "
        "2 × 10 ms + 5 ms = 25 ms.")


def origin_hits(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_hits") as answer:
        return sum(json.load(answer).values())


def backend_saved(report):
    origin = Process(["/usr/bin/python3", "tests/origin/http_origin.py",
                      "--port", "0"], r"listening on 127\.0\.0\.1:(\d+)")
    port = origin.ports[0]
    url = f"http://127.0.0.1:{port}/item/{{key}}?delay_ms=20"
    server = singleflightd(f"--fetcher=web={url}", "--default_fetcher=web")
    flags = ["--keys=zipf", "--key_count=1000", "--zipf_s=1.1",
             "--concurrency=64"]
    through = sfload(server.ports[0], *flags)
    server.stop()
    hits_through = origin_hits(port)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(ZIPF_LUA)
        script.flush()
        before = origin_hits(port)
        wrk = subprocess.run(
            ["wrk", "-t2", "-c64", f"-d{SECONDS}s", "--latency", "-s",
             script.name, f"http://127.0.0.1:{port}"],
            stdout=subprocess.PIPE, text=True, check=True).stdout
        hits_direct = origin_hits(port) - before
    origin.stop()
    direct_rate = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
    direct_p50 = re.search(r"50%\s+(\S+)", wrk).group(1)
    direct_p99 = re.search(r"99%\s+(\S+)", wrk).group(1)
    report.append(
        "## (c) Backend saved: Zipf load on an HTTP origin (20 ms per "
        "request)\n\nThrough singleflightd: `sfload " + " ".join(flags) +
        f" --duration={SECONDS}s`; straight at the origin: `wrk -t2 -c64 "
        f"-d{SECONDS}s` with the same Zipf(1.1) over 1,000 keys "
        "(scripts/bench.py's Lua script).\n\n" +
        table(["path", "calls/s", "origin requests", "origin requests/call",
               "p50", "p99"],
              [("straight at the origin", f"{direct_rate:.0f}", hits_direct,
                "1.000", direct_p50, direct_p99),
               ("through singleflightd", f'{through["throughput"]:.0f}',
                hits_through, f'{hits_through / max(through["calls"], 1):.3f}',
                f'{through["latency_us"]["p50"] / 1000:.1f}ms',
                f'{through["latency_us"]["p99"] / 1000:.1f}ms')]))


def many_waiters(report):
    waiters = 5000 if QUICK else 100000
    server = singleflightd("--fetcher=slow=echo:?delay=25s")
    args = [f"{BIN}/many_waiters", f"--target=127.0.0.1:{server.ports[0]}",
            f"--server_pid={server.popen.pid}", f"--waiters={waiters}",
            "--channels=16", "--fetcher=slow"]
    output = subprocess.run(args, stdout=subprocess.PIPE, text=True,
                            timeout=600).stdout
    server.stop()
    report.append(f"## (d) {waiters:,} waiters on one key\n\n`" +
                  " ".join(args[:1] + args[2:]) + "`\n\n```\n" + output +
                  "```\n\nTargets: a bounded number of threads (docs/PERFORMANCE.md), under 2 GiB "
                  "RSS, every waiter answered within 1 s of completion.")


def parse_duration_ms(text):
    """An absl::FormatDuration string (1.5s, 118.2ms, 950us, 1m2s) in ms."""
    units = {"h": 3600e3, "m": 60e3, "s": 1e3, "ms": 1, "us": 1e-3,
             "ns": 1e-6}
    return sum(float(number) * units[unit] for number, unit in
               re.findall(r"([\d.]+)(h|ms|us|ns|m|s)", text))


def hold_waiters(server, waiters):
    """Runs many_waiters against a started server; returns its figures."""
    args = [f"{BIN}/many_waiters", f"--target=127.0.0.1:{server.ports[0]}",
            f"--server_pid={server.popen.pid}", f"--waiters={waiters}",
            "--channels=8", "--fetcher=slow", "--timeout=60s"]
    before = server.cpu_seconds()
    output = subprocess.run(args, stdout=subprocess.PIPE, text=True,
                            timeout=600).stdout
    cpu = server.cpu_seconds() - before
    server.stop()
    found = dict(re.findall(r"(\w+)=([^\s;]+)", output))
    per_waiter = re.search(r"([\d.-]+) kB per waiter", output)
    return {
        "complete": (int(found.get("seen_waiting", -1)) == waiters and
                     int(found.get("ok_shared", -1)) == waiters),
        "kb": float(per_waiter.group(1)) if per_waiter else float("nan"),
        "cpu_us": cpu / waiters * 1e6,
        "fanout_ms": parse_duration_ms(
            re.search(r"fanout\(first->last reply\)=(\S+)", output).group(1)),
        "threads": re.findall(r"threads=(\d+)", output),
    }


def spread(values, fmt):
    """The median, and the range when there are several rounds."""
    text = fmt.format(median(values))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
    return text


def hot_key_vs_go(report):
    servers = {
        "singleflightd": lambda delay: singleflightd(
            f"--fetcher=slow=echo:?delay={delay}"),
        "Go (x/sync/singleflight)": go_baseline,
    }
    if not os.access(GO_BASELINE, os.X_OK):
        report.append("## (d2) The hot-key regime against a Go server\n\n"
                      f"Skipped: no {GO_BASELINE} (bench/go/build.sh "
                      "build/go-baseline builds it).")
        return
    rows, points = [], []
    for waiters in WAITERS:
        # Longer than the ramp-up, so that every call waits on one flight.
        delay = ("6s" if waiters <= 10000 else
                 "12s" if waiters <= 30000 else "25s")
        runs = {name: [] for name in servers}
        for _ in range(ROUNDS):
            for name, start in servers.items():
                runs[name].append(hold_waiters(start(delay), waiters))
        point = [waiters]
        for name, results in runs.items():
            threads = sorted({f"{r['threads'][0]}→{r['threads'][1]}"
                              for r in results if len(r["threads"]) == 2})
            rows.append((
                f"{waiters:,}", name,
                spread([r["kb"] for r in results], "{:.1f}"),
                spread([r["cpu_us"] for r in results], "{:.0f}"),
                spread([r["fanout_ms"] for r in results], "{:.0f}"),
                ", ".join(threads),
                "yes" if all(r["complete"] for r in results) else
                "**no**"))
            point += [median([r["kb"] for r in results]),
                      median([r["fanout_ms"] for r in results])]
        points.append(point)
    data = os.path.join(OUT, "hot_key_vs_go.dat")
    with open(data, "w") as f:
        f.write("# waiters  singleflightd_kB  singleflightd_fanout_ms  "
                "go_kB  go_fanout_ms\n")
        for point in points:
            f.write(" ".join(f"{value:g}" for value in point) + "\n")
    subprocess.run(["gnuplot"], input=HOT_KEY_GNUPLOT.format(data=data,
                                                             out=OUT),
                   text=True, check=True)
    report.append(
        "## (d2) The hot-key regime against a Go server\n\n`many_waiters "
        "--waiters=N --channels=8 --fetcher=slow --timeout=60s` against "
        "singleflightd and the Go baseline (bench/go: a plain grpc-go server "
        "on golang.org/x/sync/singleflight, from Debian's packages), both "
        "with `slow=echo:?delay=D` (6 s up to 10,000 waiters, 12 s up to "
        "30,000, 25 s above), "
        f"{ROUNDS} alternating round(s), medians (and ranges). Memory: "
        "VmRSS holding minus idle, per waiter; CPU: the server's "
        "utime+stime (/proc/PID/stat) over the whole run, per call; fan-out: "
        "first to last answer at the client; all held: every call seen "
        "waiting and answered `shared`. The bare gRPC C++ server "
        "(bare_server) is not in this table: it answers every Do at once "
        "and has no InFlight, so it cannot hold calls.\n\n" +
        table(["waiters", "server", "kB per waiter", "server CPU µs/call",
               "first→last answer ms", "threads idle→holding", "all held"],
              rows) + "\n\n![memory and fan-out against waiters]"
        "(hot_key_vs_go.png)")


def go_baseline(delay=None):
    args = [GO_BASELINE, "-listen", "127.0.0.1:0"]
    if delay:
        args += ["-fetcher", f"slow=echo:?delay={delay}"]
    return Process(args, r"listening on 127\.0\.0\.1:(\d+)")


def stream_vs_go(report):
    if not os.access(GO_BASELINE, os.X_OK):
        report.append("## (d3) DoStream throughput against a Go server\n\n"
                      f"Skipped: no {GO_BASELINE}.")
        return
    flags = ["--mode=stream", "--keys=uniform", "--key_count=100000",
             "--concurrency=64"]
    servers = {"singleflightd": singleflightd, "Go (x/sync/singleflight)":
               go_baseline}
    runs = {name: [] for name in servers}
    for _ in range(ROUNDS):
        for name, start in servers.items():
            server = start()
            before = server.cpu_seconds()
            run = sfload(server.ports[0], *flags)
            cpu = server.cpu_seconds() - before
            server.stop()
            runs[name].append((run["throughput"],
                               cpu / max(run["calls"], 1) * 1e6))
    rows = [(name, spread([r[0] for r in results], "{:.0f}"),
             spread([r[1] for r in results], "{:.1f}"))
            for name, results in runs.items()]
    ours, go = (median([r[0] for r in results]) for results in runs.values())
    report.append(
        "## (d3) DoStream throughput against a Go server\n\n`sfload "
        f"{' '.join(flags)} --duration={SECONDS}s` (4 streams, distinct "
        f"keys, echo), {ROUNDS} alternating round(s), medians (and "
        "ranges); server CPU from /proc/PID/stat.\n\n" +
        table(["server", "items/s", "server CPU µs/item"], rows) +
        f"\n\nsingleflightd / Go: **{ours / go:.2f}×** (target ≥ 1.2×)")


def large_values(report):
    origin = Process(["/usr/bin/python3", "tests/origin/http_origin.py",
                      "--port", "0"], r"listening on 127\.0\.0\.1:(\d+)")
    rows = []
    for size in (1024, 1 << 20):
        for callers in (1, 1000):
            url = (f"http://127.0.0.1:{origin.ports[0]}/v/{{key}}"
                   f"?size={size}&delay_ms=50")
            server = singleflightd(f"--fetcher=big={url}",
                                   "--max_message_bytes=4194304")
            before = server.cpu_seconds()
            run = sfload(server.ports[0], "--keys=hot", "--fetcher=big",
                         f"--concurrency={callers}", "--channels=8")
            cpu = server.cpu_seconds() - before
            server.stop()
            rows.append((f"{size:,} B", callers, run["calls"],
                         f'{cpu / max(run["calls"], 1) * 1e6:.1f}'))
    origin.stop()
    report.append(
        "## (e) Large values: CPU per reply\n\nA hot key whose value is "
        "fetched from the origin (50 ms); `sfload --keys=hot "
        f"--concurrency=N --duration={SECONDS}s`; server CPU from "
        "/proc/PID/stat.\n\n" +
        table(["value", "callers", "replies", "server CPU µs/reply"], rows))


def sweep(report):
    rows = []
    for concurrency in (1, 4, 16, 64, 256):
        server = singleflightd()
        run = sfload(server.ports[0], "--keys=uniform", "--key_count=100000",
                     f"--concurrency={concurrency}")
        server.stop()
        rows.append((concurrency, run["throughput"],
                     run["latency_us"]["p99"] / 1000))
    data = os.path.join(OUT, "throughput.dat")
    with open(data, "w") as f:
        for row in rows:
            f.write(" ".join(str(cell) for cell in row) + "\n")
    subprocess.run(["gnuplot"], input=GNUPLOT.format(data=data, out=OUT),
                   text=True, check=True)
    report.append(
        "## Throughput and p99 against concurrency\n\nsingleflightd (echo, "
        "uniform keys), `sfload --keys=uniform --key_count=100000 "
        f"--concurrency=N --duration={SECONDS}s`.\n\n" +
        table(["concurrency", "calls/s", "p99 ms"],
              [(c, f"{t:.0f}", f"{p:.2f}") for c, t, p in rows]) +
        "\n\n![throughput and p99](throughput.png)")


ZIPF_LUA = """
local keys, s, cdf = 1000, 1.1, {}
local total = 0
for k = 1, keys do total = total + 1 / k ^ s; cdf[k] = total end
for k = 1, keys do cdf[k] = cdf[k] / total end
math.randomseed(1)
request = function()
  local u, lo, hi = math.random(), 1, keys
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return wrk.format("GET", "/item/sfload-" .. (lo - 1) .. "?delay_ms=20")
end
"""

GNUPLOT = """
set terminal pngcairo size 900,500
set output '{out}/throughput.png'
set xlabel 'concurrent callers'
set logscale x 2
set ylabel 'calls/s'
set y2label 'p99 (ms)'
set y2tics
set ytics nomirror
set key top left
plot '{data}' using 1:2 with linespoints title 'throughput', \\
     '{data}' using 1:3 axes x1y2 with linespoints title 'p99'
"""


HOT_KEY_GNUPLOT = """
set terminal pngcairo size 1000,420
set output '{out}/hot_key_vs_go.png'
set multiplot layout 1,2
set logscale x 10
set xlabel 'waiters on one key'
set key top left
set ylabel 'server memory per waiter (kB)'
set yrange [0:*]
plot '{data}' using 1:2 with linespoints title 'singleflightd', \\
     '{data}' using 1:4 with linespoints title 'Go (x/sync)'
set ylabel 'first to last answer (ms)'
set logscale y 10
set yrange [*:*]
plot '{data}' using 1:3 with linespoints title 'singleflightd', \\
     '{data}' using 1:5 with linespoints title 'Go (x/sync)'
unset multiplot
"""


def main():
    os.makedirs(OUT, exist_ok=True)
    report = [f"# Benchmark results\n\nMade by `scripts/bench.py` on "
              f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, the load "
              "generator on the same machine. See docs/PERFORMANCE.md for "
              "what they mean."]
    steps = [micro, overhead, hot_key, backend_saved, many_waiters,
             hot_key_vs_go, stream_vs_go, large_values, sweep]
    if SKIP_GO:
        steps.remove(hot_key_vs_go)
        steps.remove(stream_vs_go)
    if ONLY:
        unknown = set(ONLY) - {step.__name__ for step in steps}
        if unknown:
            sys.exit(f"bench: unknown or skipped steps: {sorted(unknown)}")
        steps = [step for step in steps if step.__name__ in ONLY]
    for step in steps:
        print(f"bench: {step.__name__}", file=sys.stderr, flush=True)
        step(report)
    with open(os.path.join(OUT, "RESULTS.md"), "w") as f:
        f.write("\n\n".join(report) + "\n")
    print(f"bench: wrote {OUT}/RESULTS.md" +
          (f" and {OUT}/throughput.png" if sweep in steps else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
