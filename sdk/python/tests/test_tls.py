"""A server with TLS that requires client certificates (mTLS), with auth on: clients and
workers (both transports) given `longrun.Tls`, authenticated by their certificate alone."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import longrun
from longrun.errors import ApiError

from .conftest import Server, make_server
from .helpers import running, state

IDENTITY = "spiffe://example.org/sdk"


class Ca:
    """A certificate authority that issues PEM files into a directory."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.cert = (
            self._builder(subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.file = self._write(f"{name}.crt", self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(
        self, subject: x509.Name, key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(getattr(self, "name", subject))
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def _write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)

    def issue(self, stem: str, names: list[x509.GeneralName]) -> tuple[str, str]:
        """A certificate for `names` and its key: (cert file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)])
        cert = (
            self._builder(subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return (
            self._write(f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{stem}.key", key_pem),
        )


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[tuple[Server, Ca, Ca]]:
    servers, clients = Ca(tmp_path, "server-ca"), Ca(tmp_path, "client-ca")
    cert, key = servers.issue(
        "server",
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    config = f"""
[tls]
cert_file = "{cert}"
key_file = "{key}"
client_ca_file = "{clients.file}"

[auth]
mode = "oauth"

[[iam.binding]]
project = "p"
role = "roles/earthengine.admin"
members = ["cert:{IDENTITY}"]

[[iam.binding]]
project = "p"
role = "roles/longrun.worker"
members = ["cert:{IDENTITY}"]
"""
    (tmp_path / "server").mkdir()
    server = make_server(tmp_path / "server", "sqlite", config)
    yield server, servers, clients
    server.kill()


def test_a_client_with_a_certificate(pki: tuple[Server, Ca, Ca]) -> None:
    server, servers, clients = pki
    assert server.url.startswith("https://")
    tls = longrun.Tls(
        ca_file=servers.file,
        client_cert=clients.issue("me", [x509.UniformResourceIdentifier(IDENTITY)]),
    )
    with longrun.Client(server.url, tls=tls) as client:
        op = client.submit("p", "T", operation_id="over-tls")
        assert client.get(op["name"])["name"] == "projects/p/operations/over-tls"
    # Without the client certificate, or without trusting the server's CA: unreachable.
    for partial in [longrun.Tls(ca_file=servers.file), longrun.Tls(client_cert=tls.client_cert)]:
        with longrun.Client(server.url, tls=partial) as client, pytest.raises(ApiError) as refused:
            client.get(op["name"])
        assert refused.value.code == longrun.Code.UNAVAILABLE


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_a_worker_with_a_certificate(
    pki: tuple[Server, Ca, Ca], transport: Literal["grpc", "rest"]
) -> None:
    server, servers, clients = pki
    tls = longrun.Tls(
        ca_file=servers.file,
        client_cert=clients.issue("w", [x509.UniformResourceIdentifier(IDENTITY)]),
    )
    worker = longrun.Worker(server.url, name="tls", transport=transport, lease_poll=0.5, tls=tls)

    @worker.handler("ECHO")
    async def echo(ctx: longrun.Context) -> object:
        return ctx.payload

    async def scenario() -> longrun.Operation:
        async with longrun.AsyncClient(server.url, tls=tls) as client, running(worker):
            op = await client.submit("p", "ECHO", {"over": "tls"})
            return await client.wait(op["name"], timeout=20)

    done = asyncio.run(scenario())
    assert state(done) == "SUCCEEDED", done
    assert done["response"]["value"] == {"over": "tls"}
