"""The exception every failed call raises."""

import grpc

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class SingleFlightError(Exception):
    """A call, or one DoStream item, failed with a gRPC status.

    code is a grpc.StatusCode (NOT_FOUND for an unknown fetcher,
    DEADLINE_EXCEEDED when the deadline passed, UNAVAILABLE when the server
    could not be reached, ...); details is the server's message.
    """

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "SingleFlightError":
        """The error of a failed call (a grpc.RpcError that is a grpc.Call)."""
        return cls(error.code(), error.details() or "")

    @classmethod
    def from_status(cls, code: int, message: str) -> "SingleFlightError":
        """The error of a DoResponse.status (google.rpc.Code numbering)."""
        return cls(_CODES.get(code, grpc.StatusCode.UNKNOWN), message)
