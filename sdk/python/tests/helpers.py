"""Running a `Worker` inside a test's event loop, and waiting for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import longrun


@contextlib.asynccontextmanager
async def running(worker: longrun.Worker) -> AsyncIterator[asyncio.Event]:
    """Runs `worker` until the block ends (then stops it and waits for its shutdown)."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_async(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 20.0, every: float = 0.02
) -> Any:
    """The first truthy result of `check()`, retried until `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s; last: {result!r}")
        await asyncio.sleep(every)


def state(op: longrun.Operation) -> str:
    return str(op["metadata"]["state"])
