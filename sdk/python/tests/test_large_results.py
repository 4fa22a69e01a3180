"""Large results: completions that finish together are split so that no message passes the
limit the server states on the Work stream (4 MiB), and a single result over the limit
(4 MiB over gRPC, 1 MiB over REST) fails its operation with a clear error, once."""

from __future__ import annotations

import asyncio
import string

import pytest

import longrun

from .conftest import Server
from .helpers import running, state


def blob(i: int, size: int) -> str:
    """`size` characters that differ from one `i` to the next."""
    unit = f"{i:02d}" + string.ascii_letters + string.digits
    return (unit * (size // len(unit) + 1))[:size]


def make_worker(server: Server, transport: str, concurrency: int) -> longrun.Worker:
    return longrun.Worker(
        server.url,
        name="w1",
        transport=transport,  # type: ignore[arg-type]
        concurrency=concurrency,
        lease_poll=0.5,
        shutdown_grace=5.0,
    )


def test_six_large_results_finishing_together_all_land(server: Server) -> None:
    """Six results of ~800 KB each, returned in the same turn of the event loop (4.8 MB
    together, over the stream's 4 MiB): all six SUCCEEDED with their results intact."""
    worker = make_worker(server, "grpc", concurrency=6)
    gate = asyncio.Event()
    started: list[str] = []

    @worker.handler("BIG")
    async def big(ctx: longrun.Context) -> dict[str, object]:
        started.append(ctx.name)
        if len(started) == 6:
            gate.set()
        await gate.wait()  # all six return together
        return {"i": ctx.payload["i"], "blob": blob(ctx.payload["i"], 800_000)}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            ops = [await client.submit("p", "BIG", {"i": i}) for i in range(6)]
            for i, op in enumerate(ops):
                done = await client.wait(op["name"], timeout=30)
                assert state(done) == "SUCCEEDED", {
                    k: v for k, v in done.items() if k != "response"
                }
                assert done["metadata"]["attempt"] == 1
                value = done["response"]["value"]
                assert value["i"] == i and value["blob"] == blob(i, 800_000)
            assert sorted(started) == sorted(op["name"] for op in ops)  # each ran once

    asyncio.run(scenario())


@pytest.mark.parametrize(("transport", "size"), [("grpc", 5_000_000), ("rest", 1_200_000)])
def test_a_result_over_the_limit_fails_clearly_and_once(
    server: Server, transport: str, size: int
) -> None:
    worker = make_worker(server, transport, concurrency=2)
    runs: list[int] = []

    @worker.handler("HUGE")
    async def huge(ctx: longrun.Context) -> dict[str, str]:
        runs.append(ctx.attempt)
        return {"blob": "x" * size}

    @worker.handler("SMALL")
    async def small(ctx: longrun.Context) -> dict[str, int]:
        return {"size": 1}

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("p", "HUGE")
            done = await client.wait(op["name"], timeout=30)
            assert state(done) == "FAILED", done
            assert done["error"]["code"] == 8  # RESOURCE_EXHAUSTED
            message = done["error"]["message"]
            assert "over the server's limit" in message and "bytes" in message, message
            assert runs == [1] and done["metadata"]["attempt"] == 1
            # The worker goes on: the next operation completes as usual.
            after = await client.wait((await client.submit("p", "SMALL"))["name"], timeout=30)
            assert state(after) == "SUCCEEDED", after

    asyncio.run(scenario())
