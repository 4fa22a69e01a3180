"""`Worker`: leases operations of the types it has handlers for, runs up to `concurrency`
at once, heartbeats, turns a pushed cancellation into `asyncio.CancelledError` inside an
`async def` handler (or `ctx.cancelled` for a plain `def` one), completes each operation
with its outcome, and shuts down gracefully (contract sections 6 and 14)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from ._auth import Authorizer, Token
from ._transport.backend import Backend, LeaseLost
from ._transport.stream import StreamBackend
from .context import Assignment, Context
from .errors import ApiError, Failed

log = logging.getLogger("longrun.worker")

Handler = Callable[[Context], Any]

# Backoff after a failed lease or report: from 50 ms, doubling, at most 5 s.
_BACKOFF_FIRST, _BACKOFF_MAX = 0.05, 5.0


@dataclass(eq=False)
class _Job:
    assignment: Assignment
    ctx: Context
    is_async: bool
    handler: asyncio.Future[Any] | None = None
    last_beat: float = field(default_factory=time.monotonic)
    # The server must hear of this job on the current stream (after a reconnect).
    announce: bool = False
    released: bool = False


class Worker:
    """Runs handlers for operations leased from the server at `url`.

    Args:
        url: the server, e.g. `"http://127.0.0.1:8080"` (gRPC shares the REST port).
        name: the worker's id shown as the lease holder (default `host-pid`).
        token: a bearer token (or a callable returning one) for auth mode `oauth`; the
            member needs `roles/longrun.worker`.
        credentials_file: instead of `token`, a service-account key file (google-auth).
        concurrency: how many handlers run at once (1..100).
        lease_duration: seconds each lease and heartbeat extension lasts (1..600).
        transport: `"grpc"` (the Work stream: cancellations pushed, calls multiplexed) or
            `"rest"` (a waiting heartbeat per running operation).
        lease_poll: seconds one lease request waits for work; a shutdown waits for the
            request in flight, so this bounds how long stopping takes.
        shutdown_grace: seconds running handlers get after SIGTERM/SIGINT; then they are
            cancelled and their operations released (code 14, retried elsewhere).
        report_interval: at most this often (seconds) an operation's reports are sent.
        prefetch: how many operations may be leased ahead of a free slot (default 0). They
            are RUNNING on the server, heartbeated, and start when a slot frees (a cancel
            before then ends them CANCELLED without running). With short handlers this
            hides the lease round trip (a durable write) behind running work; with long
            ones it keeps operations from other workers, so it is off by default.
    """

    def __init__(
        self,
        url: str,
        name: str | None = None,
        token: Token = None,
        *,
        credentials_file: str | None = None,
        concurrency: int = 8,
        lease_duration: float = 60.0,
        transport: Literal["grpc", "rest"] = "grpc",
        lease_poll: float = 5.0,
        shutdown_grace: float = 30.0,
        report_interval: float = 1.0,
        prefetch: int = 0,
    ) -> None:
        if transport not in ("grpc", "rest"):
            raise ValueError(f"transport is 'grpc' or 'rest', not {transport!r}")
        self.url = url
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = min(max(int(concurrency), 1), 100)
        self.lease_duration = min(max(float(lease_duration), 1.0), 600.0)
        self.transport = transport
        self.lease_poll = min(max(float(lease_poll), 0.0), 60.0)
        self.shutdown_grace = float(shutdown_grace)
        self.report_interval = float(report_interval)
        self.prefetch = min(max(int(prefetch), 0), 100)
        self._auth = Authorizer(token, credentials_file)
        self._handlers: dict[str, Handler] = {}
        self._jobs: dict[str, _Job] = {}
        self._backend: Backend | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._wake_beater: asyncio.Event | None = None
        self._backoff = _BACKOFF_FIRST
        self._slots: asyncio.Semaphore | None = None
        self._stop: asyncio.Event | None = None

    def handler(self, type: str) -> Callable[[Handler], Handler]:
        """Decorator: `fn(ctx)` runs operations of `type`. An `async def` runs on the
        worker's event loop; a plain `def` runs in a thread. Return the response (a JSON
        object; None is `{}`) → SUCCEEDED; raise `Failed` → FAILED with its code; raise
        `Retry` → code 14, retried while attempts remain; another exception → FAILED,
        code 2, its message; `asyncio.CancelledError` after a cancel request → CANCELLED."""

        def register(fn: Handler) -> Handler:
            self._handlers[type] = fn
            return fn

        return register

    def run(self) -> None:
        """Runs until SIGINT or SIGTERM, then stops leasing, gives running handlers
        `shutdown_grace` seconds, and releases the rest. Blocks."""
        asyncio.run(self.run_async())

    async def run_async(self, stop: asyncio.Event | None = None) -> None:
        """Runs until `stop` is set (without one: until SIGINT or SIGTERM), then shuts
        down as `run` does."""
        if not self._handlers:
            raise ValueError("no handlers: register one with @worker.handler(TYPE)")
        loop = asyncio.get_running_loop()
        signals: list[signal.Signals] = []
        if stop is None:
            stop = asyncio.Event()
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                    signals.append(sig)
        self._wake_beater = asyncio.Event()
        if self.transport == "grpc":
            self._backend = StreamBackend(self.url, self._auth, self._pushed, self._reopened)
        else:
            from ._transport.rest_worker import RestBackend  # httpx only when it is used

            self._backend = RestBackend(self.url, self._auth, self.concurrency)
        beater = asyncio.create_task(self._beat_loop())
        try:
            await self._lease_loop(stop)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            beater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beater
            await self._backend.close()
            if self._threads is not None:
                self._threads.shutdown(wait=False, cancel_futures=True)

    # Leasing and running.

    async def _lease_loop(self, stop: asyncio.Event) -> None:
        """Leases for free slots as they free up: the slots free at the time go in one
        request, and a slot freed while a request is in flight starts another, so that
        round trips overlap instead of queueing behind each other."""
        running: set[asyncio.Task[None]] = set()
        leasing: set[asyncio.Task[None]] = set()
        # Operations leased and not yet through their handler: running ones, and at most
        # `prefetch` more waiting for a slot.
        free = asyncio.Semaphore(self.concurrency + self.prefetch)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._stop = stop
        stopping = asyncio.create_task(stop.wait())
        self._backoff = _BACKOFF_FIRST
        try:
            while not stop.is_set():
                if free.locked():
                    acquire = asyncio.create_task(free.acquire())
                    await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not acquire.done():
                        acquire.cancel()
                        break
                else:
                    await free.acquire()
                slots = 1
                while not free.locked():
                    await free.acquire()
                    slots += 1
                task = asyncio.create_task(self._lease(slots, free, stop, stopping, running))
                leasing.add(task)
                task.add_done_callback(leasing.discard)
                # Let the request go out before leasing more.
                await asyncio.sleep(0)
            # Leases in flight are awaited: dropping one could leave operations leased to
            # nobody until their lease lapsed. What they bring is released.
            if leasing:
                await asyncio.wait(leasing)
        finally:
            stopping.cancel()
        await self._drain(running)

    async def _lease(
        self,
        slots: int,
        free: asyncio.Semaphore,
        stop: asyncio.Event,
        stopping: asyncio.Future[Any],
        running: set[asyncio.Task[None]],
    ) -> None:
        """One lease request for `slots` slots; starts what it brings."""
        assert self._backend is not None
        try:
            leased = await self._backend.lease(
                self.name, sorted(self._handlers), slots, self.lease_poll, self.lease_duration
            )
            self._backoff = _BACKOFF_FIRST
        except Exception as e:  # the server's refusal, a broken stream, or a bug: retry
            backoff = self._backoff
            self._backoff = min(backoff * 2, _BACKOFF_MAX)
            log.warning("lease failed (%r); retrying in %.2f s", e, backoff)
            # The slots stay taken for the backoff, which keeps the loop from retrying.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stopping), backoff)
            for _ in range(slots):
                free.release()
            return
        for _ in range(slots - len(leased)):
            free.release()
        for assignment in leased:
            if stop.is_set():
                free.release()
                task = asyncio.create_task(self._release(assignment))
            else:
                task = asyncio.create_task(self._run(assignment, free))
            running.add(task)
            task.add_done_callback(running.discard)

    async def _drain(self, running: set[asyncio.Task[None]]) -> None:
        """Gives running handlers the grace, then cancels the rest and releases them."""
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=self.shutdown_grace)
        if late:
            log.info("shutdown grace over: releasing %d operations", len(late))
            for job in list(self._jobs.values()):
                job.released = True
                if job.handler is not None and not job.handler.done():
                    job.handler.cancel()
            await asyncio.wait(late)

    async def _release(self, assignment: Assignment) -> None:
        await self._complete(assignment, None, (14, "The worker shut down before it ran."))

    async def _run(self, assignment: Assignment, leased: asyncio.Semaphore) -> None:
        """Runs one leased operation: waits for a handler slot (when leased ahead), runs the
        handler, then completes. `leased` is released once the handler is done."""
        handler = self._handlers.get(assignment.type)
        loop = asyncio.get_running_loop()
        ctx = Context(assignment, loop)
        if handler is None:
            leased.release()
            message = f"This worker has no handler for {assignment.type!r}."
            await self._complete(assignment, None, (14, message))
            return
        job = _Job(assignment, ctx, inspect.iscoroutinefunction(handler))
        self._jobs[assignment.lease_id] = job
        waiting: asyncio.Task[None] | None = None
        slot = self._slots
        assert slot is not None and self._stop is not None
        acquired = False
        response: Any = None
        error: tuple[int, str] | None
        try:
            if not self._backend_pushes():
                waiting = asyncio.create_task(self._wait_for_cancel(job))
            if slot.locked():
                # Leased ahead: wait for a slot, or for the stop, which releases it at once.
                take = asyncio.ensure_future(slot.acquire())
                stopped = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({take, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if not take.done():
                    take.cancel()
                acquired = take.done() and not take.cancelled()
            else:
                await slot.acquire()
                acquired = True
            if ctx.cancelled:
                response, error = None, (1, "Cancelled before it started.")
            elif not acquired or self._stop.is_set() or job.released:
                response, error = None, (14, "The worker shut down before it ran.")
            else:
                if job.is_async:
                    job.handler = asyncio.ensure_future(_call_async(handler, ctx))
                else:
                    if self._threads is None:
                        self._threads = ThreadPoolExecutor(self.concurrency, "longrun-handler")
                    job.handler = loop.run_in_executor(self._threads, handler, ctx)
                if self._backend_pushes() and (
                    ctx._has_report or self.lease_duration < 3 * self.report_interval
                ):
                    self._wake_beater_now()
                await asyncio.wait({job.handler})
                response, error = _outcome(job)
        finally:
            if acquired:
                slot.release()
            leased.release()
            if waiting is not None:
                waiting.cancel()
            self._jobs.pop(assignment.lease_id, None)
        report = ctx._take_report()
        if report is not None:
            with contextlib.suppress(ApiError, LeaseLost, OSError):
                assert self._backend is not None
                await self._backend.heartbeat(assignment, report, 0.0)
        await self._complete(assignment, response, error)

    async def _complete(
        self, assignment: Assignment, response: Any, error: tuple[int, str] | None
    ) -> None:
        """Reports the outcome, retrying a transient failure (the stream reconnecting) until
        the lease would have lapsed; a fenced-off report means the result is not wanted."""
        assert self._backend is not None
        deadline = time.monotonic() + self.lease_duration
        backoff = _BACKOFF_FIRST
        while True:
            try:
                await self._backend.complete(assignment, response, error)
                return
            except LeaseLost as e:
                log.info("%s: lease lost (%s); the result is dropped", assignment.name, e)
                return
            except ApiError as e:
                if e.code == 9 and e.reason == "OPERATION_DONE":
                    return
                if e.code not in (14, 13, 4, 8, 16) or time.monotonic() > deadline:
                    log.error("%s: completion refused: %s", assignment.name, e)
                    return
                log.warning("%s: completion failed (%s); retrying", assignment.name, e)
            except OSError as e:
                log.warning("%s: completion failed (%s); retrying", assignment.name, e)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    # Cancellation and heartbeats.

    def _backend_pushes(self) -> bool:
        return self._backend is not None and self._backend.pushes_cancels

    def _pushed(self, name: str, lease_id: str) -> None:
        """A cancellation came for `lease_id`: tell its handler."""
        job = self._jobs.get(lease_id)
        if job is not None:
            _deliver_cancel(job)

    def _reopened(self) -> None:
        """A new stream: the server must hear of every running operation on it."""
        for job in self._jobs.values():
            job.announce = True
        self._wake_beater_now()

    def _wake_beater_now(self) -> None:
        if self._wake_beater is not None:
            self._wake_beater.set()

    async def _beat_loop(self) -> None:
        """One task for every job's heartbeat: extends leases (every third of the lease),
        sends reports (at most every `report_interval`), and announces jobs on a new stream.
        With REST, the waiting heartbeats extend the leases and this only sends reports."""
        assert self._backend is not None and self._wake_beater is not None
        tick = min(self.report_interval, self.lease_duration / 3) / 2
        while True:
            if not self._jobs:
                self._wake_beater.clear()
                await self._wake_beater.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_beater.wait(), tick)
            self._wake_beater.clear()
            now = time.monotonic()
            due = []
            for job in list(self._jobs.values()):
                extend = self._backend.pushes_cancels and (
                    now - job.last_beat >= self.lease_duration / 3
                )
                report = job.ctx._has_report and now - job.last_beat >= self.report_interval
                if job.announce or extend or report:
                    job.announce = False
                    job.last_beat = now
                    due.append(self._beat(job))
            if due:
                await asyncio.gather(*due)

    async def _beat(self, job: _Job) -> None:
        assert self._backend is not None
        try:
            if await self._backend.heartbeat(job.assignment, job.ctx._take_report(), 0.0):
                _deliver_cancel(job)
        except LeaseLost as e:
            log.info("%s: lease lost (%s)", job.assignment.name, e)
            job.released = True
            _deliver_cancel(job)
        except (ApiError, OSError) as e:
            log.warning("%s: heartbeat failed: %s", job.assignment.name, e)
            job.announce = True

    async def _wait_for_cancel(self, job: _Job) -> None:
        """REST: a heartbeat that waits for a cancellation, again and again; each one also
        extends the lease."""
        assert self._backend is not None
        wait = self.lease_duration / 3
        backoff = _BACKOFF_FIRST
        while True:
            try:
                requested = await self._backend.heartbeat(
                    job.assignment, None, 0.0 if job.ctx.cancelled else wait
                )
                backoff = _BACKOFF_FIRST
                if requested:
                    _deliver_cancel(job)
                if job.ctx.cancelled:
                    await asyncio.sleep(wait)
            except LeaseLost as e:
                log.info("%s: lease lost (%s)", job.assignment.name, e)
                job.released = True
                _deliver_cancel(job)
                return
            except (ApiError, OSError) as e:
                log.warning("%s: heartbeat failed: %s", job.assignment.name, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)


async def _call_async(handler: Handler, ctx: Context) -> Any:
    result: Awaitable[Any] = handler(ctx)
    return await result


def _deliver_cancel(job: _Job) -> None:
    """Sets `ctx.cancelled`; an `async def` handler's task is cancelled at its current await."""
    if job.ctx.cancelled:
        return
    job.ctx._set_cancelled()
    if job.is_async and job.handler is not None and not job.handler.done():
        job.handler.cancel()


def _outcome(job: _Job) -> tuple[Any, tuple[int, str] | None]:
    """The response, or the error (code, message), of a finished handler."""
    handler = job.handler
    assert handler is not None
    if handler.cancelled():
        if job.released or not job.ctx.cancelled:
            return None, (14, "The worker shut down before the operation finished.")
        return None, (1, "Cancelled by the worker on request.")
    error = handler.exception()
    if error is None:
        result = handler.result()
        return ({} if result is None else result), None
    if isinstance(error, asyncio.CancelledError):
        return None, (1, "Cancelled by the worker on request.")
    if isinstance(error, Failed):
        return None, (error.code, error.message)
    log.warning("%s: handler failed: %r", job.assignment.name, error)
    return None, (2, str(error) or type(error).__name__)
