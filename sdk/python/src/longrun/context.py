"""`Context`: what a handler gets for one operation (its name, payload and attempt), the
reports it makes (progress, stages, destinations: sent with the next heartbeat), and the
cancellation signal (contract sections 6 and 14)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    """What a heartbeat carries; None leaves the recorded value as it is."""

    progress: float | None = None
    stages: list[dict[str, Any]] | None = None
    destination_uris: list[str] | None = None
    batch_eecu_usage_seconds: float | None = None

    def rest(self) -> dict[str, Any]:
        """The report's fields of a REST heartbeat body (contract section 6)."""
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
    _operation: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def operation(self) -> dict[str, Any]:
        if self._operation is None:
            source = self.operation_source
            if isinstance(source, dict):
                self._operation = source
            else:
                from google.protobuf import json_format

                self._operation = json_format.MessageToDict(source) if source else {}
        return self._operation


class Context:
    """Given to a handler. Report methods may be called from any thread (plain `def`
    handlers run in a thread); reports go out with the next heartbeat (at most every
    `report_interval` seconds) and before the completion."""

    def __init__(self, assignment: Assignment, loop: asyncio.AbstractEventLoop) -> None:
        self._assignment = assignment
        self._loop = loop
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
        """The `concurrencyKey` given at submit, or None (contract section 12)."""
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
    def operation(self) -> dict[str, Any]:
        """The operation as leased, in its wire JSON form (contract section 3.1)."""
        return self._assignment.operation

    def progress(self, fraction: float) -> None:
        """Reports progress, 0.0..1.0 (clamped)."""
        with self._lock:
            self._report.progress = min(max(float(fraction), 0.0), 1.0)
            self._dirty = True

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
            self._dirty = True

    def destination(self, uri: str) -> None:
        """Adds a destination URI (where the results go, e.g. `gs://bucket/x.tif`)."""
        with self._lock:
            uris = list(self._report.destination_uris or [])
            if uri not in uris:
                uris.append(uri)
            self._report.destination_uris = uris
            self._dirty = True

    def eecu_seconds(self, seconds: float) -> None:
        """Reports the compute used so far (`batchEecuUsageSeconds`, in EECU-seconds)."""
        with self._lock:
            self._report.batch_eecu_usage_seconds = float(seconds)
            self._dirty = True

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

    @property
    def _has_report(self) -> bool:
        return self._dirty
