"""What the client sends and returns: plain immutable values."""

import dataclasses
import datetime
from typing import Optional, Union

from singleflight_client.errors import SingleFlightError


@dataclasses.dataclass(frozen=True)
class DoResult:
    """The outcome of a successful Client.do."""

    value: bytes
    # True if the call shared its flight with another caller.
    shared: bool


@dataclasses.dataclass(frozen=True)
class Request:
    """One request of Client.stream.

    A None id is replaced by the request's position in the stream (1, 2, ...).
    """

    key: str
    fetcher: str = ""
    payload: Union[bytes, str] = b""
    id: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """One reply of Client.stream: a value, or the item's error."""

    id: int
    # The request this replies to, with its id filled in.
    request: Request
    value: bytes = b""
    shared: bool = False
    error: Optional[SingleFlightError] = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class Flight:
    """A flight in progress on the server."""

    fetcher: str
    key: str
    waiters: int
    age: datetime.timedelta
    forgotten: bool
