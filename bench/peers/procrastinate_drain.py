"""S4 with procrastinate: enqueue 5,000 no-op jobs, then drain them with one worker.

Usage: python procrastinate_drain.py [DATABASE_URL]

Runs in a fresh schema (peers_procrastinate_<pid>) that it drops at the end. Enqueue is one
`defer_async` call (one INSERT) per job from 4 concurrent callers. Drain is timed from the
start of a worker with concurrency 4 until it has finished the last job: with `wait=False`
the worker stops once the queue is empty and its running jobs are done.
"""

import asyncio
import logging
import os
import sys
import time
from importlib.metadata import version

import procrastinate
import psycopg

JOBS = int(os.environ.get("JOBS", 5_000))
CONCURRENCY = 4
ENQUEUERS = 4
URL = (sys.argv[1:] or [os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")])[
    0
]
SCHEMA = f"peers_procrastinate_{os.getpid()}"

# The worker runs in this process, so the warning about defining the app in __main__ (for
# workers in other processes that import it) does not apply.
logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)


async def bench() -> tuple[float, float]:
    connector = procrastinate.PsycopgConnector(
        conninfo=URL, kwargs={"options": f"-c search_path={SCHEMA}"}
    )
    app = procrastinate.App(connector=connector)

    @app.task(name="noop")
    async def noop() -> None:
        pass

    async with app.open_async():
        await app.schema_manager.apply_schema_async()

        async def enqueue(count: int) -> None:
            for _ in range(count):
                await noop.defer_async()

        started = time.perf_counter()
        await asyncio.gather(
            *(enqueue(JOBS // ENQUEUERS + (i < JOBS % ENQUEUERS)) for i in range(ENQUEUERS))
        )
        enqueued = time.perf_counter() - started

        started = time.perf_counter()
        await app.run_worker_async(
            concurrency=CONCURRENCY, wait=False, install_signal_handlers=False
        )
        drained = time.perf_counter() - started

        rows = await connector.execute_query_all_async(
            "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY status"
        )
        counts = {row["status"]: row["n"] for row in rows}
        if counts != {"succeeded": JOBS}:
            sys.exit(f"procrastinate: expected {JOBS} succeeded jobs, found {counts}")
    return enqueued, drained


async def main() -> None:
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as admin:
        await admin.execute(f"CREATE SCHEMA {SCHEMA}")
        try:
            enqueued, drained = await bench()
        finally:
            await admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    print(
        f"procrastinate {version('procrastinate')}: enqueue {JOBS / enqueued:.0f} jobs/s, "
        f"drain {JOBS / drained:.0f} jobs/s ({JOBS} jobs, concurrency {CONCURRENCY}; "
        f"enqueue {enqueued:.2f} s, drain {drained:.2f} s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
