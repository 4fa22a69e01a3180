"""`longrun.testing.HandlerEnvironment`: a handler run without a server, its outcome read
as the worker reads it, and cancels on demand."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time

import longrun
from longrun.testing import HandlerEnvironment, Reported


async def countdown(ctx: longrun.Context) -> dict[str, int]:
    seconds = int(ctx.payload["seconds"])
    for done in range(1, seconds + 1):
        await asyncio.sleep(0.01)
        ctx.stage("Counting", done=done, total=seconds)
        ctx.progress(done / seconds)
    ctx.destination("gs://b/out")
    return {"counted": seconds}


def test_a_handler_succeeds_with_its_reports() -> None:
    seen: list[float | None] = []
    env = HandlerEnvironment(type="COUNTDOWN", on_report=lambda r: seen.append(r.progress))
    outcome = asyncio.run(env.run(countdown, {"seconds": 3}))
    assert outcome.state == longrun.State.SUCCEEDED and not outcome.retry
    assert outcome.response == {"counted": 3} and outcome.error is None
    assert outcome.progress == 1.0 and outcome.destination_uris == ["gs://b/out"]
    assert outcome.stages[0]["completeWorkUnits"] == 3
    assert seen[-1] == 1.0 and len(seen) >= 3


def test_the_context_and_a_plain_def_handler() -> None:
    def describe(ctx: longrun.Context) -> dict[str, object]:
        ctx.progress(0.5)
        return {
            "name": ctx.name,
            "type": ctx.type,
            "attempt": ctx.attempt,
            "key": ctx.concurrency_key,
            "payload": ctx.payload,
            "state": ctx.operation["metadata"]["state"],
            "thread": threading.current_thread() is not threading.main_thread(),
        }

    env = HandlerEnvironment(
        type="T", name="projects/p/operations/x", attempt=2, concurrency_key="k"
    )
    outcome = asyncio.run(env.run(describe, [1, 2]))
    assert outcome.response == {
        "name": "projects/p/operations/x",
        "type": "T",
        "attempt": 2,
        "key": "k",
        "payload": [1, 2],
        "state": "RUNNING",
        "thread": True,
    }
    assert outcome.progress == 0.5
    assert asyncio.run(HandlerEnvironment().run(lambda ctx: None)).response == {}


def test_failures_as_the_worker_reports_them() -> None:
    def bad(ctx: longrun.Context) -> None:
        raise longrun.Failed("width must be positive", code=longrun.Code.INVALID_ARGUMENT)

    async def later(ctx: longrun.Context) -> None:
        raise longrun.Retry("busy")

    async def crash(ctx: longrun.Context) -> int:
        known: dict[str, int] = {}
        return known["missing"]

    async def not_json(ctx: longrun.Context) -> dict[str, object]:
        return {"when": datetime.date(2026, 1, 1)}

    env = HandlerEnvironment()
    failed = asyncio.run(env.run(bad))
    assert failed.state == longrun.State.FAILED and failed.error is not None
    assert failed.error == {"code": 3, "message": "width must be positive"}
    retried = asyncio.run(env.run(later))
    assert retried.retry and retried.state == longrun.State.FAILED
    crashed = asyncio.run(env.run(crash))
    assert crashed.error is not None and crashed.error["message"] == "KeyError: 'missing'"
    [info] = crashed.error["details"]
    assert info["@type"] == "type.googleapis.com/google.rpc.DebugInfo"
    assert "in crash" in info["stackEntries"][-1]
    odd = asyncio.run(env.run(not_json))
    assert odd.error is not None and "cannot be sent as JSON" in odd.error["message"]


def test_cancel_on_demand() -> None:
    env = HandlerEnvironment()

    def at_half(reported: Reported) -> None:
        if (reported.progress or 0) >= 0.5:
            env.cancel()

    env.on_report = at_half
    outcome = asyncio.run(env.run(countdown, {"seconds": 10}))
    assert outcome.state == longrun.State.CANCELLED and outcome.progress == 0.5

    async def stubborn(ctx: longrun.Context) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "finished anyway"
        return "slept"

    async def cancel_soon() -> longrun.testing.Outcome:
        run = asyncio.ensure_future(env.run(stubborn))
        await asyncio.sleep(0.05)
        env.cancel()
        return await run

    env.on_report = None
    assert asyncio.run(cancel_soon()).response == "finished anyway"

    def polite(ctx: longrun.Context) -> None:
        while True:
            ctx.raise_if_cancelled()
            time.sleep(0.001)

    def cancel_from_a_thread() -> None:
        time.sleep(0.05)
        env.cancel()

    threading.Thread(target=cancel_from_a_thread).start()
    assert asyncio.run(env.run(polite)).state == longrun.State.CANCELLED
    env.cancel()  # before the run: the handler starts cancelled
    assert asyncio.run(env.run(countdown, {"seconds": 1})).state == longrun.State.CANCELLED
