"""The cancel-running and idle scenarios with procrastinate, as longrun_sdk.py runs them.

Usage: python procrastinate_cancel.py [DATABASE_URL]

- cancel: a worker process (concurrency 4, LISTEN/NOTIFY on) runs an async task whose loop
  awaits `asyncio.sleep(0.005)`; each round defers one job, waits for the task to start,
  calls `cancel_job_by_id_async(id, abort=True)`, and measures from just before that call
  until the task sees `asyncio.CancelledError` (both processes read CLOCK_MONOTONIC).
  `ROUNDS` rounds (200).
- idle: the same worker process with nothing to do, for 10 s after a 2 s settle: CPU (% of
  one core) and VmRSS.

Runs in a fresh schema (peers_procrastinate_cancel_<pid>) that it drops at the end.
"""

import asyncio
import logging
import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import procrastinate
import psycopg

ROUNDS = int(os.environ.get("ROUNDS", 200))
URL = (sys.argv[1:] or [os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")])[
    0
]
SCHEMA = os.environ.get("PEERS_SCHEMA", f"peers_procrastinate_cancel_{os.getpid()}")

logging.getLogger("procrastinate").setLevel(logging.ERROR)


def make_app() -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(
        conninfo=URL, kwargs={"options": f"-c search_path={SCHEMA}"}
    )
    app = procrastinate.App(connector=connector)

    @app.task(name="nap")
    async def nap() -> None:
        print("started", flush=True)
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            print(f"cancelled {time.monotonic_ns()}", flush=True)
            raise

    return app


async def worker() -> None:
    app = make_app()
    async with app.open_async():
        print("ready", flush=True)
        await app.run_worker_async(concurrency=4, listen_notify=True)


def spawn() -> subprocess.Popen:
    env = {**os.environ, "PEERS_SCHEMA": SCHEMA}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", URL], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def percentile(values: list, p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def cancel() -> str:
    app = make_app()
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        proc = spawn()
        latencies = []
        try:
            for _ in range(ROUNDS):
                job_id = await app.tasks["nap"].defer_async()
                assert proc.stdout.readline().strip() == "started"
                await asyncio.sleep(0.02)
                asked = time.monotonic_ns()
                await app.job_manager.cancel_job_by_id_async(job_id, abort=True)
                line = proc.stdout.readline().split()
                assert line[0] == "cancelled", line
                latencies.append((int(line[1]) - asked) / 1e6)
        finally:
            proc.terminate()
            proc.wait()
    return (
        f"cancel a running async task → CancelledError: p50 {percentile(latencies, 50):.2f} ms, "
        f"p99 {percentile(latencies, 99):.2f} ms, max {max(latencies):.2f} ms ({ROUNDS} rounds)"
    )


def idle() -> str:
    proc = spawn()
    try:
        time.sleep(2)
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu() -> int:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])

        before, began = cpu(), time.monotonic()
        time.sleep(10)
        used = (cpu() - before) / ticks / (time.monotonic() - began) * 100
        rss = next(
            int(line.split()[1]) / 1024
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
    finally:
        proc.terminate()
        proc.wait()
    return f"idle worker: {used:.2f} % of a core, {rss:.1f} MB RSS"


async def main() -> None:
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as admin:
        await admin.execute(f"CREATE SCHEMA {SCHEMA}")
        try:
            lines = [await cancel(), idle()]
        finally:
            await admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    for line in lines:
        print(f"procrastinate {version('procrastinate')}: {line}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        URL = sys.argv[2]
        asyncio.run(worker())
    else:
        asyncio.run(main())
