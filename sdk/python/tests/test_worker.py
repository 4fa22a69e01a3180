"""`Worker` against a real server, over the gRPC Work stream and over REST: outcomes,
reports, cancellation of async and sync handlers, the completion-vs-cancel race, retries."""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from typing import Any

import pytest

import longrun

from .conftest import Server
from .helpers import eventually, running, state

TRANSPORTS = ["grpc", "rest"]


def make_worker(server: Server, transport: str, **kw: Any) -> longrun.Worker:
    kw.setdefault("lease_poll", 0.5)
    kw.setdefault("shutdown_grace", 5.0)
    return longrun.Worker(server.url, name="w1", transport=transport, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_outcomes_and_reports(server: Server, transport: str) -> None:
    worker = make_worker(server, transport, concurrency=4, report_interval=0.1)

    @worker.handler("OK")
    async def ok(ctx: longrun.Context) -> dict[str, Any]:
        assert ctx.attempt == 1 and ctx.type == "OK" and ctx.concurrency_key is None
        assert ctx.operation["name"] == ctx.name
        ctx.progress(0.5)
        ctx.stage("Writing", done=3, total=10)
        ctx.destination("gs://b/x.tif")
        await asyncio.sleep(0.4)  # a report goes out while the handler runs
        ctx.stage("Writing", done=10, total=10)
        return {"rows": ctx.payload["rows"]}

    @worker.handler("SYNC")
    def sync(ctx: longrun.Context) -> dict[str, Any]:
        ctx.progress(1.0)
        return {
            "thread": threading.current_thread() is not threading.main_thread(),
            "key": ctx.concurrency_key,
        }

    @worker.handler("NONE")
    async def none(ctx: longrun.Context) -> None:
        return None

    @worker.handler("FAIL")
    def fail(ctx: longrun.Context) -> None:
        raise longrun.Failed("bad input", code=3)

    @worker.handler("CRASH")
    async def crash(ctx: longrun.Context) -> None:
        raise KeyError("missing")

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            ok_op = await client.submit("p", "OK", {"rows": 7})
            progress = await eventually(
                lambda: _progress(client, ok_op["name"]), timeout=5, every=0.02
            )
            assert progress == 0.5
            sync_op = await client.submit("p", "SYNC", concurrency_key="tile-7")
            fail_op = await client.submit("p", "FAIL")
            crash_op = await client.submit("p", "CRASH")
            none_op = await client.submit("p", "NONE")
            done = await client.wait(none_op["name"], timeout=20)
            assert state(done) == "SUCCEEDED" and done["response"]["value"] == {}, done
            done = await client.wait(ok_op["name"], timeout=20)
            assert state(done) == "SUCCEEDED", done
            assert done["response"]["value"]["rows"] == 7, done
            assert done["metadata"]["destinationUris"] == ["gs://b/x.tif"]
            assert done["metadata"]["stages"][0]["completeWorkUnits"] == "10"
            done = await client.wait(sync_op["name"], timeout=20)
            assert state(done) == "SUCCEEDED" and done["response"]["value"]["thread"] is True
            assert done["response"]["value"]["key"] == "tile-7"
            assert done["metadata"]["progress"] == 1.0
            done = await client.wait(fail_op["name"], timeout=20)
            assert state(done) == "FAILED" and done["error"]["code"] == 3
            assert done["error"]["message"] == "bad input"
            done = await client.wait(crash_op["name"], timeout=20)
            assert state(done) == "FAILED" and done["error"]["code"] == 2
            assert "missing" in done["error"]["message"]

    asyncio.run(scenario())


async def _progress(client: longrun.AsyncClient, name: str) -> float | None:
    value = (await client.get(name))["metadata"].get("progress")
    return None if value is None else float(value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_reaches_an_async_handler_at_its_await(server: Server, transport: str) -> None:
    worker = make_worker(server, transport)
    started = asyncio.Event()
    seen: list[float] = []

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> None:
        started.set()
        try:
            while True:  # noqa: ASYNC110 (a busy handler, as in the benchmark)
                await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            seen.append(time.monotonic())
            assert ctx.cancelled
            raise

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("p", "NAP")
            await asyncio.wait_for(started.wait(), 20)
            await asyncio.sleep(0.1)
            asked = time.monotonic()
            await client.cancel(op["name"])
            done = await client.wait(op["name"], timeout=20)
            assert state(done) == "CANCELLED" and done["error"]["code"] == 1
            assert len(seen) == 1
            # Pushed, not found at a later heartbeat (those come every 20 s here).
            assert seen[0] - asked < 2.0

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_is_seen_by_a_sync_handler(server: Server, transport: str) -> None:
    worker = make_worker(server, transport)
    started = threading.Event()

    @worker.handler("NAP")
    def nap(ctx: longrun.Context) -> None:
        started.set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ctx.raise_if_cancelled()
            time.sleep(0.005)

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("p", "NAP")
            await asyncio.to_thread(started.wait, 20)
            await client.cancel(op["name"])
            done = await client.wait(op["name"], timeout=10)
            assert state(done) == "CANCELLED" and done["error"]["code"] == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_handler_that_finishes_despite_a_cancel_succeeds(server: Server, transport: str) -> None:
    worker = make_worker(server, transport)

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> dict[str, str]:
        try:
            await ctx.cancellation()
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass
        return {"finished": "anyway"}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("p", "NAP")
            await eventually(lambda: _is(client, op["name"], "RUNNING"))
            await client.cancel(op["name"])
            done = await client.wait(op["name"], timeout=10)
            assert state(done) == "SUCCEEDED" and done["response"]["value"]["finished"] == "anyway"

    asyncio.run(scenario())


async def _is(client: longrun.AsyncClient, name: str, expected: str) -> bool:
    return state(await client.get(name)) == expected


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_completion_races_cancel(server: Server, transport: str) -> None:
    """A cancel sent as the handler ends: the operation ends once, and its outcome agrees
    with what the handler did (returned → SUCCEEDED; saw CancelledError → CANCELLED)."""
    rounds = 40
    worker = make_worker(server, transport, concurrency=4)
    outcome: dict[str, str] = {}

    @worker.handler("RACE")
    async def race(ctx: longrun.Context) -> dict[str, int]:
        try:
            await asyncio.sleep(ctx.payload["ms"] / 1000)
        except asyncio.CancelledError:
            outcome[ctx.name] = "CANCELLED"
            raise
        outcome[ctx.name] = "SUCCEEDED"
        return {"ms": ctx.payload["ms"]}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            for i in range(rounds):
                op = await client.submit("p", "RACE", {"ms": i % 8})
                name = op["name"]
                await eventually(partial(_started, client, name), every=0.001)
                await asyncio.sleep((i % 5) / 1000)
                await client.cancel(op["name"])
                done = await client.wait(op["name"], timeout=20)
                assert done["done"], done
                # A cancel that comes before the handler's first step cancels it there.
                expected = outcome.setdefault(op["name"], "CANCELLED")
                assert state(done) == expected, (i, done, expected)
            counts = {s: list(outcome.values()).count(s) for s in set(outcome.values())}
            print(f"race outcomes over {rounds} rounds: {counts}")

    asyncio.run(scenario())


async def _started(client: longrun.AsyncClient, name: str) -> bool:
    return state(await client.get(name)) != "PENDING"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retry_then_success_and_retries_running_out(server: Server, transport: str) -> None:
    worker = make_worker(server, transport)
    attempts: dict[str, list[int]] = {}

    @worker.handler("FLAKY")
    async def flaky(ctx: longrun.Context) -> dict[str, int]:
        attempts.setdefault(ctx.name, []).append(ctx.attempt)
        if ctx.attempt < ctx.payload["succeed_at"]:
            raise longrun.Retry(f"not yet ({ctx.attempt})")
        return {"attempt": ctx.attempt}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            fine = await client.submit("p", "FLAKY", {"succeed_at": 2})
            never = await client.submit("p", "FLAKY", {"succeed_at": 99})
            done = await client.wait(fine["name"], timeout=20)
            assert state(done) == "SUCCEEDED" and done["response"]["value"]["attempt"] == 2
            assert attempts[fine["name"]] == [1, 2]
            done = await client.wait(never["name"], timeout=20)
            assert state(done) == "FAILED" and done["error"]["code"] == 14
            assert attempts[never["name"]] == [1, 2, 3]  # max_attempts = 3 for FLAKY

    asyncio.run(scenario())


def test_prefetch_leases_ahead_and_a_cancel_before_the_start_skips_the_handler(
    server: Server,
) -> None:
    worker = make_worker(server, "grpc", concurrency=1, prefetch=1)
    ran: list[str] = []
    release = asyncio.Event()

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> None:
        ran.append(ctx.name)
        await release.wait()

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            first = await client.submit("p", "NAP")
            await eventually(lambda: _is(client, first["name"], "RUNNING"))
            ahead = await client.submit("p", "NAP")
            # Leased ahead of the one slot, which the first still holds.
            await eventually(lambda: _is(client, ahead["name"], "RUNNING"))
            assert ran == [first["name"]]
            await client.cancel(ahead["name"])
            done = await client.wait(ahead["name"], timeout=20)
            assert state(done) == "CANCELLED", done
            release.set()
            assert state(await client.wait(first["name"], timeout=20)) == "SUCCEEDED"
            assert ran == [first["name"]]

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_heartbeats_keep_a_long_handler_leased(server: Server, transport: str) -> None:
    """A handler running past its lease duration keeps the lease (one run, attempt 1)."""
    worker = make_worker(server, transport, lease_duration=2.0)
    runs: list[int] = []

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> dict[str, int]:
        runs.append(ctx.attempt)
        await asyncio.sleep(3.5)
        return {"attempt": ctx.attempt}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("p", "NAP")
            done = await client.wait(op["name"], timeout=30)
            assert state(done) == "SUCCEEDED", done
            assert runs == [1] and done["metadata"]["attempt"] == 1

    asyncio.run(scenario())


def test_the_worker_as_an_async_context_manager(server: Server) -> None:
    """`async with worker:` runs it for the block; leaving the block stops it, letting a
    running handler finish within the grace."""
    worker = make_worker(server, "grpc")
    started = asyncio.Event()

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> dict[str, bool]:
        started.set()
        await asyncio.sleep(0.3)
        return {"finished": True}

    async def scenario() -> None:
        with pytest.raises(ValueError):
            async with make_worker(server, "grpc"):
                pass  # no handler
        async with longrun.AsyncClient(server.url) as client:
            async with worker:
                op = await client.submit("p", "NAP")
                await asyncio.wait_for(started.wait(), 20)
            assert state(await client.get(op["name"])) == "SUCCEEDED"
            after = await client.submit("p", "NAP")
            await asyncio.sleep(0.5)
            assert state(await client.get(after["name"])) == "PENDING"  # stopped leasing
            async with worker:  # and it runs again
                done = await client.wait(after["name"], timeout=20)
                assert state(done) == "SUCCEEDED", done

    asyncio.run(scenario())


def test_a_cancel_pushed_before_the_lease_is_read_is_kept(server: Server) -> None:
    """The push of a cancel may be read before the answer of the lease that brought the
    operation has been handled (a busy event loop): the operation still ends CANCELLED
    without running its handler, not after the cancel grace."""

    class SlowToStart(longrun.Worker):
        async def _run(self, assignment: Any) -> None:
            leased.set()
            await asyncio.sleep(0.5)  # the loop was busy: the push comes meanwhile
            await super()._run(assignment)

    worker = SlowToStart(server.url, name="w1", lease_poll=0.5, shutdown_grace=5.0)
    leased = asyncio.Event()
    ran: list[str] = []

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> None:
        ran.append(ctx.name)
        await asyncio.sleep(30)

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("p", "NAP")
            await asyncio.wait_for(leased.wait(), 20)
            asked = time.monotonic()
            await client.cancel(op["name"])
            done = await client.wait(op["name"], timeout=20)
            assert state(done) == "CANCELLED", done
            assert time.monotonic() - asked < 2.0  # not the 5 s grace
            assert ran == []

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_handler_submits_children_and_waits_for_them(server: Server, transport: str) -> None:
    worker = make_worker(server, transport, concurrency=4)

    @worker.handler("FANOUT")
    async def fanout(ctx: longrun.Context) -> dict[str, Any]:
        children = [
            await ctx.submit_child("LEAF", {"i": i}, operation_id=f"{ctx.name.split('/')[-1]}-{i}")
            for i in range(3)
        ]
        assert all(c["metadata"]["parent"] == ctx.name for c in children)
        done = await ctx.wait_children([c["name"] for c in children], timeout=20)
        return {"states": [state(op) for op in done]}

    @worker.handler("LEAF")
    async def leaf(ctx: longrun.Context) -> dict[str, Any]:
        return {"i": ctx.payload["i"]}

    @worker.handler("LATE")
    async def late(ctx: longrun.Context) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            # The cancel reaches the handler as it is asked, ahead of its commit: once the
            # operation reads CANCELLING, it is no longer open for children.
            async with longrun.AsyncClient(server.url) as reader:
                await eventually(lambda: _state_is(reader, ctx.name, "CANCELLING"), timeout=10)
            with pytest.raises(longrun.ApiError) as refused:
                await ctx.submit_child("LEAF", {"i": 0})
            assert refused.value.reason == "PARENT_NOT_OPEN"
            raise

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("kids", "FANOUT", operation_id="fan")
            done = await client.wait(op["name"], timeout=30)
            assert state(done) == "SUCCEEDED", done
            assert done["response"]["value"]["states"] == ["SUCCEEDED"] * 3, done
            leaf_op = await client.get("projects/kids/operations/fan-1")
            assert leaf_op["response"]["value"] == {"i": 1}, leaf_op
            late_op = await client.submit("kids", "LATE")
            await eventually(
                lambda: _state_is(client, late_op["name"], "RUNNING"), timeout=10, every=0.02
            )
            await client.cancel(late_op["name"])
            done = await client.wait(late_op["name"], timeout=20)
            assert state(done) == "CANCELLED", done

    asyncio.run(scenario())


async def _state_is(client: longrun.AsyncClient, name: str, want: str) -> bool:
    return state(await client.get(name)) == want
