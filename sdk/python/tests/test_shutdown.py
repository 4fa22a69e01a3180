"""A worker process stopped as a deploy stops it (SIGTERM, SIGINT): what runs gets the
grace, then is released, and what was leased ahead is released without running; a
release spends no attempt, so `max_attempts=1` operations run again and succeed. A second
SIGINT stops at once; with the server down a stop still ends within the grace."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import longrun

from .conftest import Server
from .helpers import running, state

SCRIPT = Path(__file__).with_name("worker_process.py")


def spawn(url: str, grace: float, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), url, str(grace), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.01)


def run_to_success(url: str, names: list[str]) -> list[longrun.Operation]:
    """A fresh in-process worker whose NAP handler returns at once, until `names` end."""
    worker = longrun.Worker(url, name="after", lease_poll=0.5, shutdown_grace=5.0)

    @worker.handler("NAP")
    async def quick(ctx: longrun.Context) -> dict[str, int]:
        return {"attempt": ctx.attempt}

    async def scenario() -> list[longrun.Operation]:
        async with longrun.AsyncClient(url) as client, running(worker):
            return [await client.wait(name, timeout=30) for name in names]

    return asyncio.run(scenario())


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_sigterm_releases_the_running_and_the_prefetched_job(
    server: Server, transport: str
) -> None:
    with longrun.Client(server.url) as client:
        busy = client.submit("p", "NAP", {"seconds": 60}, max_attempts=1)
        proc = spawn(
            server.url, 3.0, "--concurrency", "1", "--prefetch", "1", "--transport", transport
        )
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.readline().strip() == f"started {busy['name']}"
            ahead = client.submit("p", "NAP", {"seconds": 0.2}, max_attempts=1)
            wait_for(lambda: state(client.get(ahead["name"])) == "RUNNING", 10)
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            # The one leased ahead never started: it is handed back at once, while the
            # running one still has its grace.
            wait_for(lambda: state(client.get(ahead["name"])) == "PENDING", 2.0)
            assert proc.poll() is None
            out, err = proc.communicate(timeout=20)
            took = time.monotonic() - began
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert took < 3.0 + 0.5, took
        assert f"cancelled {busy['name']}" in out and f"started {ahead['name']}" not in out
        assert (
            f"worker proc started: server {server.url}, types NAP, concurrency 1 "
            f"(+1 prefetched), transport {transport}"
        ) in err
        for name in (busy["name"], ahead["name"]):
            op = client.get(name)
            assert state(op) == "PENDING" and "error" not in op, op
            assert f"{name}: released (queued again, no attempt spent)" in err
    # Run again (each `max_attempts=1`), they succeed: the releases spent no attempt.
    for done in run_to_success(server.url, [busy["name"], ahead["name"]]):
        assert state(done) == "SUCCEEDED", done
        assert done["metadata"]["attempt"] == 2


def test_a_second_sigint_stops_at_once(server: Server) -> None:
    with longrun.Client(server.url) as client:
        op = client.submit("p", "NAP", {"seconds": 60})
        proc = spawn(server.url, 30.0)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == f"started {op['name']}"
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
            assert proc.poll() is None  # in its grace
            began = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=10)
            took = time.monotonic() - began
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert took < 1.5, took
        assert "SIGINT again: stopping at once" in err
        released = client.get(op["name"])
        assert state(released) == "PENDING" and "error" not in released


def test_a_stop_with_the_server_down_ends_within_the_grace(server: Server) -> None:
    with longrun.Client(server.url) as client:
        op = client.submit("p", "NAP", {"seconds": 60})
    proc = spawn(server.url, 2.0)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"started {op['name']}"
        server.kill()
        time.sleep(0.5)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - began
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert took < 2.0 + 0.5, (took, err)
    # One line per attempt to reach the server, each with its backoff.
    tries = [line for line in err.splitlines() if "cannot reach the server" in line]
    assert tries and all("retrying in" in line for line in tries), err
