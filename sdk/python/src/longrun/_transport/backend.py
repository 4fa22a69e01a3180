"""The worker protocol as the worker loop sees it, whatever carries it: lease, heartbeat,
complete and release, with `LeaseLost` for a report the server fenced off; `Failure`, the
error an attempt ends with; and `Reconnects`, which spaces out the attempts to reach a
server that is down and logs one line for each."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..context import Assignment, Report
from ..errors import ApiError

log = logging.getLogger("longrun.worker")

# Called with (operation name, lease id) when the server pushes a cancellation.
OnCancel = Callable[[str, str], None]

DEBUG_INFO = "type.googleapis.com/google.rpc.DebugInfo"

# Backoff between attempts to reach the server: from 50 ms, doubling, at most 5 s.
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 5.0


class LeaseLost(Exception):
    """The lease is gone (409 ABORTED or 404 NOT_FOUND): the operation was cancelled past
    its grace, expired, or leased again; its result is dropped."""


@dataclass(frozen=True)
class Failure:
    """How an attempt failed: a google.rpc code and message, and for a handler's exception
    its traceback (`stack`, innermost frame last) and `detail` (the exception's own line),
    sent as a `google.rpc.DebugInfo` detail."""

    code: int
    message: str
    stack: tuple[str, ...] = ()
    detail: str = ""

    def rest(self) -> dict[str, Any]:
        """The google.rpc.Status of a REST completion."""
        status: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.stack or self.detail:
            status["details"] = [
                {"@type": DEBUG_INFO, "stackEntries": list(self.stack), "detail": self.detail}
            ]
        return status


def too_large(size: int, limit: int) -> Failure:
    """The error an operation ends with when its result cannot be sent: it would pass the
    server's limit on one message, so sending it again would fail again."""
    return Failure(
        8,
        f"The result is {size} bytes, over the server's limit of {limit} bytes for one "
        "message; keep large results elsewhere (a destination URI) and return a reference.",
    )


def not_json(error: Exception) -> Failure:
    return Failure(2, f"The handler's result cannot be sent as JSON: {error}")


def unreachable(e: BaseException) -> bool:
    """True for an error that says the server could not be reached (no answer came)."""
    return isinstance(e, ApiError) and e.http_status == 0


def brief(text: object, limit: int = 200) -> str:
    """The first line of `text`, at most `limit` characters: for log lines. gRPC's
    connection errors (`UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN:
    ipv4:…: Failed to connect to remote host: Connection refused`) keep their last part."""
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    if "; last error: " in line:
        head = line.split(":", 1)[0]
        line = f"{head}: {line.rsplit(': ', 1)[-1]}"
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class Reconnects:
    """Attempts to reach a server that does not answer: each failed attempt is logged in
    one line and the next waits a backoff (from 50 ms, doubling, at most 5 s); calls made
    meanwhile wait for it, so that the number of attempts, not of callers, sets the pace."""

    url: str
    failures: int = 0
    retry_at: float = 0.0
    _since: float = field(default=0.0, repr=False)

    async def ready(self) -> None:
        """Waits until the next attempt may be made."""
        delay = self.retry_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def failed(self, why: object, refused: bool = False) -> None:
        """An attempt failed (`refused`: the server answered, with an error): log it, and
        hold the next one back."""
        now = time.monotonic()
        if now < self.retry_at:
            return  # another call of the same attempt failed too
        if self.failures == 0:
            self._since = now
        self.failures += 1
        delay = min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_MAX)
        self.retry_at = now + delay
        log.warning(
            "%s the server at %s (%s); attempt %d, retrying in %.2f s",
            "refused by" if refused else "cannot reach",
            self.url,
            brief(why, 120),
            self.failures,
            delay,
        )

    def succeeded(self) -> None:
        if self.failures:
            log.info(
                "reached the server at %s again after %d failed attempts (%.1f s)",
                self.url,
                self.failures,
                time.monotonic() - self._since,
            )
        self.failures = 0
        self.retry_at = 0.0


class Backend(Protocol):
    """How a worker talks to the server."""

    # True when cancellations are pushed on their own (the gRPC stream); else each running
    # operation keeps a heartbeat waiting for its cancellation (`waitForCancel`).
    pushes_cancels: bool

    @property
    def connected(self) -> bool:
        """False while the server cannot be reached."""
        ...

    async def lease(
        self, worker: str, types: list[str], max_operations: int, wait: float, lease: float
    ) -> list[Assignment]:
        """Up to `max_operations` operations, waiting up to `wait` seconds for one."""
        ...

    async def heartbeat(self, a: Assignment, report: Report | None, wait_for_cancel: float) -> bool:
        """Extends the lease, sends `report`; True when cancellation was requested."""
        ...

    async def complete(self, a: Assignment, response: Any, error: Failure | None) -> None:
        """Ends the attempt with `response`, or with `error`. A result over the server's
        limit on one message ends it with `too_large` instead; one that is not JSON, with
        `not_json`."""
        ...

    async def release(self, a: Assignment) -> None:
        """Hands the operation back unfinished: PENDING again, no attempt spent."""
        ...

    async def stop_leasing(self, timeout: float) -> None:
        """Ends the waits of the leases in flight (a stopping worker), where the transport
        can: they are answered at once with what they have. Gives up after `timeout`
        seconds."""
        ...

    async def close(self, timeout: float) -> None:
        """Ends the connection, giving calls in flight at most `timeout` seconds."""
        ...
