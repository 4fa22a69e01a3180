"""The worker process of longrun_sdk.py's cancel and idle scenarios: a longrun `Worker`
(concurrency 4, gRPC) whose NAP handler loops on `await asyncio.sleep(0.005)`. It prints
`ready`, then `started NAME` when a handler starts and `cancelled NAME SEEN PUSHED` when one
sees `asyncio.CancelledError` (CLOCK_MONOTONIC in ns: when the handler saw it, and when the
pushed cancel reached the process). It imports nothing else, so that its memory is a
worker's.

Usage: python longrun_worker.py URL
"""

import asyncio
import sys
import time

import longrun

CONCURRENCY = 4


class TracedWorker(longrun.Worker):
    """Notes when a pushed cancellation arrives (a private hook, for the split of the
    latency into the server's part and the worker's part)."""

    pushed_at: dict[str, int] = {}  # noqa: RUF012

    def _pushed(self, name: str, lease_id: str) -> None:
        self.pushed_at[name] = time.monotonic_ns()
        super()._pushed(name, lease_id)


worker = TracedWorker(sys.argv[1], name="bench", concurrency=CONCURRENCY)


@worker.handler("NAP")
async def nap(ctx: longrun.Context) -> None:
    print(f"started {ctx.name}", flush=True)
    try:
        while True:  # noqa: ASYNC110 (the scenario: a loop of short awaits)
            await asyncio.sleep(0.005)
    except asyncio.CancelledError:
        seen = time.monotonic_ns()
        print(f"cancelled {ctx.name} {seen} {worker.pushed_at.pop(ctx.name, seen)}", flush=True)
        raise


if __name__ == "__main__":
    print("ready", flush=True)
    worker.run()
