"""Clients not written here against a server with TLS and required client certificates.

Usage: tls_clients.py BASE CA_FILE CERT_FILE KEY_FILE OPERATION

BASE is https://127.0.0.1:PORT. The server requires client certificates its client CA signed;
CERT_FILE/KEY_FILE is one naming spiffe://example.org/ci, bound as a member with
roles/earthengine.admin on project `p`; CA_FILE signed the server's certificate. OPERATION is
an operation of `p`.

Checked: grpcio over TLS with the client certificate (GetOperation and ListOperations of
google.longrunning, through googleapis-common-protos' stub, no token: the certificate is the
caller); grpcio without a client certificate fails to connect (UNAVAILABLE); requests over
HTTPS with the certificate reads the operation, and without it fails at the handshake.
Prints "ok" at the end.
"""

import sys
import urllib.parse

import grpc
import requests
from checks import check
from google.longrunning import operations_pb2, operations_pb2_grpc

TIMEOUT = 10.0


def main(argv):
    if len(argv) != 6:
        sys.exit("usage: tls_clients.py BASE CA_FILE CERT_FILE KEY_FILE OPERATION")
    base, ca_file, cert_file, key_file, name = argv[1:]
    parts = urllib.parse.urlsplit(base)
    check(parts.scheme == "https", f"BASE must be https://, not {base!r}")
    target = f"localhost:{parts.port}"
    with open(ca_file, "rb") as f:
        roots = f.read()
    with open(cert_file, "rb") as f:
        chain = f.read()
    with open(key_file, "rb") as f:
        key = f.read()

    # gRPC with the client certificate: the certificate alone authenticates.
    credentials = grpc.ssl_channel_credentials(
        root_certificates=roots, private_key=key, certificate_chain=chain
    )
    with grpc.secure_channel(target, credentials) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        op = stub.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=TIMEOUT)
        check(op.name == name, f"GetOperation answered {op.name!r}, not {name!r}")
        listed = stub.ListOperations(
            operations_pb2.ListOperationsRequest(name="projects/p", page_size=10),
            timeout=TIMEOUT,
        )
        check(
            name in [o.name for o in listed.operations],
            f"ListOperations lacks {name}: {[o.name for o in listed.operations]}",
        )

    # gRPC without a client certificate: the handshake is refused.
    anonymous = grpc.ssl_channel_credentials(root_certificates=roots)
    with grpc.secure_channel(target, anonymous) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        try:
            stub.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=TIMEOUT)
            check(False, "GetOperation without a client certificate succeeded")
        except grpc.RpcError as e:
            check(
                e.code() == grpc.StatusCode.UNAVAILABLE,
                f"without a client certificate: {e.code()} {e.details()}, not UNAVAILABLE",
            )

    # REST with requests.
    session = requests.Session()
    session.trust_env = False
    url = f"https://localhost:{parts.port}/v1/{name}"
    r = session.get(url, verify=ca_file, cert=(cert_file, key_file), timeout=TIMEOUT)
    check(r.status_code == 200, f"REST get: HTTP {r.status_code} {r.text}")
    check(r.json().get("name") == name, f"REST get answered {r.text}")
    try:
        session.get(url, verify=ca_file, timeout=TIMEOUT)
        check(False, "REST without a client certificate succeeded")
    except requests.exceptions.SSLError:
        pass
    except requests.exceptions.ConnectionError:
        pass
    print("ok")


if __name__ == "__main__":
    main(sys.argv)
