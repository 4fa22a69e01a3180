"""A worker process for the shutdown tests: `python worker_process.py URL GRACE`. Its NAP
handler prints `started NAME` and naps in 5 ms steps for `payload.seconds`."""

from __future__ import annotations

import asyncio
import sys

import longrun

worker = longrun.Worker(sys.argv[1], name="proc", lease_poll=0.5, shutdown_grace=float(sys.argv[2]))


@worker.handler("NAP")
async def nap(ctx: longrun.Context) -> dict[str, str]:
    print(f"started {ctx.name}", flush=True)
    try:
        for _ in range(int(ctx.payload["seconds"] * 200)):
            await asyncio.sleep(0.005)
    except asyncio.CancelledError:
        print(f"cancelled {ctx.name}", flush=True)
        raise
    print(f"finished {ctx.name}", flush=True)
    return {"napped": "yes"}


if __name__ == "__main__":
    worker.run()
    print("stopped", flush=True)
