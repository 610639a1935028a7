"""TlsOptions: TLS, and mutual TLS, for a client's channel."""

import dataclasses
import os
from typing import Optional, Union

import grpc

__all__ = ["TlsOptions"]

PathLike = Union[str, "os.PathLike[str]"]


def _read(path: Optional[PathLike]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


@dataclasses.dataclass(frozen=True)
class TlsOptions:
    """Connect with TLS; with a client certificate, mutual TLS.

    The fields are PEM contents (bytes), as grpc.ssl_channel_credentials
    takes them; TlsOptions.from_files reads them from files. TlsOptions()
    trusts the system's roots.
    """

    # The CA certificates that signed the server's certificate; None for
    # the system's roots.
    root_certificates: Optional[bytes] = None
    # The client's certificate chain and private key, for a server that
    # wants client certificates (singleflightd --tls_client_ca): both or
    # neither.
    certificate_chain: Optional[bytes] = None
    private_key: Optional[bytes] = None
    # The name the server's certificate must hold, instead of the target's
    # host (gRPC's ssl_target_name_override).
    server_name: Optional[str] = None

    def __post_init__(self) -> None:
        for field in ("root_certificates", "certificate_chain", "private_key"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, bytes):
                raise TypeError(
                    f"TlsOptions.{field} is PEM contents (bytes), not "
                    f"{type(value).__name__}; TlsOptions.from_files reads "
                    "files")
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError(
                "TlsOptions: a client certificate needs its private key, "
                "and a private key its certificate")

    @classmethod
    def from_files(
        cls,
        ca_file: Optional[PathLike] = None,
        cert_file: Optional[PathLike] = None,
        key_file: Optional[PathLike] = None,
        server_name: Optional[str] = None,
    ) -> "TlsOptions":
        """Reads PEM files: the CA (None: the system's roots), and for mutual
        TLS the client's certificate chain and key (sfctl's --ca_cert,
        --client_cert, --client_key)."""
        return cls(
            root_certificates=_read(ca_file),
            certificate_chain=_read(cert_file),
            private_key=_read(key_file),
            server_name=server_name,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials (sync and asyncio channels alike)."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )
