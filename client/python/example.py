#!/usr/bin/python3
"""Calls singleflightd from Python: Do, a stream, InFlight and Forget.

Usage: /usr/bin/python3 client/python/example.py [HOST:PORT]

Start a server first, for example scripts/run.sh (127.0.0.1:50051). Run it
with the package installed (see the "Python" section of docs/CLIENTS.md), or
from the repository with PYTHONPATH=client/python after generating the stubs
once: /usr/bin/python3 client/python/build_stubs.py.
"""

import sys
from typing import List, Union

from singleflight_client import Client, Request, SingleFlightError


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
    with Client(target, timeout=5.0) as client:
        result = client.do("user:42")
        print(f"do: value={result.value!r} shared={result.shared}")

        requests: List[Union[Request, str]] = [
            Request("a", id=10), Request("b", id=20), "c"]
        for reply in client.stream(requests):
            outcome = reply.value if reply.ok else reply.error
            print(f"stream: id={reply.id} key={reply.request.key} {outcome!r}")

        for flight in client.inflight():
            print(f"in flight: {flight}")
        print(f"forget: forgotten={client.forget('user:42')}")

        try:
            client.do("user:42", fetcher="no-such-fetcher")
        except SingleFlightError as error:
            print(f"error: code={error.code.name} details={error.details!r}")


if __name__ == "__main__":
    main()
