"""`Client` and `AsyncClient`: submit, get, list, wait, watch, cancel, batch cancel, delete,
command output, schedules and queues over REST. Operations are the wire JSON, typed as
`longrun.Operation`; schedules as `longrun.Schedule`, queues as `longrun.Queue`."""

from __future__ import annotations

import asyncio
import builtins
import datetime
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Literal, cast

import httpx

from ._auth import Authorizer, Token
from ._transport.rest import AsyncRest, Rest, answer, path, unreachable
from ._transport.sse import Parser, Raw
from .operation import Operation
from .queue import Queue, queue_path, queues_path
from .schedule import OverlapPolicy, Schedule, schedule_body
from .tls import Tls

log = logging.getLogger("longrun.client")

# Added to a wait's own timeout for the HTTP call, so the answer has time to arrive.
_WAIT_SLACK = 10.0
# A watch stream sends a comment at least every 15 s; silence this long means it is gone.
_WATCH_READ_TIMEOUT = 60.0
# A watch whose connection breaks is reopened from its last cursor, this many times in a
# row (backing off from 100 ms, doubling) before the error is raised.
_WATCH_RECONNECTS = 5


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch stream.

    Attributes:
        kind: `"operation"` (an operation as it now stands: at first one per matching
            operation, then one per change), `"deleted"`, `"synced"` (the snapshot, or the
            replay after a resume, is complete) or `"reset"` (the cursor was not recognised:
            a fresh snapshot follows).
        name: the operation's name (`"operation"` and `"deleted"`), else `""`.
        operation: the operation (`"operation"` only).
        cursor: the event's id; `watch(..., resume=cursor)` continues after it.
    """

    kind: Literal["operation", "deleted", "synced", "reset"]
    name: str = ""
    operation: Operation | None = None
    cursor: str | None = None


def _event(raw: Raw) -> WatchEvent | None:
    data = raw.data if isinstance(raw.data, dict) else {}
    if raw.event == "operation":
        op = cast(Operation, data)
        return WatchEvent("operation", str(op.get("name", "")), op, raw.id)
    if raw.event == "deleted":
        return WatchEvent("deleted", str(data.get("name", "")), None, raw.id)
    if raw.event == "synced":
        return WatchEvent("synced", cursor=raw.id)
    if raw.event == "reset":
        return WatchEvent("reset")
    return None


def _watch_params(filter: str | None, changes_only: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if filter:
        params["filter"] = filter
    if changes_only:
        params["snapshot"] = "false"
    return params


def _watch_timeout() -> httpx.Timeout:
    return httpx.Timeout(10.0, read=_WATCH_READ_TIMEOUT)


def duration(seconds: float) -> str:
    """Seconds as a proto3 JSON duration (`"3.500s"`)."""
    return f"{max(seconds, 0.0):.3f}s"


def _time(t: datetime.datetime | str) -> str:
    """An RFC 3339 time as the server reads it; a naive datetime is taken as UTC."""
    if isinstance(t, str):
        return t
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    t = t.astimezone(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _submission(
    type: str,
    payload: Any,
    description: str,
    priority: int | None,
    request_id: str | None,
    operation_id: str | None,
    max_attempts: int | None,
    timeout: float | None,
    script_uri: str | None,
    destination_uris: list[str] | None,
    concurrency_key: str | None,
    schedule_time: datetime.datetime | str | None,
    start_timeout: float | None,
    parent: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type, "description": description}
    optional = {
        "payload": payload,
        "priority": priority,
        "requestId": request_id,
        "operationId": operation_id,
        "maxAttempts": max_attempts,
        "timeout": None if timeout is None else duration(timeout),
        "scriptUri": script_uri,
        "destinationUris": destination_uris,
        "concurrencyKey": concurrency_key,
        "scheduleTime": None if schedule_time is None else _time(schedule_time),
        "startTimeout": None if start_timeout is None else duration(start_timeout),
        "parent": parent,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def _retry(operation_id: str | None, request_id: str | None) -> dict[str, Any]:
    """The body of a retry."""
    body: dict[str, Any] = {}
    if operation_id is not None:
        body["operationId"] = operation_id
    if request_id is not None:
        body["requestId"] = request_id
    return body


def _page_params(filter: str | None, page_size: int | None, token: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if filter:
        params["filter"] = filter
    if page_size is not None:
        params["pageSize"] = page_size
    if token:
        params["pageToken"] = token
    return params


class Client:
    """Blocking client of one server.

    Args:
        url: the server, e.g. `"http://127.0.0.1:8080"`.
        token: a bearer token, or a callable returning one, for auth mode `oauth`.
        credentials_file: instead of `token`, a service-account key file (needs google-auth).
        timeout: seconds for one HTTP call (a wait's call gets its own timeout on top).
        tls: for an `https://` server: its CA and this client's certificate (`longrun.Tls`).

    Every method raises `longrun.ApiError` for an error answer (its `.code` is the
    google.rpc code as a `longrun.Code`, `.reason` the ErrorInfo reason), and `ApiError`
    with code 14 and `http_status` 0 when the server cannot be reached. Names are full
    operation names, `projects/P/operations/ID`, as in `op["name"]`.
    """

    def __init__(
        self,
        url: str,
        token: Token = None,
        *,
        credentials_file: str | None = None,
        timeout: float = 60.0,
        tls: Tls | None = None,
    ) -> None:
        self._rest = Rest(url, Authorizer(token, credentials_file), timeout, tls)

    def submit(
        self,
        project: str,
        type: str,
        payload: Any = None,
        *,
        description: str = "",
        priority: int | None = None,
        request_id: str | None = None,
        operation_id: str | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        script_uri: str | None = None,
        destination_uris: list[str] | None = None,
        concurrency_key: str | None = None,
        schedule_time: datetime.datetime | str | None = None,
        start_timeout: float | None = None,
        parent: str | None = None,
    ) -> Operation:
        """Queues an operation of `type` in `project`; returns it PENDING. `payload` is any
        JSON value, handed to the worker; `timeout` is in seconds (then FAILED with code 4).
        The same `request_id` again returns the first operation; a used `operation_id` is
        409 ALREADY_EXISTS; a full queue is 429 RESOURCE_EXHAUSTED. `concurrency_key`
        (1 to 256 bytes) groups operations for the type's `key_concurrency`: at most that
        many of one key run at once in the project; it is read back
        as `metadata.concurrencyKey`. `schedule_time` (a datetime, naive ones in UTC, or an
        RFC 3339 string) holds the operation back until then; `start_timeout` (seconds, more
        than zero) fails it with code 4 if it has not started that long after
        `schedule_time` (or its creation). While PENDING, `metadata.waitingReason` says why
        it waits (`longrun.WaitingReason`). `parent` (an operation name of the same
        project, PENDING or RUNNING) submits it as that operation's child: it waits while
        the parent is PENDING and is cancelled when the parent ends or is cancelled; it is
        read back as `metadata.parent` (400 FAILED_PRECONDITION `PARENT_NOT_OPEN` when the
        parent is CANCELLING, done or missing)."""
        body = _submission(
            type, payload, description, priority, request_id, operation_id,
            max_attempts, timeout, script_uri, destination_uris, concurrency_key,
            schedule_time, start_timeout, parent,
        )  # fmt: skip
        result: Operation = self._rest.call(
            "POST", path(f"projects/{project}/operations:submit"), body
        )
        return result

    def submit_batch(
        self, project: str, requests: Sequence[Mapping[str, Any]]
    ) -> builtins.list[Operation]:
        """Queues 1 to 1,000 operations in one durable write, all or none; returns them in
        the order of `requests`. Each request is a submit body as the API takes it
        (`{"type": ..., "payload": ..., "requestId": ...}`, camelCase keys). An invalid
        one is 400 (the message starts `requests[i]: `), a used `operationId` 409, a queue
        the batch would overfill 429; nothing is queued then. A `requestId` seen before
        (earlier in the batch too) gives the operation it first created."""
        body = {"requests": [dict(r) for r in requests]}
        url = path(f"projects/{project}/operations:batchSubmit")
        result: builtins.list[Operation] = self._rest.call("POST", url, body)["operations"]
        return result

    def get(self, name: str) -> Operation:
        """The operation's latest state; 404 NOT_FOUND when unknown."""
        result: Operation = self._rest.call("GET", path(name))
        return result

    def list(
        self, project: str, filter: str | None = None, page_size: int | None = None
    ) -> Iterator[Operation]:
        """Every operation of `project` matching `filter` (AIP-160: `done = false`,
        `metadata.state = "RUNNING" AND metadata.type = "EXPORT_IMAGE"`), newest
        first, fetched a page (`page_size`, default 100) at a time as the loop goes on."""
        token: str | None = None
        while True:
            params = _page_params(filter, page_size, token)
            page = self._rest.call("GET", path(f"projects/{project}/operations"), params=params)
            yield from page.get("operations", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def cancel(self, name: str) -> None:
        """Asks for cancellation: a PENDING operation ends CANCELLED at once, a RUNNING one
        becomes CANCELLING and its worker is told. The intent is durable when this returns.
        Sent with an empty body (the server accepts one), in one packet."""
        self._rest.call("POST", path(name, "cancel"))

    def delete(self, name: str) -> None:
        """Removes a done operation; 400 FAILED_PRECONDITION while it is not done."""
        self._rest.call("DELETE", path(name))

    def batch_cancel(self, project: str, filter: str) -> Operation:
        """Cancels every operation of `project` matching `filter` that is not done, in the
        background: returns the `BATCH_CANCEL` operation doing it (wait for it; its
        response counts `matchedCount`, `cancelledCount`, `alreadyDoneCount`)."""
        url = path(f"projects/{project}/operations:batchCancel")
        result: Operation = self._rest.call("POST", url, {"filter": filter})
        return result

    def retry(
        self, name: str, operation_id: str | None = None, request_id: str | None = None
    ) -> Operation:
        """Runs the done operation `name` again: returns a new PENDING operation with the
        type, payload, description, priority, `concurrency_key`, attempts and timeout it was
        submitted with, whose `metadata.retryOf` names it (the original is not changed).
        `operation_id` names the new one; the same `request_id` again returns the same
        retry. Not done: 400 FAILED_PRECONDITION."""
        result: Operation = self._rest.call(
            "POST", path(name, "retry"), _retry(operation_id, request_id)
        )
        return result

    def batch_retry(self, project: str, filter: str) -> Operation:
        """Retries every done operation of `project` matching `filter`, in the background:
        returns the `BATCH_RETRY` operation doing it (wait for it; its response counts
        `matchedCount`, `retriedCount`, `notDoneCount`)."""
        url = path(f"projects/{project}/operations:batchRetry")
        result: Operation = self._rest.call("POST", url, {"filter": filter})
        return result

    def output(self, name: str) -> str:
        """What a `command` operation printed (stdout and stderr, the first 1 MiB); `""`
        for other operations."""
        answered = self._rest.call("GET", path(f"operationOutputs/{name}"))
        return str(answered.get("output", ""))

    def create_schedule(
        self,
        project: str,
        cron: str,
        operation: dict[str, Any],
        *,
        schedule_id: str | None = None,
        time_zone: str | None = None,
        overlap_policy: OverlapPolicy | None = None,
        paused: bool = False,
    ) -> Schedule:
        """Creates a schedule that submits `operation` (a submit body without `operationId`
        and `requestId`: `{"type": ..., "payload": ...}`) at each fire time of `cron`
        (5 fields, or 6 with seconds first) in `time_zone` (IANA, default UTC). A taken
        `schedule_id` is 409 ALREADY_EXISTS; a bad pattern, zone or operation 400."""
        body = schedule_body(cron, operation, time_zone, overlap_policy, paused)
        if schedule_id is not None:
            body["scheduleId"] = schedule_id
        result: Schedule = self._rest.call("POST", path(f"projects/{project}/schedules"), body)
        return result

    def get_schedule(self, name: str) -> Schedule:
        """The schedule `projects/P/schedules/ID`; 404 NOT_FOUND when unknown."""
        result: Schedule = self._rest.call("GET", path(name))
        return result

    def list_schedules(self, project: str, page_size: int | None = None) -> Iterator[Schedule]:
        """Every schedule of `project`, in name order, a page at a time."""
        token: str | None = None
        while True:
            params = _page_params(None, page_size, token)
            page = self._rest.call("GET", path(f"projects/{project}/schedules"), params=params)
            yield from page.get("schedules", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def update_schedule(
        self,
        name: str,
        *,
        cron: str | None = None,
        operation: dict[str, Any] | None = None,
        time_zone: str | None = None,
        overlap_policy: OverlapPolicy | None = None,
        paused: bool | None = None,
    ) -> Schedule:
        """Changes the fields given (and only those); a new pattern or zone counts the next
        fire time from now."""
        body = schedule_body(cron, operation, time_zone, overlap_policy, paused)
        params = {"updateMask": ",".join(body)}
        result: Schedule = self._rest.call("PATCH", path(name), body, params=params)
        return result

    def pause_schedule(self, name: str) -> Schedule:
        """Stops firing; fire times that pass while paused are not caught up."""
        return self.update_schedule(name, paused=True)

    def resume_schedule(self, name: str) -> Schedule:
        """Fires again, from the next fire time after now."""
        return self.update_schedule(name, paused=False)

    def delete_schedule(self, name: str) -> None:
        """Removes the schedule; the operations it started stay."""
        self._rest.call("DELETE", path(name))

    def get_queue(self, project: str, op_type: str) -> Queue:
        """The queue of `op_type` in `project` (`"-"`: every type together): its state, its
        exact PENDING and RUNNING counts and its oldest PENDING time. A type that never had
        work answers an empty queue."""
        result: Queue = self._rest.call("GET", queue_path(project, op_type))
        return result

    def list_queues(self, project: str) -> builtins.list[Queue]:
        """The project's queues with PENDING or RUNNING work or a pause, by type."""
        page = self._rest.call("GET", queues_path(project))
        queues: builtins.list[Queue] = page.get("queues", [])
        return queues

    def pause_queue(self, project: str, op_type: str) -> Queue:
        """Stops every server leasing from the queue (`"-"`: every type of the project)
        until it is resumed; submits, cancels and running work go on. Needs the admin
        role."""
        result: Queue = self._rest.call("POST", queue_path(project, op_type, "pause"))
        return result

    def resume_queue(self, project: str, op_type: str) -> Queue:
        """Leases from the queue again (`"-"`: every queue of the project); waiting workers
        are woken at once. 400 FAILED_PRECONDITION for one type while `"-"` is paused."""
        result: Queue = self._rest.call("POST", queue_path(project, op_type, "resume"))
        return result

    def watch(
        self,
        project: str,
        filter: str | None = None,
        *,
        changes_only: bool = False,
        resume: str | None = None,
    ) -> Generator[WatchEvent, None, None]:
        """The operations of `project` matching `filter` as they change, from the server's
        event stream: first each one as it stands (unless `changes_only`), then `synced`,
        then every change, until the loop stops (`close()` ends the stream at once). A
        connection that breaks is reopened from the last event's cursor, so nothing is lost
        or repeated (five failed attempts in a row raise `ApiError` 14); `resume=cursor`
        starts after that event."""
        url = path(f"projects/{project}/operations:watch")
        params = _watch_params(filter, changes_only)
        cursor, failures = resume, 0
        while True:
            headers = {"accept": "text/event-stream"}
            if (value := self._rest.auth.header()) is not None:
                headers["authorization"] = value
            if cursor:
                headers["last-event-id"] = cursor
            try:
                with self._rest.http.stream(
                    "GET", url, params=params, headers=headers, timeout=_watch_timeout()
                ) as response:
                    if not response.is_success:
                        response.read()
                        answer(response)
                    failures = 0
                    parser = Parser()
                    for line in response.iter_lines():
                        raw = parser.feed(line)
                        if raw is None:
                            continue
                        if raw.id:
                            cursor = raw.id
                        event = _event(raw)
                        if event is not None:
                            yield event
            except httpx.HTTPError as e:
                failures += 1
                if failures > _WATCH_RECONNECTS:
                    raise unreachable(e) from e
                delay = 0.1 * 2 ** (failures - 1)
                log.warning("watch of %s broke (%s); reopening in %.1f s", project, e, delay)
                time.sleep(delay)

    def wait(self, name: str, timeout: float = 30.0) -> Operation:
        """Waits up to `timeout` seconds for the operation to be done and returns it (done
        or not). The server caps one wait (600 s by default); the call is repeated until
        `timeout` has passed."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            op: Operation = self._rest.call(
                "POST", path(name, "wait"), {"timeout": duration(left)}, timeout=left + _WAIT_SLACK
            )
            if op.get("done") or deadline - time.monotonic() <= 0:
                return op

    def close(self) -> None:
        """Closes the connections."""
        self._rest.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The same methods as `Client`, awaitable; `list` is an async iterator."""

    def __init__(
        self,
        url: str,
        token: Token = None,
        *,
        credentials_file: str | None = None,
        timeout: float = 60.0,
        tls: Tls | None = None,
        _authorizer: Authorizer | None = None,
    ) -> None:
        # `_authorizer`: the credentials of a worker whose handlers submit children.
        auth = _authorizer or Authorizer(token, credentials_file)
        self._rest = AsyncRest(url, auth, timeout, tls=tls)

    async def submit(
        self,
        project: str,
        type: str,
        payload: Any = None,
        *,
        description: str = "",
        priority: int | None = None,
        request_id: str | None = None,
        operation_id: str | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        script_uri: str | None = None,
        destination_uris: list[str] | None = None,
        concurrency_key: str | None = None,
        schedule_time: datetime.datetime | str | None = None,
        start_timeout: float | None = None,
        parent: str | None = None,
    ) -> Operation:
        """See `Client.submit`."""
        body = _submission(
            type, payload, description, priority, request_id, operation_id,
            max_attempts, timeout, script_uri, destination_uris, concurrency_key,
            schedule_time, start_timeout, parent,
        )  # fmt: skip
        url = path(f"projects/{project}/operations:submit")
        result: Operation = await self._rest.call("POST", url, body)
        return result

    async def submit_batch(
        self, project: str, requests: Sequence[Mapping[str, Any]]
    ) -> builtins.list[Operation]:
        """See `Client.submit_batch`."""
        body = {"requests": [dict(r) for r in requests]}
        url = path(f"projects/{project}/operations:batchSubmit")
        answer = await self._rest.call("POST", url, body)
        result: builtins.list[Operation] = answer["operations"]
        return result

    async def get(self, name: str) -> Operation:
        """See `Client.get`."""
        result: Operation = await self._rest.call("GET", path(name))
        return result

    async def list(
        self, project: str, filter: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Operation]:
        """See `Client.list`; iterate with `async for`."""
        token: str | None = None
        while True:
            params = _page_params(filter, page_size, token)
            url = path(f"projects/{project}/operations")
            page = await self._rest.call("GET", url, params=params)
            for op in page.get("operations", []):
                yield op
            token = page.get("nextPageToken")
            if not token:
                return

    async def cancel(self, name: str) -> None:
        """See `Client.cancel`."""
        await self._rest.call("POST", path(name, "cancel"))

    async def delete(self, name: str) -> None:
        """See `Client.delete`."""
        await self._rest.call("DELETE", path(name))

    async def batch_cancel(self, project: str, filter: str) -> Operation:
        """See `Client.batch_cancel`."""
        url = path(f"projects/{project}/operations:batchCancel")
        result: Operation = await self._rest.call("POST", url, {"filter": filter})
        return result

    async def retry(
        self, name: str, operation_id: str | None = None, request_id: str | None = None
    ) -> Operation:
        """See `Client.retry`."""
        body = _retry(operation_id, request_id)
        result: Operation = await self._rest.call("POST", path(name, "retry"), body)
        return result

    async def batch_retry(self, project: str, filter: str) -> Operation:
        """See `Client.batch_retry`."""
        url = path(f"projects/{project}/operations:batchRetry")
        result: Operation = await self._rest.call("POST", url, {"filter": filter})
        return result

    async def output(self, name: str) -> str:
        """See `Client.output`."""
        answered = await self._rest.call("GET", path(f"operationOutputs/{name}"))
        return str(answered.get("output", ""))

    async def create_schedule(
        self,
        project: str,
        cron: str,
        operation: dict[str, Any],
        *,
        schedule_id: str | None = None,
        time_zone: str | None = None,
        overlap_policy: OverlapPolicy | None = None,
        paused: bool = False,
    ) -> Schedule:
        """See `Client.create_schedule`."""
        body = schedule_body(cron, operation, time_zone, overlap_policy, paused)
        if schedule_id is not None:
            body["scheduleId"] = schedule_id
        url = path(f"projects/{project}/schedules")
        result: Schedule = await self._rest.call("POST", url, body)
        return result

    async def get_schedule(self, name: str) -> Schedule:
        """See `Client.get_schedule`."""
        result: Schedule = await self._rest.call("GET", path(name))
        return result

    async def list_schedules(
        self, project: str, page_size: int | None = None
    ) -> AsyncIterator[Schedule]:
        """See `Client.list_schedules`; iterate with `async for`."""
        token: str | None = None
        while True:
            params = _page_params(None, page_size, token)
            url = path(f"projects/{project}/schedules")
            page = await self._rest.call("GET", url, params=params)
            for schedule in page.get("schedules", []):
                yield schedule
            token = page.get("nextPageToken")
            if not token:
                return

    async def update_schedule(
        self,
        name: str,
        *,
        cron: str | None = None,
        operation: dict[str, Any] | None = None,
        time_zone: str | None = None,
        overlap_policy: OverlapPolicy | None = None,
        paused: bool | None = None,
    ) -> Schedule:
        """See `Client.update_schedule`."""
        body = schedule_body(cron, operation, time_zone, overlap_policy, paused)
        params = {"updateMask": ",".join(body)}
        result: Schedule = await self._rest.call("PATCH", path(name), body, params=params)
        return result

    async def pause_schedule(self, name: str) -> Schedule:
        """See `Client.pause_schedule`."""
        return await self.update_schedule(name, paused=True)

    async def resume_schedule(self, name: str) -> Schedule:
        """See `Client.resume_schedule`."""
        return await self.update_schedule(name, paused=False)

    async def delete_schedule(self, name: str) -> None:
        """See `Client.delete_schedule`."""
        await self._rest.call("DELETE", path(name))

    async def get_queue(self, project: str, op_type: str) -> Queue:
        """See `Client.get_queue`."""
        result: Queue = await self._rest.call("GET", queue_path(project, op_type))
        return result

    async def list_queues(self, project: str) -> builtins.list[Queue]:
        """See `Client.list_queues`."""
        page = await self._rest.call("GET", queues_path(project))
        queues: builtins.list[Queue] = page.get("queues", [])
        return queues

    async def pause_queue(self, project: str, op_type: str) -> Queue:
        """See `Client.pause_queue`."""
        result: Queue = await self._rest.call("POST", queue_path(project, op_type, "pause"))
        return result

    async def resume_queue(self, project: str, op_type: str) -> Queue:
        """See `Client.resume_queue`."""
        result: Queue = await self._rest.call("POST", queue_path(project, op_type, "resume"))
        return result

    async def watch(
        self,
        project: str,
        filter: str | None = None,
        *,
        changes_only: bool = False,
        resume: str | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        """See `Client.watch`; iterate with `async for`."""
        url = path(f"projects/{project}/operations:watch")
        params = _watch_params(filter, changes_only)
        cursor, failures = resume, 0
        while True:
            headers = {"accept": "text/event-stream"}
            if (value := await self._rest.auth.header_async()) is not None:
                headers["authorization"] = value
            if cursor:
                headers["last-event-id"] = cursor
            try:
                async with self._rest.http.stream(
                    "GET", url, params=params, headers=headers, timeout=_watch_timeout()
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        answer(response)
                    failures = 0
                    parser = Parser()
                    async for line in response.aiter_lines():
                        raw = parser.feed(line)
                        if raw is None:
                            continue
                        if raw.id:
                            cursor = raw.id
                        event = _event(raw)
                        if event is not None:
                            yield event
            except httpx.HTTPError as e:
                failures += 1
                if failures > _WATCH_RECONNECTS:
                    raise unreachable(e) from e
                delay = 0.1 * 2 ** (failures - 1)
                log.warning("watch of %s broke (%s); reopening in %.1f s", project, e, delay)
                await asyncio.sleep(delay)

    async def wait(self, name: str, timeout: float = 30.0) -> Operation:
        """See `Client.wait`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            op: Operation = await self._rest.call(
                "POST", path(name, "wait"), {"timeout": duration(left)}, timeout=left + _WAIT_SLACK
            )
            if op.get("done") or deadline - time.monotonic() <= 0:
                return op

    async def close(self) -> None:
        """Closes the connections."""
        await self._rest.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
