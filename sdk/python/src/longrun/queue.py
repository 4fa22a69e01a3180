"""The wire JSON of a queue (docs/queues.md), typed: a project's operations of one type, with
exact counts; a paused queue is leased from by nobody."""

from __future__ import annotations

from typing import Literal, TypedDict
from urllib.parse import quote

from ._transport import API

QueueState = Literal["RUNNING", "PAUSED"]


class _QueueRequired(TypedDict):
    name: str
    state: QueueState
    pendingCount: str
    runningCount: str


class Queue(_QueueRequired, total=False):
    """A queue as the server sends it: `projects/P/queues/TYPE` (`-`: every type of the
    project). The counts are int64 decimal strings (proto3 JSON); `oldestPendingTime` is
    absent when no PENDING operation can be leased."""

    oldestPendingTime: str


def queue_path(project: str, op_type: str, verb: str = "") -> str:
    """`/v1/projects/P/queues/TYPE[:verb]`, the type one percent-encoded segment."""
    url = f"{API}/projects/{quote(project, safe='')}/queues/{quote(op_type, safe='')}"
    return url + (f":{verb}" if verb else "")


def queues_path(project: str) -> str:
    """`/v1/projects/P/queues`."""
    return f"{API}/projects/{quote(project, safe='')}/queues"
