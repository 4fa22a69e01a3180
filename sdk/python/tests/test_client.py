"""`Client` and `AsyncClient` against a real server: every method, pages, waits, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import longrun
from longrun.errors import ApiError

from .conftest import Server


def test_submit_get_list_cancel_delete(server: Server) -> None:
    with longrun.Client(server.url) as client:
        op = client.submit(
            "p", "EXPORT_IMAGE", {"rows": 3}, description="nightly", operation_id="exports/a1"
        )
        assert op["name"] == "projects/p/operations/exports/a1"
        assert op["metadata"]["state"] == "PENDING"
        assert op["metadata"]["description"] == "nightly"
        assert client.get(op["name"])["metadata"]["type"] == "EXPORT_IMAGE"
        again = client.submit("p", "EXPORT_IMAGE", request_id="r-1")
        assert client.submit("p", "EXPORT_IMAGE", request_id="r-1")["name"] == again["name"]

        with pytest.raises(ApiError) as e:
            client.delete(op["name"])
        assert (e.value.code, e.value.status, e.value.http_status) == (
            9,
            "FAILED_PRECONDITION",
            400,
        )

        client.cancel(op["name"])
        cancelled = client.get(op["name"])
        assert cancelled["done"] is True and cancelled["error"]["code"] == 1
        client.delete(op["name"])
        with pytest.raises(ApiError) as e:
            client.get(op["name"])
        assert (e.value.code, e.value.status, e.value.http_status) == (5, "NOT_FOUND", 404)
        assert e.value.reason == "OPERATION_NOT_FOUND"

        with pytest.raises(ApiError) as e:
            client.submit("p", "EXPORT_IMAGE", operation_id="dup")
            client.submit("p", "EXPORT_IMAGE", operation_id="dup")
        assert e.value.code == 6 and e.value.http_status == 409


def test_list_iterates_every_page(server: Server) -> None:
    with longrun.Client(server.url) as client:
        names = {client.submit("p", "T", {"i": i})["name"] for i in range(7)}
        client.submit("other", "T")
        listed = [op["name"] for op in client.list("p", page_size=3)]
        assert len(listed) == 7 and set(listed) == names
        client.cancel(sorted(names)[0])
        done = list(client.list("p", filter="done = true", page_size=1))
        assert [op["name"] for op in done] == [sorted(names)[0]]
        with pytest.raises(ApiError) as e:
            list(client.list("p", filter="nonsense ="))
        assert e.value.code == 3


def test_wait_returns_at_timeout_or_when_done(server: Server) -> None:
    with longrun.Client(server.url) as client:
        op = client.submit("p", "T")
        started = time.monotonic()
        still = client.wait(op["name"], timeout=0.3)
        assert still["done"] is False
        assert 0.25 <= time.monotonic() - started < 5
        client.cancel(op["name"])
        assert client.wait(op["name"], timeout=5)["done"] is True


def test_wait_repeats_past_the_servers_cap(tmp_path: object, store: str) -> None:
    from pathlib import Path

    from .conftest import make_server

    capped = make_server(Path(str(tmp_path)), store, '[wait]\ndefault = "1s"\nmax = "1s"\n')
    try:
        with longrun.Client(capped.url) as client:
            op = client.submit("p", "T")
            started = time.monotonic()
            assert client.wait(op["name"], timeout=2.5)["done"] is False
            assert time.monotonic() - started >= 2.4
    finally:
        capped.kill()


def test_unreachable_server_is_unavailable() -> None:
    with longrun.Client("http://127.0.0.1:9", timeout=2) as client, pytest.raises(ApiError) as e:
        client.get("projects/p/operations/x")
    assert (e.value.code, e.value.http_status) == (14, 0)


def test_async_client(server: Server) -> None:
    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            ops = [await client.submit("p", "T", {"i": i}) for i in range(4)]
            seen = [op["name"] async for op in client.list("p", page_size=2)]
            assert sorted(seen) == sorted(op["name"] for op in ops)
            await client.cancel(ops[0]["name"])
            assert (await client.wait(ops[0]["name"], timeout=5))["done"] is True
            assert (await client.get(ops[0]["name"]))["error"]["code"] == 1
            await client.delete(ops[0]["name"])
            with pytest.raises(ApiError) as e:
                await client.get(ops[0]["name"])
            assert e.value.reason == "OPERATION_NOT_FOUND"

    asyncio.run(scenario())


def test_submit_with_a_concurrency_key(tmp_path: object, store: str) -> None:
    from pathlib import Path

    import httpx

    from .conftest import BASE_CONFIG, make_server

    config = BASE_CONFIG + '\n[[task_type]]\ntype = "KEYED"\nkey_concurrency = 1\n'
    keyed = make_server(Path(str(tmp_path)), store, config)
    try:
        with longrun.Client(keyed.url) as client:
            first = client.submit("p", "KEYED", concurrency_key="tile-7")
            assert first["metadata"]["concurrencyKey"] == "tile-7"
            assert client.get(first["name"])["metadata"]["concurrencyKey"] == "tile-7"
            plain = client.submit("p", "KEYED")
            assert "concurrencyKey" not in plain["metadata"]
            with pytest.raises(ApiError) as e:
                client.submit("p", "KEYED", concurrency_key="")
            assert (e.value.http_status, e.value.reason) == (400, "INVALID_SUBMISSION")

        async def more() -> str:
            async with longrun.AsyncClient(keyed.url) as client:
                op = await client.submit("p", "KEYED", concurrency_key="tile-7")
                assert op["metadata"]["concurrencyKey"] == "tile-7"
                listed = [
                    o["name"]
                    async for o in client.list("p", filter='metadata.concurrencyKey = "tile-7"')
                ]
                assert sorted(listed) == sorted([first["name"], op["name"]])
                return str(op["name"])

        second = asyncio.run(more())
        # key_concurrency = 1: a lease takes one of the key and the unkeyed one.
        body = {"types": ["KEYED"], "maxOperations": 10, "waitTimeout": "0s"}
        leased = httpx.post(f"{keyed.url}/v1/workers/w:lease", json=body).json()["leases"]
        names = sorted(lease["operation"]["name"] for lease in leased)
        assert names == sorted([first["name"], plain["name"]])
        with longrun.Client(keyed.url) as client:
            assert client.get(second)["metadata"]["state"] == "PENDING"
    finally:
        keyed.kill()


def test_submit_with_a_schedule_time_and_a_start_timeout(server: Server) -> None:
    import datetime

    later = datetime.datetime(2099, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
    with longrun.Client(server.url) as client:
        op = client.submit("p", "LATER", schedule_time=later, start_timeout=90.5)
        metadata = op["metadata"]
        assert metadata["scheduleTime"] == "2099-01-02T03:04:05.678Z"
        assert metadata["startTimeout"] == "90.500s"
        assert metadata["waitingReason"] == longrun.WaitingReason.SCHEDULED
        listed = [o["name"] for o in client.list("p", filter="metadata.waitingReason = SCHEDULED")]
        assert listed == [op["name"]]
        with pytest.raises(ApiError) as e:
            client.submit("p", "LATER", start_timeout=0)
        assert (e.value.http_status, e.value.reason) == (400, "INVALID_START_TIMEOUT")


def test_results_are_typed(server: Server) -> None:
    """Operations are plain wire JSON typed as `longrun.Operation`; states and codes
    compare equal to the enums' members."""

    def progress(op: longrun.Operation) -> float:  # type-checked: a known optional key
        return op["metadata"].get("progress", 0.0)

    with longrun.Client(server.url) as client:
        op = client.submit("p", "T")
        assert op["metadata"]["state"] == longrun.State.PENDING
        assert longrun.State(op["metadata"]["state"]) is longrun.State.PENDING
        assert not longrun.State.PENDING.done and longrun.State.CANCELLED.done
        assert str(longrun.State.PENDING) == "PENDING" and progress(op) == 0.0
        client.cancel(op["name"])
        done = client.get(op["name"])
        assert done["error"]["code"] == longrun.Code.CANCELLED
        with pytest.raises(ApiError) as e:
            client.get("projects/p/operations/nope")
        assert e.value.code is longrun.Code.NOT_FOUND and int(e.value.code) == 5
        assert (str(e.value.code), f"{e.value.code}") == ("5", "5")
    assert longrun.Failed("bad", code=3).code is longrun.Code.INVALID_ARGUMENT
    assert longrun.Retry("later").code is longrun.Code.UNAVAILABLE


def test_watch_follows_changes_and_resumes(server: Server) -> None:
    """The snapshot, `synced`, then each change; a loop that stops and starts again with
    the last cursor misses nothing and repeats nothing; across a server restart the
    cursor is not recognised: `reset` and a fresh snapshot."""

    def until_synced(events: Iterator[longrun.WatchEvent]) -> list[longrun.WatchEvent]:
        seen = []
        for event in events:
            seen.append(event)
            if event.kind == "synced":
                return seen
        raise AssertionError("the stream ended")

    with longrun.Client(server.url) as client:
        first = client.submit("w", "T", operation_id="first")
        client.submit("other", "T")
        events = client.watch("w", filter='metadata.type = "T"')
        head = until_synced(events)
        assert [(e.kind, e.name) for e in head] == [("operation", first["name"]), ("synced", "")]
        assert head[0].operation is not None and head[0].operation["metadata"]["type"] == "T"
        second = client.submit("w", "T", operation_id="second")
        # (On a shared store a change in flight during the snapshot may come again.)
        event = next(e for e in events if e.name != first["name"])
        assert (event.kind, event.name) == ("operation", second["name"]) and event.cursor
        events.close()  # the loop stops: the stream is closed

        client.cancel(first["name"])
        client.delete(first["name"])
        resumed = client.watch("w", resume=event.cursor)
        seen = until_synced(resumed)
        assert {e.name for e in seen} == {first["name"], ""}, seen  # `second` not again
        assert (seen[-2].kind, seen[-2].name) == ("deleted", first["name"])
        for e in seen[:-2]:
            assert e.kind == "deleted" or e.operation is not None
            assert e.operation is None or e.operation["metadata"]["state"] == "CANCELLED"

        server.restart()  # the stream breaks; reopened with its cursor, of the last run
        after = until_synced(resumed)
        assert after[0].kind == "reset"
        assert [(e.kind, e.name) for e in after[1:]] == [
            ("operation", second["name"]),
            ("synced", ""),
        ]
        resumed.close()


def test_async_watch_changes_only(server: Server) -> None:
    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            await client.submit("w", "T")
            events = client.watch("w", changes_only=True)
            assert (await anext(events)).kind == "synced"
            op = await client.submit("w", "T", description="new")
            # On a shared store a change made just before the watch may come after `synced`.
            event = await anext(events)
            while event.name != op["name"]:
                event = await anext(events)
            assert event.kind == "operation" and event.operation is not None
            assert event.operation["metadata"]["description"] == "new"
            await events.aclose()

    asyncio.run(scenario())


def test_batch_cancel(server: Server) -> None:
    with longrun.Client(server.url) as client:
        queued = [client.submit("b", "T", {"i": i})["name"] for i in range(3)]
        kept = client.submit("b", "KEEP")["name"]
        job = client.batch_cancel("b", 'metadata.type = "T"')
        assert job["metadata"]["type"] == "BATCH_CANCEL"
        done = client.wait(job["name"], timeout=20)
        assert done["metadata"]["state"] == longrun.State.SUCCEEDED, done
        counts = done["response"]
        assert (counts["matchedCount"], counts["cancelledCount"]) == ("3", "3"), counts
        assert all(client.get(n)["metadata"]["state"] == "CANCELLED" for n in queued)
        assert client.get(kept)["metadata"]["state"] == "PENDING"

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            op = await client.submit("b", "T")
            job = await client.batch_cancel("b", "done = false")
            assert (await client.wait(job["name"], timeout=20))["done"]
            assert (await client.get(op["name"]))["metadata"]["state"] == "CANCELLED"

    asyncio.run(scenario())


def test_retry_and_batch_retry(server: Server) -> None:
    with longrun.Client(server.url) as client:
        op = client.submit("r", "T", {"x": 1}, description="d", priority=7, concurrency_key="k")
        with pytest.raises(longrun.ApiError) as refused:
            client.retry(op["name"])
        assert (refused.value.status, refused.value.reason) == (
            "FAILED_PRECONDITION",
            "OPERATION_NOT_DONE",
        )
        client.cancel(op["name"])
        again = client.retry(op["name"], operation_id="again", request_id="q")
        assert again["name"] == "projects/r/operations/again"
        metadata = again["metadata"]
        assert metadata["retryOf"] == op["name"]
        assert (metadata["state"], metadata["priority"], metadata["description"]) == (
            "PENDING",
            7,
            "d",
        )
        assert metadata.get("concurrencyKey") == "k"
        assert client.retry(op["name"], request_id="q")["name"] == again["name"]
        job = client.batch_retry("r", 'metadata.type = "T"')
        assert job["metadata"]["type"] == "BATCH_RETRY"
        done = client.wait(job["name"], timeout=20)
        counts = done["response"]
        assert (counts["matchedCount"], counts["retriedCount"], counts["notDoneCount"]) == (
            "2",
            "1",
            "1",
        ), counts

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            retries = [o async for o in client.list("r", f'metadata.retryOf = "{op["name"]}"')]
            assert len(retries) == 2, retries
            first = retries[0]["name"]
            await client.cancel(first)
            retried = await client.retry(first, request_id="a1")
            assert retried["metadata"]["retryOf"] == first
            assert (await client.retry(first, request_id="a1"))["name"] == retried["name"]
            job = await client.batch_retry("r", f'name = "{first}"')
            assert (await client.wait(job["name"], timeout=20))["response"]["retriedCount"] == "1"

    asyncio.run(scenario())


def test_the_output_of_a_command_operation(tmp_path: object, store: str) -> None:
    from pathlib import Path

    from .conftest import make_server

    config = """
[[task_type]]
type = "ECHO"
executor = "command"
command = ["sh", "-c", "echo out {payload.word}; echo err >&2"]
"""
    server = make_server(Path(str(tmp_path)), store, config)
    try:
        with longrun.Client(server.url) as client:
            op = client.submit("c", "ECHO", {"word": "hello"})
            done = client.wait(op["name"], timeout=30)
            assert done["metadata"]["state"] == "SUCCEEDED", done
            output = client.output(op["name"])
            assert "out hello" in output and "err" in output, output
            assert client.output(client.submit("c", "T")["name"]) == ""

        async def scenario() -> None:
            async with longrun.AsyncClient(server.url) as client:
                assert "out hello" in await client.output(op["name"])

        asyncio.run(scenario())
    finally:
        server.kill()


def test_submit_batch_is_all_or_nothing(server: Server) -> None:
    """`submit_batch` queues the whole batch in order, or none of it."""
    with longrun.Client(server.url) as client:
        ops = client.submit_batch(
            "p",
            [
                {"type": "PY_BATCH", "operationId": "b1", "requestId": "r1"},
                {"type": "PY_BATCH", "operationId": "b2", "payload": {"n": 2}},
                {"type": "PY_BATCH", "requestId": "r1"},
            ],
        )
        assert [op["name"] for op in ops] == [
            "projects/p/operations/b1",
            "projects/p/operations/b2",
            "projects/p/operations/b1",
        ]
        with pytest.raises(ApiError) as e:
            client.submit_batch("p", [{"type": "PY_BATCH"}, {"type": ""}])
        assert e.value.http_status == 400
        assert e.value.message.startswith("requests[1]: ")
        with pytest.raises(ApiError) as e:
            client.submit_batch(
                "p",
                [
                    {"type": "PY_BATCH", "operationId": "b3"},
                    {"type": "PY_BATCH", "operationId": "b2"},
                ],
            )
        assert e.value.http_status == 409
        assert len(list(client.list("p"))) == 2

    async def main() -> None:
        async with longrun.AsyncClient(server.url) as client:
            ops = await client.submit_batch("p", [{"type": "PY_BATCH", "operationId": "a1"}])
            assert [op["name"] for op in ops] == ["projects/p/operations/a1"]

    asyncio.run(main())


def test_children_of_a_parent(server: Server) -> None:
    with longrun.Client(server.url) as client:
        parent = client.submit("tree", "JOB")
        child = client.submit("tree", "PART", parent=parent["name"])
        assert child["metadata"]["parent"] == parent["name"]
        assert child["metadata"]["waitingReason"] == "PARENT"
        client.cancel(parent["name"])
        with pytest.raises(longrun.ApiError) as refused:
            client.submit("tree", "PART", parent=parent["name"])
        assert (refused.value.status, refused.value.reason) == (
            "FAILED_PRECONDITION",
            "PARENT_NOT_OPEN",
        )
        done = client.wait(parent["name"], timeout=20)
        assert done["metadata"]["state"] == "CANCELLED", done
        assert client.get(child["name"])["metadata"]["state"] == "CANCELLED"

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client:
            root = await client.submit("tree", "JOB")
            await client.submit("tree", "PART", parent=root["name"])
            children = [o async for o in client.list("tree", f'metadata.parent = "{root["name"]}"')]
            assert len(children) == 1, children

    asyncio.run(scenario())
