"""Client: blocking calls to singleflight.v1.SingleFlight."""

import dataclasses
import itertools
import threading
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import grpc

from singleflight_client._stubs import singleflight_pb2, singleflight_pb2_grpc
from singleflight_client.errors import SingleFlightError
from singleflight_client.flight_key import FLIGHT_KEY_HEADER, flight_key
from singleflight_client.messages import (
    DoResult,
    Flight,
    Request,
    StreamResult,
)
from singleflight_client.retry import RetryPolicy

# The largest reply accepted by default: the server's largest value (a
# fetcher's max_value_bytes, 64 MiB by default) and the reply's framing.
# gRPC's own default, 4 MiB, would refuse the values the server sends.
DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = (64 << 20) + (64 << 10)

__all__ = [
    "Client",
    "DoResult",
    "Flight",
    "Request",
    "RetryPolicy",
    "SingleFlightError",
    "StreamResult",
]


def _as_bytes(payload: Union[bytes, str]) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


def _routing(fetcher: str, key: str) -> Tuple[Tuple[str, str], ...]:
    return ((FLIGHT_KEY_HEADER, flight_key(fetcher, key)),)


class Client:
    """A client of one singleflightd (or a proxy in front of several).

    Every call has a deadline: the per-call timeout, or else the client's
    (seconds; None for none). Calls that fail raise SingleFlightError with
    the gRPC status code. Calls that name a key send the x-flight-key routing
    header; a stream sends the one of its first request. UNAVAILABLE is
    retried as RetryPolicy says.

    Thread-safe: one Client may be shared by any number of threads. Close it
    (or use it as a context manager) to release its channel.
    """

    def __init__(
        self,
        target: str,
        timeout: Optional[float] = 30.0,
        credentials: Optional[grpc.ChannelCredentials] = None,
        retry: RetryPolicy = RetryPolicy(),
        options: Sequence[Tuple[str, object]] = (),
        max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    ):
        """Connects to target (HOST:PORT).

        credentials: None for plaintext, or for example
        grpc.ssl_channel_credentials(root_certificates=...). options: more
        gRPC channel arguments. max_receive_message_bytes: the largest reply
        accepted (-1 for no limit); by default the server's largest value.
        """
        channel_options = [
            ("grpc.service_config", retry.service_config()),
            ("grpc.max_receive_message_length", max_receive_message_bytes),
        ]
        channel_options.extend(options)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, channel_options)
        else:
            self._channel = grpc.secure_channel(
                target, credentials, channel_options)
        self._stub = singleflight_pb2_grpc.SingleFlightStub(self._channel)
        self._timeout = timeout

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in progress are cancelled."""
        self._channel.close()

    def _deadline(self, timeout: Optional[float]) -> Optional[float]:
        return self._timeout if timeout is None else timeout

    def do(
        self,
        key: str,
        fetcher: str = "",
        payload: Union[bytes, str] = b"",
        timeout: Optional[float] = None,
    ) -> DoResult:
        """Joins or starts the flight for (fetcher, key).

        An empty fetcher selects the server's default. payload is handed to
        the fetcher if this call starts the flight. A failed flight raises
        the same SingleFlightError for every caller that shared it.
        """
        request = singleflight_pb2.DoRequest(
            key=key, fetcher=fetcher, payload=_as_bytes(payload))
        try:
            response = self._stub.Do(
                request,
                timeout=self._deadline(timeout),
                metadata=_routing(fetcher, key),
            )
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        return DoResult(value=response.value, shared=response.shared)

    def forget(
        self, key: str, fetcher: str = "", timeout: Optional[float] = None
    ) -> bool:
        """Go's Forget: returns whether a flight for the key was in progress.

        Its waiters still get its result; the next call starts a new flight.
        Never retried.
        """
        request = singleflight_pb2.ForgetRequest(key=key, fetcher=fetcher)
        try:
            response = self._stub.Forget(
                request,
                timeout=self._deadline(timeout),
                metadata=_routing(fetcher, key),
            )
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        return response.forgotten

    def inflight(self, timeout: Optional[float] = None) -> List[Flight]:
        """The flights in progress on the server, oldest first."""
        try:
            response = self._stub.InFlight(
                singleflight_pb2.InFlightRequest(),
                timeout=self._deadline(timeout),
            )
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        flights = [
            Flight(
                fetcher=flight.fetcher,
                key=flight.key,
                waiters=flight.waiters,
                age=flight.age.ToTimedelta(),
                forgotten=flight.forgotten,
            )
            for flight in response.flights
        ]
        return sorted(flights, key=lambda flight: flight.age, reverse=True)

    def stream(
        self,
        requests: Iterable[Union[Request, str]],
        timeout: Optional[float] = None,
    ) -> Iterator[StreamResult]:
        """Go's DoChan, multiplexed on one DoStream.

        Sends every request (a Request, or just a key) without waiting and
        yields one StreamResult per request as each completes (completion
        order, ids echoed). A failed item is a result whose error is set;
        the stream goes on. A failure of the stream itself raises
        SingleFlightError. Stopping the iteration early cancels the stream.
        """
        numbered = (
            _numbered(request, position)
            for position, request in enumerate(requests, start=1))
        first = next(numbered, None)
        if first is None:
            return
        sent = {}
        lock = threading.Lock()

        def messages() -> Iterator[singleflight_pb2.DoRequest]:
            for request in itertools.chain([first], numbered):
                with lock:
                    sent[request.id] = request
                yield singleflight_pb2.DoRequest(
                    key=request.key,
                    fetcher=request.fetcher,
                    payload=_as_bytes(request.payload),
                    id=request.id,
                )

        call = self._stub.DoStream(
            messages(),
            timeout=self._deadline(timeout),
            metadata=_routing(first.fetcher, first.key),
        )
        try:
            for reply in call:
                with lock:
                    request = sent[reply.id]
                yield _stream_result(reply, request)
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        finally:
            call.cancel()


def _numbered(request: Union[Request, str], position: int) -> Request:
    if isinstance(request, str):
        request = Request(key=request)
    if request.id is None:
        request = dataclasses.replace(request, id=position)
    return request


def _stream_result(reply, request: Request) -> StreamResult:
    if reply.status.code != 0:
        return StreamResult(
            id=reply.id,
            request=request,
            error=SingleFlightError.from_status(
                reply.status.code, reply.status.message),
        )
    return StreamResult(
        id=reply.id, request=request, value=reply.value, shared=reply.shared)
