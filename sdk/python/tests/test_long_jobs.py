"""Jobs longer than their lease, over both transports: heartbeats go out from the moment a
job is leased (the worker idle until then), and reports reach the server while the handler
runs, within `report_interval` of the call that made them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import longrun

from .conftest import Server
from .helpers import eventually, running, state

TRANSPORTS = ["grpc", "rest"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_job_ten_leases_long_completes_as_attempt_one(server: Server, transport: str) -> None:
    """A 1 s lease and a 10 s handler, leased by a worker that had nothing to do: one run,
    attempt 1 (before, the lease lapsed and the job started again and again)."""
    worker = longrun.Worker(
        server.url,
        name="w1",
        transport=transport,  # type: ignore[arg-type]
        lease_duration=1.0,
        lease_poll=0.5,
        report_interval=0.1,
        shutdown_grace=5.0,
    )
    runs: list[int] = []

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> dict[str, int]:
        runs.append(ctx.attempt)
        await asyncio.sleep(10.0)
        return {"attempt": ctx.attempt}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            await asyncio.sleep(1.0)  # idle: several empty lease polls
            op = await client.submit("p", "NAP", max_attempts=1)
            done = await client.wait(op["name"], timeout=30)
            assert state(done) == "SUCCEEDED", done
            assert done["metadata"]["attempt"] == 1
            assert runs == [1]

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reports_are_visible_while_the_handler_runs(server: Server, transport: str) -> None:
    """Progress, a stage and a destination reported mid-run show in `get` within the
    default `report_interval` (1 s) of the call (or a later report does: reports made
    within one interval go out together), with the handler still running."""
    worker = longrun.Worker(
        server.url,
        name="w1",
        transport=transport,  # type: ignore[arg-type]
        lease_poll=0.5,
        shutdown_grace=5.0,
    )
    made: dict[float, float] = {}
    finish = asyncio.Event()

    @worker.handler("STEPS")
    async def steps(ctx: longrun.Context) -> None:
        for i in range(1, 5):
            made[i / 4] = time.monotonic()
            ctx.progress(i / 4)
            ctx.stage("Tiling", done=i, total=4)
            if i == 2:
                ctx.destination("gs://b/half.tif")
            await asyncio.sleep(0.3 if i % 2 else 1.4)  # close together, then apart
        await finish.wait()

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            await asyncio.sleep(0.5)
            op = await client.submit("p", "STEPS")
            seen: dict[float, float] = {}
            last: dict[str, Any] = {}
            deadline = time.monotonic() + 20
            while 1.0 not in seen and time.monotonic() < deadline:
                current = await client.get(op["name"])
                progress = current["metadata"].get("progress")
                if progress is not None and progress not in seen:
                    seen[progress] = time.monotonic()
                    last = dict(current["metadata"])
                await asyncio.sleep(0.01)
            assert 1.0 in seen, seen
            # Each call's progress, or a later one, was visible this long after the call.
            lags = {p: min(t for q, t in seen.items() if q >= p) - made[p] for p in made}
            # The interval, and a little for the round trips on a busy machine.
            assert max(lags.values()) < 1.25, lags
            assert last["stages"][0]["completeWorkUnits"] == "4"
            assert last["destinationUris"] == ["gs://b/half.tif"]
            assert state(await client.get(op["name"])) == "RUNNING"
            finish.set()
            done = await client.wait(op["name"], timeout=20)
            assert state(done) == "SUCCEEDED", done

    asyncio.run(scenario())


def test_a_sync_handlers_reports_are_sent_while_it_runs(server: Server) -> None:
    """A plain `def` handler reports from its thread; the reports go out as it runs."""
    worker = longrun.Worker(server.url, name="w1", lease_poll=0.5, shutdown_grace=5.0)
    release = asyncio.Event()
    loop_box: list[asyncio.AbstractEventLoop] = []

    @worker.handler("SYNC")
    def sync(ctx: longrun.Context) -> None:
        ctx.progress(0.3)
        asyncio.run_coroutine_threadsafe(release.wait(), loop_box[0]).result(20)

    async def scenario() -> None:
        loop_box.append(asyncio.get_running_loop())
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("p", "SYNC")
            await eventually(lambda: _progress(client, op["name"], 0.3), timeout=5, every=0.01)
            release.set()
            assert state(await client.wait(op["name"], timeout=20)) == "SUCCEEDED"

    asyncio.run(scenario())


async def _progress(client: longrun.AsyncClient, name: str, value: float) -> bool:
    return (await client.get(name))["metadata"].get("progress") == value
