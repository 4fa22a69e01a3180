"""The worker protocol on the gRPC `Work` stream (crates/proto/proto/longrun/v1): every
call on one stream, answered by id in any order, with cancellations pushed by the server
the moment they are requested. A broken stream (the server restarted) fails the calls in
flight, and the next call opens a new one; leases live on the server and survive it. No
message passes the limit the server states when the stream opens."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.protobuf import any_pb2, duration_pb2, struct_pb2
from google.rpc import error_details_pb2, status_pb2

from .._auth import Authorizer
from .._proto.google.earthengine.v1 import operation_metadata_pb2 as ee
from .._proto.longrun.v1 import longrun_pb2 as pb
from ..context import Assignment, Report
from ..errors import CODE_NAMES, ApiError
from ..tls import Tls
from .backend import Failure, LeaseLost, OnCancel, Reconnects, brief, not_json, too_large

log = logging.getLogger("longrun.worker")

WORK = "/longrun.v1.Workers/Work"
# The server states its limit on one message in the stream's response headers; this is
# the limit when it does not.
MAX_MESSAGE_HEADER = "longrun-max-message-bytes"
MAX_MESSAGE_DEFAULT = 4 << 20
# A WorkRequest around a payload of n bytes: its id (at most 10 bytes and a tag), the
# payload's tag and length (at most 6), and the completion's tag and length in a batch.
_ENVELOPE = 32
# How long opening a stream may take before the attempt counts as failed.
_OPEN_TIMEOUT = 10.0
# Reconnect quickly after a server restart (gRPC's default first backoff is 1 s). The
# channel's own attempts (a refused connect each) stay at most 1 s apart, so that the worker's
# attempts, which back off to 5 s, find it connected soon after the server is back.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


class StreamClosed(ApiError):
    """The stream broke before the call was answered, or could not be opened (code 14,
    `http_status` 0): retry on a new one."""

    def __init__(self, why: str) -> None:
        super().__init__(14, f"the work stream closed: {why}", http_status=0)


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _status(failure: Failure) -> status_pb2.Status:
    """The google.rpc.Status of a failed attempt, with its DebugInfo packed as an Any."""
    status = status_pb2.Status(code=failure.code, message=failure.message)
    if failure.stack or failure.detail:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.DebugInfo(stack_entries=list(failure.stack), detail=failure.detail)
        )
        status.details.append(detail)
    return status


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


def _unanswered(link: _Link, timeout: float) -> None:
    """A call had no answer in time: the stream is deemed broken, and a new one opened."""
    if link.closed is None:
        log.warning("no answer on the work stream in %.0f s; reopening", timeout)
        link.close(f"no answer in {timeout:.0f} s")
        link.call.cancel()


class StreamBackend:
    """Worker calls on the `Work` stream of the server at `url` (`http://host:port`;
    `https://` uses TLS: the system roots, or what `tls` says). `on_cancel(name, lease_id)`
    is called on the event loop for each pushed cancellation; `on_reopen()` after a new
    stream opens, so that the worker reports its running operations on it (the server
    watches for cancellation the operations leased or reported on a stream)."""

    pushes_cancels = True

    def __init__(
        self,
        url: str,
        auth: Authorizer,
        on_cancel: OnCancel,
        on_reopen: Any,
        tls: Tls | None = None,
    ) -> None:
        parts = urlsplit(url)
        target = parts.netloc or parts.path
        if parts.scheme == "https":
            credentials = (tls or Tls()).grpc_credentials()
            self._channel = grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
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
        self._url = url
        self._link: _Link | None = None
        self._opening = asyncio.Lock()
        self._reconnects = Reconnects(url)
        self._closing = False
        self._reviving: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._opened = 0
        self.max_message = MAX_MESSAGE_DEFAULT
        self._batching = True
        self._batch: list[tuple[pb.CompleteRequest, asyncio.Future[None]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        link = self._link
        return link is not None and link.closed is None

    async def _current(self) -> _Link:
        link = self._link
        if link is not None and link.closed is None:
            return link
        async with self._opening:
            link = self._link
            if link is not None and link.closed is None:
                return link
            await self._reconnects.ready()
            try:
                header = await self._auth.header_async()
            except Exception as e:  # a key file's token exchange failed
                why = f"no token: {brief(e)}"
                self._reconnects.failed(why)
                raise StreamClosed(why) from e
            metadata = None if header is None else (("authorization", header),)
            call = self._method(metadata=metadata)
            # The server answers a new stream with its headers at once (they state its
            # message limit); a stream that ends instead was refused or never connected.
            try:
                headers = await asyncio.wait_for(call.initial_metadata(), _OPEN_TIMEOUT)
            except asyncio.TimeoutError:
                call.cancel()
                why = f"no answer within {_OPEN_TIMEOUT:.0f} s"
                self._reconnects.failed(why)
                raise StreamClosed(why) from None
            if call.done():
                code, details = await call.code(), await call.details()
                why = f"{code.name}: {details}"
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    self._reconnects.failed(why)
                    raise StreamClosed(why)
                self._reconnects.failed(why, refused=True)
                raise ApiError(code.value[0], str(details))
            stated = dict(headers).get(MAX_MESSAGE_HEADER)
            self.max_message = int(stated) if stated else MAX_MESSAGE_DEFAULT
            self._reconnects.succeeded()
            link = _Link(call)
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
            if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                log.error("the server refused a message on the work stream: %s", brief(why))
        except asyncio.CancelledError:
            why = "closed"
        finally:
            if not self._closing and link.closed is None:
                log.warning("the work stream to %s ended (%s); reopening", self._url, brief(why))
            link.close(why)
            for task in link.tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            self._revive()

    def _revive(self) -> None:
        """Opens a new stream after one ended, whether or not a call needs it: running
        operations need one for their cancellations to be pushed."""
        if self._closing or (self._reviving is not None and not self._reviving.done()):
            return
        self._reviving = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        while not self._closing:
            try:
                await self._current()
                return
            except ApiError:
                pass  # logged; the next attempt waits for its backoff

    async def _write(self, link: _Link) -> None:
        try:
            while True:
                request = await link.outbox.get()
                try:
                    await link.call.write(request)
                finally:
                    link.outbox.task_done()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError) as e:
            if not self._closing and link.closed is None:
                log.warning("the work stream to %s broke (%s); reopening", self._url, brief(e))
            link.close(f"write failed: {brief(e)}")
            link.call.cancel()
        except asyncio.CancelledError:
            pass

    async def _call(self, timeout: float | None = None, **call: Any) -> pb.WorkResponse:
        """One call on the stream; with `timeout`, StreamClosed when no answer came within
        that many seconds (the stream is then deemed broken)."""
        link = await self._current()
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[pb.WorkResponse] = loop.create_future()
        link.pending[request_id] = future
        link.outbox.put_nowait(pb.WorkRequest(id=request_id, **call))
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _unanswered, link, timeout)
        try:
            response = await future
        finally:
            if timer is not None:
                timer.cancel()
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
        # The server answers by the end of the wait; much later, the stream is broken.
        response = await self._call(timeout=wait + 30.0, lease=request)
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

    async def complete(self, a: Assignment, response: Any, error: Failure | None) -> None:
        """Completions made in the same turn of the event loop go out together in
        `CompleteBatch` messages, as few as the server's message limit allows (each still
        answered on its own); raises `LeaseLost` when the server fenced this one off."""
        request = pb.CompleteRequest(name=a.name, lease_id=a.lease_id)
        if error is None:
            try:
                python_to_value(response, request.response)
            except (TypeError, ValueError) as e:
                error = not_json(e)
        if error is not None:
            request.ClearField("response")
            request.error.CopyFrom(_status(error))
        size = request.ByteSize() + _ENVELOPE
        if size > self.max_message:
            request.error.CopyFrom(_status(too_large(size, self.max_message)))
        if not self._batching:
            return await self._complete_one(request)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._batch.append((request, future))
        if len(self._batch) == 1:
            loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        """Sends the completions gathered in this turn, in batches under the message limit."""
        pending, self._batch = self._batch, []
        limit = self.max_message - _ENVELOPE
        batch: list[tuple[pb.CompleteRequest, asyncio.Future[None]]] = []
        size = 0
        for entry in pending:
            n = entry[0].ByteSize()
            n += 1 + _varint_len(n)
            if batch and size + n > limit:
                self._start(batch)
                batch, size = [], 0
            batch.append(entry)
            size += n
        if batch:
            self._start(batch)

    def _start(self, batch: list[tuple[pb.CompleteRequest, asyncio.Future[None]]]) -> None:
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

    async def release(self, a: Assignment) -> None:
        try:
            await self._call(release=pb.ReleaseRequest(name=a.name, lease_id=a.lease_id))
        except ApiError as e:
            raise _fenced(e) from e

    async def stop_leasing(self, timeout: float) -> None:
        # The server answers at once; a server without the call answers an error, and the
        # leases in flight then end with their waits.
        with contextlib.suppress(ApiError, asyncio.TimeoutError):
            await asyncio.wait_for(self._call(stop_leasing=pb.StopLeasing()), timeout)

    async def close(self, timeout: float) -> None:
        """Half-closes the stream (the server answers what is in flight, then ends it),
        within `timeout` seconds, then closes the channel."""
        self._closing = True
        if self._reviving is not None:
            self._reviving.cancel()
        deadline = time.monotonic() + max(timeout, 0.0)
        link = self._link
        if link is not None:
            if link.closed is None:
                try:
                    await asyncio.wait_for(link.outbox.join(), deadline - time.monotonic())
                    await asyncio.wait_for(link.call.done_writing(), deadline - time.monotonic())
                    await asyncio.wait_for(
                        asyncio.shield(link.tasks[0]), deadline - time.monotonic()
                    )
                except (asyncio.TimeoutError, grpc.aio.AioRpcError, grpc.aio.UsageError):
                    pass
            link.call.cancel()
            for task in link.tasks:
                task.cancel()
        await self._channel.close(grace=None)
