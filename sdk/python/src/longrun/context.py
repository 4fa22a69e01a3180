"""`Context`: what a handler gets for one operation (its name, payload and attempt), the
reports it makes (progress, stages, destinations: sent with the next heartbeat), and the
cancellation signal."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .client import AsyncClient
    from .operation import Operation


@dataclass
class Report:
    """What a heartbeat carries; None leaves the recorded value as it is."""

    progress: float | None = None
    stages: list[dict[str, Any]] | None = None
    destination_uris: list[str] | None = None
    batch_eecu_usage_seconds: float | None = None

    def rest(self) -> dict[str, Any]:
        """The report's fields of a REST heartbeat body."""
        body: dict[str, Any] = {}
        if self.progress is not None:
            body["progress"] = self.progress
        if self.stages is not None:
            body["stages"] = [
                {
                    "displayName": s["displayName"],
                    "description": s.get("description", ""),
                    "completeWorkUnits": str(s.get("completeWorkUnits", 0)),
                    "totalWorkUnits": str(s.get("totalWorkUnits", 0)),
                }
                for s in self.stages
            ]
        if self.destination_uris is not None:
            body["destinationUris"] = self.destination_uris
        if self.batch_eecu_usage_seconds is not None:
            body["batchEecuUsageSeconds"] = self.batch_eecu_usage_seconds
        return body


@dataclass
class Assignment:
    """One leased operation: `name` (`projects/P/operations/ID`), its `type`, the lease id
    that fences every report, the submitted `payload`, the `attempt` (from 1), and the
    operation as leased (a wire JSON dict, made on first use)."""

    name: str
    type: str
    lease_id: str
    payload: Any
    attempt: int
    operation_source: Any = field(default=None, repr=False)
    _operation: Operation | None = field(default=None, repr=False)

    @property
    def operation(self) -> Operation:
        if self._operation is None:
            source = self.operation_source
            if isinstance(source, dict):
                self._operation = cast("Operation", source)
            else:
                from google.protobuf import json_format

                wire = json_format.MessageToDict(source) if source else {}
                self._operation = cast("Operation", wire)
        return self._operation


class Context:
    """Given to a handler. Report methods may be called from any thread (plain `def`
    handlers run in a thread); a report reaches the server within `report_interval`
    seconds of the call that made it (sooner when none went out for that long), and the
    last one before the completion."""

    def __init__(
        self,
        assignment: Assignment,
        loop: asyncio.AbstractEventLoop,
        on_report: Callable[[], None] | None = None,
        client: Callable[[], AsyncClient] | None = None,
    ) -> None:
        self._assignment = assignment
        # The worker's client for children, made on first use.
        self._client = client
        self._loop = loop
        # Called on the loop when a report is made after the last one was taken.
        self._on_report = on_report
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._report = Report()
        self._stages: list[dict[str, Any]] = []
        self._dirty = False
        self._cancelled = False
        self._cancel_event: asyncio.Event | None = None

    @property
    def name(self) -> str:
        """The operation's full name, `projects/P/operations/ID`."""
        return self._assignment.name

    @property
    def type(self) -> str:
        """The operation's type (`EXPORT_IMAGE`)."""
        return self._assignment.type

    @property
    def payload(self) -> Any:
        """The JSON payload given at submit (None without one)."""
        return self._assignment.payload

    @property
    def concurrency_key(self) -> str | None:
        """The `concurrencyKey` given at submit, or None."""
        key = self.operation.get("metadata", {}).get("concurrencyKey")
        return str(key) if key else None

    @property
    def attempt(self) -> int:
        """Which start this is, from 1 (a lapsed lease or `Retry` starts it again)."""
        return self._assignment.attempt

    @property
    def lease_id(self) -> str:
        """The lease id that fences this worker's reports."""
        return self._assignment.lease_id

    @property
    def operation(self) -> Operation:
        """The operation as leased, in its wire JSON form."""
        return self._assignment.operation

    def _children(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("this context has no server to submit children to")
        return self._client()

    async def submit_child(
        self,
        type: str,
        payload: Any = None,
        *,
        description: str = "",
        operation_id: str | None = None,
        request_id: str | None = None,
    ) -> Operation:
        """Submits an operation of `type` as a child of this one (its `metadata.parent`
        names this operation): it may run while this one runs, and it is cancelled when
        this one ends or is cancelled. Returns it PENDING. After this operation was
        cancelled, `ApiError` (400 `FAILED_PRECONDITION`, reason `PARENT_NOT_OPEN`). Sent
        with the worker's credentials, which need submit's permission. For `async def`
        handlers (on the worker's loop)."""
        project = self.name.split("/")[1]
        return await self._children().submit(
            project,
            type,
            payload,
            description=description,
            operation_id=operation_id,
            request_id=request_id,
            parent=self.name,
        )

    async def wait_children(self, names: Sequence[str], timeout: float = 3600.0) -> list[Operation]:
        """Waits until each operation of `names` (children it submitted) is done, up to
        `timeout` seconds in all; returns them in order, as they stand (one not done by
        then is returned as it is)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        client = self._children()
        return [await client.wait(name, timeout=max(deadline - loop.time(), 0.0)) for name in names]

    def progress(self, fraction: float) -> None:
        """Reports progress, 0.0..1.0 (clamped)."""
        with self._lock:
            self._report.progress = min(max(float(fraction), 0.0), 1.0)
            fresh = self._mark()
        self._tell(fresh)

    def stage(
        self, display_name: str, done: int = 0, total: int = 0, description: str = ""
    ) -> None:
        """Reports a stage's work units (`done` of `total`); a new `display_name` adds a
        stage, a known one is updated. The operation's stages are replaced by this list."""
        with self._lock:
            stage = next((s for s in self._stages if s["displayName"] == display_name), None)
            if stage is None:
                stage = {"displayName": display_name}
                self._stages.append(stage)
            stage.update(
                description=description or stage.get("description", ""),
                completeWorkUnits=int(done),
                totalWorkUnits=int(total),
            )
            self._report.stages = [dict(s) for s in self._stages]
            fresh = self._mark()
        self._tell(fresh)

    def destination(self, uri: str) -> None:
        """Adds a destination URI (where the results go, e.g. `gs://bucket/x.tif`)."""
        with self._lock:
            uris = list(self._report.destination_uris or [])
            if uri not in uris:
                uris.append(uri)
            self._report.destination_uris = uris
            fresh = self._mark()
        self._tell(fresh)

    def eecu_seconds(self, seconds: float) -> None:
        """Reports the compute used so far (`batchEecuUsageSeconds`, in EECU-seconds)."""
        with self._lock:
            self._report.batch_eecu_usage_seconds = float(seconds)
            fresh = self._mark()
        self._tell(fresh)

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested (or the worker is letting this go)."""
        return self._cancelled

    def raise_if_cancelled(self) -> None:
        """For plain `def` handlers: raises `asyncio.CancelledError` once cancellation was
        requested, which ends the operation CANCELLED (code 1)."""
        if self._cancelled:
            raise asyncio.CancelledError()

    async def cancellation(self) -> None:
        """Returns when cancellation is requested (at once if it already was)."""
        if self._cancel_event is None:
            self._cancel_event = asyncio.Event()
            if self._cancelled:
                self._cancel_event.set()
        await self._cancel_event.wait()

    # The worker's side.

    def _mark(self) -> bool:
        """Marks a report as made (under the lock); True if it is the first since the last
        one was taken."""
        fresh = not self._dirty
        self._dirty = True
        return fresh

    def _tell(self, fresh: bool) -> None:
        """Tells the worker of a new report, on its loop, so that it is sent in time."""
        if not fresh or self._on_report is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._on_report()
        else:
            # A closed loop: the worker is gone, and so is the report's reader.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_report)

    def _set_cancelled(self) -> None:
        """Marks the cancellation; called on the event loop."""
        self._cancelled = True
        if self._cancel_event is not None:
            self._cancel_event.set()

    def _take_report(self) -> Report | None:
        """The report made since the last one, or None if nothing changed."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            report = self._report
            # Stages and destinations are sent whole each time; progress only when set.
            self._report = Report(stages=report.stages, destination_uris=report.destination_uris)
            return report

    def _put_back(self, report: Report) -> None:
        """A report that could not be sent: what was not reported again since goes with
        the next one."""
        with self._lock:
            current = self._report
            if current.progress is None:
                current.progress = report.progress
            if current.batch_eecu_usage_seconds is None:
                current.batch_eecu_usage_seconds = report.batch_eecu_usage_seconds
            self._dirty = True

    @property
    def _has_report(self) -> bool:
        return self._dirty
