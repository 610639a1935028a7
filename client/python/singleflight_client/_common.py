"""What Client and AsyncClient share: the channel's settings, the metadata of
calls, and the translation of messages."""

import dataclasses
from typing import Any, List, Optional, Sequence, Tuple, Union

import grpc

from singleflight_client._stubs import singleflight_pb2
from singleflight_client.errors import SingleFlightError
from singleflight_client.flight_key import FLIGHT_KEY_HEADER, flight_key
from singleflight_client.messages import Flight, Request, StreamResult
from singleflight_client.retry import RetryPolicy
from singleflight_client.tls import TlsOptions

# The largest reply accepted by default: the server's largest value (a
# fetcher's max_value_bytes, 64 MiB by default) and the reply's framing.
# gRPC's own default, 4 MiB, would refuse the values the server sends.
DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = (64 << 20) + (64 << 10)

AUTHORIZATION_HEADER = "authorization"

Metadata = Tuple[Tuple[str, str], ...]
ChannelOptions = List[Tuple[str, Any]]


@dataclasses.dataclass(frozen=True)
class ChannelSettings:
    """A client's constructor arguments, checked, as a channel takes them."""

    credentials: Optional[grpc.ChannelCredentials]
    options: ChannelOptions
    # Sent with every call: the bearer token, if any.
    metadata: Metadata


def channel_settings(
    credentials: Optional[grpc.ChannelCredentials],
    tls: Optional[TlsOptions],
    token: Optional[str],
    retry: RetryPolicy,
    options: Sequence[Tuple[str, Any]],
    max_receive_message_bytes: int,
) -> ChannelSettings:
    if credentials is not None and tls is not None:
        raise ValueError("give credentials or tls, not both")
    channel_options: ChannelOptions = [
        ("grpc.service_config", retry.service_config()),
        ("grpc.max_receive_message_length", max_receive_message_bytes),
    ]
    if tls is not None:
        credentials = tls.credentials()
        if tls.server_name is not None:
            channel_options.append(
                ("grpc.ssl_target_name_override", tls.server_name))
    channel_options.extend(options)
    return ChannelSettings(credentials, channel_options, _bearer(token))


def _bearer(token: Optional[str]) -> Metadata:
    if token is None:
        return ()
    token = token.strip()  # As read from a token file, newline and all.
    if not token:
        raise ValueError("the token is empty")
    if any(not " " < c <= "~" for c in token):
        raise ValueError("the token has a character a header cannot carry")
    return ((AUTHORIZATION_HEADER, f"Bearer {token}"),)


def routing(fetcher: str, key: str) -> Metadata:
    """The x-flight-key header of (fetcher, key)."""
    return ((FLIGHT_KEY_HEADER, flight_key(fetcher, key)),)


def as_bytes(payload: Union[bytes, str]) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


def do_request(request: Request) -> Any:
    """The DoRequest message of a Request (its id filled in)."""
    return singleflight_pb2.DoRequest(
        key=request.key,
        fetcher=request.fetcher,
        payload=as_bytes(request.payload),
        id=request.id,
    )


def numbered(request: Union[Request, str], position: int) -> Request:
    """The request (a Request or a key), its id defaulted to position."""
    if isinstance(request, str):
        request = Request(key=request)
    if request.id is None:
        request = dataclasses.replace(request, id=position)
    return request


def stream_result(reply: Any, request: Request) -> StreamResult:
    """The StreamResult of a DoStream reply to request."""
    if reply.status.code != 0:
        return StreamResult(
            id=reply.id,
            request=request,
            error=SingleFlightError.from_status(
                reply.status.code, reply.status.message),
        )
    return StreamResult(
        id=reply.id, request=request, value=reply.value, shared=reply.shared)


def flights(response: Any) -> List[Flight]:
    """The flights of an InFlightResponse, oldest first."""
    result = [
        Flight(
            fetcher=flight.fetcher,
            key=flight.key,
            waiters=flight.waiters,
            age=flight.age.ToTimedelta(),
            forgotten=flight.forgotten,
        )
        for flight in response.flights
    ]
    return sorted(result, key=lambda flight: flight.age, reverse=True)
