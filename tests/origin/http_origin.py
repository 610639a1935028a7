#!/usr/bin/python3
"""A scriptable HTTP/1.1 origin for singleflight's tests (stdlib only).

Usage:
  http_origin.py [--host 127.0.0.1] [--port 0] [--exit-with-stdin] [--verbose]

Listens on HOST:PORT (port 0: one the system picks) and prints exactly one
line, `listening on HOST:PORT`, on stdout once it accepts connections. With
--exit-with-stdin it exits when its stdin reaches end of file, so that it dies
with the test process that started it. --verbose logs each request on stderr.
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
Without any of these, the answer is 200 with the path (without the query) as
the body. The body is text/plain, except for echo_headers (application/json).

Each request counts as a hit on its path (the raw path, still percent-encoded,
without the query), and adds events to that path's list, in order:
  "request"               it arrived (after its body was read);
  "answered"              the whole answer was written;
  "closed_before_answer"  the client closed the connection while the request
                          was delayed or hanging (the socket is polled for end
                          of file every 10 ms), so it was never answered;
  "closed_during_answer"  writing the answer failed.

Control endpoints (neither hits nor events):
  GET /_hits?path=P    the number of hits on P, as a plain integer; without
                       path, a JSON object of hits by path.
  GET /_events?path=P  the events of P as a JSON list of strings; without
                       path, a JSON object of event lists by path.
  GET /_connections   the number of connections accepted so far, as a plain
                       integer (fewer than requests when clients reuse them).
  GET /_reset          forgets all hits, events and connections; answers "ok".
"""

import argparse
import json
import os
import select
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_POLL_SECONDS = 0.01


class Ledger:
    """Hits and events by path; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._hits = {}
        self._events = {}
        self._connections = 0

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
            if path is None:
                return {p: list(e) for p, e in self._events.items()}
            return list(self._events.get(path, []))

    def reset(self):
        with self._lock:
            self._hits.clear()
            self._events.clear()
            self._connections = 0


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
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if url.path in ("/_hits", "/_events", "/_connections", "/_reset"):
            self._control(url.path, query.get("path"))
            return
        path = url.path
        self.ledger.hit(path)
        self.ledger.record(path, "request")
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
        try:
            self._answer(status, reply, content_type,
                         chunked=query.get("chunked") == "1")
            self.ledger.record(path, "answered")
        except OSError:
            self.ledger.record(path, "closed_during_answer")
            self.close_connection = True

    def _control(self, endpoint, path):
        if endpoint == "/_reset":
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

    def _answer(self, status, body, content_type, chunked=False):
        self.send_response(status)
        if status in (204, 304):
            self.end_headers()
            return
        self.send_header("Content-Type", content_type)
        if not chunked:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 65536):
            chunk = body[start:start + 65536]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
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
    args = parser.parse_args()
    OriginHandler.verbose = args.verbose
    server = OriginServer((args.host, args.port), OriginHandler)
    if args.exit_with_stdin:
        threading.Thread(target=_exit_at_stdin_eof, daemon=True).start()
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
