#!/usr/bin/python3
"""A fake singleflight.v1.SingleFlight that shows what clients send.

Usage: /usr/bin/python3 tests/clients/fake_server.py   (stubs on PYTHONPATH)

Prints "fake listening on 127.0.0.1:PORT" and serves until killed:
- Do answers with the x-flight-key header it received as the value, except
  that a key starting with "flaky" fails with UNAVAILABLE on its first two
  attempts (a client that retries gets the value on the third).
- Forget of a key starting with "flaky" always fails with UNAVAILABLE.
- DoStream answers each request with the stream's x-flight-key header.
- InFlight reports, for every key that Do or Forget was called with, one
  Flight: key, fetcher = the last x-flight-key received for it, waiters = the
  number of attempts.
"""

import collections
import concurrent.futures
import threading

import grpc

from singleflight.v1 import singleflight_pb2, singleflight_pb2_grpc

FAILED_ATTEMPTS = 2


class FakeSingleFlight(singleflight_pb2_grpc.SingleFlightServicer):
    """Records attempts per key. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._attempts = collections.Counter()
        self._headers = {}

    def _record(self, key, context):
        header = dict(context.invocation_metadata()).get("x-flight-key", "")
        with self._lock:
            self._attempts[key] += 1
            self._headers[key] = header
            return header, self._attempts[key]

    def Do(self, request, context):
        header, attempts = self._record(request.key, context)
        if request.key.startswith("flaky") and attempts <= FAILED_ATTEMPTS:
            context.abort(grpc.StatusCode.UNAVAILABLE, "fake: try again")
        return singleflight_pb2.DoResponse(value=header.encode())

    def Forget(self, request, context):
        self._record(request.key, context)
        if request.key.startswith("flaky"):
            context.abort(grpc.StatusCode.UNAVAILABLE, "fake: try again")
        return singleflight_pb2.ForgetResponse(forgotten=False)

    def DoStream(self, request_iterator, context):
        header = dict(context.invocation_metadata()).get("x-flight-key", "")
        for request in request_iterator:
            yield singleflight_pb2.DoResponse(id=request.id,
                                              value=header.encode())

    def InFlight(self, request, context):
        with self._lock:
            flights = [
                singleflight_pb2.Flight(key=key,
                                        fetcher=self._headers[key],
                                        waiters=attempts)
                for key, attempts in self._attempts.items()
            ]
        return singleflight_pb2.InFlightResponse(flights=flights)


def main():
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
    singleflight_pb2_grpc.add_SingleFlightServicer_to_server(
        FakeSingleFlight(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"fake listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
