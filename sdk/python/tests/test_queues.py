"""Queues through `Client` and `AsyncClient` against a real server: exact counts, pause
(nothing leased, `waitingReason` PAUSED), resume (the waiting worker runs the work at once),
the whole project's pause, and errors."""

from __future__ import annotations

import asyncio

import pytest

import longrun
from longrun.errors import ApiError

from .conftest import Server
from .helpers import eventually, running, state


def test_queue_counts_pause_and_resume(server: Server) -> None:
    with longrun.Client(server.url) as client:
        empty = client.get_queue("p", "PY_Q")
        assert empty == {
            "name": "projects/p/queues/PY_Q",
            "state": "RUNNING",
            "pendingCount": "0",
            "runningCount": "0",
        }
        paused = client.pause_queue("p", "PY_Q")
        assert paused["state"] == "PAUSED"
        ops = [client.submit("p", "PY_Q") for _ in range(3)]
        queue = client.get_queue("p", "PY_Q")
        assert (queue["state"], queue["pendingCount"], queue["runningCount"]) == (
            "PAUSED",
            "3",
            "0",
        )
        assert queue["oldestPendingTime"] == ops[0]["metadata"]["createTime"]
        assert client.get(ops[0]["name"])["metadata"].get("waitingReason") == "PAUSED"
        assert [q["name"] for q in client.list_queues("p")] == ["projects/p/queues/PY_Q"]

    ran: list[str] = []
    worker = longrun.Worker(server.url, name="w1", lease_poll=5.0)

    @worker.handler("PY_Q")
    async def handle(ctx: longrun.Context) -> dict[str, bool]:
        ran.append(ctx.name)
        return {"ok": True}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            # The worker waits in a lease request; the paused queue gives it nothing.
            await asyncio.sleep(1.0)
            assert ran == []
            resumed = await client.resume_queue("p", "PY_Q")
            assert resumed["state"] == "RUNNING"
            # Woken by the resume, well within its 5 s poll.
            await eventually(lambda: _all_done(client, [op["name"] for op in ops]), timeout=3)
            queue = await client.get_queue("p", "PY_Q")
            assert (queue["pendingCount"], queue["runningCount"]) == ("0", "0")
            assert "oldestPendingTime" not in queue

    asyncio.run(scenario())
    assert sorted(ran) == sorted(op["name"] for op in ops)


async def _all_done(client: longrun.AsyncClient, names: list[str]) -> bool:
    return all([state(await client.get(name)) == "SUCCEEDED" for name in names])


def test_a_whole_project_pauses_and_resumes(server: Server) -> None:
    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            whole = await client.pause_queue("p", "-")
            assert (whole["name"], whole["state"]) == ("projects/p/queues/-", "PAUSED")
            await client.submit("p", "PY_A")
            await client.submit("p", "PY_B")
            listed = await client.list_queues("p")
            assert [(q["name"], q["state"]) for q in listed] == [
                ("projects/p/queues/-", "PAUSED"),
                ("projects/p/queues/PY_A", "PAUSED"),
                ("projects/p/queues/PY_B", "PAUSED"),
            ]
            assert listed[0]["pendingCount"] == "2"
            with pytest.raises(ApiError) as e:
                await client.resume_queue("p", "PY_A")
            assert (e.value.http_status, e.value.reason) == (400, "PROJECT_PAUSED")
            await client.resume_queue("p", "-")
            assert (await client.get_queue("p", "PY_A"))["state"] == "RUNNING"
            with pytest.raises(ApiError) as e:
                await client.get_queue("p", "")
            assert e.value.http_status == 404

    asyncio.run(scenario())
