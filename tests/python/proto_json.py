"""Every operation longrun serves is valid proto3 JSON of google.longrunning.Operation, and
error details of the google.rpc types cross between REST and gRPC intact.

Usage: proto_json.py BASE DESCRIPTORS

BASE is the server's address, like http://127.0.0.1:PORT (auth off: a loopback listener);
REST and gRPC are served on the same port. DESCRIPTORS is a file holding longrun's encoded
FileDescriptorSet (longrun_proto::FILE_DESCRIPTOR_SET).

The parser is Google's: protobuf's json_format.ParseDict into the operations_pb2.Operation
that googleapis-common-protos ships, with the google.rpc detail types of that package.
longrun's own files are used only for what Google's packages lack: Earth Engine's
OperationMetadata (Earth Engine publishes no .proto), added to the default pool under each
API version's package, and the longrun.v1 worker messages for completing over gRPC.

Checked:
- REST workers complete with responses of every shape (object, number, string, list,
  Empty, a typed message) and errors with one detail of each google.rpc type built by
  Google's classes; then every operation, listed on v1, v1beta and v1alpha and read by get,
  parses with ParseDict, and each detail read over gRPC (GetOperation) unpacks to the message
  that was sent (REST -> gRPC), and reads back over REST as it was sent (REST -> REST).
- gRPC workers complete with the same details as binary Any; REST shows each as
  MessageToDict of the original (gRPC -> REST), and GetOperation unpacks it again (gRPC ->
  REST -> gRPC).
- What the encodings cannot carry is 400 over REST (a detail without @type, an unknown
  @type, a field the type lacks, an integer beyond 2^53 in a Struct response) and
  INVALID_ARGUMENT over gRPC (a detail of an unknown type), and changes nothing.
Prints "ok" at the end.
"""

import sys
import urllib.parse
import uuid

import grpc
import requests
from checks import check, fail
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,  # noqa: F401  (loads the file the metadata imports into the default pool)
)
from google.rpc import error_details_pb2

PROJECT = "p"
TYPE = "PROTO_JSON_TEST"
TIMEOUT = 10.0
EE_FILE = "google/earthengine/v1/operation_metadata.proto"


def details():
    """One message of every google.rpc detail type, with every kind of field set."""
    e = error_details_pb2
    return [
        e.ErrorInfo(reason="R", domain="d", metadata={"k": "v", "n": "1"}),
        e.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000)),
        e.DebugInfo(stack_entries=["a", "b"], detail="d"),
        e.QuotaFailure(
            violations=[
                e.QuotaFailure.Violation(
                    subject="s",
                    description="d",
                    api_service="svc",
                    quota_metric="m",
                    quota_id="q",
                    quota_dimensions={"region": "eu"},
                    quota_value=9007199254740993,
                    future_quota_value=7,
                )
            ]
        ),
        e.PreconditionFailure(
            violations=[e.PreconditionFailure.Violation(type="TOS", subject="s", description="d")]
        ),
        e.BadRequest(
            field_violations=[
                e.BadRequest.FieldViolation(
                    field="a.b",
                    description="bad",
                    reason="R",
                    localized_message=e.LocalizedMessage(locale="fr", message="mauvais"),
                )
            ]
        ),
        e.RequestInfo(request_id="r", serving_data="s"),
        e.ResourceInfo(resource_type="t", resource_name="n", owner="o", description="d"),
        e.Help(links=[e.Help.Link(description="docs", url="https://example.com")]),
        e.LocalizedMessage(locale="en-US", message="m"),
    ]


def packed(message):
    any_message = any_pb2.Any()
    any_message.Pack(message)
    return any_message


def as_json(message):
    """The JSON form of an Any holding `message`, as Google's json_format writes it."""
    return json_format.MessageToDict(packed(message))


def rename(messages, version):
    """Points references to v1's types at `version`'s."""
    for message in messages:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(
                    ".google.earthengine.v1.", f".google.earthengine.{version}."
                )
        rename(message.nested_type, version)


def load_longrun_files(path):
    """Earth Engine's metadata under v1, v1beta and v1alpha in the default pool (beside
    Google's own types), and a separate pool with all of longrun's files for its worker
    messages."""
    with open(path, "rb") as f:
        files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    default = descriptor_pool.Default()
    for f in files.file:
        if f.name == EE_FILE:
            for version in ["v1", "v1beta", "v1alpha"]:
                copy = descriptor_pb2.FileDescriptorProto()
                copy.CopyFrom(f)
                copy.name = f"test/earthengine/{version}/operation_metadata.proto"
                copy.package = f"google.earthengine.{version}"
                rename(copy.message_type, version)
                default.AddSerializedFile(copy.SerializeToString())
    own = descriptor_pool.DescriptorPool()
    for f in files.file:
        own.Add(f)
    return own


class Server:
    def __init__(self, base, own_pool):
        self.base = base
        parts = urllib.parse.urlsplit(base)
        self.channel = grpc.insecure_channel(f"{parts.hostname}:{parts.port}")
        self.operations = operations_pb2_grpc.OperationsStub(self.channel)
        cls = lambda name: message_factory.GetMessageClass(own.FindMessageTypeByName(name))  # noqa: E731
        own = own_pool
        self.LeaseRequest = cls("longrun.v1.LeaseRequest")
        self.LeaseResponse = cls("longrun.v1.LeaseResponse")
        self.CompleteRequest = cls("longrun.v1.CompleteRequest")
        self.OwnOperation = cls("google.longrunning.Operation")
        self.grpc_lease = self.channel.unary_unary(
            "/longrun.v1.Workers/Lease",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.LeaseResponse.FromString,
        )
        self.grpc_complete = self.channel.unary_unary(
            "/longrun.v1.Workers/Complete",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.OwnOperation.FromString,
        )

    def rest(self, method, path, body=None):
        response = requests.request(method, self.base + path, json=body, timeout=TIMEOUT)
        return response.status_code, response.json()

    def submit(self):
        status, op = self.rest(
            "POST",
            f"/v1/projects/{PROJECT}/operations:submit",
            {"type": TYPE, "operationId": f"op-{uuid.uuid4().hex}"},
        )
        check(status == 200, f"submit: {status} {op}")
        return op["name"]

    def lease_rest(self, name):
        status, body = self.rest(
            "POST", "/v1/workers/w:lease", {"types": [TYPE], "waitTimeout": "0s"}
        )
        check(status == 200 and len(body.get("leases", [])) == 1, f"lease: {status} {body}")
        lease = body["leases"][0]
        check(lease["operation"]["name"] == name, f"leased {lease['operation']['name']}")
        return lease["leaseId"]

    def lease_grpc(self, name):
        request = self.LeaseRequest(worker="w", types=[TYPE])
        request.wait_timeout.FromSeconds(0)
        leases = self.grpc_lease(request, timeout=TIMEOUT).leases
        check(len(leases) == 1 and leases[0].operation.name == name, f"gRPC lease: {leases}")
        return leases[0].lease_id

    def complete_rest(self, name, result):
        lease = self.lease_rest(name)
        return self.rest("POST", f"/v1/{name}:complete", {"leaseId": lease, **result})

    def grpc_get(self, name):
        return self.operations.GetOperation(
            operations_pb2.GetOperationRequest(name=name), timeout=TIMEOUT
        )


def parse_everything(server):
    """Every operation of the project, listed on each version and read by get, parses."""
    count = 0
    for version in ["v1", "v1beta", "v1alpha"]:
        token = ""
        while True:
            status, page = server.rest(
                "GET", f"/{version}/projects/{PROJECT}/operations?pageSize=7&pageToken={token}"
            )
            check(status == 200, f"list {version}: {status} {page}")
            for op in page.get("operations", []):
                try:
                    json_format.ParseDict(op, operations_pb2.Operation())
                except json_format.ParseError as e:
                    fail(f"{version} list: ParseDict rejects {op}: {e}")
                status, got = server.rest("GET", f"/{version}/{op['name']}")
                check(status == 200, f"get {op['name']}: {status}")
                json_format.ParseDict(got, operations_pb2.Operation())
                count += 1
            token = page.get("nextPageToken", "")
            if not token:
                break
    return count


def rest_workers(server):
    responses = [
        {"rows": 3, "nested": {"a": [1, 2.5, "x", None, True]}},
        5,
        "text",
        [1, "two"],
        {"@type": "type.googleapis.com/google.protobuf.Empty"},
        as_json(error_details_pb2.ResourceInfo(resource_type="t", resource_name="n")),
    ]
    for response in responses:
        name = server.submit()
        status, op = server.complete_rest(name, {"response": response})
        check(status == 200 and op["done"], f"complete with {response!r}: {status} {op}")
        json_format.ParseDict(op, operations_pb2.Operation())
        got = server.grpc_get(name)
        check(got.HasField("response"), f"gRPC {name}: no response")
    for detail in details():
        name = server.submit()
        sent = as_json(detail)
        status, op = server.complete_rest(
            name, {"error": {"code": 13, "message": "m", "details": [sent]}}
        )
        check(status == 200, f"complete with {sent}: {status} {op}")
        status, op = server.rest("GET", f"/v1/{name}")
        check(
            op["error"]["details"] == [sent], f"REST -> REST: {op['error']['details']} != [{sent}]"
        )
        got = server.grpc_get(name).error.details
        check(len(got) == 1, f"REST -> gRPC: {got}")
        received = type(detail)()
        check(got[0].Unpack(received), f"REST -> gRPC: {got[0].type_url} is not {type(detail)}")
        check(received == detail, f"REST -> gRPC: {received} != {detail}")


def grpc_workers(server):
    for detail in details():
        name = server.submit()
        lease = server.lease_grpc(name)
        request = server.CompleteRequest(name=name, lease_id=lease)
        request.error.code = 13
        request.error.message = "m"
        item = request.error.details.add()
        item.type_url = "type.googleapis.com/" + detail.DESCRIPTOR.full_name
        item.value = detail.SerializeToString()
        server.grpc_complete(request, timeout=TIMEOUT)
        _, op = server.rest("GET", f"/v1alpha/{name}")
        check(
            op["error"]["details"] == [as_json(detail)],
            f"gRPC -> REST: {op['error']['details']} != [{as_json(detail)}]",
        )
        received = type(detail)()
        server.grpc_get(name).error.details[0].Unpack(received)
        check(received == detail, f"gRPC -> REST -> gRPC: {received} != {detail}")
    # A Struct response sent over gRPC reads back over REST as the same JSON.
    name = server.submit()
    lease = server.lease_grpc(name)
    request = server.CompleteRequest(name=name, lease_id=lease)
    request.response.struct_value.update({"rows": 3, "ok": True})
    server.grpc_complete(request, timeout=TIMEOUT)
    _, op = server.rest("GET", f"/v1/{name}")
    check(
        op["response"]
        == {
            "@type": "type.googleapis.com/google.protobuf.Struct",
            "value": {"rows": 3, "ok": True},
        },
        f"gRPC Struct -> REST: {op['response']}",
    )
    value = struct_pb2.Struct()
    server.grpc_get(name).response.Unpack(value)
    check(dict(value) == {"rows": 3, "ok": True}, f"gRPC -> REST -> gRPC: {value}")


def refused(server):
    bad_results = [
        {"error": {"code": 13, "message": "m", "details": [{"reason": "no type"}]}},
        {"error": {"code": 13, "details": [{"@type": "type.googleapis.com/my.Unknown", "a": 1}]}},
        {
            "error": {
                "code": 13,
                "details": [{"@type": "type.googleapis.com/google.rpc.Help", "nope": 1}],
            }
        },
        {"response": {"big": 2**60}},
        {"response": {"@type": "type.googleapis.com/my.Unknown", "a": 1}},
    ]
    for result in bad_results:
        name = server.submit()
        status, body = server.complete_rest(name, result)
        check(status == 400, f"{result}: expected 400, got {status} {body}")
        check(body["error"]["status"] == "INVALID_ARGUMENT", f"{result}: {body}")
        status, op = server.rest("GET", f"/v1/{name}")
        check(op["metadata"]["state"] == "RUNNING", f"{result} changed {name}: {op}")
    name = server.submit()
    lease = server.lease_grpc(name)
    request = server.CompleteRequest(name=name, lease_id=lease)
    request.error.code = 13
    item = request.error.details.add()
    item.type_url = "type.googleapis.com/my.Unknown"
    item.value = b"\x08\x01"
    try:
        server.grpc_complete(request, timeout=TIMEOUT)
        fail("gRPC detail of an unknown type: accepted")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"gRPC unknown detail: {e.code()}")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: proto_json.py BASE DESCRIPTORS")
    own = load_longrun_files(sys.argv[2])
    server = Server(sys.argv[1].rstrip("/"), own)
    rest_workers(server)
    grpc_workers(server)
    refused(server)
    # Pending, cancelled and running operations too.
    server.submit()
    cancelled = server.submit()
    check(server.rest("POST", f"/v1/{cancelled}:cancel", {})[0] == 200, "cancel")
    parsed = parse_everything(server)
    check(parsed >= 3 * 30, f"only {parsed} operations parsed")
    print(f"{parsed} operation renderings parsed")
    print("ok")


if __name__ == "__main__":
    main()
