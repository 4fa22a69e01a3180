"""`Worker`: leases operations of the types it has handlers for, runs up to `concurrency`
at once, heartbeats every one of them from the moment it is leased, turns a pushed
cancellation into `asyncio.CancelledError` inside an `async def` handler (or `ctx.cancelled`
for a plain `def` one), completes each operation with its outcome, and on shutdown hands
back what it could not finish (docs/workers.md#release; sdk/python/README.md)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from . import _outcome
from ._auth import Authorizer, Token
from ._heartbeats import Heartbeats, Job
from ._threads import DaemonThreads
from ._transport.backend import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    Backend,
    Failure,
    LeaseLost,
    brief,
    unreachable,
)
from ._transport.stream import StreamBackend
from .context import Assignment, Context
from .errors import ApiError, Code, Failed
from .tls import Tls

if TYPE_CHECKING:
    from .client import AsyncClient

log = logging.getLogger("longrun.worker")

Handler = Callable[[Context], Any]

# Codes of a failed completion or release that may pass when tried again.
_TRANSIENT = (Code.UNAVAILABLE, Code.INTERNAL, Code.DEADLINE_EXCEEDED, Code.UNAUTHENTICATED)


class Worker:
    """Runs handlers for operations leased from the server at `url`.

    Args:
        url: the server, e.g. `"http://127.0.0.1:8080"` (gRPC shares the REST port).
        name: the worker's id shown as the lease holder (default `host-pid`).
        token: a bearer token (or a callable returning one) for auth mode `oauth`; the
            member needs `roles/longrun.worker`.
        credentials_file: instead of `token`, a service-account key file (google-auth).
        concurrency: how many handlers run at once (1..100).
        lease_duration: seconds each lease and heartbeat extension lasts (1..600); every
            leased operation is heartbeated every third of it.
        transport: `"grpc"` (the Work stream: cancellations pushed, calls multiplexed) or
            `"rest"` (a waiting heartbeat per leased operation).
        lease_poll: seconds one lease request waits for work (at most half of
            `shutdown_grace`). A shutdown waits for the request in flight, since what it
            brings must be handed back; over gRPC it first tells the server to stop the
            wait, so an idle worker stops at once.
        shutdown_grace: the longest a shutdown takes, in seconds. Running handlers may
            finish until shortly before its end (a tenth of it, at most 1 s, is kept for
            handing back); then they are cancelled and their operations released: PENDING
            again, no attempt spent. Set it below your platform's kill timeout.
        report_interval: a report (progress, stages, destinations) reaches the server
            within this many seconds of the call that made it; at most one heartbeat per
            operation goes out per interval for reports.
        prefetch: how many operations may be leased ahead of a free slot (default 0). They
            are RUNNING on the server, heartbeated, and start when a slot frees (a cancel
            before then ends them CANCELLED without running; a shutdown releases them at
            once). With short handlers this hides the lease round trip behind running
            work; with long ones it keeps operations from other workers, so it is off by
            default.
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
        tls: Tls | None = None,
    ) -> None:
        if transport not in ("grpc", "rest"):
            raise ValueError(f"transport is 'grpc' or 'rest', not {transport!r}")
        self.url = url
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = min(max(int(concurrency), 1), 100)
        self.lease_duration = min(max(float(lease_duration), 1.0), 600.0)
        self.transport = transport
        self.lease_poll = min(max(float(lease_poll), 0.0), 60.0)
        self.shutdown_grace = max(float(shutdown_grace), 0.0)
        self.report_interval = max(float(report_interval), 0.01)
        self.prefetch = min(max(int(prefetch), 0), 100)
        self.tls = tls
        self._auth = Authorizer(token, credentials_file)
        self._handlers: dict[str, Handler] = {}
        self._is_async: dict[str, bool] = {}
        self._jobs: dict[str, Job] = {}
        self._threads: DaemonThreads | None = None
        self._background: tuple[asyncio.Event, asyncio.Task[None]] | None = None
        self._children: AsyncClient | None = None

    def handler(self, type: str) -> Callable[[Handler], Handler]:
        """Decorator: `fn(ctx)` runs operations of `type`. An `async def` runs on the
        worker's event loop; a plain `def` runs in a thread. Return the response (a JSON
        object; None is `{}`) → SUCCEEDED; raise `Failed` → FAILED with its code; raise
        `Retry` → code 14, retried while attempts remain; another exception → FAILED,
        code 2, `Type: message`, with its traceback in the error's details (a
        `google.rpc.DebugInfo`) and in the log; `asyncio.CancelledError` after a cancel
        request → CANCELLED."""

        def register(fn: Handler) -> Handler:
            self._handlers[type] = fn
            self._is_async[type] = inspect.iscoroutinefunction(fn)
            return fn

        return register

    def run(self) -> None:
        """Runs until SIGINT or SIGTERM, then stops leasing, lets running handlers finish
        within `shutdown_grace`, and releases the rest; a second signal stops at once
        (releasing too). Blocks. Logs to stderr at INFO unless logging is configured."""
        _default_logging()
        asyncio.run(self.run_async())

    async def run_async(self, stop: asyncio.Event | None = None) -> None:
        """Runs until `stop` is set (without one: until SIGINT or SIGTERM, as `run`
        does), then shuts down as `run` does."""
        if not self._handlers:
            raise ValueError("no handlers: register one with @worker.handler(TYPE)")
        loop = asyncio.get_running_loop()
        force = asyncio.Event()
        signals: list[signal.Signals] = []
        if stop is None:
            stop = asyncio.Event()
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, self._signalled, sig, stop, force)
                    signals.append(sig)
        try:
            await self._serve(stop, force)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    async def __aenter__(self) -> Worker:
        """`async with worker:` runs it in the background for the block; leaving the
        block shuts it down as a signal would (handlers get the grace)."""
        if not self._handlers:
            raise ValueError("no handlers: register one with @worker.handler(TYPE)")
        if self._background is not None:
            raise RuntimeError("this worker is already running")
        stop = asyncio.Event()
        self._background = (stop, asyncio.create_task(self.run_async(stop)))
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._background is not None
        stop, task = self._background
        self._background = None
        stop.set()
        await task

    def _signalled(self, sig: signal.Signals, stop: asyncio.Event, force: asyncio.Event) -> None:
        if not stop.is_set():
            log.info("%s: stopping (a second signal stops at once)", sig.name)
            stop.set()
        elif not force.is_set():
            log.warning("%s again: stopping at once, releasing what runs", sig.name)
            force.set()

    # Running: leasing, handlers, completions.

    async def _serve(self, stop: asyncio.Event, force: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stop = stop
        self._abandon: asyncio.Future[None] = loop.create_future()
        # Set at the stop once no lease request is in flight: operations are handed back
        # only then, lest a request in flight lease them again.
        self._leases_done = asyncio.Event()
        self._jobs = {}
        self._early_cancels: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._leasing: set[asyncio.Task[None]] = set()
        self._released = 0
        self._types = sorted(self._handlers)
        self._backend: Backend
        if self.transport == "grpc":
            self._backend = StreamBackend(
                self.url, self._auth, self._pushed, self._reopened, self.tls
            )
        else:
            from ._transport.rest_worker import RestBackend  # httpx only when it is used

            self._backend = RestBackend(
                self.url, self._auth, self.concurrency + self.prefetch, self.tls
            )
        self._beats = Heartbeats(
            self._backend,
            self.lease_duration,
            self.report_interval,
            self._cancel_requested,
            self._lease_lost,
        )
        log.info(
            "worker %s started: server %s, types %s, concurrency %d%s, transport %s",
            self.name,
            self.url,
            ", ".join(sorted(self._handlers)),
            self.concurrency,
            f" (+{self.prefetch} prefetched)" if self.prefetch else "",
            self.transport,
        )
        try:
            try:
                await self._lease_loop(stop)
            except BaseException:  # cancelled, or a bug: stop at once, releasing what is held
                stop.set()
                force.set()
                await self._shut_down(force)
                raise
            await self._shut_down(force)
        finally:
            if self._children is not None:
                children, self._children = self._children, None
                with contextlib.suppress(Exception):
                    await children.close()

    def _child_client(self) -> AsyncClient:
        """The client handlers submit children and wait through (`Context.submit_child`),
        with the worker's credentials; made on first use, closed when the worker stops."""
        if self._children is None:
            from .client import AsyncClient  # httpx only when it is used

            self._children = AsyncClient(self.url, tls=self.tls, _authorizer=self._auth)
        return self._children

    async def _lease_loop(self, stop: asyncio.Event) -> None:
        """Leases for free slots as they free up: the slots free at the time go in one
        request, and a slot freed while a request is in flight starts another, so that
        round trips overlap instead of queueing behind each other. Returns at the stop."""
        # Operations leased and not yet through their handler: running ones, and at most
        # `prefetch` more waiting for a slot.
        free = self._free = asyncio.Semaphore(self.concurrency + self.prefetch)
        self._slots = asyncio.Semaphore(self.concurrency)
        stopping = asyncio.ensure_future(stop.wait())
        self._backoff = BACKOFF_FIRST
        try:
            while not stop.is_set():
                if free.locked():
                    acquire = asyncio.ensure_future(free.acquire())
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
                task = asyncio.create_task(self._lease(slots, stopping))
                self._leasing.add(task)
                task.add_done_callback(self._leasing.discard)
                # Let the request go out before leasing more.
                await asyncio.sleep(0)
        finally:
            stopping.cancel()

    async def _lease(self, slots: int, stopping: asyncio.Future[Any]) -> None:
        """One lease request for `slots` slots; starts what it brings (or, after the stop,
        releases it)."""
        try:
            # A shutdown waits for this request: it must end within the grace.
            poll = min(self.lease_poll, max(self.shutdown_grace / 2, 0.1))
            leased = await self._backend.lease(
                self.name, self._types, slots, poll, self.lease_duration
            )
            self._backoff = BACKOFF_FIRST
        except Exception as e:  # the server's refusal, a broken stream, or a bug: retry
            if not unreachable(e):  # else the transport waits and logs each attempt
                backoff = self._backoff
                self._backoff = min(backoff * 2, BACKOFF_MAX)
                if isinstance(e, ApiError | asyncio.TimeoutError | OSError):
                    log.warning("lease failed (%s); retrying in %.2f s", brief(e), backoff)
                else:
                    log.error("lease failed; retrying in %.2f s", backoff, exc_info=e)
                # The slots stay taken for the backoff, which keeps the loop from retrying.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopping), backoff)
            for _ in range(slots):
                self._free.release()
            return
        for _ in range(slots - len(leased)):
            self._free.release()
        for assignment in leased:
            task = asyncio.create_task(self._run(assignment))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, assignment: Assignment) -> None:
        """Runs one leased operation: heartbeats it from now, waits for a handler slot
        (when leased ahead), runs the handler, then completes it, or releases it if the
        worker stops first."""
        handler = self._handlers.get(assignment.type)
        loop = asyncio.get_running_loop()
        job: Job
        ctx = Context(assignment, loop, lambda: self._beats.reported(job), self._child_client)
        job = Job(assignment, ctx, self._is_async.get(assignment.type, False))
        self._jobs[assignment.lease_id] = job
        self._beats.add(job)
        if self._early_cancels and self._early_cancels.pop(assignment.lease_id, 0.0):
            ctx._set_cancelled()
        waiting: asyncio.Task[None] | None = None
        acquired = release = False
        response: Any = None
        error: Failure | None = None
        try:
            if not self._backend.pushes_cancels:
                waiting = asyncio.create_task(self._wait_for_cancel(job))
            acquired = await self._take_slot(job)
            if ctx.cancelled:
                error = _outcome.CANCELLED_BEFORE_START
            elif not acquired or self._stop.is_set():
                release = True  # leased after the stop, or waiting for a slot at it
            elif handler is None:
                error = Failure(Code.UNAVAILABLE, f"No handler for {assignment.type!r} here.")
            else:
                if job.is_async:
                    job.handler = asyncio.ensure_future(_outcome.call_async(handler, ctx))
                else:
                    if self._threads is None:
                        self._threads = DaemonThreads(self.concurrency, "longrun-handler")
                    job.handler = self._threads.run(
                        functools.partial(_outcome.call_sync, handler), ctx
                    )
                await self._handler_or_abandon(job.handler)
                if job.handler.done():
                    response, error = _outcome.of(job.handler, ctx.cancelled)
                    if error is not None and error.stack:
                        self._log_crash(job)
                else:  # the shutdown's grace is over
                    release = True
                    _deliver_cancel(job)
        finally:
            if acquired:
                self._slots.release()
            self._free.release()
            if waiting is not None:
                waiting.cancel()
            self._jobs.pop(assignment.lease_id, None)
            self._beats.remove(job)
        if job.lost:
            return
        if release:
            if not self._leases_done.is_set():
                done: asyncio.Future[Any] = asyncio.ensure_future(self._leases_done.wait())
                await asyncio.wait({done, self._abandon}, return_when=asyncio.FIRST_COMPLETED)
                done.cancel()
            await self._hand_back(job)
            return
        report = ctx._take_report()
        if report is not None:
            with contextlib.suppress(ApiError, LeaseLost, OSError):
                await self._backend.heartbeat(assignment, report, 0.0)
        await self._complete(job, response, error)

    async def _handler_or_abandon(self, handler: asyncio.Future[Any]) -> None:
        """Waits until the handler is done, or the shutdown abandons it (as
        `asyncio.wait(FIRST_COMPLETED)` would, for less: this is on every job's path)."""
        if handler.done() or self._abandon.done():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        handler.add_done_callback(wake)
        self._abandon.add_done_callback(wake)
        try:
            await waiter
        finally:
            handler.remove_done_callback(wake)
            self._abandon.remove_done_callback(wake)

    async def _take_slot(self, job: Job) -> bool:
        """Waits for a handler slot; False if the stop or a cancel came first."""
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        take = asyncio.ensure_future(self._slots.acquire())
        stopped = asyncio.ensure_future(self._stop.wait())
        cancelled = asyncio.ensure_future(job.ctx.cancellation())
        await asyncio.wait({take, stopped, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        cancelled.cancel()
        if not take.done():
            take.cancel()
            await asyncio.wait({take})
        if take.cancelled():
            return False
        if job.ctx.cancelled or self._stop.is_set():
            self._slots.release()
            return False
        return True

    def _log_crash(self, job: Job) -> None:
        handler = job.handler
        assert handler is not None
        if handler.cancelled():
            return
        error = handler.exception()
        if error is None or isinstance(error, asyncio.CancelledError | Failed):
            return
        what = brief(f"{type(error).__name__}: {error}")
        log.error("%s: the handler raised %s", job.assignment.name, what, exc_info=error)

    async def _complete(self, job: Job, response: Any, error: Failure | None) -> None:
        """Reports the outcome, retrying a transient failure (the server unreachable) until
        the lease would have lapsed; a fenced-off report means the result is not wanted."""
        a = job.assignment
        backoff = BACKOFF_FIRST
        while True:
            try:
                await self._backend.complete(a, response, error)
                return
            except LeaseLost as e:
                log.warning("%s: lease lost (%s); the result is dropped", a.name, e)
                return
            except ApiError as e:
                if e.code == Code.FAILED_PRECONDITION and e.reason == "OPERATION_DONE":
                    return
                if e.code not in _TRANSIENT or time.monotonic() > job.lease_until:
                    log.error("%s: completion refused: %s", a.name, brief(e))
                    return
                if not unreachable(e):
                    log.warning("%s: completion failed (%s); retrying", a.name, brief(e))
            except OSError as e:
                log.warning("%s: completion failed (%s); retrying", a.name, brief(e))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _hand_back(self, job: Job) -> None:
        """Releases the operation (the worker stops): PENDING again, no attempt spent."""
        a = job.assignment
        backoff = BACKOFF_FIRST
        while True:
            try:
                await self._backend.release(a)
                self._released += 1
                log.info("%s: released (queued again, no attempt spent)", a.name)
                return
            except LeaseLost:
                return
            except ApiError as e:
                if e.code not in _TRANSIENT or time.monotonic() > job.lease_until:
                    log.error("%s: release refused: %s", a.name, brief(e))
                    return
                if not unreachable(e):
                    log.warning("%s: release failed (%s); retrying", a.name, brief(e))
            except OSError as e:
                log.warning("%s: release failed (%s); retrying", a.name, brief(e))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    # Shutdown.

    async def _shut_down(self, force: asyncio.Event) -> None:
        """Stops: handlers get until shortly before the end of the grace (a second signal
        cuts it short), then the rest are cancelled and released; whatever is left at the
        end of the grace (a server that cannot be reached) is given up."""
        began = time.monotonic()
        end = began + self.shutdown_grace
        reserve = min(1.0, self.shutdown_grace / 10)
        held = len(self._jobs)
        if held:
            log.info(
                "stopping: %s held; handlers get %.1f s to finish, then what is left is released",
                _count(held, "operation"),
                max(self.shutdown_grace - reserve, 0.0),
            )
        # A lease request that cannot reach the server has brought nothing to hand back;
        # one that can is told to stop waiting for work.
        if not self._backend.connected:
            for task in self._leasing:
                task.cancel()
        elif self._leasing:
            await self._backend.stop_leasing(min(5.0, max(end - reserve - time.monotonic(), 0.1)))
        forced = asyncio.ensure_future(force.wait())
        try:
            # Lease requests in flight first (they end within half the grace); then what
            # was leased and did not start is handed back, while the handlers run on.
            await self._wait_for_tasks(lambda: self._leasing, end - reserve, forced)
            self._leases_done.set()
            await self._wait_for_tasks(self._all_tasks, end - reserve, forced)
            if forced.done():
                end = min(end, time.monotonic() + reserve)
            if not self._abandon.done():
                self._abandon.set_result(None)
            self._leases_done.set()
            ended = await self._wait_for_tasks(
                self._all_tasks, end, None if forced.done() else forced
            )
            if not ended and forced.done():  # a second signal during the release
                end = min(end, time.monotonic() + reserve)
                await self._wait_for_tasks(self._all_tasks, end, None)
            left = {t for t in self._all_tasks() if not t.done()}
            if left:
                log.warning(
                    "stopping with %s not reported to the server, which could not be reached "
                    "(leased operations among them run again once their leases lapse)",
                    _count(len(left), "call"),
                )
                for task in left:
                    task.cancel()
                await asyncio.wait(left, timeout=1.0)
        finally:
            forced.cancel()
            self._beats.close()
            await self._backend.close(max(end - time.monotonic(), 0.1))
        log.info(
            "worker %s stopped in %.1f s (%s released)",
            self.name,
            time.monotonic() - began,
            _count(self._released, "operation"),
        )

    def _all_tasks(self) -> set[asyncio.Task[None]]:
        """Lease requests and leased operations."""
        return self._tasks | self._leasing

    async def _wait_for_tasks(
        self,
        tasks: Callable[[], set[asyncio.Task[None]]],
        until: float,
        forced: asyncio.Future[Any] | None,
    ) -> bool:
        """Waits for `tasks()` to end: True when they did, False at `until` or when
        `forced` is done first."""
        while True:
            pending: set[asyncio.Future[Any]] = {t for t in tasks() if not t.done()}
            if not pending:
                return True
            left = until - time.monotonic()
            if left <= 0 or (forced is not None and forced.done()):
                return False
            if forced is not None:
                pending.add(forced)
            await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)

    # Cancellation and heartbeats.

    def _pushed(self, name: str, lease_id: str) -> None:
        """A cancellation came for `lease_id`: tell its handler. A push may come before
        the lease's answer has been read here: it is kept for the job to find."""
        job = self._jobs.get(lease_id)
        if job is not None:
            _deliver_cancel(job)
            return
        now = time.monotonic()
        early = self._early_cancels
        early[lease_id] = now
        if len(early) > 1000:  # pushes for leases this worker never ran (it restarted)
            for stale in [k for k, at in early.items() if now - at > 60.0]:
                del early[stale]

    def _reopened(self) -> None:
        """A new stream: the server must hear of every leased operation on it."""
        self._beats.announce_all()

    def _cancel_requested(self, job: Job) -> None:
        _deliver_cancel(job)

    def _lease_lost(self, job: Job) -> None:
        job.lost = True
        _deliver_cancel(job)

    async def _wait_for_cancel(self, job: Job) -> None:
        """REST: a heartbeat that waits for a cancellation, again and again; each one also
        extends the lease."""
        wait = self.lease_duration / 3
        backoff = BACKOFF_FIRST
        while True:
            try:
                sent = time.monotonic()
                requested = await self._backend.heartbeat(
                    job.assignment, None, 0.0 if job.ctx.cancelled else wait
                )
                job.lease_until = sent + self.lease_duration
                backoff = BACKOFF_FIRST
                if requested:
                    _deliver_cancel(job)
                if job.ctx.cancelled:
                    await asyncio.sleep(wait)
            except LeaseLost as e:
                log.warning("%s: lease lost (%s); the handler is cancelled", job.assignment.name, e)
                self._lease_lost(job)
                return
            except (ApiError, OSError) as e:
                if not unreachable(e):
                    log.warning("%s: heartbeat failed (%s)", job.assignment.name, brief(e))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)


def _deliver_cancel(job: Job) -> None:
    """Sets `ctx.cancelled`; an `async def` handler's task is cancelled at its current
    await; a plain `def` handler's future is let go (its thread sees `ctx.cancelled`)."""
    if job.ctx.cancelled:
        return
    job.ctx._set_cancelled()
    if job.is_async and job.handler is not None and not job.handler.done():
        job.handler.cancel()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _default_logging() -> None:
    """With no logging configured, the worker's INFO lines go to stderr."""
    if logging.getLogger().handlers:
        return
    package = logging.getLogger("longrun")
    if package.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package.addHandler(handler)
    if package.level == logging.NOTSET:
        package.setLevel(logging.INFO)
