"""Schedules through `Client` and `AsyncClient` against a real server: create, get, list,
update, pause, resume, delete, errors, and the operations a schedule starts."""

from __future__ import annotations

import asyncio
import time

import pytest

import longrun
from longrun.errors import ApiError

from .conftest import Server


def test_schedule_methods(server: Server) -> None:
    with longrun.Client(server.url) as client:
        created = client.create_schedule(
            "p",
            "* * * * * *",
            {"type": "PY_TICK", "payload": {"n": 1}},
            schedule_id="tick",
            overlap_policy="ALLOW",
        )
        assert created["name"] == "projects/p/schedules/tick"
        assert (created["timeZone"], created["overlapPolicy"], created["paused"]) == (
            "UTC",
            "ALLOW",
            False,
        )
        assert "nextFireTime" in created
        assert client.get_schedule(created["name"])["cron"] == "* * * * * *"
        assert [s["name"] for s in client.list_schedules("p")] == [created["name"]]

        deadline = time.monotonic() + 10
        started: list[longrun.Operation] = []
        while len(started) < 2:
            assert time.monotonic() < deadline, "the schedule did not fire"
            time.sleep(0.2)
            filter = 'metadata.schedule = "projects/p/schedules/tick"'
            started = list(client.list("p", filter=filter))
        assert all(op["metadata"].get("schedule") == created["name"] for op in started)

        paused = client.pause_schedule(created["name"])
        assert paused["paused"] is True and "nextFireTime" not in paused
        resumed = client.resume_schedule(created["name"])
        assert "nextFireTime" in resumed
        changed = client.update_schedule(created["name"], cron="0 3 * * *", time_zone="Asia/Tokyo")
        assert (changed["cron"], changed["timeZone"]) == ("0 3 * * *", "Asia/Tokyo")

        with pytest.raises(ApiError) as e:
            client.create_schedule("p", "not a cron", {"type": "T"})
        assert (e.value.http_status, e.value.reason) == (400, "INVALID_SCHEDULE")
        with pytest.raises(ApiError) as e:
            client.create_schedule("p", "0 3 * * *", {"type": "T"}, schedule_id="tick")
        assert e.value.http_status == 409

        client.delete_schedule(created["name"])
        with pytest.raises(ApiError) as e:
            client.get_schedule(created["name"])
        assert (e.value.http_status, e.value.reason) == (404, "SCHEDULE_NOT_FOUND")


def test_async_schedule_methods(server: Server) -> None:
    async def main() -> None:
        async with longrun.AsyncClient(server.url) as client:
            created = await client.create_schedule(
                "p", "0 3 * * *", {"type": "T"}, schedule_id="a", paused=True
            )
            assert created["paused"] is True
            names = [s["name"] async for s in client.list_schedules("p", page_size=1)]
            assert names == ["projects/p/schedules/a"]
            resumed = await client.resume_schedule(created["name"])
            assert "nextFireTime" in resumed
            await client.delete_schedule(created["name"])

    asyncio.run(main())
