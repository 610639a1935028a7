#!/usr/bin/python3
"""Tests of the Python client against a live singleflightd and the fake.

Run by interop_test.sh, which sets SF_TARGET (a singleflightd with a fetcher
"slow" = echo:?delay=1s), SF_FAKE_TARGET (fake_server.py) and PYTHONPATH.
"""

import json
import os
import pathlib
import threading
import time
import unittest

import grpc

from singleflight_client import (
    Client,
    Request,
    RetryPolicy,
    SingleFlightError,
    flight_key,
)

TARGET = os.environ.get("SF_TARGET", "")
FAKE_TARGET = os.environ.get("SF_FAKE_TARGET", "")
VECTORS = json.loads(
    (pathlib.Path(__file__).parent / "flight_key_vectors.json").read_text()
)["vectors"]


def wait_for(condition, timeout=5.0):
    """Polls condition() every 10 ms until it is true or timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def in_background(function, *args, **kwargs):
    """Runs function in a thread; returns the thread and its outcome list."""
    outcome = []

    def run():
        try:
            outcome.append(function(*args, **kwargs))
        except SingleFlightError as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


class FlightKeyTest(unittest.TestCase):

    def test_matches_the_shared_vectors(self):
        for vector in VECTORS:
            self.assertEqual(
                flight_key(vector["fetcher"], vector["key"]),
                vector["flight_key"],
                vector,
            )


@unittest.skipUnless(TARGET, "SF_TARGET is not set")
class ServerTest(unittest.TestCase):

    def setUp(self):
        self.client = Client(TARGET, timeout=10.0)
        self.addCleanup(self.client.close)

    def flights(self, key):
        return [f for f in self.client.inflight() if f.key == key]

    def test_concurrent_callers_share_one_flight(self):
        calls = [
            in_background(self.client.do, "py:shared", fetcher="slow")
            for _ in range(3)
        ]
        for thread, _ in calls:
            thread.join()
        results = [outcome[0] for _, outcome in calls]
        self.assertEqual({r.value for r in results}, {b"py:shared"})
        self.assertTrue(all(r.shared for r in results), results)

    def test_payload_is_the_value(self):
        result = self.client.do("py:payload", payload="hello")
        self.assertEqual(result.value, b"hello")
        self.assertFalse(result.shared)

    def test_unknown_fetcher_is_not_found(self):
        with self.assertRaises(SingleFlightError) as raised:
            self.client.do("x", fetcher="no-such-fetcher")
        self.assertEqual(raised.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("no-such-fetcher", raised.exception.details)

    def test_empty_key_is_invalid_argument(self):
        with self.assertRaises(SingleFlightError) as raised:
            self.client.do("")
        self.assertEqual(raised.exception.code,
                         grpc.StatusCode.INVALID_ARGUMENT)

    def test_call_deadline(self):
        start = time.monotonic()
        with self.assertRaises(SingleFlightError) as raised:
            self.client.do("py:deadline", fetcher="slow", timeout=0.2)
        self.assertEqual(raised.exception.code,
                         grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - start, 0.9)

    def test_client_default_deadline(self):
        with Client(TARGET, timeout=0.2) as hurried:
            with self.assertRaises(SingleFlightError) as raised:
                hurried.do("py:default-deadline", fetcher="slow")
        self.assertEqual(raised.exception.code,
                         grpc.StatusCode.DEADLINE_EXCEEDED)

    def test_inflight_lists_waiters(self):
        calls = [
            in_background(self.client.do, "py:waiters", fetcher="slow")
            for _ in range(2)
        ]
        joined = wait_for(lambda: any(
            f.waiters == 2 for f in self.flights("py:waiters")))
        flights = self.flights("py:waiters")
        for thread, _ in calls:
            thread.join()
        self.assertTrue(joined, flights)
        self.assertEqual(flights[0].fetcher, "slow")
        self.assertGreater(flights[0].age.total_seconds(), 0)
        self.assertFalse(flights[0].forgotten)

    def test_forget_a_flight_in_progress(self):
        first, first_outcome = in_background(
            self.client.do, "py:forget", fetcher="slow")
        self.assertTrue(wait_for(lambda: self.flights("py:forget")))
        self.assertTrue(self.client.forget("py:forget", fetcher="slow"))
        self.assertFalse(self.client.forget("py:forget", fetcher="slow"))
        later, later_outcome = in_background(
            self.client.do, "py:forget", fetcher="slow")
        # The later caller starts a new flight beside the forgotten one.
        both = wait_for(lambda: sorted(
            f.forgotten for f in self.flights("py:forget")) == [False, True])
        first.join()
        later.join()
        self.assertTrue(both)
        self.assertFalse(first_outcome[0].shared)
        self.assertFalse(later_outcome[0].shared)

    def test_stream_ids_round_trip(self):
        requests = [
            Request("a", id=7),
            Request("", id=8),
            Request("b", id=2**40),
            "c",
        ]
        results = {r.id: r for r in self.client.stream(requests)}
        self.assertEqual(set(results), {7, 8, 2**40, 4})
        self.assertEqual(results[7].value, b"a")
        self.assertEqual(results[2**40].request.key, "b")
        self.assertEqual(results[4].value, b"c")
        self.assertFalse(results[8].ok)
        self.assertEqual(results[8].error.code,
                         grpc.StatusCode.INVALID_ARGUMENT)

    def test_stream_yields_in_completion_order(self):
        requests = [Request("py:stream-slow", fetcher="slow"), "py:fast"]
        ids = [r.id for r in self.client.stream(requests)]
        self.assertEqual(ids, [2, 1])

    def test_stream_deadline(self):
        with self.assertRaises(SingleFlightError) as raised:
            list(self.client.stream(
                [Request("py:stream-deadline", fetcher="slow")], timeout=0.2))
        self.assertEqual(raised.exception.code,
                         grpc.StatusCode.DEADLINE_EXCEEDED)


@unittest.skipUnless(FAKE_TARGET, "SF_FAKE_TARGET is not set")
class FakeServerTest(unittest.TestCase):
    """What the client sends: the routing header, and retries."""

    def setUp(self):
        self.client = Client(FAKE_TARGET, timeout=10.0)
        self.addCleanup(self.client.close)

    def attempts(self, key):
        return [f.waiters for f in self.client.inflight() if f.key == key]

    def test_do_sends_the_flight_key(self):
        for vector in VECTORS:
            result = self.client.do(vector["key"], fetcher=vector["fetcher"])
            self.assertEqual(result.value.decode(), vector["flight_key"])

    def test_stream_sends_its_first_requests_flight_key(self):
        results = list(self.client.stream(
            [Request("hello", fetcher="slow"), "other"]))
        self.assertEqual({r.value for r in results}, {b"93923c4fd69e8af0"})

    def test_unavailable_is_retried(self):
        result = self.client.do("flaky:py", fetcher="slow")
        self.assertEqual(result.value.decode(), flight_key("slow", "flaky:py"))
        self.assertEqual(self.attempts("flaky:py"), [3])

    def test_forget_is_not_retried(self):
        with self.assertRaises(SingleFlightError) as raised:
            self.client.forget("flaky:py-forget")
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.attempts("flaky:py-forget"), [1])

    def test_retries_can_be_turned_off(self):
        with Client(FAKE_TARGET, retry=RetryPolicy(max_attempts=1)) as client:
            with self.assertRaises(SingleFlightError) as raised:
                client.do("flaky:py-once")
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.attempts("flaky:py-once"), [1])


if __name__ == "__main__":
    unittest.main()
