"""The wire JSON of an operation, typed: `Operation` and the dicts inside it are TypedDicts
of exactly what the server sends (so `op["metadata"]["state"]` is a plain string, and a type
checker knows every field), and `State` names the states.

Keys the server omits when empty (proto3 JSON) are optional: read them with `.get()`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, TypedDict


class State(str, Enum):
    """An operation's `metadata.state`. A member equals its name as a string, so
    `op["metadata"]["state"] == State.SUCCEEDED` holds for a succeeded operation."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value

    @property
    def done(self) -> bool:
        """True for the three terminal states."""
        return self in (State.SUCCEEDED, State.FAILED, State.CANCELLED)


class WaitingReason(str, Enum):
    """Why a PENDING operation waits (`metadata.waitingReason`). `PAUSED` and `PARENT` are
    reserved: the server does not give them yet."""

    SCHEDULED = "SCHEDULED"
    PAUSED = "PAUSED"
    PARENT = "PARENT"
    NO_WORKER = "NO_WORKER"
    PROJECT_RUNNING_LIMIT = "PROJECT_RUNNING_LIMIT"
    EXPORT_LIMIT = "EXPORT_LIMIT"
    KEY_LIMIT = "KEY_LIMIT"
    QUEUED = "QUEUED"

    def __str__(self) -> str:
        return self.value


StateName = Literal["PENDING", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"]


class _StageRequired(TypedDict):
    displayName: str
    # int64 in proto3 JSON: a string of digits.
    completeWorkUnits: str
    totalWorkUnits: str


class Stage(_StageRequired, total=False):
    """One stage of the work: `completeWorkUnits` of `totalWorkUnits` (strings of digits)."""

    description: str


class Notification(TypedDict):
    """A notice the worker attached (`severity`: SEVERITY_UNSPECIFIED, WARNING, SEVERE)."""

    topic: str
    detail: str
    severity: str


# `@type` is not a Python identifier, hence the functional form.
_MetadataRequired = TypedDict(
    "_MetadataRequired",
    {
        "@type": str,
        "state": StateName,
        "description": str,
        "type": str,
        "priority": int,
        "createTime": str,
        "updateTime": str,
        "attempt": int,
    },
)


class OperationMetadata(_MetadataRequired, total=False):
    """`metadata`: Earth Engine's OperationMetadata. Times are RFC 3339 strings
    (`2026-11-28T00:15:41.123Z`); `startTime` once started, `endTime` once done."""

    startTime: str
    endTime: str
    progress: float
    stages: list[Stage]
    scriptUri: str
    destinationUris: list[str]
    notifications: list[Notification]
    batchEecuUsageSeconds: float
    concurrencyKey: str
    # The operation this one retries (`Client.retry`).
    retryOf: str
    # The operation this one is a child of (`parent` on submit).
    parent: str
    scheduleTime: str
    # A duration, e.g. "90s".
    startTimeout: str
    # While PENDING: a `WaitingReason` name.
    waitingReason: str
    # The schedule that started it (`projects/P/schedules/ID`), when one did.
    schedule: str


class _StatusRequired(TypedDict):
    code: int
    message: str


class Status(_StatusRequired, total=False):
    """`error`: a google.rpc.Status. `code` is a google.rpc code (see `longrun.Code`);
    `details` are Any messages as dicts with `@type` (ErrorInfo, DebugInfo, ...)."""

    details: list[dict[str, Any]]


class _OperationRequired(TypedDict):
    name: str
    metadata: OperationMetadata
    done: bool


class Operation(_OperationRequired, total=False):
    """An operation as the server sends it. Once `done`, exactly one of `error` and
    `response` is present; a worker's JSON result is `response["value"]` (the server keeps it
    as a `google.protobuf.Struct`, `{"@type": ".../google.protobuf.Struct", "value": ...}`)."""

    error: Status
    response: dict[str, Any]
