"""A Python client for singleflightd (singleflight.v1.SingleFlight).

    from singleflight_client import Client

    with Client("127.0.0.1:50051") as client:
        result = client.do("user:42", fetcher="users")
        print(result.value, result.shared)

See docs/CLIENTS.md for what it supports.
"""

from singleflight_client.client import (
    DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    Client,
    DoResult,
    Flight,
    Request,
    RetryPolicy,
    SingleFlightError,
    StreamResult,
)
from singleflight_client.flight_key import FLIGHT_KEY_HEADER, flight_key

__all__ = [
    "DEFAULT_MAX_RECEIVE_MESSAGE_BYTES",
    "Client",
    "DoResult",
    "FLIGHT_KEY_HEADER",
    "Flight",
    "Request",
    "RetryPolicy",
    "SingleFlightError",
    "StreamResult",
    "flight_key",
]
