"""A worker process for the shutdown tests: `python worker_process.py URL GRACE
[--concurrency N] [--prefetch N] [--transport grpc|rest]`. Its NAP handler prints
`started NAME` and naps in 5 ms steps for `payload.seconds`; it logs as `run()` does when
logging is not configured (to stderr)."""

from __future__ import annotations

import argparse
import asyncio

import longrun

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("grace", type=float)
parser.add_argument("--concurrency", type=int, default=8)
parser.add_argument("--prefetch", type=int, default=0)
parser.add_argument("--transport", choices=["grpc", "rest"], default="grpc")
args = parser.parse_args()

worker = longrun.Worker(
    args.url,
    name="proc",
    lease_poll=0.5,
    shutdown_grace=args.grace,
    concurrency=args.concurrency,
    prefetch=args.prefetch,
    transport=args.transport,
)


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
