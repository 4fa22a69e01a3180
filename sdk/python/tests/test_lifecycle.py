"""A worker across a server restart (kill -9), and a worker's graceful shutdown: in
process (`run_async(stop)`) and as a process receiving SIGTERM or SIGINT (`run()`)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import pytest

import longrun

from .conftest import Server
from .helpers import eventually, running, state


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_server_restart_under_a_running_worker(
    server: Server, transport: Literal["grpc", "rest"]
) -> None:
    """The server is killed while a handler runs and comes back on the same port: the
    handler's result lands (attempt 1, run once), a cancel after the restart still reaches
    a running handler, and new work is leased again."""
    worker = longrun.Worker(
        server.url,
        name="w1",
        transport=transport,
        lease_poll=0.5,
    )
    runs: dict[str, int] = {}
    release = asyncio.Event()

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> dict[str, int]:
        runs[ctx.name] = runs.get(ctx.name, 0) + 1
        if ctx.payload.get("until_released"):
            await release.wait()
        else:
            while True:  # noqa: ASYNC110 (a busy handler, until cancelled)
                await asyncio.sleep(0.005)
        return {"attempt": ctx.attempt}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            held = await client.submit("p", "NAP", {"until_released": True})
            endless = await client.submit("p", "NAP", {})
            # The handlers run (a lease answer lost in the restart would leave an operation
            # RUNNING with no handler until its lease lapses).
            await eventually(lambda: _running(client, [held["name"], endless["name"]]))
            await eventually(lambda: _started(runs, [held["name"], endless["name"]]))
            server.restart()
            release.set()
            done = await client.wait(held["name"], timeout=30)
            assert state(done) == "SUCCEEDED", done
            assert done["response"]["value"]["attempt"] == 1
            await client.cancel(endless["name"])
            done = await client.wait(endless["name"], timeout=30)
            assert state(done) == "CANCELLED", done
            later = await client.submit("p", "NAP", {"until_released": True})
            done = await client.wait(later["name"], timeout=30)
            assert state(done) == "SUCCEEDED", done
            assert runs == {held["name"]: 1, endless["name"]: 1, later["name"]: 1}

    asyncio.run(scenario())


async def _running(client: longrun.AsyncClient, names: list[str]) -> bool:
    return all([state(await client.get(n)) == "RUNNING" for n in names])


async def _started(runs: dict[str, int], names: list[str]) -> bool:
    return all(n in runs for n in names)


def test_shutdown_lets_handlers_finish_within_the_grace(server: Server) -> None:
    worker = longrun.Worker(server.url, lease_poll=0.5, shutdown_grace=10.0)
    started = asyncio.Event()

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> dict[str, bool]:
        started.set()
        await asyncio.sleep(0.5)
        return {"finished": True}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            stop = asyncio.Event()
            run = asyncio.create_task(worker.run_async(stop))
            op = await client.submit("p", "NAP")
            await asyncio.wait_for(started.wait(), 20)
            stop.set()
            queued = await client.submit("p", "NAP")
            await asyncio.wait_for(run, 20)
            done = await client.get(op["name"])
            assert state(done) == "SUCCEEDED", done
            # Stopped leasing: what came after the stop stays queued.
            assert state(await client.get(queued["name"])) == "PENDING"

    asyncio.run(scenario())


def test_an_idle_worker_stops_without_waiting_out_its_lease_poll(server: Server) -> None:
    """Over gRPC the stop tells the server to end the lease wait in flight (`stop_leasing`):
    an idle worker whose lease request waits 20 s for work stops in well under that, and
    work submitted after the stop stays queued."""
    worker = longrun.Worker(server.url, lease_poll=20.0, shutdown_grace=60.0)

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> None:
        raise AssertionError("nothing is leased after the stop")

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            stop = asyncio.Event()
            run = asyncio.create_task(worker.run_async(stop))
            # Leasing: the worker's lease request is out, waiting on the server.
            await eventually(lambda: _leasing(worker))
            await asyncio.sleep(0.5)
            began = time.monotonic()
            stop.set()
            await asyncio.wait_for(run, 30)
            took = time.monotonic() - began
            assert took < 5, f"the stop took {took:.1f} s"
            queued = await client.submit("p", "NAP")
            await asyncio.sleep(0.2)
            assert state(await client.get(queued["name"])) == "PENDING"

    asyncio.run(scenario())


async def _leasing(worker: longrun.Worker) -> bool:
    return bool(getattr(worker, "_leasing", None))


def test_shutdown_past_the_grace_releases_the_operation(server: Server) -> None:
    worker = longrun.Worker(server.url, lease_poll=0.5, shutdown_grace=0.3)
    started = asyncio.Event()
    cancelled: list[bool] = []

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(ctx.cancelled)
            raise

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            stop = asyncio.Event()
            run = asyncio.create_task(worker.run_async(stop))
            op = await client.submit("p", "NAP")
            await asyncio.wait_for(started.wait(), 20)
            began = time.monotonic()
            stop.set()
            await asyncio.wait_for(run, 20)
            assert time.monotonic() - began < 5
            # Released for another worker: queued again as its next start, with no error
            # (and no attempt spent: see test_shutdown).
            again = await client.get(op["name"])
            assert state(again) == "PENDING", again
            assert again["metadata"]["attempt"] == 2 and "error" not in again
            assert cancelled == [True]

    asyncio.run(scenario())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_a_worker_process(server: Server, sig: signal.Signals) -> None:
    script = Path(__file__).with_name("worker_process.py")
    with longrun.Client(server.url) as client:
        short = client.submit("p", "NAP", {"seconds": 0.5})
        proc = subprocess.Popen(
            [sys.executable, str(script), server.url, "5"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == f"started {short['name']}"
            proc.send_signal(sig)
            out, _ = proc.communicate(timeout=20)
        finally:
            proc.kill()
        assert proc.returncode == 0, out
        assert f"finished {short['name']}" in out and out.strip().endswith("stopped")
        assert state(client.get(short["name"])) == "SUCCEEDED"
