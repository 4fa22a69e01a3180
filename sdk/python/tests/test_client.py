"""`Client` and `AsyncClient` against a real server: every method, pages, waits, errors."""

from __future__ import annotations

import asyncio
import time

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
