"""Runs a handler without a server, for unit tests: a payload in, the outcome out, and a
cancel when the test asks for one, as Temporal's `ActivityEnvironment` does for activities.

```python
from longrun.testing import HandlerEnvironment

async def test_countdown() -> None:
    env = HandlerEnvironment()
    outcome = await env.run(countdown, {"seconds": 2})
    assert outcome.state == longrun.State.SUCCEEDED and outcome.response == {"counted": 2}
    assert outcome.progress == 1.0

    env = HandlerEnvironment(on_report=lambda r: env.cancel() if r.progress else None)
    assert (await env.run(countdown, {"seconds": 5})).state == longrun.State.CANCELLED
```

The handler gets a real `longrun.Context`, and its outcome is read exactly as the worker
reads it: a return is SUCCEEDED, `Failed` and any other exception FAILED (with the
traceback in a DebugInfo detail for the latter), `Retry` code 14, a `CancelledError` after
`cancel()` CANCELLED; a result that is not JSON FAILED as the worker would report it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from . import _outcome
from ._threads import DaemonThreads
from ._transport.backend import not_json
from ._transport.rest import encode
from .context import Assignment, Context, Report
from .errors import Code
from .operation import State, Status


@dataclass
class Reported:
    """What the handler has reported so far (None / empty: nothing yet)."""

    progress: float | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    destination_uris: list[str] = field(default_factory=list)
    eecu_seconds: float | None = None

    def _add(self, report: Report) -> None:
        if report.progress is not None:
            self.progress = report.progress
        if report.stages is not None:
            self.stages = [dict(s) for s in report.stages]
        if report.destination_uris is not None:
            self.destination_uris = list(report.destination_uris)
        if report.batch_eecu_usage_seconds is not None:
            self.eecu_seconds = report.batch_eecu_usage_seconds


@dataclass
class Outcome(Reported):
    """How the attempt ended: `response` when it succeeded (`None` returned is `{}`), else
    `error` (a google.rpc.Status as the server would keep it), with the last reports."""

    response: Any = None
    error: Status | None = None

    @property
    def state(self) -> State:
        """SUCCEEDED, CANCELLED (code 1) or FAILED; see `retry` for code 14."""
        if self.error is None:
            return State.SUCCEEDED
        if self.error["code"] == Code.CANCELLED:
            return State.CANCELLED
        return State.FAILED

    @property
    def retry(self) -> bool:
        """The handler asked for a retry (`Retry`, code 14): the server queues the
        operation again while attempts remain."""
        return self.error is not None and self.error["code"] == Code.UNAVAILABLE


class HandlerEnvironment:
    """Runs one handler at a time as a worker would.

    Args:
        type: the operation's type (`ctx.type`).
        name: its name (`ctx.name`).
        attempt: `ctx.attempt`.
        concurrency_key: `ctx.concurrency_key`.
        on_report: called on the event loop with everything reported so far, after each
            report the handler makes (`progress`, `stage`, `destination`, `eecu_seconds`).
    """

    def __init__(
        self,
        *,
        type: str = "TEST",
        name: str = "projects/test/operations/test",
        attempt: int = 1,
        concurrency_key: str | None = None,
        on_report: Callable[[Reported], None] | None = None,
    ) -> None:
        self.type = type
        self.name = name
        self.attempt = attempt
        self.concurrency_key = concurrency_key
        self.on_report = on_report
        self._cancel: Callable[[], None] | None = None
        self._cancel_early = False
        self._threads = DaemonThreads(1, "longrun-test-handler")

    def cancel(self) -> None:
        """Requests cancellation of the running handler, as the server's push does: an
        `async def` handler's task is cancelled at its current await, and `ctx.cancelled`
        turns true. May be called from any thread; before `run`, the cancel comes as the
        handler starts."""
        deliver = self._cancel
        if deliver is None:
            self._cancel_early = True
        else:
            deliver()

    async def run(self, handler: Callable[[Context], Any], payload: Any = None) -> Outcome:
        """Runs `handler` (an `async def` on this loop, a plain `def` in a thread) with
        `payload` as `ctx.payload`, and returns its outcome."""
        loop = asyncio.get_running_loop()
        metadata: dict[str, Any] = {"type": self.type, "state": "RUNNING", "attempt": self.attempt}
        if self.concurrency_key:
            metadata["concurrencyKey"] = self.concurrency_key
        assignment = Assignment(
            name=self.name,
            type=self.type,
            lease_id="test",
            payload=payload,
            attempt=self.attempt,
            operation_source={"name": self.name, "metadata": metadata, "done": False},
        )
        reported = Reported()

        def take() -> None:
            report = ctx._take_report()
            if report is not None:
                reported._add(report)
                if self.on_report is not None:
                    self.on_report(reported)

        ctx = Context(assignment, loop, take)
        running: asyncio.Future[Any]
        if inspect.iscoroutinefunction(handler):
            running = asyncio.ensure_future(_outcome.call_async(handler, ctx))
        else:
            running = self._threads.run(functools.partial(_outcome.call_sync, handler), ctx)
        loop_thread = threading.get_ident()

        def deliver() -> None:
            if threading.get_ident() != loop_thread:
                loop.call_soon_threadsafe(deliver)
                return
            if not ctx.cancelled:
                ctx._set_cancelled()
                if not running.done() and inspect.iscoroutinefunction(handler):
                    running.cancel()

        self._cancel = deliver
        if self._cancel_early:
            self._cancel_early = False
            deliver()
        try:
            await asyncio.wait({running})
        finally:
            self._cancel = None
        take()
        response, failure = _outcome.of(running, ctx.cancelled)
        if failure is None:
            try:
                encode(response)
            except (TypeError, ValueError) as e:
                response, failure = None, not_json(e)
        outcome = Outcome(
            progress=reported.progress,
            stages=reported.stages,
            destination_uris=reported.destination_uris,
            eecu_seconds=reported.eecu_seconds,
        )
        if failure is None:
            outcome.response = response
        else:
            outcome.error = cast(Status, failure.rest())
        return outcome


__all__ = ["HandlerEnvironment", "Outcome", "Reported"]
