#!/usr/bin/python3
"""Tests of the Python clients (Client, AsyncClient) against a live
singleflightd, the fake, and a server of their own.

Run by interop_test.sh, which sets SF_TARGET (a singleflightd with a fetcher
"slow" = echo:?delay=1s), SF_FAKE_TARGET (fake_server.py) and PYTHONPATH; and
by python_package_test.sh with the installed package, which also sets
SF_TOKEN_TARGET (a singleflightd with --caller_token_file and
--admin_token_file over TLS), SF_CALLER_TOKEN_FILE, SF_ADMIN_TOKEN_FILE and
SF_TLS_CA (its CA). Tests whose variables are not set are skipped; the tests
of what the clients send (TokenTest) and of their arguments need none.
"""

import asyncio
import concurrent.futures
import contextlib
import json
import os
import pathlib
import threading
import time
import unittest

import grpc

from singleflight_client import (
    AsyncClient,
    Client,
    Request,
    RetryPolicy,
    SingleFlightError,
    TlsOptions,
    flight_key,
)
from singleflight_client._stubs import singleflight_pb2, singleflight_pb2_grpc

TARGET = os.environ.get("SF_TARGET", "")
FAKE_TARGET = os.environ.get("SF_FAKE_TARGET", "")
TOKEN_TARGET = os.environ.get("SF_TOKEN_TARGET", "")
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


def read_token(variable):
    return pathlib.Path(os.environ[variable]).read_text()


def token_target_tls():
    """TLS for SF_TOKEN_TARGET: with SF_TLS_CA, its CA; else plaintext."""
    ca = os.environ.get("SF_TLS_CA")
    return TlsOptions.from_files(ca_file=ca) if ca else None


async def async_wait_for(condition, timeout=5.0):
    """Awaits condition() every 10 ms until it is true or timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.01)
    return False


async def async_requests(*requests):
    """The requests as an async iterable, one per event loop turn."""
    for request in requests:
        await asyncio.sleep(0)
        yield request


@unittest.skipUnless(TARGET, "SF_TARGET is not set")
class AsyncServerTest(unittest.IsolatedAsyncioTestCase):
    """AsyncClient against singleflightd: what ServerTest checks of Client."""

    async def asyncSetUp(self):
        self.client = AsyncClient(TARGET, timeout=10.0)

    async def asyncTearDown(self):
        await self.client.close()

    async def flights(self, key):
        return [f for f in await self.client.inflight() if f.key == key]

    async def test_concurrent_callers_share_one_flight(self):
        results = await asyncio.gather(*[
            self.client.do("py-async:shared", fetcher="slow")
            for _ in range(3)
        ])
        self.assertEqual({r.value for r in results}, {b"py-async:shared"})
        self.assertTrue(all(r.shared for r in results), results)

    async def test_payload_is_the_value(self):
        result = await self.client.do("py-async:payload", payload=b"hello")
        self.assertEqual(result.value, b"hello")
        self.assertFalse(result.shared)

    async def test_unknown_fetcher_is_not_found(self):
        with self.assertRaises(SingleFlightError) as raised:
            await self.client.do("x", fetcher="no-such-fetcher")
        self.assertEqual(raised.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("no-such-fetcher", raised.exception.details)

    async def test_empty_key_is_invalid_argument(self):
        with self.assertRaises(SingleFlightError) as raised:
            await self.client.do("")
        self.assertEqual(raised.exception.code,
                         grpc.StatusCode.INVALID_ARGUMENT)

    async def test_call_deadline(self):
        start = time.monotonic()
        with self.assertRaises(SingleFlightError) as raised:
            await self.client.do("py-async:deadline", fetcher="slow",
                                 timeout=0.2)
        self.assertEqual(raised.exception.code,
                         grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - start, 0.9)

    async def test_client_default_deadline(self):
        async with AsyncClient(TARGET, timeout=0.2) as hurried:
            with self.assertRaises(SingleFlightError) as raised:
                await hurried.do("py-async:default-deadline", fetcher="slow")
        self.assertEqual(raised.exception.code,
                         grpc.StatusCode.DEADLINE_EXCEEDED)

    async def test_forget_and_inflight(self):
        first = asyncio.create_task(
            self.client.do("py-async:forget", fetcher="slow"))
        second = asyncio.create_task(
            self.client.do("py-async:forget", fetcher="slow"))

        async def two_waiters():
            return any(f.waiters == 2
                       for f in await self.flights("py-async:forget"))

        joined = await async_wait_for(two_waiters)
        flights = await self.flights("py-async:forget")
        forgotten = await self.client.forget("py-async:forget",
                                             fetcher="slow")
        again = await self.client.forget("py-async:forget", fetcher="slow")
        results = await asyncio.gather(first, second)
        self.assertTrue(joined, flights)
        self.assertEqual(flights[0].fetcher, "slow")
        self.assertGreater(flights[0].age.total_seconds(), 0)
        self.assertTrue(forgotten)
        self.assertFalse(again)
        self.assertEqual({r.value for r in results}, {b"py-async:forget"})

    async def test_stream_ids_round_trip(self):
        requests = [
            Request("a", id=7),
            Request("", id=8),
            Request("b", id=2**40),
            "c",
        ]
        results = {r.id: r async for r in self.client.stream(requests)}
        self.assertEqual(set(results), {7, 8, 2**40, 4})
        self.assertEqual(results[7].value, b"a")
        self.assertEqual(results[2**40].request.key, "b")
        self.assertEqual(results[4].value, b"c")
        self.assertFalse(results[8].ok)
        self.assertEqual(results[8].error.code,
                         grpc.StatusCode.INVALID_ARGUMENT)

    async def test_stream_of_an_async_iterable_in_completion_order(self):
        requests = async_requests(
            Request("py-async:stream-slow", fetcher="slow"), "py-async:fast")
        ids = [r.id async for r in self.client.stream(requests)]
        self.assertEqual(ids, [2, 1])

    async def test_empty_stream(self):
        self.assertEqual([r async for r in self.client.stream([])], [])

    async def test_stream_closed_early_is_cancelled(self):
        requests = [Request("py-async:never", fetcher="slow"), "py-async:first"]
        async with contextlib.aclosing(self.client.stream(requests)) as replies:
            async for reply in replies:
                self.assertEqual(reply.value, b"py-async:first")
                break

            async def one_waiter():  # The stream, on the slow flight.
                return [f.waiters
                        for f in await self.flights("py-async:never")] == [1]

            self.assertTrue(await async_wait_for(one_waiter, timeout=0.5))

        async def no_waiter():
            return all(f.waiters == 0
                       for f in await self.flights("py-async:never"))

        # Well before the flight's 1 s are over.
        self.assertTrue(await async_wait_for(no_waiter, timeout=0.5))

    async def test_stream_deadline(self):
        with self.assertRaises(SingleFlightError) as raised:
            async for _ in self.client.stream(
                    [Request("py-async:stream-deadline", fetcher="slow")],
                    timeout=0.2):
                pass
        self.assertEqual(raised.exception.code,
                         grpc.StatusCode.DEADLINE_EXCEEDED)


@unittest.skipUnless(TARGET, "SF_TARGET is not set")
class ReceiveLimitTest(unittest.IsolatedAsyncioTestCase):
    """max_receive_message_bytes: a larger reply is RESOURCE_EXHAUSTED.

    (interop_test.sh has a value larger than gRPC's default limit go
    through.)
    """

    async def test_sync_and_async(self):
        value = b"x" * 4096
        with Client(TARGET, max_receive_message_bytes=1024) as client:
            with self.assertRaises(SingleFlightError) as raised:
                client.do("py:limit", payload=value)
            self.assertEqual(raised.exception.code,
                             grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(client.do("py:limit", payload=b"small").value,
                             b"small")
        async with AsyncClient(TARGET, max_receive_message_bytes=1024) as aio:
            with self.assertRaises(SingleFlightError) as raised:
                await aio.do("py-async:limit", payload=value)
            self.assertEqual(raised.exception.code,
                             grpc.StatusCode.RESOURCE_EXHAUSTED)


@unittest.skipUnless(FAKE_TARGET, "SF_FAKE_TARGET is not set")
class AsyncFakeServerTest(unittest.IsolatedAsyncioTestCase):
    """What AsyncClient sends: the routing header, and retries."""

    async def asyncSetUp(self):
        self.client = AsyncClient(FAKE_TARGET, timeout=10.0)

    async def asyncTearDown(self):
        await self.client.close()

    async def attempts(self, key):
        return [f.waiters for f in await self.client.inflight()
                if f.key == key]

    async def test_do_sends_the_flight_key(self):
        for vector in VECTORS:
            result = await self.client.do(vector["key"],
                                          fetcher=vector["fetcher"])
            self.assertEqual(result.value.decode(), vector["flight_key"])

    async def test_stream_sends_its_first_requests_flight_key(self):
        results = [r async for r in self.client.stream(
            async_requests(Request("hello", fetcher="slow"), "other"))]
        self.assertEqual({r.value for r in results}, {b"93923c4fd69e8af0"})

    async def test_unavailable_is_retried(self):
        result = await self.client.do("flaky:py-async", fetcher="slow")
        self.assertEqual(result.value.decode(),
                         flight_key("slow", "flaky:py-async"))
        self.assertEqual(await self.attempts("flaky:py-async"), [3])

    async def test_forget_is_not_retried(self):
        with self.assertRaises(SingleFlightError) as raised:
            await self.client.forget("flaky:py-async-forget")
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(await self.attempts("flaky:py-async-forget"), [1])

    async def test_retries_can_be_turned_off(self):
        async with AsyncClient(FAKE_TARGET,
                               retry=RetryPolicy(max_attempts=1)) as client:
            with self.assertRaises(SingleFlightError) as raised:
                await client.do("flaky:py-async-once")
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(await self.attempts("flaky:py-async-once"), [1])


TOKEN = "t0ken/+="


class _EchoHeaders(singleflight_pb2_grpc.SingleFlightServicer):
    """Wants "authorization: Bearer TOKEN"; answers with the headers."""

    @staticmethod
    def _headers(context):
        headers = dict(context.invocation_metadata())
        if headers.get("authorization") != f"Bearer {TOKEN}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          'wants "authorization: Bearer TOKEN"')
        return f"{headers['authorization']}|{headers.get('x-flight-key')}"

    def Do(self, request, context):
        return singleflight_pb2.DoResponse(
            value=self._headers(context).encode())

    def Forget(self, request, context):
        self._headers(context)
        return singleflight_pb2.ForgetResponse(forgotten=True)

    def InFlight(self, request, context):
        return singleflight_pb2.InFlightResponse(
            flights=[singleflight_pb2.Flight(key=self._headers(context))])

    def DoStream(self, request_iterator, context):
        headers = self._headers(context)
        for request in request_iterator:
            yield singleflight_pb2.DoResponse(id=request.id,
                                              value=headers.encode())


class TokenTest(unittest.IsolatedAsyncioTestCase):
    """Every call of a client with a token sends it (a server of our own)."""

    @classmethod
    def setUpClass(cls):
        cls.server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=4))
        singleflight_pb2_grpc.add_SingleFlightServicer_to_server(
            _EchoHeaders(), cls.server)
        port = cls.server.add_insecure_port("127.0.0.1:0")
        cls.server.start()
        cls.target = f"127.0.0.1:{port}"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(None)

    def expected(self, fetcher, key):
        return f"Bearer {TOKEN}|{flight_key(fetcher, key)}".encode()

    def test_sync_client_sends_the_token_with_every_call(self):
        # As read from a token file: the newline is dropped.
        with Client(self.target, token=f"{TOKEN}\n", timeout=10) as client:
            self.assertEqual(client.do("k", fetcher="f").value,
                             self.expected("f", "k"))
            self.assertTrue(client.forget("k"))
            self.assertEqual([f.key for f in client.inflight()],
                             [f"Bearer {TOKEN}|None"])
            self.assertEqual({r.value for r in client.stream(["s", "t"])},
                             {self.expected("", "s")})

    async def test_async_client_sends_the_token_with_every_call(self):
        async with AsyncClient(self.target, token=TOKEN, timeout=10) as client:
            self.assertEqual((await client.do("k", fetcher="f")).value,
                             self.expected("f", "k"))
            self.assertTrue(await client.forget("k"))
            self.assertEqual([f.key for f in await client.inflight()],
                             [f"Bearer {TOKEN}|None"])
            self.assertEqual(
                {r.value async for r in client.stream(["s", "t"])},
                {self.expected("", "s")})

    async def test_without_the_token_unauthenticated(self):
        with Client(self.target, timeout=10) as client:
            with self.assertRaises(SingleFlightError) as raised:
                client.do("k")
            self.assertEqual(raised.exception.code,
                             grpc.StatusCode.UNAUTHENTICATED)
        async with AsyncClient(self.target, token="wrong") as client:
            with self.assertRaises(SingleFlightError) as raised:
                await client.do("k")
            self.assertEqual(raised.exception.code,
                             grpc.StatusCode.UNAUTHENTICATED)


class ArgumentsTest(unittest.TestCase):
    """Arguments a client refuses before any call."""

    def test_tokens(self):
        for client_class in (Client, AsyncClient):
            for token in ("", " \n", "two\nlines"):
                with self.assertRaises(ValueError, msg=repr(token)):
                    client_class("127.0.0.1:1", token=token)

    def test_tls_options(self):
        with self.assertRaises(ValueError):
            TlsOptions(certificate_chain=b"-----BEGIN CERTIFICATE-----")
        with self.assertRaises(TypeError):
            TlsOptions(root_certificates="/path/to/ca.pem")
        with self.assertRaises(ValueError):
            Client("127.0.0.1:1", tls=TlsOptions(),
                   credentials=grpc.ssl_channel_credentials())
        with self.assertRaises(FileNotFoundError):
            TlsOptions.from_files(ca_file="/no/such/ca.pem")


@unittest.skipUnless(TOKEN_TARGET, "SF_TOKEN_TARGET is not set")
class LiveTokenTest(unittest.IsolatedAsyncioTestCase):
    """singleflightd with caller and admin tokens: who may call what."""

    def client(self, variable=None):
        token = read_token(variable) if variable else None
        return Client(TOKEN_TARGET, timeout=10, token=token,
                      tls=token_target_tls())

    def async_client(self, variable=None):
        token = read_token(variable) if variable else None
        return AsyncClient(TOKEN_TARGET, timeout=10, token=token,
                           tls=token_target_tls())

    def assert_code(self, raised, code):
        self.assertEqual(raised.exception.code, code, raised.exception)

    def test_sync(self):
        with self.client() as anonymous:
            with self.assertRaises(SingleFlightError) as raised:
                anonymous.do("py:token")
            self.assert_code(raised, grpc.StatusCode.UNAUTHENTICATED)
        with self.client("SF_CALLER_TOKEN_FILE") as caller:
            self.assertEqual(caller.do("py:token").value, b"py:token")
            self.assertEqual([r.value for r in caller.stream(["py:s"])],
                             [b"py:s"])
            with self.assertRaises(SingleFlightError) as raised:
                caller.forget("py:token")
            self.assert_code(raised, grpc.StatusCode.PERMISSION_DENIED)
        with self.client("SF_ADMIN_TOKEN_FILE") as admin:
            self.assertFalse(admin.forget("py:token"))
            self.assertIsInstance(admin.inflight(), list)

    async def test_async(self):
        async with self.async_client() as anonymous:
            with self.assertRaises(SingleFlightError) as raised:
                await anonymous.do("py-async:token")
            self.assert_code(raised, grpc.StatusCode.UNAUTHENTICATED)
        async with self.async_client("SF_CALLER_TOKEN_FILE") as caller:
            self.assertEqual((await caller.do("py-async:token")).value,
                             b"py-async:token")
            self.assertEqual(
                [r.value async for r in caller.stream(["py-async:s"])],
                [b"py-async:s"])
            with self.assertRaises(SingleFlightError) as raised:
                await caller.inflight()
            self.assert_code(raised, grpc.StatusCode.PERMISSION_DENIED)
        async with self.async_client("SF_ADMIN_TOKEN_FILE") as admin:
            self.assertFalse(await admin.forget("py-async:token"))
            self.assertIsInstance(await admin.inflight(), list)


if __name__ == "__main__":
    unittest.main()
