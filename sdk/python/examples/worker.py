"""A worker for COUNTDOWN and RESIZE operations (the README's worker example).

Run: python examples/worker.py    (LONGRUN_URL, default http://127.0.0.1:8080)
"""

import asyncio
import os

import longrun

worker = longrun.Worker(os.environ.get("LONGRUN_URL", "http://127.0.0.1:8080"), concurrency=4)


@worker.handler("COUNTDOWN")
async def countdown(ctx: longrun.Context) -> dict[str, int]:
    seconds = int(ctx.payload.get("seconds", 3))
    for done in range(1, seconds + 1):
        await asyncio.sleep(1)  # a cancel raises asyncio.CancelledError here
        ctx.stage("Counting", done=done, total=seconds)
        ctx.progress(done / seconds)
    return {"counted": seconds}


@worker.handler("RESIZE")
def resize(ctx: longrun.Context) -> dict[str, int]:  # a plain def runs in a thread
    width = int(ctx.payload.get("width", 0))
    if width <= 0:
        raise longrun.Failed("width must be positive", code=longrun.Code.INVALID_ARGUMENT)
    ctx.raise_if_cancelled()  # a plain def checks for a cancel where it can stop
    return {"width": width}


if __name__ == "__main__":
    worker.run()  # until Ctrl-C or SIGTERM: lets what runs finish (30 s grace), releases the rest
