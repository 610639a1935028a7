#!/usr/bin/python3
"""Soak test of singleflightd with a faulty origin (issue 9).

Usage:
  /usr/bin/python3 tests/soak/soak.py --server-bin PATH [--rounds N]
      [--seconds-per-round S] [--seed X] [--workers W] [--idle-shutdown]
      [--keep-dir]

Starts tests/origin/http_origin.py and singleflightd (both on 127.0.0.1,
ports picked by the system) with one fetcher per kind of origin fault:

  normal    200 after 150 ms          hang      never answers; fetch timeout 400 ms
  reset     RST before any answer     resetmid  RST in the middle of the body
  err5xx    503 after 60 ms           slow      256-byte body, 32 bytes per 25 ms
  trunc     Content-Length larger than the body, then FIN
  slowecho  echo:?delay=200ms         echo      the embedded echo fetcher
  hot       200 after 1 s (only for the coalescing check, see below)
  mixed     the key chooses the fault (one connection pool for all of them)

Then, for N rounds of S seconds, W worker threads send a random mix on a few
keys, so that calls coalesce: unary Do with random deadlines (some shorter
than the fetch), bursts of concurrent Do on one key, DoStreams that
half-close and are read to the end, that are cancelled midway, or that are
never read (held, then cancelled), Forget and InFlight; some calls on a
channel of their own, closed right after (connection churn). Every call has
a deadline or is cancelled by the worker; every thread is joined with a
bound.

Checked, failing with a message naming the invariant:
  answers    every call got exactly one answer: a unary call its response or
             a status allowed for its fetcher (a fault never answers OK, an OK
             value is the right one); a stream read to the end exactly one
             reply per id, then OK; a cancelled stream CANCELLED.
  hot        in each round, 30 unary callers and 2 streams asking for one new
             key of `hot` at once: one origin hit, every caller the value.
  origin     for each HTTP fetcher, origin hits <= the server's
             singleflight_executions_total (at most one request per flight).
  backpressure  a never-read DoStream offering 64 MiB of echo requests
             (64 KiB each): the server reads at most 48 MiB of them
             (max_stream_buffer_bytes 16 MiB + 32 MiB of transport buffers).
  idle       after each round (own channels closed): no flight in InFlight and
             the flights/waiters gauges at 0 within 10 s.
  fds        after each round, the server's descriptors other than its
             connections to the origin are back to the pre-round-1 count
             (+4); its connections to the origin stay <= 64 (libcurl's pool).
             Connections whose client end this soak process still holds open
             (the control channel, or a channel grpcio failed to close) are
             not counted, but shown.
  rss        after warm-up (round 1), each round ends with VmRSS within
             max(10%, 64 MB) of the level after round 1. (Each round starts
             with 2 big never-read streams at once, and there are never more,
             so that every round reaches about the same peak of the heap.)
  final      a plain Do still answers after the last round; then, with a few
             calls in flight (or none: --idle-shutdown), SIGTERM makes the
             server exit 0 within drain_timeout (3 s) + 5 s, and every call in
             flight gets an answer.
  sanitizer  the server's stderr has no "ERROR: AddressSanitizer",
             "runtime error:" or "LeakSanitizer".

Prints one line per round (calls by kind; answers by code: unary answers and
stream items by status code, whole streams as stream_CODE; origin hits and
executions; VmRSS; descriptors) and a final summary; exits 1 if any check
failed, printing the first failures.
The seed (printed) makes the choices of each worker reproducible, not their
timing. Only the standard library and Debian's grpcio (/usr/bin/python3).
"""

import argparse
import collections
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import uuid

import grpc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORIGIN = os.path.join(REPO, "tests", "origin", "http_origin.py")
PROTO_ROOT = os.path.join(REPO, "proto")
PROTO = "singleflight/v1/singleflight.proto"

KEYS = ["k0", "k1", "k2", "k3"]
HANG_TIMEOUT_S = 0.4
DRAIN_TIMEOUT_S = 3
MB = 1 << 20
# What a never-read DoStream may make the server read: its default
# max_stream_buffer_bytes (16 MiB) of unwritten replies, plus 32 MiB for the
# requests and replies in transport buffers and HTTP/2 windows.
BACKPRESSURE_BYTES = 48 * MB
BIG_UNREAD = 2

OK = grpc.StatusCode.OK
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
CANCELLED = grpc.StatusCode.CANCELLED


class Fetcher:
    """One fetcher of the soak: its URI and what its answers may be."""

    def __init__(self, name, uri, value=None, codes=(), timeout=None):
        self.name = name
        self.uri = uri          # "{origin}" is replaced by the origin's URL
        self.value = value      # key -> the OK value; None: never OK
        self.codes = set(codes)  # error codes the fetch itself may give
        self.timeout = timeout

    def allowed(self, code, value, key):
        """None if (code, value) is a right answer for key, else why not."""
        if self.name == "mixed":  # the key names the fault
            return FETCHERS[MIXED_KEYS[key]].allowed(code, value, key)
        if code == OK:
            if self.value is None:
                return "answered OK (%d bytes) for a fault" % len(value)
            if value != self.value(key):
                return "wrong value %r" % value[:80]
            return None
        if code in self.codes:
            return None
        return "unexpected status %s" % code.name


FETCHERS = {f.name: f for f in [
    Fetcher("normal", "{origin}/normal/{key}?delay_ms=150",
            value=lambda k: b"/normal/" + k.encode()),
    Fetcher("hot", "{origin}/hot/{key}?delay_ms=1000",
            value=lambda k: b"/hot/" + k.encode()),
    Fetcher("hang", "{origin}/hang/{key}?hang=1", codes=[DEADLINE],
            timeout="%dms" % (HANG_TIMEOUT_S * 1000)),
    Fetcher("reset", "{origin}/reset/{key}?delay_ms=30&reset=1",
            codes=[UNAVAILABLE]),
    Fetcher("resetmid",
            "{origin}/resetmid/{key}?delay_ms=30&size=2048&reset=mid",
            codes=[UNAVAILABLE]),
    Fetcher("err5xx", "{origin}/err5xx/{key}?delay_ms=60&status=503",
            codes=[UNAVAILABLE]),
    Fetcher("slow", "{origin}/slow/{key}?size=256&piece=32&slow_body_ms=25",
            # 64 bytes for its key of `mixed`
            value=lambda k: b"x" * (64 if k.startswith("delay") else 256)),
    Fetcher("trunc", "{origin}/trunc/{key}?delay_ms=30&size=1000&truncate=1",
            codes=[UNAVAILABLE]),
    Fetcher("slowecho", "echo:?delay=200ms", value=lambda k: k.encode()),
    Fetcher("echo", None, value=lambda k: k.encode()),
    # Faults chosen by the key, on connections that libcurl reuses: a reset
    # there may be retried by libcurl (two origin requests for one flight).
    Fetcher("mixed", "{origin}/mixed/{key}?path_query=1", timeout="1s"),
]}
# Keys of `mixed`, and the fetcher whose answers each must match.
MIXED_KEYS = {
    "delay_ms=100&size=64": "slow",
    "delay_ms=30&reset=1": "reset",
    "delay_ms=30&size=2048&reset=mid": "resetmid",
    "delay_ms=30&status=503": "err5xx",
    "delay_ms=30&size=1000&truncate=1": "trunc",
    "hang=1": "hang",
}
# Fetchers of the random mix (`hot` is kept for the coalescing check).
MIX = [n for n in FETCHERS if n != "hot"]
HTTP_FETCHERS = [n for n, f in FETCHERS.items()
                 if f.uri and f.uri.startswith("{origin}")]


_PAYLOADS = {}


def payload(size, id):
    """size bytes of one letter chosen by id (shared, not copied)."""
    letter = 65 + id % 26
    if size and (size, letter) not in _PAYLOADS:
        _PAYLOADS[(size, letter)] = bytes([letter]) * size
    return _PAYLOADS.get((size, letter), b"")


def pick(rng):
    """A random (fetcher, key) of the mix."""
    fetcher = rng.choice(MIX)
    keys = sorted(MIXED_KEYS) if fetcher == "mixed" else KEYS
    return fetcher, rng.choice(keys)


def tcp_sockets(pid):
    """{inode: (local port, remote port, hex state)} of the TCP sockets in
    process pid's network namespace ("self" for this process)."""
    sockets = {}
    for table in ("/proc/%s/net/tcp" % pid, "/proc/%s/net/tcp6" % pid):
        try:
            with open(table) as rows:
                next(rows)
                for row in rows:
                    f = row.split()
                    sockets[f[9]] = (int(f[1].rsplit(":", 1)[1], 16),
                                     int(f[2].rsplit(":", 1)[1], 16), f[3])
        except OSError:
            pass
    return sockets


def fd_links(pid):
    """{fd: (link, socket inode or None)} of process pid ("self" too)."""
    fd_dir = "/proc/%s/fd" % pid
    links = {}
    for name in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        match = re.match(r"socket:\[(\d+)\]", link)
        links[int(name)] = (link, match.group(1) if match else None)
    return links


def own_client_ports(server_port):
    """Local ports of this process's open TCP connections to server_port."""
    inodes = {inode for _, inode in fd_links("self").values() if inode}
    return {local for inode, (local, remote, _) in tcp_sockets("self").items()
            if inode in inodes and remote == server_port}


def log(message):
    print(message, flush=True)


def load_stubs(directory):
    """Generates the Python stubs into directory; returns (pb2, pb2_grpc)."""
    subprocess.run(
        ["protoc", "-I", PROTO_ROOT, "--python_out=" + directory,
         "--grpc_out=" + directory,
         "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", PROTO],
        check=True)
    sys.path.insert(0, directory)
    from singleflight.v1 import singleflight_pb2, singleflight_pb2_grpc
    return singleflight_pb2, singleflight_pb2_grpc


class LineReader:
    """Reads a child's stdout lines in a thread, so reads can time out."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        thread = threading.Thread(target=self._pump, args=(stream,),
                                  daemon=True)
        thread.start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise RuntimeError("no line matching %r (got %r)" % (pattern, seen))
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match


class Stats:
    """Counts of calls and answers, and failed checks; thread-safe."""

    MAX_KEPT = 40

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.answers = collections.Counter()
        self.failures = collections.Counter()
        self.examples = []

    def call(self, kind):
        with self.lock:
            self.calls[kind] += 1

    def answer(self, code):
        with self.lock:
            self.answers[code.name if hasattr(code, "name") else str(code)] += 1

    def fail(self, check, message):
        with self.lock:
            self.failures[check] += 1
            if len(self.examples) < self.MAX_KEPT:
                self.examples.append("%s: %s" % (check, message))

    def snapshot(self):
        with self.lock:
            return (collections.Counter(self.calls),
                    collections.Counter(self.answers),
                    collections.Counter(self.failures))


class Server:
    """The origin and singleflightd, started and watched."""

    def __init__(self, server_bin, workdir):
        self.workdir = workdir
        self.origin = subprocess.Popen(
            ["/usr/bin/python3", ORIGIN, "--port", "0", "--exit-with-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        match = LineReader(self.origin.stdout).wait_for(
            r"listening on ([\d.]+):(\d+)", 10)
        self.origin_port = int(match.group(2))
        self.origin_url = "http://127.0.0.1:%d" % self.origin_port
        config = os.path.join(workdir, "soak.yaml")
        with open(config, "w") as out:
            out.write("listen: 127.0.0.1:0\ndefault_fetcher: echo\n"
                      "drain_timeout: %ds\nfetchers:\n" % DRAIN_TIMEOUT_S)
            for fetcher in FETCHERS.values():
                if fetcher.uri is None:
                    continue
                uri = fetcher.uri.replace("{origin}", self.origin_url)
                out.write('  %s:\n    uri: "%s"\n' % (fetcher.name, uri))
                if fetcher.timeout:
                    out.write("    timeout: %s\n" % fetcher.timeout)
        env = dict(os.environ)
        # A small ASan quarantine, or it alone grows RSS by up to 256 MB; and
        # freed memory given back to the system, so VmRSS follows the heap.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [
            env.get("ASAN_OPTIONS"), "quarantine_size_mb=16",
            "allocator_release_to_os_interval_ms=500"]))
        env["UBSAN_OPTIONS"] = ":".join(filter(None, [
            env.get("UBSAN_OPTIONS"), "print_stacktrace=1"]))
        self.stderr_path = os.path.join(workdir, "singleflightd.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [server_bin, "--config", config, "--metrics_listen=127.0.0.1:0",
             "--log_level=info"],
            stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        reader = LineReader(self.proc.stdout)
        match = reader.wait_for(r"listening on ([\d.]+):(\d+)", 60)
        self.port = int(match.group(2))
        self.target = "127.0.0.1:%d" % self.port
        self.metrics_url = reader.wait_for(r"metrics on (http://\S+)", 10).group(1)

    def stop(self):
        for proc in (self.proc, self.origin):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.stderr.close()

    # --- what the origin saw -------------------------------------------------

    def origin_get(self, path):
        with urllib.request.urlopen(self.origin_url + path, timeout=10) as answer:
            return answer.read().decode()

    def hits_by_fetcher(self):
        hits = collections.Counter()
        for path, count in json.loads(self.origin_get("/_hits")).items():
            hits[path.split("/")[1]] += count
        return hits

    # --- what the server says ------------------------------------------------

    def metrics(self):
        """{(name, {labels}) as (name, frozenset)}: value, of /metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as answer:
            text = answer.read().decode()
        series = {}
        for line in text.splitlines():
            match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if match:
                labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
                series[(match.group(1), labels)] = float(match.group(3))
        return series

    def executions_by_fetcher(self):
        return {dict(labels).get("fetcher"): value
                for (name, labels), value in self.metrics().items()
                if name == "singleflight_executions_total"}

    def rss_bytes(self):
        with open("/proc/%d/status" % self.proc.pid) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def fd_table(self):
        """{fd: what it is}: a TCP socket as LOCAL->REMOTE STATE (ports, and
        the hex state of /proc/net/tcp), anything else as its link."""
        sockets = tcp_sockets(self.proc.pid)
        described = {}
        for fd, (link, inode) in fd_links(self.proc.pid).items():
            if inode in sockets:
                local, remote, state = sockets[inode]
                described[fd] = "tcp %s->%s st=%s" % (local, remote, state)
            else:
                described[fd] = link
        return described

    def fds(self):
        """(descriptors other than the ones below, connections to the origin,
        connections from this soak process that it still holds open)."""
        links = fd_links(self.proc.pid)
        own = own_client_ports(self.port)
        origin = held = 0
        sockets = tcp_sockets(self.proc.pid)
        for _, inode in links.values():
            if inode not in sockets:
                continue
            local, remote, _ = sockets[inode]
            if remote == self.origin_port:
                origin += 1
            elif local == self.port and remote in own:
                held += 1
        return len(links) - origin - held, origin, held


class Soak:
    """The rounds of random calls, and the checks."""

    def __init__(self, args, server, pb2, pb2_grpc):
        self.args = args
        self.server = server
        self.pb2 = pb2
        self.pb2_grpc = pb2_grpc
        self.stats = Stats()
        self.control_channel = grpc.insecure_channel(server.target)
        self.control = pb2_grpc.SingleFlightStub(self.control_channel)
        self.stop_at = 0.0
        # At most BIG_UNREAD big never-read streams at once, and each round
        # starts with that many (see run()), so that the heap's peak is about
        # the same in every round, warm-up included.
        self.big_unread = threading.Semaphore(BIG_UNREAD)

    def channel(self):
        # A local subchannel pool: each channel its own TCP connection.
        return grpc.insecure_channel(
            self.server.target, options=[("grpc.use_local_subchannel_pool", 1)])

    def request(self, fetcher, key, id=0, payload=b""):
        return self.pb2.DoRequest(key=key, fetcher=fetcher, id=id,
                                  payload=payload)

    # --- one unary Do --------------------------------------------------------

    def check_unary(self, fetcher, key, code, value, deadline, elapsed):
        self.stats.answer(code)
        if code == DEADLINE and deadline is not None and elapsed >= deadline * 0.9:
            return  # the caller's own deadline
        why = FETCHERS[fetcher].allowed(code, value, key)
        if why:
            self.stats.fail("answers", "Do(%s, %s): %s" % (fetcher, key, why))
        if deadline is not None and elapsed > deadline + 2:
            self.stats.fail("answers", "Do(%s, %s) answered %.1fs after its "
                            "%.2fs deadline" % (fetcher, key, elapsed - deadline, deadline))

    def unary(self, stub, rng):
        fetcher, key = pick(rng)
        deadline = (rng.uniform(0.02, 0.3) if rng.random() < 0.3
                    else rng.uniform(0.5, 3.0))
        self.stats.call("do")
        start = time.monotonic()
        try:
            reply = stub.Do(self.request(fetcher, key), timeout=deadline)
            code, value = OK, reply.value
        except grpc.RpcError as error:
            code, value = error.code(), b""
        self.check_unary(fetcher, key, code, value, deadline,
                         time.monotonic() - start)

    def burst(self, stub, rng):
        """n concurrent Do on one key; all answered, OK values all equal."""
        fetcher, key = pick(rng)
        n = rng.randint(5, 20)
        deadline = 5.0
        start = time.monotonic()
        futures = []
        for _ in range(n):
            self.stats.call("burst_do")
            futures.append(stub.Do.future(self.request(fetcher, key),
                                          timeout=deadline))
        for future in futures:
            try:
                reply = future.result(timeout=deadline + 5)
                code, value = OK, reply.value
            except grpc.FutureTimeoutError:
                future.cancel()
                self.stats.fail("answers", "burst Do(%s, %s) never answered"
                                % (fetcher, key))
                continue
            except grpc.RpcError as error:
                code, value = error.code(), b""
            self.check_unary(fetcher, key, code, value, deadline,
                             time.monotonic() - start)

    # --- DoStream ------------------------------------------------------------

    def stream_items(self, rng, n):
        return {rng.randint(1, 1 << 60): pick(rng) for _ in range(n)}

    def check_item(self, items, reply, seen, where):
        if reply.id not in items:
            self.stats.fail("answers", "%s: reply for unknown id %d" % (where, reply.id))
            return
        if reply.id in seen:
            self.stats.fail("answers", "%s: a second reply for id %d" % (where, reply.id))
        seen.add(reply.id)
        fetcher, key = items[reply.id]
        code = grpc.StatusCode.UNKNOWN
        for status_code in grpc.StatusCode:
            if status_code.value[0] == reply.status.code:
                code = status_code
        self.stats.answer(code)
        why = FETCHERS[fetcher].allowed(code, reply.value, key)
        if why:
            self.stats.fail("answers", "%s item (%s, %s): %s (%s)" % (
                where, fetcher, key, why, reply.status.message))

    def stream_to_end(self, stub, rng):
        """Sends n items, half-closes, reads every reply, expects OK."""
        items = self.stream_items(rng, rng.randint(1, 8))
        requests = [self.request(f, k, id=i) for i, (f, k) in items.items()]
        rng.shuffle(requests)
        self.stats.call("stream_read")
        seen = set()
        call = stub.DoStream(iter(requests), timeout=20)
        try:
            for reply in call:
                self.check_item(items, reply, seen, "stream")
            code = call.code()
        except grpc.RpcError as error:
            code = error.code()
        self.stats.answer("stream_" + code.name)
        if code != OK:
            self.stats.fail("answers", "a stream read to the end ended with %s "
                            "after %d of %d replies" % (code.name, len(seen), len(items)))
        elif len(seen) != len(items):
            self.stats.fail("answers", "a stream ended OK with %d of %d replies"
                            % (len(seen), len(items)))

    def stream_cancelled(self, stub, rng, read, big=None):
        """read: sends items without half-closing, reads some replies, then
        cancels. Not read: sends many items (half-closing or not), never
        reads, holds the stream 0.5-2 s, then cancels. Expects CANCELLED.
        big (not read only): 64 MiB of requests, if one of BIG_UNREAD
        permits is free (None: at random)."""
        if not read and big is None and rng.random() < 0.5:
            if self.big_unread.acquire(blocking=False):
                try:
                    return self.stream_cancelled(stub, rng, read, big=True)
                finally:
                    self.big_unread.release()
        release = threading.Event()
        if read:
            items = self.stream_items(rng, rng.randint(2, 8))
            specs = [(f, k, i, 0) for i, (f, k) in items.items()]
            half_close = False
        else:
            # A few items of the mix (flights still running at the cancel),
            # then many echo items with big values: small (up to 3 MiB) or
            # 64 MiB, over max_stream_buffer_bytes (16 MiB), so the server
            # must stop reading.
            prefix = "u-%s-" % uuid.UUID(int=rng.getrandbits(128)).hex[:12]
            size, count = (65536, 1000) if big else (16384, rng.randint(50, 200))
            specs = [pick(rng) + (i, 0) for i in range(1, rng.randint(1, 5))]
            specs += [("echo", prefix + str(i), 1000 + i, size)
                      for i in range(count)]
            items = None
            half_close = rng.random() < 0.5

        taken = [0]  # items gRPC took from send(): what the server read, +1

        def send():  # requests made as gRPC takes them: 64 MiB is a lot
            for fetcher, key, id, size in specs:
                yield self.request(fetcher, key, id=id,
                                   payload=payload(size, id))
                taken[0] += 1
            if not half_close:
                release.wait(30)

        self.stats.call("stream_cancel" if read else "stream_unread")
        call = stub.DoStream(send(), timeout=30)
        code = None
        try:
            if read:
                seen = set()
                for _ in range(rng.randint(0, len(items) - 1)):
                    self.check_item(items, next(call), seen, "cancelled stream")
            else:
                time.sleep(rng.uniform(0.5, 2.0))
                offered = sum(spec[3] for spec in specs)
                read = sum(spec[3] for spec in specs[:taken[0]])
                if offered > BACKPRESSURE_BYTES and read > BACKPRESSURE_BYTES:
                    self.stats.fail("backpressure", "a never-read DoStream: the "
                                    "server read %d of %d items (%.0f of %.0f MiB)"
                                    " instead of stopping near max_stream_buffer_"
                                    "bytes (16 MiB)" % (taken[0], len(specs),
                                                        read / MB, offered / MB))
        except grpc.RpcError as error:
            code = error.code()
            self.stats.fail("answers", "a stream failed with %s before it was "
                            "cancelled" % code.name)
        finally:
            call.cancel()
            release.set()
        if code is None:
            code = call.code()
            if code != CANCELLED:
                self.stats.fail("answers", "a cancelled stream ended with %s" % code)
        self.stats.answer("stream_" + code.name)

    # --- Forget, InFlight ----------------------------------------------------

    def forget(self, stub, rng):
        self.stats.call("forget")
        try:
            fetcher, key = pick(rng)
            stub.Forget(self.pb2.ForgetRequest(key=key, fetcher=fetcher),
                        timeout=5)
            self.stats.answer(OK)
        except grpc.RpcError as error:
            self.stats.answer(error.code())
            self.stats.fail("answers", "Forget: %s" % error.code().name)

    def inflight(self, stub, rng):
        self.stats.call("inflight")
        try:
            reply = stub.InFlight(self.pb2.InFlightRequest(), timeout=5)
            self.stats.answer(OK)
            for flight in reply.flights:
                if flight.fetcher not in FETCHERS:
                    self.stats.fail("answers", "InFlight: unknown fetcher %r"
                                    % flight.fetcher)
        except grpc.RpcError as error:
            self.stats.answer(error.code())
            self.stats.fail("answers", "InFlight: %s" % error.code().name)

    # --- workers -------------------------------------------------------------

    ACTIONS = [("unary", 40), ("burst", 8), ("stream_to_end", 15),
               ("stream_cancel", 10), ("stream_unread", 4), ("forget", 12),
               ("inflight", 6)]

    def worker(self, rng):
        names = [name for name, _ in self.ACTIONS]
        weights = [weight for _, weight in self.ACTIONS]
        own = self.channel()
        own_stub = self.pb2_grpc.SingleFlightStub(own)
        try:
            while time.monotonic() < self.stop_at:
                action = rng.choices(names, weights)[0]
                fresh = rng.random() < 0.1  # churn: a connection for one call
                channel = self.channel() if fresh else None
                stub = (self.pb2_grpc.SingleFlightStub(channel) if fresh
                        else own_stub)
                try:
                    if action == "stream_cancel":
                        self.stream_cancelled(stub, rng, read=True)
                    elif action == "stream_unread":
                        self.stream_cancelled(stub, rng, read=False)
                    else:
                        getattr(self, action)(stub, rng)
                except Exception:  # e.g. a stream that ended too early
                    self.stats.fail("answers", "%s: %s" % (
                        action, traceback.format_exc(limit=3)))
                finally:
                    if channel is not None:
                        channel.close()
                time.sleep(rng.uniform(0, 0.01))
        finally:
            own.close()

    def hot_check(self, round_number):
        """30 Do and 2 streams of 5 items on one new key of `hot`, at once:
        exactly one origin hit, and every caller gets the value, shared."""
        key = "hot-%d-%d" % (round_number, os.getpid())
        expected = FETCHERS["hot"].value(key)
        channel = self.channel()
        stub = self.pb2_grpc.SingleFlightStub(channel)
        problems = []
        try:
            futures = [stub.Do.future(self.request("hot", key), timeout=15)
                       for _ in range(30)]
            streams = [stub.DoStream(iter([self.request("hot", key, id=i)
                                           for i in range(1, 6)]), timeout=15)
                       for _ in range(2)]
            for _ in range(30):
                self.stats.call("hot_do")
            for _ in range(2):
                self.stats.call("hot_stream")
            for future in futures:
                try:
                    reply = future.result(timeout=20)
                    self.stats.answer(OK)
                    if reply.value != expected or not reply.shared:
                        problems.append("Do got value %r shared=%s" % (
                            reply.value[:60], reply.shared))
                except grpc.RpcError as error:
                    self.stats.answer(error.code())
                    problems.append("Do got %s" % error.code().name)
                except grpc.FutureTimeoutError:
                    future.cancel()
                    problems.append("a Do was never answered")
            for stream in streams:
                try:
                    ids = []
                    for reply in stream:
                        ids.append(reply.id)
                        if reply.status.code != 0 or reply.value != expected:
                            problems.append("stream item got %d %r" % (
                                reply.status.code, reply.value[:60]))
                    self.stats.answer("stream_OK")
                    if sorted(ids) != [1, 2, 3, 4, 5]:
                        problems.append("stream replies for ids %s" % ids)
                except grpc.RpcError as error:
                    self.stats.answer("stream_" + error.code().name)
                    problems.append("stream ended with %s" % error.code().name)
        finally:
            channel.close()
        hits = int(self.server.origin_get("/_hits?path=/hot/" + key))
        if hits != 1:
            problems.append("the origin saw %d requests for one flight" % hits)
        for problem in problems:
            self.stats.fail("hot", "key %s: %s" % (key, problem))

    # --- rounds --------------------------------------------------------------

    def peak(self, rng):
        """BIG_UNREAD big never-read streams at once, while the workers run;
        the caller holds every permit, and this gives them back."""
        channel = self.channel()
        stub = self.pb2_grpc.SingleFlightStub(channel)
        threads = [threading.Thread(target=self.stream_cancelled,
                                    args=(stub, random.Random(rng.random()),
                                          False, True))
                   for _ in range(BIG_UNREAD)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=40)
        finally:
            channel.close()
            for _ in range(BIG_UNREAD):
                self.big_unread.release()

    def settle(self):
        """Waits up to 10 s for no flight in progress; False if some remain."""
        deadline = time.monotonic() + 10
        while True:
            flights = list(self.control.InFlight(self.pb2.InFlightRequest(),
                                                 timeout=5).flights)
            gauges = {(name, dict(labels).get("fetcher")): value
                      for (name, labels), value in self.server.metrics().items()
                      if name in ("singleflight_flights_in_flight",
                                  "singleflight_waiters") and value != 0}
            if not flights and not gauges:
                return None
            if time.monotonic() > deadline:
                return "flights %s, gauges %s" % (
                    ["%s/%s waiters=%d" % (f.fetcher, f.key, f.waiters)
                     for f in flights[:5]], gauges)
            time.sleep(0.2)

    def fds_settled(self, limit):
        """Waits up to 5 s for the non-origin fds to be <= limit."""
        deadline = time.monotonic() + 5
        while True:
            other, origin, held = self.server.fds()
            if other <= limit or time.monotonic() > deadline:
                return other, origin, held
            time.sleep(0.2)

    def run(self):
        args = self.args
        server = self.server
        self.control.Do(self.request("echo", "warm"), timeout=10)
        server.metrics()
        time.sleep(0.5)
        fd_base, origin_fds, _ = server.fds()
        fd_table = server.fd_table()
        rss_start = server.rss_bytes()
        log("soak: server %s (pid %d), origin port %d, metrics %s" % (
            server.target, server.proc.pid, server.origin_port, server.metrics_url))
        log("soak: seed %d, %d rounds x %ss, %d workers; before round 1: "
            "RSS %.1f MB, fds %d (+%d to the origin)" % (
                args.seed, args.rounds, args.seconds_per_round, args.workers,
                rss_start / MB, fd_base, origin_fds))
        rss_warm = None
        previous = Stats().snapshot()
        for round_number in range(1, args.rounds + 1):
            started = time.monotonic()
            self.stop_at = started + args.seconds_per_round
            threads = [threading.Thread(
                target=self.worker,
                args=(random.Random("%d/%d/%d" % (args.seed, round_number, i)),),
                daemon=True) for i in range(args.workers)]
            for _ in range(BIG_UNREAD):
                self.big_unread.acquire()
            for thread in threads:
                thread.start()
            self.peak(random.Random("%d/%d/peak" % (args.seed, round_number)))
            time.sleep(max(0.0, min(2.0, args.seconds_per_round / 3)
                           - (time.monotonic() - started)))
            self.hot_check(round_number)
            for thread in threads:
                thread.join(timeout=max(0.0, self.stop_at + 60 - time.monotonic()))
            stuck = sum(thread.is_alive() for thread in threads)
            if stuck:
                self.stats.fail("answers", "round %d: %d workers still waiting "
                                "for answers 60 s after the round" % (round_number, stuck))
            busy = self.settle()
            if busy:
                self.stats.fail("idle", "round %d: still in flight 10 s after "
                                "the round: %s" % (round_number, busy))
            hits = server.hits_by_fetcher()
            executions = server.executions_by_fetcher()
            for name in HTTP_FETCHERS:
                if hits[name] > executions.get(name, 0):
                    by_path = json.loads(server.origin_get("/_hits"))
                    self.stats.fail("origin", "round %d: fetcher %s: the origin saw "
                                    "%d requests for %d executions (hits by path "
                                    "so far: %s)" % (
                                        round_number, name, hits[name],
                                        executions.get(name, 0), ", ".join(
                                            "%s=%d" % (p, n) for p, n in
                                            sorted(by_path.items())
                                            if p.split("/")[1] == name)))
            fds, origin_fds, held = self.fds_settled(fd_base + 4)
            if fds > fd_base + 4:
                self.stats.fail("fds", "round %d: %d descriptors (besides %d to the "
                                "origin) once idle, %d before round 1" % (
                                    round_number, fds, origin_fds, fd_base))
            if origin_fds > 64:
                self.stats.fail("fds", "round %d: %d connections to the origin "
                                "once idle" % (round_number, origin_fds))
            if fds > fd_base:
                now_table = server.fd_table()
                new = sorted("%d=%s" % (fd, what) for fd, what in now_table.items()
                             if fd_table.get(fd) != what
                             and "->%d " % server.origin_port not in what)
                log("round %d: descriptors not there before round 1 (TCP: "
                    "local->remote port, hex state): %s; this soak's own open "
                    "connections to the server are from ports %s" % (
                        round_number, ", ".join(new[:12]),
                        sorted(own_client_ports(server.port))[:12]))
            rss = server.rss_bytes()
            if rss_warm is None:
                rss_warm = rss
            elif rss > max(rss_warm * 1.10, rss_warm + 64 * MB):
                self.stats.fail("rss", "round %d: VmRSS %.1f MB, %.1f MB after "
                                "warm-up (round 1)" % (round_number, rss / MB,
                                                       rss_warm / MB))
            if server.proc.poll() is not None:
                self.stats.fail("final", "the server exited (%s) during round %d"
                                % (server.proc.returncode, round_number))
                break
            now = self.stats.snapshot()
            calls = now[0] - previous[0]
            answers = now[1] - previous[1]
            failures = now[2] - previous[2]
            previous = now
            total_hits = sum(hits[n] for n in HTTP_FETCHERS)
            total_executions = sum(executions.get(n, 0) for n in HTTP_FETCHERS)
            log("round %d/%d: %d calls (%s); answers %s; origin hits %d %s "
                "executions %d; RSS %.1f MB; fds %d (+%d to the origin, +%d "
                "held open by the soak; %d before round 1); %.1fs; %s" % (
                    round_number, args.rounds, sum(calls.values()),
                    " ".join("%s=%d" % kv for kv in sorted(calls.items())),
                    " ".join("%s=%d" % kv for kv in sorted(answers.items())),
                    total_hits, "<=" if total_hits <= total_executions else ">",
                    total_executions,
                    rss / MB, fds, origin_fds, held, fd_base,
                    time.monotonic() - started,
                    "failed: " + ", ".join("%s=%d" % kv for kv in sorted(failures.items()))
                    if failures else "ok"))
        log("soak: origin hits / executions by fetcher: " + " ".join(
            "%s=%d/%d" % (n, hits[n], executions.get(n, 0)) for n in HTTP_FETCHERS))
        return rss_start, rss_warm, fd_base

    def finish(self):
        """The final plain Do, then SIGTERM (with calls in flight)."""
        server = self.server
        try:
            reply = self.control.Do(self.request("echo", "final"), timeout=10)
            if reply.value != b"final":
                self.stats.fail("final", "the final Do got %r" % reply.value)
        except grpc.RpcError as error:
            self.stats.fail("final", "the final Do failed: %s" % error.code().name)
        self.control_channel.close()
        channel = self.channel()
        stub = self.pb2_grpc.SingleFlightStub(channel)
        futures = []
        release = threading.Event()
        unread = None
        if not self.args.idle_shutdown:
            for fetcher in ("normal", "hang", "slow", "slowecho"):
                futures.append((fetcher, stub.Do.future(
                    self.request(fetcher, "last-" + fetcher), timeout=15)))

            def send():
                for i in range(100):
                    yield self.request("echo", "last-%d" % i, id=i + 1,
                                       payload=b"z" * 16384)
                release.wait(30)
            unread = stub.DoStream(send(), timeout=15)
            time.sleep(0.1)
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # Shutdown() takes up to drain_timeout + about 1 s (kStreamGrace);
        # tearing the process down (metrics exposer, fetchers) about 2 s more.
        limit = DRAIN_TIMEOUT_S + 5
        try:
            code = server.proc.wait(timeout=limit)
            took = time.monotonic() - sent
            if code != 0:
                self.stats.fail("final", "after SIGTERM the server exited with "
                                "status %d after %.1fs" % (code, took))
        except subprocess.TimeoutExpired:
            took = None
            self.stats.fail("final", "the server did not exit within %ds of "
                            "SIGTERM (%s)" % (limit, "idle" if self.args.idle_shutdown
                                              else "with 4 Do and a never-read "
                                              "DoStream in flight"))
        for fetcher, future in futures:
            try:
                future.result(timeout=5)
                outcome = "OK"
            except grpc.RpcError as error:
                outcome = error.code().name
            except grpc.FutureTimeoutError:
                outcome = "no answer"
                self.stats.fail("final", "a Do(%s) in flight at SIGTERM got no "
                                "answer" % fetcher)
            log("final: Do(%s) in flight at SIGTERM: %s" % (fetcher, outcome))
        if unread is not None:
            unread.cancel()
        release.set()
        channel.close()
        return took

    def drain_log(self):
        """How long the server's log says the drain took, or None."""
        with open(self.server.stderr_path, errors="replace") as stderr:
            text = stderr.read()
        stamps = {}
        for line in text.splitlines():
            match = re.match(r"\S+ (\d+):(\d+):([\d.]+) \S+ .*(draining for|stopped)", line)
            if match:
                h, m, sec = int(match.group(1)), int(match.group(2)), float(match.group(3))
                stamps[match.group(4)] = h * 3600 + m * 60 + sec
        if len(stamps) == 2:
            return stamps["stopped"] - stamps["draining for"]
        return None

    def sanitizer_check(self):
        with open(self.server.stderr_path, errors="replace") as stderr:
            text = stderr.read()
        for pattern in ("ERROR: AddressSanitizer", "runtime error:",
                        "LeakSanitizer"):
            for match in re.finditer(re.escape(pattern), text):
                start = text.rfind("\n", 0, match.start()) + 1
                self.stats.fail("sanitizer", text[start:start + 300])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-bin", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds-per-round", type=float, default=10)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--idle-shutdown", action="store_true",
                        help="send SIGTERM with no call in flight")
    parser.add_argument("--keep-dir", action="store_true",
                        help="keep the temporary directory (config, stderr)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    workdir = tempfile.mkdtemp(prefix="sf-soak-")
    pb2, pb2_grpc = load_stubs(workdir)
    server = Server(os.path.abspath(args.server_bin), workdir)
    soak = Soak(args, server, pb2, pb2_grpc)
    started = time.monotonic()
    try:
        rss_start, rss_warm, fd_base = soak.run()
        took = soak.finish()
    except Exception:
        soak.stats.fail("soak", traceback.format_exc())
        took = rss_start = rss_warm = fd_base = None
    finally:
        server.stop()
    soak.sanitizer_check()
    drain = soak.drain_log()
    if drain is not None:
        log("soak: the server's log shows a drain of %.2fs (SIGTERM to "
            "\"stopped\"); exit came %s after SIGTERM" % (
                drain, "%.2fs" % took if took is not None else "not"))
    calls, answers, failures = soak.stats.snapshot()
    log("soak: %d calls (%s)" % (sum(calls.values()), " ".join(
        "%s=%d" % kv for kv in sorted(calls.items()))))
    log("soak: answers %s" % " ".join("%s=%d" % kv for kv in sorted(answers.items())))
    if rss_start is not None:
        log("soak: RSS %.1f MB before, %.1f MB after warm-up; fds %d before; "
            "exit after SIGTERM: %s; %.0fs in all; stderr %s" % (
                rss_start / MB, (rss_warm or 0) / MB, fd_base,
                "%.2fs" % took if took is not None else "none",
                time.monotonic() - started, server.stderr_path))
    if failures:
        log("soak: FAILED (seed %d): %s" % (args.seed, ", ".join(
            "%s=%d" % kv for kv in sorted(failures.items()))))
        for example in soak.stats.examples:
            log("  " + example.rstrip())
        log("soak: server stderr kept in %s" % workdir)
        return 1
    log("soak: PASSED (seed %d)" % args.seed)
    if not args.keep_dir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
