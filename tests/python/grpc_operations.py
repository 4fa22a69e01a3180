"""A generic google.longrunning gRPC client against longrun's Operations service.

Usage: grpc_operations.py BASE TOKEN

BASE is the server's address, like http://127.0.0.1:PORT: REST and gRPC (plaintext HTTP/2
with prior knowledge) are served on the same port. The server runs with auth mode "oauth";
TOKEN is a bearer token holding roles/earthengine.admin on project `p`, sent on every call
(gRPC metadata `authorization`, and the Authorization header on REST).

The client is not written here: grpcio, the google.longrunning messages and stub that
googleapis-common-protos ships, and google-api-core's operations_v1.OperationsClient for
get/list/cancel/delete (WaitOperation, which that client lacks, goes through the stub).
State is prepared with plain REST: operations of type GRPC_TEST, which no worker serves, so
they stay PENDING until cancelled.

Checked: GetOperation (name, done, metadata type_url); ListOperations with page_size 2 (pages
chain, every operation once, newest first, the same order as REST) and through the client's
own pager; filters (a valid one, invalid ones, a page token reused with another filter);
WaitOperation (request timeout, caller deadline shorter than the request timeout, woken by a
cancel, on a done operation); CancelOperation of a PENDING operation (done, error.code 1,
idempotent); DeleteOperation (not done: FAILED_PRECONDITION; done: ok, then NOT_FOUND);
UNAUTHENTICATED without a token or with a bad one; every error's grpc-status-details-bin
(a google.rpc.Status that agrees with grpc-status and grpc-message, with one ErrorInfo,
domain "longrun" for NOT_FOUND). Prints "ok" at the end; any failed check exits non-zero
with a message saying what was expected.
"""

import sys
import time
import traceback
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import requests
from checks import check, fail
from google.api_core import exceptions as api_exceptions
from google.api_core import operations_v1
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

PROJECT = "p"
PARENT = f"projects/{PROJECT}"
METADATA_TYPE_URL = "type.googleapis.com/google.earthengine.v1.OperationMetadata"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
CALL_TIMEOUT = 10.0
TYPE = "GRPC_TEST"


def parse_args(argv):
    if len(argv) != 3:
        sys.exit("usage: grpc_operations.py BASE TOKEN   (BASE like http://127.0.0.1:PORT)")
    base, token = argv[1].rstrip("/"), argv[2]
    parts = urllib.parse.urlsplit(base)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        sys.exit(f"grpc_operations: BASE must be http://HOST:PORT (plaintext), not {base!r}")
    if not token:
        sys.exit("grpc_operations: TOKEN is empty")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return base, f"{host}:{parts.port}", token


class Rest:
    """Plain HTTP calls that prepare and cross-check state."""

    def __init__(self, base, token):
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only: never through a proxy
        self.session.headers["Authorization"] = f"Bearer {token}"

    def submit(self, operation_id):
        r = self.session.post(
            f"{self.base}/v1/{PARENT}/operations:submit",
            json={"type": TYPE, "operationId": operation_id},
            timeout=CALL_TIMEOUT,
        )
        check(r.status_code == 200, f"REST submit {operation_id}: HTTP {r.status_code} {r.text}")
        op = r.json()
        name = f"{PARENT}/operations/{operation_id}"
        check(op.get("name") == name, f"REST submit {operation_id}: name should be {name}: {op}")
        check(op.get("done") is False, f"REST submit {operation_id}: should not be done: {op}")
        return op

    def get(self, name):
        r = self.session.get(f"{self.base}/v1/{name}", timeout=CALL_TIMEOUT)
        check(r.status_code == 200, f"REST get {name}: HTTP {r.status_code} {r.text}")
        return r.json()

    def list_all(self, filter_=None):
        ops, token = [], None
        for _ in range(1000):
            params = {"pageSize": 1000}
            if filter_:
                params["filter"] = filter_
            if token:
                params["pageToken"] = token
            r = self.session.get(
                f"{self.base}/v1/{PARENT}/operations", params=params, timeout=CALL_TIMEOUT
            )
            check(r.status_code == 200, f"REST list: HTTP {r.status_code} {r.text}")
            page = r.json()
            ops += page.get("operations", [])
            token = page.get("nextPageToken")
            if not token:
                return ops
        fail("REST list: more than 1000 pages")

    def unauthenticated_status(self):
        anonymous = requests.Session()
        anonymous.trust_env = False
        r = anonymous.get(f"{self.base}/v1/{PARENT}/operations", timeout=CALL_TIMEOUT)
        return r.status_code


class Grpc:
    """The gRPC side: google-api-core's OperationsClient, and the generated stub for wait."""

    def __init__(self, target, token):
        self.token = token
        # grpcio honours http_proxy from the environment; the server is on this machine.
        self.channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
        self.client = operations_v1.OperationsClient(self.channel)
        self.stub = operations_pb2_grpc.OperationsStub(self.channel)

    def auth(self, token=None):
        # A new list for every call: OperationsClient appends its routing header to it.
        return [("authorization", f"Bearer {token or self.token}")]

    def get(self, name, metadata=None):
        return self.client.get_operation(
            name,
            retry=None,
            timeout=CALL_TIMEOUT,
            metadata=self.auth() if metadata is None else metadata,
        )

    def list(self, filter_="", metadata=None):
        pager = self.client.list_operations(
            PARENT,
            filter_,
            retry=None,
            timeout=CALL_TIMEOUT,
            metadata=self.auth() if metadata is None else metadata,
        )
        return list(pager)

    def cancel(self, name):
        self.client.cancel_operation(name, retry=None, timeout=CALL_TIMEOUT, metadata=self.auth())

    def delete(self, name):
        self.client.delete_operation(name, retry=None, timeout=CALL_TIMEOUT, metadata=self.auth())

    def list_page(self, page_size, page_token="", filter_="", **fields):
        request = operations_pb2.ListOperationsRequest(
            name=PARENT, filter=filter_, page_size=page_size, page_token=page_token, **fields
        )
        return self.stub.ListOperations(request, timeout=CALL_TIMEOUT, metadata=self.auth())

    def wait(self, name, request_timeout, deadline, metadata=None):
        request = operations_pb2.WaitOperationRequest(name=name)
        if request_timeout is not None:
            nanos = round(request_timeout * 1e9)
            request.timeout.CopyFrom(
                duration_pb2.Duration(seconds=nanos // 10**9, nanos=nanos % 10**9)
            )
        return self.stub.WaitOperation(
            request, timeout=deadline, metadata=self.auth() if metadata is None else metadata
        )


def expect_error(what, call, code):
    """Runs call(), which must fail with the gRPC status `code`; returns (grpc.Call, api error).

    The api error is google-api-core's exception where the call went through OperationsClient
    (None for the raw stub). Also checks grpc-status-details-bin on every error.
    """
    try:
        result = call()
    except api_exceptions.GoogleAPICallError as e:
        rpc = e.response
        check(isinstance(rpc, grpc.Call), f"{what}: error without a gRPC call behind it: {e!r}")
        api_error = e
    except grpc.RpcError as e:
        rpc, api_error = e, None
    except ValueError as e:
        # grpcio-status raises this when the Status in grpc-status-details-bin disagrees with
        # grpc-status / grpc-message.
        fail(f"{what}: {STATUS_DETAILS_KEY} does not match the call's status: {e}")
    else:
        fail(f"{what}: expected {code.name}, the call succeeded with {result!r}")
    check(
        rpc.code() == code,
        f"{what}: expected {code.name}, got {rpc.code().name}: {rpc.details()!r}",
    )
    if api_error is not None:
        check(
            api_error.grpc_status_code == code,
            f"{what}: OperationsClient raised {type(api_error).__name__} for {code.name}",
        )
    rich_status(what, rpc, code)
    return rpc, api_error


def rich_status(what, rpc, code):
    """Decodes grpc-status-details-bin: a google.rpc.Status that agrees with the call's
    status and message, carrying exactly one ErrorInfo; returns (Status, ErrorInfo)."""
    raw = [v for k, v in (rpc.trailing_metadata() or ()) if k == STATUS_DETAILS_KEY]
    check(len(raw) == 1, f"{what}: expected one {STATUS_DETAILS_KEY} trailer, got {len(raw)}")
    check(isinstance(raw[0], bytes), f"{what}: {STATUS_DETAILS_KEY} is not binary metadata")
    try:
        status = status_pb2.Status.FromString(raw[0])
    except Exception as e:
        fail(f"{what}: {STATUS_DETAILS_KEY} is not a google.rpc.Status: {e}")
    check(
        status.code == code.value[0],
        f"{what}: Status.code {status.code} in {STATUS_DETAILS_KEY}, grpc-status {code.name}",
    )
    check(
        status.message == rpc.details(),
        f"{what}: Status.message {status.message!r} differs from grpc-message {rpc.details()!r}",
    )
    check(status.message, f"{what}: the error has an empty message")
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    check(
        len(infos) == 1,
        f"{what}: expected one ErrorInfo in Status.details, got "
        f"{[d.type_url for d in status.details]}",
    )
    info = error_details_pb2.ErrorInfo()
    check(infos[0].Unpack(info), f"{what}: the ErrorInfo detail does not unpack")
    check(info.reason, f"{what}: ErrorInfo has no reason: {info}")
    return status, info


def check_pending(op, name, what):
    check(op.name == name, f"{what}: name should be {name}, got {op.name!r}")
    check(op.done is False, f"{what}: should not be done: {op}")
    check(op.WhichOneof("result") is None, f"{what}: a not-done operation has no result: {op}")
    check(
        op.metadata.type_url == METADATA_TYPE_URL,
        f"{what}: metadata type_url should be {METADATA_TYPE_URL}, got {op.metadata.type_url!r}",
    )
    check(op.metadata.value, f"{what}: metadata is empty")


def check_cancelled(op, name, what):
    check(op.name == name, f"{what}: name should be {name}, got {op.name!r}")
    check(op.done is True, f"{what}: should be done after the cancel: {op}")
    check(op.WhichOneof("result") == "error", f"{what}: a cancelled operation carries error: {op}")
    check(
        op.error.code == code_pb2.CANCELLED,
        f"{what}: error.code should be 1 (CANCELLED), got {op.error.code}",
    )
    check(op.metadata.type_url == METADATA_TYPE_URL, f"{what}: metadata type_url {op.metadata}")


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def main():
    base, target, token = parse_args(sys.argv)
    rest = Rest(base, token)
    rpc = Grpc(target, token)
    tag = uuid.uuid4().hex[:8]
    ids = [f"g{i}-{tag}" for i in range(1, 6)]
    names = [f"{PARENT}/operations/{i}" for i in ids]
    g1, g2, g3, g4, g5 = names

    check(
        rest.unauthenticated_status() == 401,
        "the server must run with auth mode oauth: a REST list without a token was not 401",
    )

    # Five PENDING operations, created in order (a few ms apart, so createTime orders them).
    for operation_id in ids:
        rest.submit(operation_id)
        time.sleep(0.02)
    print(f"submitted {len(ids)} {TYPE} operations over REST")

    # GetOperation.
    op = rpc.get(g1)
    check_pending(op, g1, "GetOperation g1")
    print("GetOperation: ok")

    # ListOperations, page_size 2, through the stub (OperationsClient sets no page size).
    rest_order = [o["name"] for o in rest.list_all()]
    pages, token_, listed, first_token = 0, "", [], ""
    while True:
        response = rpc.list_page(2, token_)
        pages += 1
        check(len(response.operations) <= 2, f"page {pages} has {len(response.operations)} > 2")
        for o in response.operations:
            check(
                o.metadata.type_url == METADATA_TYPE_URL,
                f"listed {o.name}: metadata type_url {o.metadata.type_url!r}",
            )
        listed += [o.name for o in response.operations]
        token_ = response.next_page_token
        if not token_:
            break
        check(response.operations, f"page {pages} is empty but has a next_page_token")
        check(pages <= len(rest_order) + 2, f"ListOperations did not end after {pages} pages")
        if pages == 1:
            first_token = token_
    check(len(listed) == len(set(listed)), f"ListOperations repeated an operation: {listed}")
    for name in names:
        check(listed.count(name) == 1, f"ListOperations listed {name} {listed.count(name)} times")
    ours = [n for n in listed if n in names]
    check(ours == names[::-1], f"ListOperations should list newest first {names[::-1]}, got {ours}")
    check(listed == rest_order, f"gRPC order {listed} differs from the REST order {rest_order}")
    check(pages >= 3, f"{len(listed)} operations in pages of 2 took only {pages} pages")
    print(f"ListOperations page_size=2: {len(listed)} operations over {pages} pages, ok")

    # The client's own pager (server default page size) gives the same listing.
    full = [o.name for o in rpc.list()]
    check(full == rest_order, f"OperationsClient.list_operations gave {full}, REST {rest_order}")

    # A page token is bound to its filter; return_partial_success is not supported.
    expect_error(
        "ListOperations with a page token from another filter",
        lambda: rpc.list_page(2, first_token, filter_="metadata.state = PENDING"),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    expect_error(
        "ListOperations return_partial_success=true",
        lambda: rpc.list_page(2, return_partial_success=True),
        grpc.StatusCode.UNIMPLEMENTED,
    )
    print("OperationsClient.list_operations, page token binding: ok")

    # Filters.
    def check_pending_filter(what):
        got = [o.name for o in rpc.list("metadata.state = PENDING")]
        want = [o["name"] for o in rest.list_all() if o["metadata"]["state"] == "PENDING"]
        check(got == want, f"{what}: filter metadata.state = PENDING gave {got}, expected {want}")
        return got

    pending = check_pending_filter("before any cancel")
    check(all(n in pending for n in names), f"PENDING filter misses some of {names}: {pending}")
    for bad in ("metadata.state = ", "metadata.nosuchfield = 1"):
        expect_error(
            f"ListOperations filter {bad!r}",
            lambda bad=bad: rpc.list(bad),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    print("filters: ok")

    # WaitOperation: the request's timeout elapses first.
    op, took = timed(lambda: rpc.wait(g2, 0.2, deadline=5.0))
    check_pending(op, g2, "WaitOperation timeout 0.2 s")
    check(took >= 0.19, f"WaitOperation timeout 0.2 s returned after {took:.3f} s, too early")
    check(took < 2.0, f"WaitOperation timeout 0.2 s returned after {took:.3f} s")
    print(f"WaitOperation timeout 0.2 s: returned the op after {took:.3f} s")

    # The caller's deadline (grpc-timeout) is shorter than the request's timeout.
    try:
        op, took = timed(lambda: rpc.wait(g2, 30.0, deadline=0.5))
    except grpc.RpcError as e:
        fail(
            f"WaitOperation timeout 30 s, deadline 0.5 s: {e.code().name} {e.details()!r}; "
            "the server should return the operation before the caller's deadline"
        )
    check_pending(op, g2, "WaitOperation deadline 0.5 s")
    check(took >= 0.25, f"WaitOperation deadline 0.5 s returned after {took:.3f} s, too early")
    print(f"WaitOperation timeout 30 s, deadline 0.5 s: returned the op after {took:.3f} s")

    # No timeout in the request: the server default, capped by the caller's deadline.
    try:
        op, took = timed(lambda: rpc.wait(g2, None, deadline=1.0))
    except grpc.RpcError as e:
        fail(f"WaitOperation without timeout, deadline 1 s: {e.code().name} {e.details()!r}")
    check_pending(op, g2, "WaitOperation without timeout, deadline 1 s")
    check(took >= 0.5, f"WaitOperation without timeout returned after {took:.3f} s, too early")
    print(f"WaitOperation without timeout, deadline 1 s: returned the op after {took:.3f} s")

    # A waiter is woken by the cancel; CancelOperation of a PENDING operation.
    cancelled_at = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiter = pool.submit(lambda: (rpc.wait(g3, 20.0, deadline=25.0), time.monotonic()))
        time.sleep(0.5)
        check(not waiter.done(), f"WaitOperation timeout 20 s on {g3} returned before the cancel")
        cancelled_at.append(time.monotonic())
        rpc.cancel(g3)
        try:
            op, returned_at = waiter.result(timeout=30)
        except grpc.RpcError as e:
            fail(f"WaitOperation during a cancel: {e.code().name} {e.details()!r}")
    check_cancelled(op, g3, "WaitOperation woken by the cancel")
    woke = returned_at - cancelled_at[0]
    check(woke < 5.0, f"WaitOperation returned {woke:.3f} s after the cancel, not woken by it")
    print(f"WaitOperation woken {woke:.3f} s after the cancel: ok")

    check_cancelled(rpc.get(g3), g3, "GetOperation after CancelOperation")
    state = rest.get(g3)["metadata"]["state"]
    check(state == "CANCELLED", f"REST get {g3} after the gRPC cancel: state {state}")
    rpc.cancel(g3)  # idempotent on a done operation
    check_cancelled(rpc.get(g3), g3, "GetOperation after a second CancelOperation")
    op, took = timed(lambda: rpc.wait(g3, 10.0, deadline=15.0))
    check_cancelled(op, g3, "WaitOperation on a done operation")
    check(took < 2.0, f"WaitOperation on a done operation took {took:.3f} s")
    pending = check_pending_filter("after the cancel")
    check(g3 not in pending, f"the cancelled {g3} still matches metadata.state = PENDING")
    print("CancelOperation of a PENDING operation: done, error.code 1: ok")

    # DeleteOperation.
    expect_error(
        "DeleteOperation of a not-done operation",
        lambda: rpc.delete(g4),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    check_pending(rpc.get(g4), g4, "GetOperation after a refused DeleteOperation")
    rpc.delete(g3)
    call, api_error = expect_error(
        "GetOperation after DeleteOperation", lambda: rpc.get(g3), grpc.StatusCode.NOT_FOUND
    )
    _, info = rich_status("GetOperation after DeleteOperation", call, grpc.StatusCode.NOT_FOUND)
    check(info.domain == "longrun", f"NOT_FOUND ErrorInfo domain should be longrun: {info}")
    check(
        api_error.domain == "longrun" and api_error.reason == info.reason,
        f"OperationsClient's NotFound carries domain {api_error.domain!r}, "
        f"reason {api_error.reason!r}",
    )
    expect_error(
        "WaitOperation of a deleted operation",
        lambda: rpc.wait(g3, 0.2, deadline=5.0),
        grpc.StatusCode.NOT_FOUND,
    )
    _, info = expect_error(
        "GetOperation of an operation never created",
        lambda: rpc.get(f"{PARENT}/operations/never-{tag}"),
        grpc.StatusCode.NOT_FOUND,
    )
    print(
        f"DeleteOperation; NOT_FOUND with ErrorInfo reason {info.reason}, domain {info.domain}: ok"
    )

    # Authentication.
    expect_error(
        "GetOperation with no metadata",
        lambda: rpc.stub.GetOperation(
            operations_pb2.GetOperationRequest(name=g1), timeout=CALL_TIMEOUT
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    expect_error(
        "WaitOperation with no metadata",
        lambda: rpc.stub.WaitOperation(
            operations_pb2.WaitOperationRequest(name=g1), timeout=CALL_TIMEOUT
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    expect_error(
        "OperationsClient.get_operation without a token",
        lambda: rpc.get(g1, metadata=[]),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    expect_error(
        "OperationsClient.list_operations without a token",
        lambda: rpc.list(metadata=[]),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    expect_error(
        "GetOperation with an invalid token",
        lambda: rpc.get(g1, metadata=rpc.auth(f"not-a-token-{tag}")),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    check_pending(rpc.get(g1), g1, "GetOperation with the token again")
    print("UNAUTHENTICATED without a valid token: ok")

    # Leave nothing PENDING behind.
    for name in (g1, g2, g4, g5):
        rpc.cancel(name)
        check_cancelled(rpc.get(name), name, f"GetOperation {name} after CancelOperation")
        rpc.delete(name)
    left = [n for n in (o["name"] for o in rest.list_all()) if n in names]
    check(not left, f"deleted operations are still listed over REST: {left}")

    rpc.channel.close()
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except (grpc.RpcError, api_exceptions.GoogleAPICallError, requests.RequestException) as e:
        # An unexpected failure of a call that should have worked: say which, with the trace.
        traceback.print_exc()
        if isinstance(e, grpc.RpcError) and isinstance(e, grpc.Call):
            e = f"{e.code().name}: {e.details()!r}"
        fail(f"unexpected error from the server: {e}")
