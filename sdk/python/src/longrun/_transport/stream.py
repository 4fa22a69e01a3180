"""The worker protocol on the gRPC `Work` stream (crates/proto/proto/longrun/v1): every
call on one stream, answered by id in any order, with cancellations pushed by the server
the moment they are requested. A broken stream (the server restarted) fails the calls in
flight, and the next call opens a new one; leases live on the server and survive it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.protobuf import duration_pb2, struct_pb2
from google.rpc import error_details_pb2, status_pb2

from .._auth import Authorizer
from .._proto.google.earthengine.v1 import operation_metadata_pb2 as ee
from .._proto.longrun.v1 import longrun_pb2 as pb
from ..context import Assignment, Report
from ..errors import CODE_NAMES, ApiError
from .backend import LeaseLost, OnCancel

WORK = "/longrun.v1.Workers/Work"
# Reconnect quickly after a server restart (gRPC's default first backoff is 1 s).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class StreamClosed(ApiError):
    """The stream broke before the call was answered (code 14): retry on a new one."""

    def __init__(self, why: str) -> None:
        super().__init__(14, f"the work stream closed: {why}", http_status=0)


def value_to_python(v: struct_pb2.Value) -> Any:
    """A google.protobuf.Value as plain Python (dict, list, str, float, bool, None)."""
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return {k: value_to_python(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [value_to_python(x) for x in v.list_value.values]
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() and abs(n) < 2**53 else n
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    return None


def python_to_value(x: Any, into: struct_pb2.Value) -> None:
    """Fills `into` with `x` (JSON-like Python)."""
    if x is None:
        into.null_value = struct_pb2.NULL_VALUE
    elif isinstance(x, bool):
        into.bool_value = x
    elif isinstance(x, int | float):
        into.number_value = x
    elif isinstance(x, str):
        into.string_value = x
    elif isinstance(x, dict):
        into.struct_value.SetInParent()  # so that `{}` is a struct, not an unset value
        into.struct_value.update(x)
    elif isinstance(x, list | tuple):
        into.list_value.SetInParent()
        into.list_value.extend(list(x))
    else:
        raise TypeError(f"not JSON: {type(x).__name__}")


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def _error(status: status_pb2.Status) -> ApiError:
    reason, metadata = None, {}
    for any_detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if any_detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
    return ApiError(status.code, status.message, reason=reason, metadata=metadata)


def _fenced(e: ApiError) -> ApiError | LeaseLost:
    """ABORTED and NOT_FOUND mean the lease is gone: `LeaseLost`; other errors as they are."""
    if e.code in (5, 10):
        return LeaseLost(f"{CODE_NAMES.get(e.code)}: {e.message}")
    return e


async def _outcome(call: Awaitable[None]) -> BaseException | None:
    try:
        await call
    except (ApiError, LeaseLost) as e:
        return e
    return None


class _Link:
    """One open stream: its call, the calls waiting for answers, and its writer."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.pending: dict[int, asyncio.Future[pb.WorkResponse]] = {}
        self.outbox: asyncio.Queue[pb.WorkRequest] = asyncio.Queue()
        self.closed: str | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def close(self, why: str) -> None:
        if self.closed is None:
            self.closed = why
        for future in self.pending.values():
            if not future.done():
                future.set_exception(StreamClosed(why))
        self.pending.clear()


class StreamBackend:
    """Worker calls on the `Work` stream of the server at `url` (`http://host:port`;
    `https://` uses TLS with the system roots). `on_cancel(name, lease_id)` is called on the
    event loop for each pushed cancellation; `on_reopen()` after a new stream opens, so that
    the worker reports its running operations on it (the server watches for cancellation
    the operations leased or reported on a stream)."""

    pushes_cancels = True

    def __init__(self, url: str, auth: Authorizer, on_cancel: OnCancel, on_reopen: Any) -> None:
        parts = urlsplit(url)
        target = parts.netloc or parts.path
        if parts.scheme == "https":
            self._channel = grpc.aio.secure_channel(
                target, grpc.ssl_channel_credentials(), options=CHANNEL_OPTIONS
            )
        else:
            self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._method = self._channel.stream_stream(
            WORK,
            request_serializer=pb.WorkRequest.SerializeToString,
            response_deserializer=pb.WorkResponse.FromString,
        )
        self._auth = auth
        self._on_cancel = on_cancel
        self._on_reopen = on_reopen
        self._link: _Link | None = None
        self._opening = asyncio.Lock()
        self._ids = itertools.count(1)
        self._opened = 0
        self._batching = True
        self._batch: list[tuple[pb.CompleteRequest, asyncio.Future[None]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def _current(self) -> _Link:
        link = self._link
        if link is not None and link.closed is None:
            return link
        async with self._opening:
            link = self._link
            if link is not None and link.closed is None:
                return link
            header = await self._auth.header_async()
            metadata = None if header is None else (("authorization", header),)
            link = _Link(self._method(metadata=metadata))
            link.tasks = [
                asyncio.create_task(self._read(link)),
                asyncio.create_task(self._write(link)),
            ]
            self._link = link
            self._opened += 1
            if self._opened > 1:
                self._on_reopen()
            return link

    async def _read(self, link: _Link) -> None:
        why = "the server ended it"
        try:
            while True:
                response = await link.call.read()
                if response is grpc.aio.EOF:
                    break
                if response.id == 0:
                    if response.HasField("cancel"):
                        self._on_cancel(response.cancel.name, response.cancel.lease_id)
                    continue
                future = link.pending.pop(response.id, None)
                if future is not None and not future.done():
                    future.set_result(response)
        except grpc.aio.AioRpcError as e:
            why = f"{e.code().name}: {e.details()}"
        except asyncio.CancelledError:
            why = "closed"
        finally:
            link.close(why)
            for task in link.tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def _write(self, link: _Link) -> None:
        try:
            while True:
                request = await link.outbox.get()
                try:
                    await link.call.write(request)
                finally:
                    link.outbox.task_done()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError) as e:
            link.close(f"write failed: {e}")
            link.call.cancel()
        except asyncio.CancelledError:
            pass

    async def _call(self, **call: Any) -> pb.WorkResponse:
        link = await self._current()
        request_id = next(self._ids)
        future: asyncio.Future[pb.WorkResponse] = asyncio.get_running_loop().create_future()
        link.pending[request_id] = future
        link.outbox.put_nowait(pb.WorkRequest(id=request_id, **call))
        response = await future
        if response.WhichOneof("answer") == "error":
            raise _error(response.error)
        return response

    async def lease(
        self, worker: str, types: list[str], max_operations: int, wait: float, lease: float
    ) -> list[Assignment]:
        request = pb.LeaseRequest(
            worker=worker,
            types=types,
            max_operations=max_operations,
            wait_timeout=_duration(wait),
            lease_duration=_duration(lease),
        )
        response = await self._call(lease=request)
        leased = []
        for entry in response.lease.leases:
            op = entry.operation
            metadata = ee.OperationMetadata.FromString(op.metadata.value)
            leased.append(
                Assignment(
                    name=op.name,
                    type=metadata.type,
                    lease_id=entry.lease_id,
                    payload=value_to_python(entry.payload) if entry.HasField("payload") else None,
                    attempt=metadata.attempt,
                    operation_source=op,
                )
            )
        return leased

    async def heartbeat(self, a: Assignment, report: Report | None, wait_for_cancel: float) -> bool:
        request = pb.HeartbeatRequest(name=a.name, lease_id=a.lease_id)
        if report is not None:
            if report.progress is not None:
                request.progress = report.progress
            if report.stages is not None:
                request.set_stages = True
                for s in report.stages:
                    request.stages.add(
                        display_name=s["displayName"],
                        description=s.get("description", ""),
                        complete_work_units=s.get("completeWorkUnits", 0),
                        total_work_units=s.get("totalWorkUnits", 0),
                    )
            if report.destination_uris is not None:
                request.set_destination_uris = True
                request.destination_uris.extend(report.destination_uris)
            if report.batch_eecu_usage_seconds is not None:
                request.batch_eecu_usage_seconds = report.batch_eecu_usage_seconds
        try:
            response = await self._call(heartbeat=request)
        except ApiError as e:
            if e.code in (5, 10):
                raise LeaseLost(str(e)) from e
            raise
        return bool(response.heartbeat.cancel_requested)

    async def complete(self, a: Assignment, response: Any, error: tuple[int, str] | None) -> None:
        """Completions made in the same turn of the event loop go out as one
        `CompleteBatch` message (each still answered on its own); raises `LeaseLost` when
        the server fenced this one off."""
        request = pb.CompleteRequest(name=a.name, lease_id=a.lease_id)
        if error is None:
            python_to_value(response, request.response)
        else:
            request.error.code, request.error.message = error
        if not self._batching:
            return await self._complete_one(request)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._batch.append((request, future))
        if len(self._batch) == 1:
            loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[pb.CompleteRequest, asyncio.Future[None]]]) -> None:
        if len(batch) == 1:
            outcomes: list[BaseException | None] = [await _outcome(self._complete_one(batch[0][0]))]
        else:
            outcomes = await self._complete_many([request for request, _ in batch])
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)

    async def _complete_many(
        self, requests: list[pb.CompleteRequest]
    ) -> list[BaseException | None]:
        try:
            response = await self._call(complete_batch=pb.CompleteBatch(completions=requests))
        except ApiError as e:
            if e.code == 3 and e.reason == "INVALID_REQUEST_BODY":
                # A server without batches: one at a time from now on.
                self._batching = False
                return [await _outcome(self._complete_one(r)) for r in requests]
            return [e] * len(requests)
        results = response.completed.results
        if len(results) != len(requests):
            return [StreamClosed("a batch was answered with the wrong count")] * len(requests)
        return [
            _fenced(_error(r.error)) if r.WhichOneof("result") == "error" else None for r in results
        ]

    async def _complete_one(self, request: pb.CompleteRequest) -> None:
        try:
            await self._call(complete=request)
        except ApiError as e:
            raise _fenced(e) from e

    async def close(self) -> None:
        link = self._link
        if link is not None:
            # Half-close: the server answers what is in flight, then ends the stream.
            if link.closed is None:
                try:
                    await asyncio.wait_for(link.outbox.join(), 5.0)
                    await asyncio.wait_for(link.call.done_writing(), 5.0)
                    await asyncio.wait_for(asyncio.shield(link.tasks[0]), 5.0)
                except (TimeoutError, grpc.aio.AioRpcError, grpc.aio.UsageError):
                    pass
            link.call.cancel()
            for task in link.tasks:
                task.cancel()
        await self._channel.close()
