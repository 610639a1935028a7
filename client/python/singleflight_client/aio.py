"""AsyncClient: asyncio calls to singleflight.v1.SingleFlight (grpc.aio)."""

import collections.abc
from types import TracebackType
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)

import grpc
import grpc.aio

from singleflight_client import _common
from singleflight_client._common import DEFAULT_MAX_RECEIVE_MESSAGE_BYTES
from singleflight_client._stubs import singleflight_pb2, singleflight_pb2_grpc
from singleflight_client.errors import SingleFlightError
from singleflight_client.messages import DoResult, Flight, Request, StreamResult
from singleflight_client.retry import RetryPolicy
from singleflight_client.tls import TlsOptions

__all__ = ["AsyncClient"]

Requests = Union[Iterable[Union[Request, str]],
                 AsyncIterable[Union[Request, str]]]


class AsyncClient:
    """Client's asyncio twin, on grpc.aio: the same arguments, methods
    (coroutines; stream is an async iterator), errors, deadlines, retries,
    x-flight-key header and token.

    Create, use and close it on one event loop, for example with
    `async with AsyncClient(target) as client:`. Any number of tasks may
    share it.
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
        """Connects to target (HOST:PORT); as Client's constructor."""
        settings = _common.channel_settings(
            credentials, tls, token, retry, options, max_receive_message_bytes)
        if settings.credentials is None:
            self._channel = grpc.aio.insecure_channel(
                target, options=settings.options)
        else:
            self._channel = grpc.aio.secure_channel(
                target, settings.credentials, options=settings.options)
        self._stub = singleflight_pb2_grpc.SingleFlightStub(self._channel)
        self._timeout = timeout
        self._metadata = settings.metadata

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls in progress are cancelled."""
        await self._channel.close()

    def _deadline(self, timeout: Optional[float]) -> Optional[float]:
        return self._timeout if timeout is None else timeout

    async def do(
        self,
        key: str,
        fetcher: str = "",
        payload: Union[bytes, str] = b"",
        timeout: Optional[float] = None,
    ) -> DoResult:
        """Joins or starts the flight for (fetcher, key); see Client.do."""
        request = singleflight_pb2.DoRequest(
            key=key, fetcher=fetcher, payload=_common.as_bytes(payload))
        try:
            response = await self._stub.Do(
                request,
                timeout=self._deadline(timeout),
                metadata=self._metadata + _common.routing(fetcher, key),
            )
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        return DoResult(value=response.value, shared=response.shared)

    async def forget(
        self, key: str, fetcher: str = "", timeout: Optional[float] = None
    ) -> bool:
        """Go's Forget; see Client.forget. Never retried."""
        request = singleflight_pb2.ForgetRequest(key=key, fetcher=fetcher)
        try:
            response = await self._stub.Forget(
                request,
                timeout=self._deadline(timeout),
                metadata=self._metadata + _common.routing(fetcher, key),
            )
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        return bool(response.forgotten)

    async def inflight(self, timeout: Optional[float] = None) -> List[Flight]:
        """The flights in progress on the server, oldest first."""
        try:
            response = await self._stub.InFlight(
                singleflight_pb2.InFlightRequest(),
                timeout=self._deadline(timeout),
                metadata=self._metadata,
            )
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        return _common.flights(response)

    async def stream(
        self, requests: Requests, timeout: Optional[float] = None
    ) -> AsyncIterator[StreamResult]:
        """Go's DoChan, multiplexed on one DoStream; see Client.stream.

        requests may be an iterable or an async iterable (of Requests or
        keys); they are sent as they come, without waiting for replies.
        Use it as `async for result in client.stream(requests):`. Leaving
        the loop early cancels the stream when the iterator is closed
        (contextlib.aclosing closes it at once).
        """
        numbered = _numbered(requests)
        try:
            first = await numbered.__anext__()
        except StopAsyncIteration:
            return
        sent: Dict[Optional[int], Request] = {}

        async def messages() -> AsyncIterator[Any]:
            sent[first.id] = first
            yield _common.do_request(first)
            async for request in numbered:
                sent[request.id] = request
                yield _common.do_request(request)

        call = self._stub.DoStream(
            messages(),
            timeout=self._deadline(timeout),
            metadata=self._metadata + _common.routing(first.fetcher, first.key),
        )
        try:
            async for reply in call:
                yield _common.stream_result(reply, sent[reply.id])
        except grpc.RpcError as error:
            raise SingleFlightError.from_rpc_error(error) from None
        finally:
            call.cancel()


async def _numbered(requests: Requests) -> AsyncIterator[Request]:
    """The requests, ids defaulted to their positions (1, 2, ...)."""
    position = 0
    if isinstance(requests, collections.abc.AsyncIterable):
        async for request in requests:
            position += 1
            yield _common.numbered(request, position)
    else:
        for request in requests:
            position += 1
            yield _common.numbered(request, position)
