#!/usr/bin/python3
"""A scriptable HTTP/1.1 origin for singleflight's tests (stdlib only).

Usage:
  http_origin.py [--host 127.0.0.1] [--port 0] [--exit-with-stdin] [--verbose]
                 [--tls_cert PEM --tls_key PEM [--tls_client_ca PEM]]

Listens on HOST:PORT (port 0: one the system picks) and prints exactly one
line, `listening on HOST:PORT`, on stdout once it accepts connections. With
--exit-with-stdin it exits when its stdin reaches end of file, so that it dies
with the test process that started it. --verbose logs each request on stderr.
With --tls_cert and --tls_key it serves HTTPS; with --tls_client_ca too, only
to clients with a certificate that CA signed.
Connections are kept alive (HTTP/1.1), each served by a thread of its own.

Any path (GET, POST, PUT, DELETE) answers according to its query parameters,
which combine:
  delay_ms=N      wait N ms before answering.
  hang=1          never answer; wait until the client goes away.
  status=CODE     answer with HTTP status CODE and the body
                  `status CODE for PATH` (no body for 204 and 304).
  size=N          the body is N bytes of 'x'.
  echo_headers=1  the body is the request headers as a JSON object (names in
                  lower case, repeated headers joined with ", ").
  echo_body=1     the body is the request body.
  chunked=1       send the body with chunked transfer encoding, without a
                  Content-Length, in chunks of at most 64 KiB.
  slow_body_ms=N  send the body in pieces of `piece` bytes (piece=B, default
                  16), pausing N ms before each piece (headers go out at
                  once); with chunked=1, one chunk per piece.
  truncate=1      announce the whole body (Content-Length, or chunks) but send
                  only its first half (at most len-1 bytes), then close the
                  connection (FIN), without the last chunk when chunked.
  reset=1         after any delay, reset the connection (SO_LINGER 0, so the
                  client gets a TCP RST) instead of answering.
  reset=mid       send the status line, the headers and the first half of the
                  body, then reset the connection the same way.
  path_query=1    the last segment of the path, percent-decoded, holds more
                  of these parameters (e.g. /items/reset%3D1%26delay_ms%3D30),
                  which override the query's: with a fetcher whose URI ends in
                  {key}?path_query=1, the key chooses the fault.
  cache_control=V add the response header `Cache-Control: V` (V is
                  percent-decoded, e.g. cache_control=max-age%3D5%2C%20
                  stale-while-revalidate%3D30 gives `max-age=5,
                  stale-while-revalidate=30`); also on 204 and 304 answers.
Without any of these, the answer is 200 with the path (without the query) as
the body. The body is text/plain, except for echo_headers (application/json).

Each request counts as a hit on its path (the raw path, still percent-encoded,
without the query), and adds events to that path's list, in order:
  "request"               it arrived (after its body was read);
  "answered"              the whole answer was written;
  "closed_before_answer"  the client closed the connection while the request
                          was delayed or hanging (the socket is polled for end
                          of file every 10 ms), so it was never answered;
  "closed_during_answer"  writing the answer failed;
  "reset"                 instead of "answered": the origin reset the
                          connection (reset=1, reset=mid);
  "truncated"             instead of "answered": the origin closed the
                          connection after part of the body (truncate=1).

While a failure set with /_fail lasts, every non-control request, whatever
its parameters, waits its delay_ms (hang=1 counts as no delay), then answers
the failure's HTTP status with the body `status CODE for PATH` (no body for
204 and 304) and its cache_control header if it asks for one; every other
parameter is ignored. It counts as a hit, with its "request" and "answered"
events, as usual.

Control endpoints (neither hits nor events):
  GET /_hits?path=P    the number of hits on P, as a plain integer; without
                       path, a JSON object of hits by path.
  GET /_events?path=P  the events of P as a JSON list of strings; without
                       path, a JSON object of event lists by path. Waits (at
                       most 1 s) for answers still being written, so a client
                       that has read a whole answer finds its event.
  GET /_connections   the number of connections accepted so far, as a plain
                       integer (fewer than requests when clients reuse them).
  GET /_fail?status=CODE&seconds=S
                       every non-control request answers HTTP CODE (default
                       503) for the next S seconds (without seconds: until
                       told otherwise); status=0 ends the failure now. A new
                       /_fail replaces the previous one. Answers "ok"; a
                       malformed one answers 400.
  GET /_reset          forgets all hits, events and connections and ends any
                       failure set with /_fail; answers "ok".
"""

import argparse
import json
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_POLL_SECONDS = 0.01


class Ledger:
    """Hits and events by path; thread-safe."""

    def __init__(self):
        self._lock = threading.Condition()
        self._hits = {}
        self._events = {}
        self._connections = 0
        self._writing = {}  # path: answers being written
        self._fail_status = 0  # 0: no failure set with /_fail
        self._fail_until = None  # time.monotonic() it ends; None: never

    def begin_answer(self, path):
        with self._lock:
            self._writing[path] = self._writing.get(path, 0) + 1

    def end_answer(self, path, event):
        """Records how the answer begun with begin_answer ended."""
        with self._lock:
            self._events.setdefault(path, []).append(event)
            self._writing[path] -= 1
            if not self._writing[path]:
                del self._writing[path]
            self._lock.notify_all()

    def hit(self, path):
        with self._lock:
            self._hits[path] = self._hits.get(path, 0) + 1

    def record(self, path, event):
        with self._lock:
            self._events.setdefault(path, []).append(event)

    def connect(self):
        with self._lock:
            self._connections += 1

    def connections(self):
        with self._lock:
            return self._connections

    def hits(self, path=None):
        with self._lock:
            return dict(self._hits) if path is None else self._hits.get(path, 0)

    def events(self, path=None):
        with self._lock:
            # A client may read the last byte of an answer before its writer
            # records it: wait a little for answers still being written.
            self._lock.wait_for(
                lambda: not (self._writing if path is None
                             else self._writing.get(path)), timeout=1.0)
            if path is None:
                return {p: list(e) for p, e in self._events.items()}
            return list(self._events.get(path, []))

    def fail(self, status, seconds):
        """Every request answers `status` for `seconds` (None: no end)."""
        with self._lock:
            self._fail_status = status
            self._fail_until = (None if seconds is None
                                else time.monotonic() + seconds)

    def failure(self):
        """The HTTP status of the failure now in force, or 0."""
        with self._lock:
            if (self._fail_status and self._fail_until is not None
                    and time.monotonic() >= self._fail_until):
                self._fail_status = 0
            return self._fail_status

    def reset(self):
        with self._lock:
            self._hits.clear()
            self._events.clear()
            self._connections = 0
            self._fail_status = 0
            self._fail_until = None


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ledger = Ledger()
    verbose = False

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's
        # algorithm and delayed ACKs hold the body back for 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ledger.connect()

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format, *args):
        if self.verbose:
            super().log_message(format, *args)

    def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        query = {name: values[-1] for name, values in
                 urllib.parse.parse_qs(url.query).items()}
        if query.get("path_query") == "1":
            segment = urllib.parse.unquote(url.path.rsplit("/", 1)[-1])
            query.update((name, values[-1]) for name, values in
                         urllib.parse.parse_qs(segment).items())
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if url.path in ("/_hits", "/_events", "/_connections", "/_reset",
                        "/_fail"):
            self._control(url.path, query)
            return
        path = url.path
        self.ledger.hit(path)
        self.ledger.record(path, "request")
        failure = self.ledger.failure()
        if failure:
            query = {name: value for name, value in query.items()
                     if name in ("delay_ms", "cache_control")}
            query["status"] = str(failure)
        wait = None if query.get("hang") == "1" else (
            int(query.get("delay_ms", "0")) / 1000.0)
        if (wait is None or wait > 0) and not self._client_stays(wait):
            self.ledger.record(path, "closed_before_answer")
            self.close_connection = True
            return
        status = int(query.get("status", "200"))
        content_type = "text/plain"
        reply = path.encode()
        if "status" in query:
            reply = f"status {status} for {path}".encode()
        if "size" in query:
            reply = b"x" * int(query["size"])
        if query.get("echo_body") == "1":
            reply = body
        if query.get("echo_headers") == "1":
            headers = {}
            for name, value in self.headers.items():
                name = name.lower()
                headers[name] = (headers[name] + ", " + value
                                 if name in headers else value)
            reply = json.dumps(headers).encode()
            content_type = "application/json"
        if status in (204, 304):
            reply = b""
        reset = query.get("reset")
        if reset == "1":
            self._reset_connection()
            self.ledger.record(path, "reset")
            return
        fault = "reset" if reset == "mid" else (
            "truncated" if query.get("truncate") == "1" else None)
        extra_headers = []
        if "cache_control" in query:
            extra_headers.append(("Cache-Control", query["cache_control"]))
        self.ledger.begin_answer(path)
        event = "closed_during_answer"
        try:
            self._answer(status, reply, content_type,
                         chunked=query.get("chunked") == "1",
                         slow_ms=int(query.get("slow_body_ms", "0")),
                         piece=max(1, int(query.get("piece", "16"))),
                         fault=fault, extra_headers=extra_headers)
            event = fault or "answered"
        except OSError:
            self.close_connection = True
        finally:
            self.ledger.end_answer(path, event)

    def _control(self, endpoint, query):
        path = query.get("path")
        if endpoint == "/_fail":
            try:
                status = int(query.get("status", "503"))
                seconds = (float(query["seconds"]) if "seconds" in query
                           else None)
                if status and not 100 <= status <= 999:
                    raise ValueError(f"status {status}")
                if seconds is not None and not seconds >= 0:
                    raise ValueError(f"seconds {seconds}")
            except ValueError as error:
                self._answer(400, f"bad /_fail: {error}".encode(),
                             "text/plain")
                return
            self.ledger.fail(status, seconds)
            self._answer(200, b"ok", "text/plain")
        elif endpoint == "/_reset":
            self.ledger.reset()
            self._answer(200, b"ok", "text/plain")
        elif endpoint == "/_connections":
            self._answer(200, str(self.ledger.connections()).encode(),
                         "text/plain")
        elif endpoint == "/_hits" and path is not None:
            self._answer(200, str(self.ledger.hits(path)).encode(),
                         "text/plain")
        elif endpoint == "/_hits":
            self._answer(200, json.dumps(self.ledger.hits()).encode(),
                         "application/json")
        else:
            self._answer(200, json.dumps(self.ledger.events(path)).encode(),
                         "application/json")

    def _client_stays(self, seconds):
        """Waits `seconds` (None: forever); False if the client left first."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            step = _POLL_SECONDS
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    return True
            readable, _, _ = select.select([self.connection], [], [], step)
            if not readable:
                continue
            try:
                if not self.connection.recv(1, socket.MSG_PEEK):
                    return False
            except OSError:
                return False
            # Data, not end of file (a pipelined request): keep waiting.
            time.sleep(step)

    def _reset_connection(self):
        """Closes the socket now with SO_LINGER 0: the peer gets a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            # detach(): the file objects of the handler still refer to the
            # socket object, which would otherwise keep the descriptor open.
            os.close(self.connection.detach())
        except OSError:
            pass

    def _answer(self, status, body, content_type, chunked=False, slow_ms=0,
                piece=16, fault=None, extra_headers=()):
        """Writes the answer; fault "reset" or "truncated" stops it halfway."""
        self.send_response(status)
        for name, value in extra_headers:
            self.send_header(name, value)
        if status in (204, 304):
            self.end_headers()
            return
        self.send_header("Content-Type", content_type)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault is not None:
            body = body[:len(body) // 2]
        size = piece if slow_ms > 0 else 65536
        for start in range(0, len(body), size):
            if slow_ms > 0:
                time.sleep(slow_ms / 1000.0)
            chunk = body[start:start + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk)
                             if chunked else chunk)
            self.wfile.flush()
        if fault == "reset":
            time.sleep(0.01)  # let the client read what was sent
            self._reset_connection()
        elif fault == "truncated":
            self.close_connection = True
        elif chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        # Clients that reset their connections are expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _exit_at_stdin_eof():
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-with-stdin", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--tls_cert", help="serve HTTPS with this PEM chain")
    parser.add_argument("--tls_key", help="... and this PEM key")
    parser.add_argument("--tls_client_ca",
                        help="require client certificates signed by this CA")
    args = parser.parse_args()
    OriginHandler.verbose = args.verbose
    server = OriginServer((args.host, args.port), OriginHandler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            context.load_verify_locations(args.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        server.socket = context.wrap_socket(server.socket, server_side=True)
    if args.exit_with_stdin:
        threading.Thread(target=_exit_at_stdin_eof, daemon=True).start()
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
