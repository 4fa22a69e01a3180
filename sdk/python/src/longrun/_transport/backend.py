"""The worker protocol (contract section 6) as the worker loop sees it, whatever carries
it: lease, heartbeat and complete, with `LeaseLost` for a report the server fenced off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..context import Assignment, Report

# Called with (operation name, lease id) when the server pushes a cancellation.
OnCancel = Callable[[str, str], None]


class LeaseLost(Exception):
    """The lease is gone (409 ABORTED or 404 NOT_FOUND): the operation was cancelled past
    its grace, expired, or leased again; its result is dropped."""


class Backend(Protocol):
    """How a worker talks to the server."""

    # True when cancellations are pushed on their own (the gRPC stream); else each running
    # operation keeps a heartbeat waiting for its cancellation (`waitForCancel`).
    pushes_cancels: bool

    async def lease(
        self, worker: str, types: list[str], max_operations: int, wait: float, lease: float
    ) -> list[Assignment]:
        """Up to `max_operations` operations, waiting up to `wait` seconds for one."""
        ...

    async def heartbeat(self, a: Assignment, report: Report | None, wait_for_cancel: float) -> bool:
        """Extends the lease, sends `report`; True when cancellation was requested."""
        ...

    async def complete(self, a: Assignment, response: Any, error: tuple[int, str] | None) -> None:
        """Ends the attempt with `response`, or with `error` (google.rpc code, message)."""
        ...

    async def close(self) -> None: ...
