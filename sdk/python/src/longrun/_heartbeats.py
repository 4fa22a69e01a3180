"""Heartbeats: every leased operation (running, or leased ahead and waiting for a slot) is
heartbeated from the moment it is leased, every third of the lease, and its reports reach
the server within `report_interval` of the call that made them. One event-loop timer, set
for the earliest beat due, serves every job; each beat is a task of its own, so a slow one
holds back no other. Over REST the waiting heartbeats extend the leases, and this only
sends the reports."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._transport.backend import BACKOFF_FIRST, Backend, LeaseLost, brief, unreachable
from .context import Assignment, Context
from .errors import ApiError

log = logging.getLogger("longrun.worker")


@dataclass(eq=False)
class Job:
    """One leased operation, from its lease to its completion or release."""

    assignment: Assignment
    ctx: Context
    is_async: bool
    handler: asyncio.Future[Any] | None = None
    # When the last heartbeat went out (the lease, at first), and when the lease would lapse
    # without another.
    last_beat: float = field(default_factory=time.monotonic)
    lease_until: float = 0.0
    beating: bool = False
    # After a failed beat: none before this time (the backoff), and the next backoff.
    retry_at: float = 0.0
    backoff: float = BACKOFF_FIRST
    # The server must hear of this job on the current stream (after a reconnect).
    announce: bool = False
    # The lease is gone: the result is not wanted.
    lost: bool = False


class Heartbeats:
    def __init__(
        self,
        backend: Backend,
        lease_duration: float,
        report_interval: float,
        on_cancel: Callable[[Job], None],
        on_lost: Callable[[Job], None],
    ) -> None:
        self._backend = backend
        self._loop = asyncio.get_running_loop()
        self._lease = lease_duration
        self._every = lease_duration / 3 if backend.pushes_cancels else math.inf
        self._report_interval = report_interval
        # A beat that takes longer than this is given up and tried again.
        self._timeout = max(lease_duration / 3, 0.5)
        self._on_cancel = on_cancel
        self._on_lost = on_lost
        self._jobs: dict[str, Job] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, job: Job) -> None:
        """Starts heartbeating a job just leased."""
        job.last_beat = time.monotonic()
        job.lease_until = job.last_beat + self._lease
        self._jobs[job.assignment.lease_id] = job
        self._arm(job.last_beat + self._every)

    def remove(self, job: Job) -> None:
        self._jobs.pop(job.assignment.lease_id, None)

    def reported(self, job: Job) -> None:
        """The handler made a report: it goes out `report_interval` after the last beat,
        or at once if that is past."""
        if not job.beating and job.assignment.lease_id in self._jobs:
            self._arm(max(job.last_beat + self._report_interval, job.retry_at))

    def announce_all(self) -> None:
        """A new stream: every job is reported on it at once, so that the server watches
        it for cancellation there."""
        for job in self._jobs.values():
            job.announce = True
        self._arm(time.monotonic())

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._tasks:
            task.cancel()

    def _due(self, job: Job) -> float:
        if job.announce:
            due = 0.0
        else:
            due = job.last_beat + self._every
            if job.ctx._has_report:
                due = min(due, job.last_beat + self._report_interval)
        return max(due, job.retry_at)

    def _arm(self, at: float) -> None:
        """Makes the timer fire by `at` (time.monotonic())."""
        if at == math.inf:
            return
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_later(max(at - time.monotonic(), 0.0), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = time.monotonic()
        following = math.inf
        for job in self._jobs.values():
            if job.beating:
                continue
            due = self._due(job)
            if due <= now + 0.001:
                task = self._loop.create_task(self._beat(job))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                following = min(following, due)
        self._arm(following)

    async def _beat(self, job: Job) -> None:
        job.beating = True
        job.announce = False
        sent = job.last_beat = time.monotonic()
        report = job.ctx._take_report()
        try:
            cancel = await asyncio.wait_for(
                self._backend.heartbeat(job.assignment, report, 0.0), self._timeout
            )
        except LeaseLost as e:
            log.warning("%s: lease lost (%s); the handler is cancelled", job.assignment.name, e)
            self.remove(job)
            self._on_lost(job)
            return
        except (ApiError, OSError, asyncio.TimeoutError) as e:
            # Sent again after a backoff, with whatever was reported meanwhile.
            if report is not None:
                job.ctx._put_back(report)
            job.announce = job.announce or self._backend.pushes_cancels
            job.retry_at = time.monotonic() + job.backoff
            job.backoff = min(job.backoff * 2, max(self._lease / 6, BACKOFF_FIRST))
            if not unreachable(e):  # an unreachable server is logged once per attempt
                log.warning("%s: heartbeat failed (%s)", job.assignment.name, brief(e))
            return
        finally:
            job.beating = False
            if job.assignment.lease_id in self._jobs:
                self._arm(self._due(job))
        job.retry_at = 0.0
        job.backoff = BACKOFF_FIRST
        if self._backend.pushes_cancels:
            job.lease_until = sent + self._lease
        if cancel:
            self._on_cancel(job)
