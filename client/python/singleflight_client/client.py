"""Client: blocking calls to singleflight.v1.SingleFlight."""

import itertools
import threading
from types import TracebackType
from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)

import grpc

from singleflight_client import _common
from singleflight_client._common import DEFAULT_MAX_RECEIVE_MESSAGE_BYTES
from singleflight_client._stubs import singleflight_pb2, singleflight_pb2_grpc
from singleflight_client.errors import SingleFlightError
from singleflight_client.messages import (
    DoResult,
    Flight,
    Request,
    StreamResult,
)
from singleflight_client.retry import RetryPolicy
from singleflight_client.tls import TlsOptions

__all__ = [
    "DEFAULT_MAX_RECEIVE_MESSAGE_BYTES",
    "Client",
    "DoResult",
    "Flight",
    "Request",
    "RetryPolicy",
    "SingleFlightError",
    "StreamResult",
    "TlsOptions",
]


class Client:
    """A client of one singleflightd (or a proxy in front of several).

    Every call has a deadline: the per-call timeout, or else the client's
    (seconds; None for none). Calls that fail raise SingleFlightError with
    the gRPC status code. Calls that name a key send the x-flight-key routing
    header; a stream sends the one of its first request. UNAVAILABLE is
    retried as RetryPolicy says. With a token, every call sends
    "authorization: Bearer TOKEN".

    Thread-safe: one Client may be shared by any number of threads. Close it
    (or use it as a context manager) to release its channel.
    """

    def __init__(
        self,
        target: str,
        timeout: Optional[float] = 30.0,
        credentials: Optional[grpc.ChannelCredentials] = None,
        retry: RetryPolicy = RetryPolicy(),
        options: Sequence[Tuple[str, Any]] = (),
        max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
        *,
        token: Optional[str] = None,
        tls: Optional[TlsOptions] = None,
    ) -> None:
        """Connects to target (HOST:PORT); no I/O happens until a call.

        tls: TlsOptions for TLS or mutual TLS (None: plaintext), or else
        credentials: any grpc.ChannelCredentials. token: the bearer token
        sent with every call (surrounding whitespace, such as a token file's
        newline, is dropped). options: more gRPC channel arguments.
        max_receive_message_bytes: the largest reply accepted (-1 for no
        limit); by default the server's largest value.
        """
        settings = _common.channel_settings(
            credentials, tls, token, retry, options, max_receive_message_bytes)
        if settings.credentials is None:
            self._channel = grpc.insecure_channel(target, settings.options)
        else:
            self._channel = grpc.secure_channel(
                target, settings.credentials, settings.options)
        self._stub = singleflight_pb2_grpc.SingleFlightStub(self._channel)
        self._timeout = timeout
        self._metadata = settings.metadata

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
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
            key=key, fetcher=fetcher, payload=_common.as_bytes(payload))
        try:
            response = self._stub.Do(
                request,
                timeout=self._deadline(timeout),
                metadata=self._metadata + _common.routing(fetcher, key),
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
                metadata=self._metadata + _common.routing(fetcher, key),
            )
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        return bool(response.forgotten)

    def inflight(self, timeout: Optional[float] = None) -> List[Flight]:
        """The flights in progress on the server, oldest first."""
        try:
            response = self._stub.InFlight(
                singleflight_pb2.InFlightRequest(),
                timeout=self._deadline(timeout),
                metadata=self._metadata,
            )
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        return _common.flights(response)

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
            _common.numbered(request, position)
            for position, request in enumerate(requests, start=1))
        head = next(numbered, None)
        if head is None:
            return
        first: Request = head
        sent: Dict[Optional[int], Request] = {}
        lock = threading.Lock()

        def messages() -> Iterator[Any]:
            for request in itertools.chain([first], numbered):
                with lock:
                    sent[request.id] = request
                yield _common.do_request(request)

        call = self._stub.DoStream(
            messages(),
            timeout=self._deadline(timeout),
            metadata=self._metadata + _common.routing(first.fetcher, first.key),
        )
        try:
            for reply in call:
                with lock:
                    request = sent[reply.id]
                yield _common.stream_result(reply, request)
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        finally:
            call.cancel()
