"""What a worker logs, as a user reads it: one line at start, a handler's traceback (kept,
trimmed, in the operation's error as a google.rpc.DebugInfo too), and one short line per
attempt to reach a server that is down, not one per call or per running operation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import longrun

from .conftest import Server
from .helpers import eventually, running, state

TRANSPORTS = ["grpc", "rest"]
DEBUG_INFO = "type.googleapis.com/google.rpc.DebugInfo"


def make_worker(server: Server, transport: str, **kw: Any) -> longrun.Worker:
    return longrun.Worker(
        server.url,
        name="w1",
        transport=transport,  # type: ignore[arg-type]
        lease_poll=0.5,
        shutdown_grace=5.0,
        **kw,
    )


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def explode(payload: dict[str, Any]) -> None:
    raise KeyError(payload.get("key", "missing"))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_start_line_and_a_handlers_traceback(
    server: Server, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="longrun")
    worker = make_worker(server, transport, concurrency=3)

    @worker.handler("CRASH")
    async def crash(ctx: longrun.Context) -> None:
        await asyncio.sleep(0)
        explode({})

    @worker.handler("NAP")
    def nap(ctx: longrun.Context) -> None:
        explode({"key": "sync"})

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            op = await client.submit("p", "CRASH")
            done = await client.wait(op["name"], timeout=20)
            sync = await client.wait((await client.submit("p", "NAP"))["name"], timeout=20)
        assert state(done) == "FAILED" and done["error"]["code"] == longrun.Code.UNKNOWN
        assert done["error"]["message"] == "KeyError: 'missing'"
        [info] = done["error"]["details"]
        assert info["@type"] == DEBUG_INFO and info["detail"] == "KeyError: 'missing'"
        stack = info["stackEntries"]
        # The handler's frames, innermost last; none of the worker's own.
        assert "in crash" in stack[0] and "in explode" in stack[-1], stack
        assert "raise KeyError" in stack[-1] and len(stack) == 2, stack
        assert sync["error"]["message"] == "KeyError: 'sync'"
        assert "in nap" in sync["error"]["details"][0]["stackEntries"][0]

        started = lines(caplog, "started: server")
        assert started == [
            f"worker w1 started: server {server.url}, types CRASH, NAP, concurrency 3, "
            f"transport {transport}"
        ]
        [record] = [r for r in caplog.records if r.getMessage().startswith(op["name"])]
        assert record.levelno == logging.ERROR
        assert record.getMessage() == f"{op['name']}: the handler raised KeyError: 'missing'"
        assert record.exc_info is not None and record.exc_info[0] is KeyError
        assert "in explode" in caplog.text and "Traceback" in caplog.text

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_short_line_per_attempt_to_reach_a_server_that_is_down(
    server: Server, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server is killed under three running handlers, and comes back after 2.5 s: the
    log has one line per attempt (each with its backoff), and one when it is reached."""
    caplog.set_level(logging.INFO, logger="longrun")
    worker = make_worker(server, transport, concurrency=3, lease_duration=30.0)
    release = asyncio.Event()

    @worker.handler("NAP")
    async def nap(ctx: longrun.Context) -> None:
        await release.wait()

    async def scenario() -> None:
        async with longrun.AsyncClient(server.url) as client, running(worker):
            ops = [await client.submit("p", "NAP") for _ in range(3)]
            await eventually(lambda: _all_running(client, ops))
            caplog.clear()
            server.kill()
            await asyncio.sleep(2.5)
            server.restart()
            release.set()
            for op in ops:
                assert state(await client.wait(op["name"], timeout=30)) == "SUCCEEDED"
        attempts = lines(caplog, "cannot reach the server")
        assert 2 <= len(attempts) <= 9, attempts
        for n, line in enumerate(attempts, 1):
            assert "\n" not in line and len(line) < 220, line
            assert line.startswith(f"cannot reach the server at {server.url} (")
            assert f"attempt {n}, retrying in " in line
        assert len(lines(caplog, "reached the server at")) == 1, caplog.text
        assert not lines(caplog, "heartbeat failed") and not lines(caplog, "lease failed")
        assert all("\n" not in r.getMessage() for r in caplog.records)

    asyncio.run(scenario())


async def _all_running(client: longrun.AsyncClient, ops: list[longrun.Operation]) -> bool:
    return all([state(await client.get(op["name"])) == "RUNNING" for op in ops])
