"""A Python client for singleflightd (singleflight.v1.SingleFlight).

    from singleflight_client import Client

    with Client("127.0.0.1:50051") as client:
        result = client.do("user:42", fetcher="users")
        print(result.value, result.shared)

AsyncClient is the same on asyncio (grpc.aio). See docs/CLIENTS.md for what
they support.
"""

from singleflight_client.aio import AsyncClient
from singleflight_client.client import DEFAULT_MAX_RECEIVE_MESSAGE_BYTES, Client
from singleflight_client.errors import SingleFlightError
from singleflight_client.flight_key import FLIGHT_KEY_HEADER, flight_key
from singleflight_client.messages import DoResult, Flight, Request, StreamResult
from singleflight_client.retry import RetryPolicy
from singleflight_client.tls import TlsOptions

# The package's version (pyproject.toml reads it from here).
__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_RECEIVE_MESSAGE_BYTES",
    "AsyncClient",
    "Client",
    "DoResult",
    "FLIGHT_KEY_HEADER",
    "Flight",
    "Request",
    "RetryPolicy",
    "SingleFlightError",
    "StreamResult",
    "TlsOptions",
    "flight_key",
]
