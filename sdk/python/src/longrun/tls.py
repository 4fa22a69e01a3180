"""TLS for clients and workers: which CA certificates an `https://` server's certificate must
chain to, and the client certificate shown to a server that requires one (mTLS)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tls:
    """How to reach a server over `https://`.

    Args:
        ca_file: CA certificates (PEM) the server's certificate must chain to, instead of
            the system's roots (as `verify=` in httpx and requests, and
            `root_certificates` in grpcio).
        client_cert: `(certificate_chain_file, private_key_file)`, both PEM, for a server
            that requires client certificates.

    Files are read when the client or worker is made; `OSError` or `ssl.SSLError` when
    one cannot be read or used.
    """

    ca_file: str | None = None
    client_cert: tuple[str, str] | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The context the REST transport (httpx) uses."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.client_cert is not None:
            context.load_cert_chain(*self.client_cert)
        return context

    def grpc_credentials(self) -> Any:
        """The `grpc.ChannelCredentials` the gRPC transport uses."""
        import grpc

        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()

        cert, key = self.client_cert or (None, None)
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(key),
            certificate_chain=read(cert),
        )
