#!/usr/bin/python3
"""Measures a fetcher's freshness policy (`cache:`) against no policy and linger.

Not a test: the figures of docs/bench/CACHE.md come from it. CI may run it
with --quick (one short round, under ~40 s) so that it cannot rot. Python 3
standard library only; needs singleflightd and sfload in --bin and the test
origin tests/origin/http_origin.py.

Starts, on loopback:
  origin         tests/origin/http_origin.py, once for the whole run; every
                 answer waits --delay_ms (20 ms);
  singleflightd  a fresh one for every measurement (so that no value, flight
                 or counter survives from one to the next), with one config
                 of three fetchers in front of the same origin, each on a
                 path of its own:
                   plain   no policy (exact singleflight: coalescing only);
                   linger  `linger: 100ms`;
                   cache   `cache:` ttl 5s, stale_while_revalidate 30s,
                           stale_if_error 5m, negative_ttl 1s,
                           negative_codes [NOT_FOUND], max_bytes 256MiB,
                           early_refresh true, respect_cache_control false.

The load is sfload's open loop: --rate calls a second (the same for every
fetcher; latency counts from each call's scheduled time), keys drawn from a
Zipf distribution (--zipf_s, 1.1) over --key_count (100,000) keys. Each
measurement first runs a warm-up of its own (sfload --seed=2, so that the
measured run, --seed=1, does not replay the warm-up's keys), then resets the
origin's counters and runs the measured load.

Steady load (--rounds rounds, the order of fetchers rotating): origin
requests per call (the origin's own /_hits, summed over the fetcher's path,
divided by the calls sfload made), p50/p99/p99.9 latency, errors, and
singleflightd's CPU per call (utime + stime from /proc, sfload and the origin
sharing the same cores). Medians of the rounds. For the cache fetcher, its
singleflight_cache_* counters too.

Failing origin (--fail_rounds rounds): after a warm-up of --fail_warmup
seconds, a run of --fail_run seconds during which, --fail_start seconds in,
the origin answers every request 503 for --fail_seconds (its /_fail
endpoint). Reported: the share of all calls answered OK, and the share of the
calls scheduled during the failure answered OK, derived as 1 - errors /
(rate x fail_seconds) (all errors fall in the failure window). For the
cache, the best any cache could do is answer the calls whose key was asked
for before the failure began (a key first asked for during it has no last
good value); the script gives that bound, computed from the Zipf
distribution and the number of calls made before the failure.

Prints Markdown tables; with --out DIR also writes DIR/cache_bench.md and
DIR/cache_bench.json. Exits 2 if singleflightd does not accept a `cache:`
section; 1 if a check fails: an error under steady load, the cache making
at least as many origin requests per call as no policy, or the cache
answering no larger share than no policy while the origin fails. Every
process it starts is stopped before it exits.

Usage:
  scripts/cache_bench.py [--bin=build/bin] [--out=DIR] [--quick]
      [--rate=1000] [--rounds=3] [--warmup=10] [--duration=20]
      [--fail_rounds=1] [--fail_warmup=20] [--fail_run=20] [--fail_start=5]
      [--fail_seconds=10] [--delay_ms=20] [--key_count=100000]
      [--zipf_s=1.1]
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGIN = os.path.join(ROOT, "tests", "origin", "http_origin.py")
TICKS = os.sysconf("SC_CLK_TCK")
FETCHERS = ["plain", "linger", "cache"]
LABELS = {"plain": "no policy", "linger": "linger 100ms",
          "cache": "cache (ttl 5s, swr 30s, sie 5m)"}
CACHE_METRICS = ["hits_total", "stale_hits_total", "misses_total",
                 "refreshes_total", "refresh_failures_total",
                 "evictions_total", "bytes"]

CONFIG = """\
# Written by scripts/cache_bench.py.
listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
fetchers:
  plain:
    uri: http://127.0.0.1:{port}/plain/{{key}}?delay_ms={delay_ms}
  linger:
    uri: http://127.0.0.1:{port}/linger/{{key}}?delay_ms={delay_ms}
    linger: 100ms
  cache:
    uri: http://127.0.0.1:{port}/cache/{{key}}?delay_ms={delay_ms}
    cache:
      ttl: 5s
      stale_while_revalidate: 30s
      stale_if_error: 5m
      negative_ttl: 1s
      negative_codes: [NOT_FOUND]
      max_bytes: 256MiB
      early_refresh: true
      respect_cache_control: false
"""


class Process:
    """A server in the background whose output names its ports."""

    def __init__(self, args, pattern, count, stdin=None):
        self.args = args
        self.log = tempfile.TemporaryFile(mode="w+")
        self.popen = subprocess.Popen(args, stdout=self.log,
                                      stderr=subprocess.STDOUT, stdin=stdin,
                                      start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            found = re.findall(pattern, self.output())
            if len(found) >= count:
                self.ports = [int(port) for port in found[:count]]
                return
            if time.monotonic() > deadline or self.popen.poll() is not None:
                text = self.output()
                self.stop()
                raise RuntimeError(f"{args[0]} did not start: {text}")
            time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def cpu_seconds(self):
        with open(f"/proc/{self.popen.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self, sig=signal.SIGTERM):
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                timeout=10) as reply:
        return reply.read().decode()


def origin_hits(port, fetcher):
    hits = json.loads(http_get(port, "/_hits"))
    return sum(n for path, n in hits.items()
               if path.startswith(f"/{fetcher}/"))


def cache_metrics(port, fetcher):
    """singleflight_cache_* of the fetcher, by name without the prefix."""
    values = {}
    text = http_get(port, "/metrics")
    for line in text.splitlines():
        match = re.match(r'singleflight_cache_(\w+)\{([^}]*)\} (\S+)$', line)
        if match and f'fetcher="{fetcher}"' in match.group(2):
            values[match.group(1)] = float(match.group(3))
    return values


def zipf_probabilities(key_count, s):
    weights = [1.0 / (k + 1) ** s for k in range(key_count)]
    total = sum(weights)
    return [w / total for w in weights]


def zipf_seen_share(key_count, s, prior_calls):
    """Share of calls whose key was drawn in `prior_calls` earlier draws."""
    return sum(p * (1.0 - (1.0 - p) ** prior_calls)
               for p in zipf_probabilities(key_count, s))


def zipf_first_draws(key_count, s, prior_calls, calls):
    """Expected keys drawn for the first time in `calls` draws that follow
    `prior_calls` draws, per call: the origin requests per call of a cache
    that never forgets and never refreshes (compulsory misses)."""
    def distinct(n):
        return sum(1.0 - (1.0 - p) ** n
                   for p in zipf_probabilities(key_count, s))
    return (distinct(prior_calls + calls) - distinct(prior_calls)) / calls


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="cache_bench.")
        self.config = os.path.join(self.dir, "singleflightd.yaml")
        self.origin = None
        self.server = None
        self.failures = []

    def start_origin(self):
        self.origin_stdin = subprocess.Popen(["sleep", "infinity"],
                                             stdout=subprocess.PIPE)
        self.origin = Process([sys.executable, ORIGIN, "--exit-with-stdin"],
                              r"listening on 127\.0\.0\.1:(\d+)", 1,
                              stdin=self.origin_stdin.stdout)
        self.origin_port = self.origin.ports[0]
        with open(self.config, "w") as f:
            f.write(CONFIG.format(port=self.origin_port,
                                  delay_ms=self.args.delay_ms))

    def check_config(self):
        result = subprocess.run(
            [os.path.join(self.args.bin, "singleflightd"),
             f"--check_config={self.config}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            sys.exit("cache_bench: singleflightd does not accept the "
                     f"config (no cache policy yet?):\n{result.stdout}"
                     f"exit {result.returncode}")

    def start_server(self):
        self.server = Process(
            [os.path.join(self.args.bin, "singleflightd"),
             f"--config={self.config}", "--log_level=warning"],
            r"127\.0\.0\.1:(\d+)", 2)
        self.grpc_port, self.metrics_port = self.server.ports

    def stop_server(self):
        # Discarded after one measurement: SIGKILL spares the drain's second.
        self.server.stop(signal.SIGKILL)
        self.server = None

    def stop(self):
        for process in (self.server, self.origin):
            if process:
                process.stop()
        if self.origin:
            self.origin_stdin.kill()
            self.origin_stdin.wait()

    def sfload_args(self, fetcher, seconds, seed):
        a = self.args
        return [os.path.join(a.bin, "sfload"),
                f"--target=127.0.0.1:{self.grpc_port}", f"--fetcher={fetcher}",
                "--keys=zipf", f"--key_count={a.key_count}",
                f"--zipf_s={a.zipf_s}", f"--rate={a.rate}",
                f"--duration={seconds}s", f"--seed={seed}", "--json",
                f"--metrics_url=http://127.0.0.1:{self.metrics_port}/metrics"]

    def sfload(self, fetcher, seconds, seed):
        result = subprocess.run(self.sfload_args(fetcher, seconds, seed),
                                stdout=subprocess.PIPE, text=True,
                                timeout=seconds + 120)
        if result.returncode != 0:
            raise RuntimeError(f"sfload exited {result.returncode}")
        return json.loads(result.stdout)

    def warm(self, fetcher, seconds):
        if seconds > 0:
            self.sfload(fetcher, seconds, seed=2)
        http_get(self.origin_port, "/_reset")

    def measure(self, fetcher):
        """One steady-load measurement with a fresh singleflightd."""
        self.start_server()
        try:
            self.warm(fetcher, self.args.warmup)
            cpu = self.server.cpu_seconds()
            run = self.sfload(fetcher, self.args.duration, seed=1)
            cpu = self.server.cpu_seconds() - cpu
            hits = origin_hits(self.origin_port, fetcher)
            metrics = cache_metrics(self.metrics_port, fetcher)
        finally:
            self.stop_server()
        calls = max(run["calls"], 1)
        return {"fetcher": fetcher, "calls": run["calls"], "ok": run["ok"],
                "errors": run["errors"], "throughput": run["throughput"],
                "origin_requests": hits,
                "origin_per_call": hits / calls,
                "executions_per_call":
                    run.get("server", {}).get("executions_per_call"),
                "latency_us": run["latency_us"],
                "cpu_us_per_call": cpu * 1e6 / calls,
                "cache_metrics": metrics}

    def measure_failure(self, fetcher):
        """A run during which the origin fails for --fail_seconds."""
        a = self.args
        self.start_server()
        try:
            self.warm(fetcher, a.fail_warmup)
            load = subprocess.Popen(self.sfload_args(fetcher, a.fail_run, 1),
                                    stdout=subprocess.PIPE, text=True)
            try:
                time.sleep(a.fail_start)
                http_get(self.origin_port,
                         f"/_fail?status=503&seconds={a.fail_seconds}")
                out, _ = load.communicate(timeout=a.fail_run + 120)
            finally:
                if load.poll() is None:
                    load.kill()
                    load.wait()
                http_get(self.origin_port, "/_fail?status=0")
            if load.returncode != 0:
                raise RuntimeError(f"sfload exited {load.returncode}")
            run = json.loads(out)
            hits = origin_hits(self.origin_port, fetcher)
            metrics = cache_metrics(self.metrics_port, fetcher)
        finally:
            self.stop_server()
        calls = max(run["calls"], 1)
        in_window = a.rate * a.fail_seconds
        return {"fetcher": fetcher, "calls": run["calls"], "ok": run["ok"],
                "errors": run["errors"],
                "ok_share": run["ok"] / calls,
                "ok_share_during_failure":
                    max(0.0, 1.0 - run["error_count"] / in_window),
                "origin_requests": hits,
                "latency_us": run["latency_us"],
                "cache_metrics": metrics}


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:"
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(us):
    return f"{us / 1000:.2f}"


def errors_text(errors):
    return ", ".join(f"{code} {n}" for code, n in sorted(errors.items())) or "-"


def summed_errors(runs):
    total = {}
    for run in runs:
        for code, n in run["errors"].items():
            total[code] = total.get(code, 0) + n
    return total


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    parser.add_argument("--out")
    parser.add_argument("--quick", action="store_true",
                        help="CI-sized bounds: one short round of everything")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--fail_rounds", type=int)
    parser.add_argument("--fail_warmup", type=float)
    parser.add_argument("--fail_run", type=float)
    parser.add_argument("--fail_start", type=float)
    parser.add_argument("--fail_seconds", type=float)
    parser.add_argument("--delay_ms", type=int, default=20)
    parser.add_argument("--key_count", type=int, default=100000)
    parser.add_argument("--zipf_s", type=float, default=1.1)
    args = parser.parse_args()
    defaults = ({"rounds": 1, "warmup": 1, "duration": 3, "fail_rounds": 1,
                 "fail_warmup": 1.5, "fail_run": 5, "fail_start": 1,
                 "fail_seconds": 3}
                if args.quick else
                {"rounds": 3, "warmup": 10, "duration": 20, "fail_rounds": 1,
                 "fail_warmup": 20, "fail_run": 20, "fail_start": 5,
                 "fail_seconds": 10})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.fail_start + args.fail_seconds >= args.fail_run:
        parser.error("--fail_start + --fail_seconds must end before --fail_run")

    bench = Bench(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    steady = {f: [] for f in FETCHERS}
    failing = {f: [] for f in FETCHERS}
    try:
        bench.start_origin()
        bench.check_config()
        for r in range(args.rounds):
            order = FETCHERS[r % 3:] + FETCHERS[:r % 3]
            for fetcher in order:
                clock = time.monotonic()
                result = bench.measure(fetcher)
                steady[fetcher].append(result)
                print(f"round {r + 1} {fetcher}: "
                      f"{result['origin_per_call']:.4f} origin req/call, p50 "
                      f"{ms(result['latency_us']['p50'])} ms, p99 "
                      f"{ms(result['latency_us']['p99'])} ms, errors "
                      f"{errors_text(result['errors'])} "
                      f"({time.monotonic() - clock:.1f} s)", file=sys.stderr)
        for r in range(args.fail_rounds):
            for fetcher in FETCHERS:
                clock = time.monotonic()
                result = bench.measure_failure(fetcher)
                failing[fetcher].append(result)
                print(f"failure round {r + 1} {fetcher}: "
                      f"{result['ok_share']:.4f} answered, errors "
                      f"{errors_text(result['errors'])} "
                      f"({time.monotonic() - clock:.1f} s)", file=sys.stderr)
    finally:
        bench.stop()

    med = statistics.median
    report = [f"# Freshness policy benchmark ({started:%Y-%m-%d %H:%M} UTC)",
              "",
              f"`{' '.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}`"
              f" on {platform.node()}, {os.cpu_count()} cores, "
              f"{platform.platform()}; origin tests/origin/http_origin.py "
              f"answering after {args.delay_ms} ms; sfload open loop at "
              f"{args.rate} calls/s, Zipf s={args.zipf_s} over "
              f"{args.key_count:,} keys; load generator, origin and "
              "singleflightd share the cores.",
              "",
              f"## Steady load (median of {args.rounds} round(s): "
              f"{args.warmup:g} s warm-up, then {args.duration:g} s measured)",
              ""]
    rows = []
    for fetcher in FETCHERS:
        runs = steady[fetcher]
        rows.append([
            LABELS[fetcher], f"{med(r['calls'] for r in runs):.0f}",
            f"{med(r['origin_per_call'] for r in runs):.4f}",
            ms(med(r["latency_us"]["mean"] for r in runs)),
            ms(med(r["latency_us"]["p50"] for r in runs)),
            ms(med(r["latency_us"]["p99"] for r in runs)),
            ms(med(r["latency_us"]["p99_9"] for r in runs)),
            f"{med(r['cpu_us_per_call'] for r in runs):.0f}",
            errors_text(summed_errors(runs))])
    report.append(table(["fetcher", "calls", "origin requests/call",
                         "mean ms", "p50 ms", "p99 ms", "p99.9 ms",
                         "singleflightd CPU us/call", "errors (all rounds)"],
                        rows))
    compulsory = zipf_first_draws(args.key_count, args.zipf_s,
                                  int(args.rate * args.warmup),
                                  int(args.rate * args.duration))
    report += ["", "For scale: a cache that never forgot nor refreshed a value "
               "would still make "
               f"{compulsory:.4f} origin requests per call here (the keys "
               "drawn for the first time since the warm-up began: Zipf's long "
               "tail); the rest of the cache's requests are refreshes."]
    cache_rows = []
    for i, r in enumerate(steady["cache"]):
        m = r["cache_metrics"]
        cache_rows.append([i + 1, r["calls"], r["origin_requests"]] +
                          [f"{m[name]:.0f}" if name in m else "n/a"
                           for name in CACHE_METRICS])
    report += ["", "The cache fetcher's counters after each measured run "
               "(warm-up included: a fresh singleflightd per run):", "",
               table(["round", "calls", "origin requests"] +
                     [name.replace("_total", "") for name in CACHE_METRICS],
                     cache_rows)]

    prior = args.rate * (args.fail_warmup + args.fail_start)
    bound = zipf_seen_share(args.key_count, args.zipf_s, int(prior))
    report += ["",
               f"## Origin failing (503) for {args.fail_seconds:g} s "
               f"({args.fail_warmup:g} s warm-up, then a {args.fail_run:g} s "
               f"run, failure from {args.fail_start:g} s)", "",
               "answered during failure = 1 - errors / (rate x failure "
               "seconds). The best any cache could do during the failure: "
               f"{bound:.1%} (the share of Zipf draws whose key was among the "
               f"{prior:,.0f} drawn before it began).", ""]
    rows = []
    for fetcher in FETCHERS:
        for i, r in enumerate(failing[fetcher]):
            rows.append([LABELS[fetcher], i + 1, r["calls"],
                         f"{r['ok_share']:.2%}",
                         f"{r['ok_share_during_failure']:.2%}",
                         r["origin_requests"],
                         ms(r["latency_us"]["p99"]),
                         errors_text(r["errors"])])
    report.append(table(["fetcher", "round", "calls", "answered OK",
                         "answered during failure", "origin requests",
                         "p99 ms", "errors"], rows))
    text = "\n".join(report) + "\n"
    print(text)

    # Checks.
    for fetcher in FETCHERS:
        for r in steady[fetcher]:
            if r["errors"]:
                bench.failures.append(f"{fetcher}: errors under steady load: "
                                      f"{errors_text(r['errors'])}")
    if (med(r["origin_per_call"] for r in steady["cache"]) >=
            med(r["origin_per_call"] for r in steady["plain"])):
        bench.failures.append("the cache made no fewer origin requests per "
                              "call than no policy")
    if (med(r["ok_share"] for r in failing["cache"]) <=
            med(r["ok_share"] for r in failing["plain"])):
        bench.failures.append("the cache answered no more calls than no "
                              "policy while the origin failed")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "cache_bench.md"), "w") as f:
            f.write(text)
        with open(os.path.join(args.out, "cache_bench.json"), "w") as f:
            json.dump({"args": vars(args), "started": started.isoformat(),
                       "steady": steady, "failing": failing,
                       "failure_bound": bound,
                       "check_failures": bench.failures}, f, indent=1)
    for failure in bench.failures:
        print(f"CHECK FAILED: {failure}", file=sys.stderr)
    sys.exit(1 if bench.failures else 0)


if __name__ == "__main__":
    main()
